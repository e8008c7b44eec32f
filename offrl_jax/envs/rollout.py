"""Vectorised data collection from tabular MDPs (``lax.scan`` over time, ``vmap`` over episodes)."""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp

from offrl_jax.core.validation import check_positive_int, is_concrete
from offrl_jax.data import Trajectories
from offrl_jax.envs.tabular import TabularMDP, check_policy, state_policy

Array = Any

__all__ = ["rollout"]


def _safe_log(p: Array) -> Array:
    return jnp.where(p > 0, jnp.log(jnp.where(p > 0, p, 1.0)), -jnp.inf)


def _inverse_cdf_table(p: Array) -> Array:
    """Cumulative table for inverse-CDF sampling over the last axis.

    Entry k is the normalised cumulative mass up to k, set to +inf at the last entry with
    positive mass, so that ``sum(table < u)`` for u in (0, 1) always lands on an index of
    positive probability (no rounding can select a zero-probability trailing entry).
    """
    cum = jnp.cumsum(p, axis=-1)
    cum = cum / cum[..., -1:]
    mass_after = jnp.flip(jnp.cumsum(jnp.flip(p, -1), -1), -1) - p
    return jnp.where(mass_after > 0, cum, jnp.inf)


def _sample(table: Array, u: Array) -> Array:
    return jnp.sum(table < u[..., None], axis=-1)


def rollout(
    key: Array,
    mdp: TabularMDP,
    behavior_policy: Array,
    num_episodes: int,
    horizon: Optional[int] = None,
    target_policy: Optional[Array] = None,
) -> Trajectories:
    """Samples ``num_episodes`` episodes of at most ``horizon`` steps under ``behavior_policy``.

    Pure and jit-able (``num_episodes`` and ``horizon`` are static Python ints): one
    ``lax.scan`` over time advances all episodes at once (inverse-CDF sampling from uniforms drawn
    per step). An episode ends when it enters a terminal state (``discounts = 0`` on that step) or
    after ``horizon`` steps (truncation, ``discounts = 1``). Padded steps have mask 0, zero reward,
    zero log-probabilities, observation 0.

    Args:
      key: PRNG key.
      mdp: the MDP; rewards come from ``mdp.reward_table`` (R(s, a, s')) if set, else
        ``mdp.rewards``, plus Gaussian noise of ``mdp.reward_std`` if set.
      behavior_policy: ``[O, A]`` probabilities over actions per observation.
      num_episodes: N (static).
      horizon: T (static); defaults to ``mdp.horizon``.
      target_policy: optional ``[O, A]``; if given, ``target_log_probs`` are filled in.

    Returns:
      :class:`~offrl_jax.data.Trajectories` ``[N, T]`` with integer ``observations`` (and true
      ``states``), ``behavior_log_probs`` and optionally ``target_log_probs``.
    """
    if horizon is None:
        horizon = mdp.horizon
    if horizon is None:
        raise ValueError("horizon: the MDP has no finite horizon; pass horizon=T")
    check_positive_int(num_episodes, "num_episodes")
    check_positive_int(horizon, "horizon")
    dtype = mdp.rewards.dtype
    if is_concrete(behavior_policy, target_policy):
        check_policy(mdp, behavior_policy, "behavior_policy")
        if target_policy is not None:
            check_policy(mdp, target_policy, "target_policy")
    pi_b = state_policy(mdp, behavior_policy).astype(dtype)
    log_pi_b = _safe_log(pi_b)
    log_pi_e = None if target_policy is None else _safe_log(state_policy(mdp, target_policy).astype(dtype))
    pi_table = _inverse_cdf_table(pi_b)
    p_table = _inverse_cdf_table(mdp.transitions)
    obs_map = mdp.obs_of_state
    noisy = mdp.reward_std is not None
    tiny = jnp.finfo(dtype).tiny
    n = num_episodes

    k0, k_steps = jax.random.split(key)
    d0_table = jnp.broadcast_to(_inverse_cdf_table(mdp.initial), (n, mdp.num_states))
    s0 = _sample(d0_table, jax.random.uniform(k0, (n,), dtype, tiny, 1.0))

    def step(carry, kt):
        s, alive = carry
        u = jax.random.uniform(kt, (2, n), dtype, tiny, 1.0)
        a = _sample(pi_table[s], u[0])
        s_next = _sample(p_table[s, a], u[1])
        if mdp.reward_table is not None:
            r = mdp.reward_table[s, a, s_next]
        else:
            r = mdp.rewards[s, a]
        if noisy:
            r = r + mdp.reward_std[s, a, s_next] * jax.random.normal(jax.random.fold_in(kt, 1), (n,), dtype)
        term = mdp.terminal[s_next]
        m = alive.astype(dtype)
        out = dict(
            observations=jnp.where(alive, obs_map[s], 0),
            actions=jnp.where(alive, a, 0),
            rewards=m * r,
            next_observations=jnp.where(alive, obs_map[s_next], 0),
            discounts=jnp.where(alive & term, 0.0, 1.0).astype(dtype),
            mask=m,
            behavior_log_probs=m * log_pi_b[s, a],
            states=jnp.where(alive, s, 0),
            next_states=jnp.where(alive, s_next, 0),
        )
        if log_pi_e is not None:
            out["target_log_probs"] = jnp.where(alive, log_pi_e[s, a], 0.0)
        return (s_next, alive & ~term), out

    init = (s0, jnp.ones((n,), bool))
    _, fields = jax.lax.scan(step, init, jax.random.split(k_steps, horizon))
    return Trajectories(**jax.tree_util.tree_map(lambda x: jnp.swapaxes(x, 0, 1), fields))
