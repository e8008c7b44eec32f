"""Fitted Q evaluation of controllers on gymnax control tasks: policies, time limits, estimates.

Three small pieces that turn control rollouts (``offrl_jax.envs.control``) into an FQE value:

* :func:`controller_probs`: a :class:`~offrl_jax.envs.control_policies.Controller` (or any
  ``ControlPolicy`` and its parameters) as the ``observations [B, D] -> [B, A]`` probability
  function that FQE's targets take;
* :func:`time_aware_transitions` / :func:`with_time`: the time-limit-aware dataset. An episode
  cut at the time limit T has value E[Σ_{t < min(L, T)} γ^t r_t]; that is a value of the
  *time-augmented* state (o, t), not of o alone. Appending the feature t / T to the
  observations and treating the time-out as a terminal step (discount 0) makes FQE's fixed
  point this truncated value, the quantity Monte-Carlo returns of episodes cut at T estimate.
  (Bootstrapping through the time-out instead, "partial-episode bootstrapping", estimates the
  value without the limit.) See "Time Limits in Reinforcement Learning", Pardo, Tavakoli,
  Levdik & Kormushev 2018;
* :func:`fqe_value`: FQE trained for several seeds at once (``vmap`` of
  :func:`~offrl_jax.fitted.train.make_train`), each seed's direct-method estimate
  Ĵ = (1/N) Σ_n Σ_a π(a|s_0^n) Q̂(s_0^n, a), and their mean and standard error over seeds.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.data import Trajectories, Transitions, to_transitions
from offrl_jax.envs.control_policies import Controller
from offrl_jax.fitted.targets import policy_probs
from offrl_jax.fitted.train import FittedQConfig, initial_value, make_train, validate_config, validate_dataset

Array = Any

__all__ = [
    "FQEValue",
    "controller_probs",
    "fqe_value",
    "time_aware_transitions",
    "with_time",
]


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
    for name, v in (("num_actions", num_actions), ("obs_dim", obs_dim)):
        if v is None and name == "obs_dim":
            continue
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: expected a positive int, found {v!r}")
    policy, params = controller
    actions = jnp.arange(num_actions)

    def probs(observations: Array) -> Array:
        obs = observations if obs_dim is None else observations[..., :obs_dim]
        per_obs = lambda o: jax.vmap(lambda a: policy.log_prob(params, o, a))(actions)
        return jnp.exp(jax.vmap(per_obs)(obs))

    return probs


def with_time(observations: Array, steps: Array, time_limit: int) -> Array:
    """Appends the elapsed-time feature t / T to observations: [o, t / T].

    See "Time Limits in Reinforcement Learning", Pardo et al. 2018 (time-aware inputs).

    Args:
      observations: ``[..., D]`` float observations.
      steps: integer time steps t, shape ``observations.shape[:-1]`` (or broadcastable to it).
      time_limit: T, the episode time limit (Python int >= 1).

    Returns:
      ``[..., D + 1]`` observations in their own dtype.
    """
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, np.integer)) or time_limit < 1:
        raise ValueError(f"time_limit: expected a positive int, found {time_limit!r}")
    observations = jnp.asarray(observations)
    t = jnp.broadcast_to(jnp.asarray(steps), observations.shape[:-1]).astype(observations.dtype)
    return jnp.concatenate([observations, (t / time_limit)[..., None]], axis=-1)


def time_aware_transitions(traj: Trajectories, time_limit: int) -> Transitions:
    """Flat transitions of the time-augmented task: observations [o_t, t / T], time-outs terminal.

    For step t of episode n: observations [o_t, t/T], next_observations [o_{t+1}, (t+1)/T] and
    discounts 0 where the episode terminates *or* t + 1 = T (the time limit is reached), so the
    FQE fixed point is Q^π(o, t, a) = E[Σ_{k=t}^{min(L, T)−1} γ^{k−t} r_k | o_t = o, a_t = a],
    the value Monte-Carlo returns of episodes cut at T estimate. Rows are trajectories started
    at t = 0 (e.g. :func:`~offrl_jax.envs.control.control_rollout` with ``horizon <= T``); a row
    cut by a shorter rollout horizon keeps discount 1 at its last step. See "Time Limits in
    Reinforcement Learning", Pardo et al. 2018. Host-side (drops padded steps).

    Args:
      traj: padded :class:`~offrl_jax.data.Trajectories` with observations ``[N, H, D]``.
      time_limit: T, the environment's time limit (e.g. ``env_params.max_steps_in_episode``).

    Returns:
      :class:`~offrl_jax.data.Transitions` with ``[M, D + 1]`` observations (M real steps).

    Raises:
      ValueError: on a bad ``time_limit`` or observations that are not ``[N, H, D]`` floats.
    """
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, np.integer)) or time_limit < 1:
        raise ValueError(f"time_limit: expected a positive int, found {time_limit!r}")
    obs = traj.observations
    if obs.ndim != 3 or not jnp.issubdtype(obs.dtype, jnp.floating):
        raise ValueError(f"traj.observations: expected [N, H, D] floats, found {obs.shape} {obs.dtype}")
    horizon = obs.shape[1]
    steps = jnp.broadcast_to(jnp.arange(horizon), obs.shape[:2])
    timeout = (steps + 1) >= time_limit
    discounts = jnp.where(timeout, 0.0, traj.discounts).astype(traj.discounts.dtype)
    aug = traj.replace(
        observations=with_time(obs, steps, time_limit),
        next_observations=with_time(traj.next_observations, steps + 1, time_limit),
        discounts=discounts,
    )
    return to_transitions(aug)


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


def fqe_value(
    keys: Array,
    dataset: Transitions,
    initial_observations: Array,
    policy: Callable[[Array], Array],
    config: FittedQConfig,
    reward_scale: float = 1.0,
    standardize: bool = True,
) -> FQEValue:
    """FQE's estimate of a policy's value, one network per key, with its spread over seeds.

    Each seed fits Q̂ by FQE on rewards c·r (c = ``reward_scale``; targets
    y = c·r + γ d Σ_a' π(a'|s') Q̄(s', a')) and returns
    Ĵ = (1/c) (1/N) Σ_n Σ_a π(a|s_0^n) Q̂(s_0^n, a). The FQE fixed point is linear in the
    rewards, so scaling changes only the optimisation (e.g. c = 1 − γ keeps Q̂ in the range of
    one reward). See "Batch Policy Learning under Constraints", Le, Voloshin & Yue 2019.
    Seeds are vmapped (one program); jit with ``policy`` and ``config`` static, e.g.
    ``jax.jit(fqe_value, static_argnames=("policy", "config", "standardize"))``.

    Args:
      keys: ``[S]`` PRNG keys, one per seed.
      dataset: :class:`~offrl_jax.data.Transitions` (observations ``[M, D]``, int actions).
      initial_observations: ``[N, D]`` start observations s_0^n (e.g. the dataset's episodes').
      policy: the evaluated policy, ``observations [B, D] -> [B, A]`` probabilities.
      config: :class:`~offrl_jax.fitted.train.FittedQConfig` with ``method="fqe"``.
      reward_scale: c > 0.
      standardize: if true, the network reads observations standardised with the dataset's
        per-feature mean μ and standard deviation σ, (o − μ) / σ (σ = 1 for constant features);
        the policy still reads raw observations. Features on very different scales (e.g.
        MountainCar's position and velocity) otherwise slow or bias the fit. Ignored for
        integer (``num_observations``) inputs.

    Returns:
      :class:`FQEValue` (estimate, standard error over seeds, ``[S]`` estimates and losses).

    Raises:
      ValueError: on a bad config/dataset/policy (host-side, see
        :func:`~offrl_jax.fitted.train.validate_dataset`), ``method != "fqe"``, mismatched
        initial observations or a non-positive ``reward_scale``.
    """
    validate_config(config)
    if config.method != "fqe":
        raise ValueError(f"config.method: expected 'fqe', found {config.method!r}")
    if not callable(policy):
        raise ValueError("policy: expected a function observations [B, D] -> [B, A] probabilities")
    validate_dataset(config, dataset, policy)
    s0 = initial_observations
    if s0.ndim != dataset.observations.ndim or s0.shape[1:] != dataset.observations.shape[1:] or s0.shape[0] < 1:
        raise ValueError(
            f"initial_observations: expected [N, {', '.join(map(str, dataset.observations.shape[1:]))}] "
            f"like the dataset's observations, found {list(s0.shape)}"
        )
    if not isinstance(reward_scale, jax.core.Tracer) and not (np.isfinite(reward_scale) and reward_scale > 0):
        raise ValueError(f"reward_scale: expected a positive finite number, found {reward_scale!r}")
    typed = jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key)
    if keys.ndim != (1 if typed else 2) or keys.shape[0] < 1:
        raise ValueError(f"keys: expected [S] PRNG keys (jax.random.split(key, S)), found shape {keys.shape}")
    dtype = jnp.dtype(config.dtype)
    scale = jnp.asarray(reward_scale, dtype)
    probs0 = policy_probs(policy, s0)
    # Integer (one-hot) observations are never standardised.
    fwd, inv = _standardizer(dataset.observations, standardize and config.num_observations is None)
    net_policy = lambda o: policy(inv(o))
    scaled = dataset.replace(
        observations=fwd(dataset.observations),
        next_observations=fwd(dataset.next_observations),
        rewards=dataset.rewards.astype(dtype) * scale,
    )
    s0 = fwd(s0)
    train = make_train(config, net_policy)
    tail = max(config.num_steps // 10, 1)

    def one(key):
        res = train(key, scaled)
        est = initial_value(res.state.apply_fn, res.state.params, s0, probs0) / scale
        return est, jnp.mean(res.metrics.loss[-tail:])

    est, loss = jax.vmap(one)(keys)
    num_seeds = est.shape[0]
    se = jnp.std(est, ddof=1) / np.sqrt(num_seeds) if num_seeds > 1 else jnp.zeros((), est.dtype)
    return FQEValue(estimate=jnp.mean(est), standard_error=se, seed_estimates=est, final_loss=loss)
