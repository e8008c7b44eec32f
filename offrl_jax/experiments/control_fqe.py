"""Fitted Q evaluation of controllers on gymnax control tasks: policies and value estimates.

What combines the control environments (``offrl_jax.envs.control``) with FQE:

* :func:`controller_probs`: a :class:`~offrl_jax.envs.control_policies.Controller` (or any
  ``ControlPolicy`` and its parameters) as the ``observations [B, D] -> [B, A]`` probability
  function that FQE's targets take;
* :func:`fqe_value`: FQE trained for several seeds at once (``vmap`` of
  :func:`~offrl_jax.fitted.make_train`), each seed's direct-method estimate
  Ĵ = (1/N) Σ_n Σ_a π(a|s_0^n) Q̂(s_0^n, a), and their mean and standard error over seeds.

Time limits: build the dataset with :func:`offrl_jax.fitted.time_aware_transitions` (input
[o, t / T], the time-out terminal; "Time Limits in Reinforcement Learning", Pardo et al. 2018)
and the start observations with :func:`offrl_jax.fitted.with_time`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.core.validation import check_positive_int
from offrl_jax.data import Transitions
from offrl_jax.envs.control_policies import Controller
from offrl_jax.fitted import FittedQConfig, initial_value, make_train, policy_probs, validate_data

Array = Any

__all__ = ["FQEValue", "controller_probs", "fqe_value"]


def controller_probs(
    controller: Controller, num_actions: int, obs_dim: Optional[int] = None
) -> Callable[[Array], Array]:
    """A control policy as a batched probability function, π(·|o) for every row of a batch.

    probs[b, a] = exp(log π(a | o_b[:obs_dim])) for a in [0, A), from the policy's exact
    ``log_prob`` (for the epsilon-mixed threshold controllers, π(a|o) = ε/A + (1 − ε) 1[a =
    c(o)]; see "Empirical Study of Off-Policy Policy Evaluation for Reinforcement Learning",
    Voloshin et al. 2019). Only the first ``obs_dim`` features are passed to the policy, so the
    function also accepts observations with appended features (e.g. :func:`with_time`'s t / T).

    Args:
      controller: ``(policy, params)``, e.g. ``controller("Acrobot-v1", 0.1)``.
      num_actions: A, the number of discrete actions of the task.
      obs_dim: the number of leading features the policy reads; ``None``: all of them.

    Returns:
      A pure function ``observations [B, D'] -> [B, A]`` (D' >= obs_dim) in the dtype of the
      policy's log-probabilities.

    Raises:
      ValueError: if ``num_actions`` or ``obs_dim`` is not a positive int.
    """
    check_positive_int(num_actions, "num_actions")
    check_positive_int(obs_dim, "obs_dim", allow_none=True)
    policy, params = controller
    actions = jnp.arange(num_actions)

    def probs(observations: Array) -> Array:
        obs = observations if obs_dim is None else observations[..., :obs_dim]
        per_obs = lambda o: jax.vmap(lambda a: policy.log_prob(params, o, a))(actions)
        return jnp.exp(jax.vmap(per_obs)(obs))

    return probs


class FQEValue(NamedTuple):
    """FQE's value estimates over seeds.

    Attributes:
      estimate: ``[]`` mean over seeds of the per-seed estimates.
      standard_error: ``[]`` their sample standard deviation / sqrt(S) (0 when S = 1).
      seed_estimates: ``[S]`` Ĵ of each seed.
      final_loss: ``[S]`` mean TD loss over each run's last 10% of steps (in scaled rewards).
    """

    estimate: Array
    standard_error: Array
    seed_estimates: Array
    final_loss: Array


def _standardizer(observations: Array, standardize: bool) -> Tuple[Callable, Callable]:
    """(o ↦ (o − μ) / σ, o ↦ o σ + μ) from the dataset's moments, or two identities."""
    if not standardize:
        return (lambda o: o), (lambda o: o)
    mu = jnp.mean(observations, axis=0, keepdims=True)
    sd = jnp.std(observations, axis=0, keepdims=True)
    sigma = jnp.where(sd > 0, sd, 1.0).astype(observations.dtype)
    return (lambda o: (o - mu) / sigma), (lambda o: o * sigma + mu)


def _check_args(keys, data, initial_observations, target_policy, config, reward_scale) -> None:
    if not isinstance(config, FittedQConfig) or config.method != "fqe":
        raise ValueError(f"config.method: expected a FittedQConfig with method 'fqe', found {config!r}")
    if not callable(target_policy):
        raise ValueError("target_policy: expected a function observations [B, D] -> [B, A] probabilities")
    validate_data(config, data, target_policy)
    s0, obs = initial_observations, data.observations
    if s0.ndim != obs.ndim or s0.shape[1:] != obs.shape[1:] or s0.shape[0] < 1:
        raise ValueError(
            f"initial_observations: expected [N, {', '.join(map(str, obs.shape[1:]))}] "
            f"like the dataset's observations, found {list(s0.shape)}"
        )
    if not isinstance(reward_scale, jax.core.Tracer) and not (np.isfinite(reward_scale) and reward_scale > 0):
        raise ValueError(f"reward_scale: expected a positive finite number, found {reward_scale!r}")
    typed = jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key)
    if keys.ndim != (1 if typed else 2) or keys.shape[0] < 1:
        raise ValueError(f"keys: expected [S] PRNG keys (jax.random.split(key, S)), found shape {keys.shape}")


