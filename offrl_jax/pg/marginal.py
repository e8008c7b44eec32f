"""State-distribution ratios ŵ_t(s) ≈ d^π_t(s) / d^{π_β}_t(s) for the state-marginal policy gradient.

Estimated from logged tabular data by marginalised importance sampling
(:func:`offrl_jax.mis.tabular_time_ratios`, which propagates the target's state-action
marginals d̂^π_t through the empirical per-step model), then reduced to states:

    ŵ_t(s) = Σ_a d̂^π_t(s, a) / d̂^D_t(s),    d̂^D_t(s) = n_t(s) / N,

with n_t(s) the number of trajectories in state s at step t. Plug the per-step weights into
:func:`offrl_jax.pg.state_marginal_surrogate` in place of the past product w_{0:t−1}.

See "Off-Policy Policy Gradient with State Distribution Correction", Liu, Swaminathan, Agarwal &
Brunskill 2019, and "Towards Optimal Off-Policy Evaluation for Reinforcement Learning with
Marginalized Importance Sampling", Xie, Ma & Wang 2019.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from offrl_jax.mis import tabular_time_ratios

Array = Any

__all__ = ["StateWeights", "tabular_state_weights"]


class StateWeights(NamedTuple):
    """Estimated time-indexed state ratios.

    Attributes:
      weights: ``[N, T]`` ŵ_t(s^n_t) at the logged steps (0 on padding).
      table: ``[T, S]`` ŵ_t(s) (0 where no trajectory visits s at step t).
      unsupported_mass: ``[T]`` target state mass at step t on states no trajectory visits
        (0 when the data cover the target's states).
    """

    weights: Array
    table: Array
    unsupported_mass: Array


def tabular_state_weights(
    states: Array,
    actions: Array,
    next_states: Array,
    discounts: Array,
    mask: Array,
    target_policy: Array,
) -> StateWeights:
    """Per-step state ratios ŵ_t(s) = d̂^π_t(s) / d̂^D_t(s) from counts (jit- and vmap-safe).

    Dataset-level function on padded ``[N, T]`` arrays. The target policy is treated as data
    (``stop_gradient``): recompute the weights when the policy changes.

    Args:
      states: ``[N, T]`` int s_t in [0, S).
      actions: ``[N, T]`` int a_t.
      next_states: ``[N, T]`` int s_{t+1}.
      discounts: ``[N, T]`` 0 where s_{t+1} is terminal, else 1.
      mask: ``[N, T]`` 1 on real steps, 0 on padding.
      target_policy: ``[S, A]`` π(a|s) over true states.

    Returns:
      :class:`StateWeights`.
    """
    pi = jax.lax.stop_gradient(jnp.asarray(target_policy))
    ratios = tabular_time_ratios(states, actions, next_states, discounts, mask, pi)
    d_pi = jnp.sum(ratios.target_marginals, axis=-1)  # [T, S]
    m = jnp.asarray(mask).astype(d_pi.dtype)
    s = jnp.asarray(states).astype(jnp.int32)
    num = jnp.maximum(jnp.sum(m[:, 0]), 1.0)
    steps = jnp.arange(s.shape[1])[None, :]
    counts = jnp.zeros(d_pi.shape, d_pi.dtype).at[jnp.broadcast_to(steps, s.shape), s].add(m)
    seen = counts > 0
    table = jnp.where(seen, d_pi * num / jnp.where(seen, counts, 1.0), 0.0)
    lost = jnp.sum(jnp.where(seen, 0.0, d_pi), axis=-1)
    return StateWeights(table[steps, s] * m, table, lost)
