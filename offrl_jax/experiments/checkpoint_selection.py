"""Choosing a training checkpoint with the package's own OPE, from the offline data alone.

An offline learner is trained once; every ``num_steps / K`` steps its parameters are kept
(a ``lax.scan`` over K chunks whose outputs are the stacked states), giving K candidate policies
π_1 … π_K (the deterministic evaluation policies of :mod:`offrl_jax.experiments.fixing_shift`).
Without touching the environment, each is scored from the logged trajectories:

* FQE (direct method): Q̂_k fitted by FQE for π_k on the logged transitions, Ĵ_k^DM =
  (1/N) Σ_n Σ_a π_k(a|s_0^n) Q̂_k(s_0^n, a) ("Batch Policy Learning under Constraints", Le,
  Voloshin & Yue 2019);
* DR (discrete actions): the doubly robust recursion with the same Q̂_k and the logged behaviour
  log-probabilities, V_DR(t) = V̂_k(s_t) + ρ_t (r_t + γ V_DR(t+1) − Q̂_k(s_t, a_t)),
  ρ_t = π_k(a_t|s_t) / β(a_t|s_t) ("Doubly Robust Off-policy Value Evaluation for
  Reinforcement Learning", Jiang & Li 2016). For a deterministic π_k on continuous actions the
  density ratio does not exist, so DR is reported only for discrete tasks.

The checkpoint with the largest estimate is chosen; against the checkpoints' Monte-Carlo values
J(π_k) (fresh episodes in the environment, never seen by the estimators) we report Spearman's
ρ between estimates and values, regret@1 ("Benchmarks for Deep Off-Policy Evaluation", Fu et al.
2021) and the value of the chosen checkpoint next to the last and the best one. Everything —
all seeds, checkpoints, FQE fits, DR and Monte Carlo — is one jitted, vmapped program.

The FQE network reads observations standardised by the logged data's mean and standard
deviation and is fitted to rewards scaled by c (``reward_scale``; Ĵ is divided back by c), as in
:func:`offrl_jax.experiments.control_fqe.fqe_value`.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax import fitted, selection
from offrl_jax.core import train_from_learner
from offrl_jax.data import Trajectories, Transitions
from offrl_jax.envs.control import control_returns
from offrl_jax.experiments.fixing_shift import ControlMethod
from offrl_jax.ope import doubly_robust

Array = Any

__all__ = ["CheckpointValues", "train_checkpoints", "checkpoint_values", "selection_summary"]


class CheckpointValues(NamedTuple):
    """Estimates and Monte-Carlo values of K checkpoints (``[K]``, or ``[S, K]`` over seeds).

    Attributes:
      steps: training steps at each checkpoint.
      fqe: FQE (direct-method) estimates Ĵ_k^DM.
      dr: DR estimates (NaN for continuous actions).
      mc: Monte-Carlo values J(π_k) (mean discounted return of fresh episodes).
      mc_standard_error: their standard errors.
    """

    steps: Array
    fqe: Array
    dr: Array
    mc: Array
    mc_standard_error: Array


def train_checkpoints(key: Array, data: Any, method: ControlMethod, num_checkpoints: int) -> Any:
    """Trains ``method`` on ``data`` and returns its state after each of K equal chunks of its
    ``num_steps``, stacked along a leading axis ``[K, ...]`` (pure; vmap it over keys).

    Raises:
      ValueError: if K does not divide ``config.num_steps`` or the method has no learner.
    """
    steps = method.config.num_steps
    if method.make_learner is None:
        raise ValueError("method: expected a ControlMethod with make_learner (chunked training)")
    if isinstance(num_checkpoints, bool) or not isinstance(num_checkpoints, int) or num_checkpoints < 1 \
            or steps % num_checkpoints:
        raise ValueError(f"num_checkpoints: expected a divisor of num_steps = {steps}, found {num_checkpoints!r}")
    learner = method.make_learner(method.config)

    def chunk(state, _):
        state, _ = learner.run(state, data, steps // num_checkpoints)
        return state, state

    return jax.lax.scan(chunk, learner.init(key, data), None, length=num_checkpoints)[1]


def _standardizer(observations: Array):
    """(o ↦ (o − μ) / σ, o ↦ o σ + μ) from the data's per-feature moments (σ = 1 if constant)."""
    mu = jnp.mean(observations, axis=0, keepdims=True)
    sd = jnp.std(observations, axis=0, keepdims=True)
    sigma = jnp.where(sd > 0, sd, 1.0)
    return (lambda o: (o - mu) / sigma), (lambda o: o * sigma + mu)