def fqe_value(
    keys: Array,
    data: Transitions,
    initial_observations: Array,
    target_policy: Callable[[Array], Array],
    config: FittedQConfig,
    *,
    reward_scale: float = 1.0,
    standardize: bool = True,
) -> FQEValue:
    """FQE's estimate of a policy's value, one network per key, with its spread over seeds.

    Each seed fits Q̂ by FQE on rewards c·r (c = ``reward_scale``; targets
    y = c·r + γ d Σ_a' π(a'|s') Q̄(s', a')) and returns
    Ĵ = (1/c) (1/N) Σ_n Σ_a π(a|s_0^n) Q̂(s_0^n, a). The FQE fixed point is linear in the
    rewards, so scaling changes only the optimisation (e.g. c = 1 − γ keeps Q̂ in the range of
    one reward). See "Batch Policy Learning under Constraints", Le, Voloshin & Yue 2019.
    Seeds are vmapped (one program); jit with ``target_policy`` and ``config`` static, e.g.
    ``jax.jit(fqe_value, static_argnames=("target_policy", "config", "standardize"))``.

    Args:
      keys: ``[S]`` PRNG keys, one per seed.
      data: :class:`~offrl_jax.data.Transitions` (observations ``[M, D]``, int actions).
      initial_observations: ``[N, D]`` start observations s_0^n (e.g. the dataset's episodes').
      target_policy: the evaluated policy, ``observations [B, D] -> [B, A]`` probabilities.
      config: :class:`~offrl_jax.fitted.FittedQConfig` with ``method="fqe"``.
      reward_scale: c > 0.
      standardize: if true, the network reads observations standardised with the dataset's
        per-feature mean μ and standard deviation σ, (o − μ) / σ (σ = 1 for constant features);
        the policy still reads raw observations. Features on very different scales (e.g.
        MountainCar's position and velocity) otherwise slow or bias the fit. Ignored for
        integer (``num_observations``) inputs.

    Returns:
      :class:`FQEValue` (estimate, standard error over seeds, ``[S]`` estimates and losses).

    Raises:
      ValueError: on a bad config/data/policy (host-side, see
        :func:`~offrl_jax.fitted.validate_data`), ``method != "fqe"``, mismatched initial
        observations or a non-positive ``reward_scale``.
    """
    _check_args(keys, data, initial_observations, target_policy, config, reward_scale)
    scale = jnp.asarray(reward_scale, jnp.dtype(config.dtype))
    probs0 = policy_probs(initial_observations, target_policy)
    # Integer (one-hot) observations are never standardised.
    fwd, inv = _standardizer(data.observations, standardize and config.num_observations is None)
    scaled = data.replace(
        observations=fwd(data.observations),
        next_observations=fwd(data.next_observations),
        rewards=data.rewards.astype(scale.dtype) * scale,
    )
    s0 = fwd(initial_observations)
    train = make_train(config, lambda o: target_policy(inv(o)))
    tail = max(config.num_steps // 10, 1)

    def one(key):
        res = train(key, scaled)
        est = initial_value(res.state.apply_fn, res.state.params, s0, lambda _: probs0) / scale
        return est, jnp.mean(res.metrics.loss[-tail:])

    est, loss = jax.vmap(one)(keys)
    num_seeds = est.shape[0]
    se = jnp.std(est, ddof=1) / np.sqrt(num_seeds) if num_seeds > 1 else jnp.zeros((), est.dtype)
    return FQEValue(estimate=jnp.mean(est), standard_error=se, seed_estimates=est, final_loss=loss)