def _doubly_robust(q_state: Any, pi: Callable, trajectories: Trajectories, fwd: Callable, gamma: float,
                   scale: Array) -> Array:
    """DR of a deterministic discrete π (one-hot probabilities on standardised observations):
    log ρ_t = log π(a_t|s_t) − log β(a_t|s_t), with log π ∈ {0, −∞}; Q̂ fitted to c·r, so the
    rewards are scaled by c and the estimate divided by it."""
    t_obs, actions, mask = trajectories.observations, trajectories.actions, trajectories.mask
    dtype = scale.dtype
    obs = fwd(t_obs.reshape((-1, t_obs.shape[-1]))).reshape(t_obs.shape)
    terms = fitted.q_model_terms(q_state.apply_fn, q_state.params, obs, actions, mask, pi)
    probs = pi(obs.reshape((-1, obs.shape[-1]))).reshape(actions.shape + (-1,))
    taken = jnp.sum(probs * jax.nn.one_hot(actions, probs.shape[-1], dtype=dtype), -1)
    log_pi = jnp.where(taken > 0, 0.0, -jnp.inf).astype(dtype)
    log_ratios = jnp.where(mask > 0, log_pi - trajectories.behavior_log_probs.astype(dtype), 0.0)
    rewards = trajectories.rewards.astype(dtype) * scale
    return doubly_robust(rewards, log_ratios, mask, gamma, terms.q_taken, terms.v_hat, validate=False) / scale


def checkpoint_values(keys: Array, eval_key: Array, data: Transitions, trajectories: Trajectories, env_name: str,
                      method: ControlMethod, fqe_config: fitted.FittedQConfig, num_checkpoints: int,
                      num_eval_episodes: int, *, reward_scale: float = 1.0,
                      train_data: Optional[Transitions] = None) -> CheckpointValues:
    """Trains ``method`` for every key ``[S]`` on the logged ``trajectories`` and scores its K
    checkpoints by FQE, DR and Monte Carlo (module docstring); ``[S, K]`` fields.

    One program: jit it with ``env_name``, ``method``, ``fqe_config`` and the sizes static.
    ``fqe_config.gamma`` is the discount of every estimate and of the Monte-Carlo values;
    episodes end at termination or the task's time limit.

    Args:
      keys: ``[S]`` PRNG keys (training and FQE of each seed).
      eval_key: PRNG key of the Monte-Carlo episodes (shared by every checkpoint).
      data: the logged steps as :class:`~offrl_jax.data.Transitions`
        (``to_transitions(trajectories)``, host-side): what the learner and FQE read.
      trajectories: the same logged data, ``[N, T]`` with ``behavior_log_probs`` (exact, from
        the behaviour policy): start observations (FQE) and DR's recursion.
      env_name: gymnax id of the task (for the Monte-Carlo values only).
      method: a :class:`~offrl_jax.experiments.fixing_shift.ControlMethod` with ``make_learner``.
      fqe_config: FQE's :class:`~offrl_jax.fitted.FittedQConfig` (``method="fqe"``; discrete or
        continuous like the task).
      num_checkpoints: K (divides the method's ``num_steps``).
      num_eval_episodes: Monte-Carlo episodes per checkpoint.
      reward_scale: c > 0, FQE fits c·r (e.g. 1 − γ keeps Q̂ in the range of one reward).
      train_data: what the learner reads, if not ``data`` (e.g. the same steps with rescaled
        rewards); FQE, DR and Monte Carlo always use ``data``'s and the task's rewards.

    Returns:
      :class:`CheckpointValues` with ``[S, K]`` fields.
    """
    if not isinstance(fqe_config, fitted.FittedQConfig) or fqe_config.method != "fqe":
        raise ValueError(f"fqe_config: expected a FittedQConfig with method 'fqe', found {fqe_config!r}")
    if trajectories.behavior_log_probs is None:
        raise ValueError("trajectories.behavior_log_probs: DR needs the behaviour log-probabilities")
    continuous = fqe_config.continuous
    gamma, dtype = fqe_config.gamma, jnp.dtype(fqe_config.dtype)
    scale = jnp.asarray(reward_scale, dtype)
    fwd, raw = _standardizer(data.observations)
    scaled = data.replace(observations=fwd(data.observations), next_observations=fwd(data.next_observations),
                          rewards=data.rewards.astype(dtype) * scale)
    s0 = fwd(trajectories.observations[:, 0])
    steps = method.config.num_steps // num_checkpoints * jnp.arange(1, num_checkpoints + 1)

    def policy_of(state) -> Callable:
        """π_k on standardised observations: an action sampler (continuous) or one-hot probabilities."""
        if continuous:
            return lambda key, obs: method.act(state, raw(obs))
        return lambda obs: jax.nn.one_hot(method.act(state, raw(obs)), fqe_config.num_actions, dtype=dtype)

    def one_checkpoint(key, state):
        pi = policy_of(state)
        res = train_from_learner(fitted.make_learner(fqe_config, pi))(key, scaled)
        q_state = res.state
        if continuous:
            fqe = fitted.initial_value(q_state.apply_fn, q_state.params, s0, pi, key=key) / scale
            dr = jnp.full((), jnp.nan, dtype)
        else:
            fqe = fitted.initial_value(q_state.apply_fn, q_state.params, s0, pi) / scale
            dr = _doubly_robust(q_state, pi, trajectories, fwd, gamma, scale)
        sample = lambda st, o, k: (method.act(st, o[None])[0], jnp.zeros((), dtype))  # noqa: E731
        rets = control_returns(eval_key, env_name, sample, state, num_eval_episodes, None, gamma, dtype=dtype)
        se = jnp.std(rets, ddof=1) / jnp.sqrt(jnp.asarray(num_eval_episodes, dtype))
        return fqe, dr, jnp.mean(rets), se

    def one_seed(key):
        k_train, k_fqe = jax.random.split(key)
        states = train_checkpoints(k_train, data if train_data is None else train_data, method, num_checkpoints)
        return jax.vmap(one_checkpoint, in_axes=(None, 0))(k_fqe, states)

    fqe, dr, mc, se = jax.vmap(one_seed)(keys)
    return CheckpointValues(steps=jnp.broadcast_to(steps, fqe.shape), fqe=fqe, dr=dr, mc=mc, mc_standard_error=se)


def selection_summary(values: CheckpointValues) -> Dict[str, Any]:
    """Per estimator (FQE, DR): Spearman ρ between estimates and Monte-Carlo values, regret@1,
    the chosen checkpoint's value and index, each per seed and as mean ± standard error over
    seeds (seeds whose ρ is undefined, all values or estimates equal, are left out of ρ's mean);
    plus the first, last and best checkpoints' values (host-side, NumPy).

    Returns:
      ``{"first", "last", "best": (mean, se), "FQE": {...}, "DR": {...}}`` where each estimator
      holds ``spearman``, ``regret_at_1``, ``chosen_value`` (mean, se), ``chosen_index`` [S] and
      ``spearman_per_seed`` [S]; an estimator with a non-finite estimate (DR on continuous
      actions) is left out.
    """
    mc = np.asarray(values.mc)
    s = mc.shape[0]

    def ms(x):
        x = np.asarray(x, float)
        x = x[np.isfinite(x)]  # Spearman ρ is NaN for a seed whose checkpoints all score the same
        n = len(x)
        if n == 0:
            return float("nan"), float("nan")
        return float(np.mean(x)), (float(np.std(x, ddof=1) / np.sqrt(n)) if n > 1 else float("nan"))

    out: Dict[str, Any] = {"last": ms(mc[:, -1]), "best": ms(mc.max(-1)), "first": ms(mc[:, 0])}
    for name, est in (("FQE", values.fqe), ("DR", values.dr)):
        est = np.asarray(est)
        if not np.all(np.isfinite(est)):
            continue
        chosen = est.argmax(-1)
        rho = [float(selection.spearman_rank_correlation(est[i], mc[i])) for i in range(s)]
        regret = [float(selection.regret_at_k(est[i], mc[i], 1)) for i in range(s)]
        out[name] = {"spearman": ms(rho), "regret_at_1": ms(regret), "chosen_value": ms(mc[np.arange(s), chosen]),
                     "chosen_index": chosen.tolist(), "spearman_per_seed": rho}
    return out
