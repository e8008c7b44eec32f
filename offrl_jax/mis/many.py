"""Tabular marginalised importance sampling for K target policies on one dataset (one vmap).

The counts of the logged data are shared; the Bellman-flow solve (discounted,
:func:`~offrl_jax.mis.tabular_ratios`) or the forward propagation of the marginals
(finite horizon, :func:`~offrl_jax.mis.tabular_time_ratios`) depends on the target policy, so
both are ``jax.vmap``-ed over a ``[K, S, A]`` stack of policies: entry k equals the
single-policy estimate of ``target_policies[k]``.

See "Breaking the Curse of Horizon: Infinite-Horizon Off-Policy Estimation", Liu, Li, Tang &
Zhou 2018, and "Towards Optimal Off-Policy Evaluation for Reinforcement Learning with
Marginalized Importance Sampling", Xie, Ma & Wang 2019.
"""

from __future__ import annotations

from typing import Any, Optional

import chex
import jax
import jax.numpy as jnp

from offrl_jax.mis.estimators import mis_estimate, mis_finite_horizon, ratios_at
from offrl_jax.mis.tabular import tabular_ratios
from offrl_jax.mis.time_indexed import tabular_time_ratios

Array = Any

__all__ = ["tabular_mis_policies", "tabular_time_mis_policies"]


def _check_policies(target_policies: Array) -> Array:
    pi = jnp.asarray(target_policies)
    if pi.ndim != 3:
        raise ValueError(f"target_policies: expected [K, S, A] probability tables, found shape {list(pi.shape)}")
    return pi


def tabular_mis_policies(
    states: Array,
    actions: Array,
    next_states: Array,
    discounts: Array,
    mask: Optional[Array],
    initial_states: Array,
    rewards: Array,
    target_policies: Array,
    gamma: float,
    *,
    self_normalize: bool = False,
    ridge: float = 0.0,
) -> Array:
    """``[K]`` discounted tabular MIS estimates J_k = (1/(1−γ)) (1/M) Σ_m w_k(s_m, a_m) r_m.

    w_k = d̂^{π_k} / d̂^D from the empirical Bellman-flow equations of each policy
    (:func:`~offrl_jax.mis.tabular_ratios`), then :func:`~offrl_jax.mis.mis_estimate`; vmapped
    over k. Arguments as :func:`~offrl_jax.mis.tabular_ratios`, plus ``rewards`` ``[M]`` (shape
    of ``states``) and ``target_policies`` ``[K, S, A]``.
    """
    pi = _check_policies(target_policies)

    def one(p):
        r = tabular_ratios(states, actions, next_states, discounts, mask, initial_states, p, gamma, ridge=ridge)
        w = ratios_at(r.weights, states, actions)
        r_m, g = jnp.asarray(rewards, w.dtype), jnp.asarray(gamma, w.dtype)
        return mis_estimate(w, r_m, mask, g, self_normalize=self_normalize)

    return jax.vmap(one)(pi)


def tabular_time_mis_policies(
    states: Array,
    actions: Array,
    next_states: Array,
    discounts: Array,
    mask: Array,
    rewards: Array,
    target_policies: Array,
    gamma: float,
    *,
    pooled: bool = False,
) -> Array:
    """``[K]`` finite-horizon tabular MIS estimates (1/N) Σ_n Σ_t γ^t w_{k,t}(s^n_t, a^n_t) r^n_t.

    w_{k,t} = d̂^{π_k}_t / d̂^D_t from :func:`~offrl_jax.mis.tabular_time_ratios` (``pooled``:
    marginals propagated with the transition model pooled over steps), then
    :func:`~offrl_jax.mis.mis_finite_horizon`; vmapped over k. Padded ``[N, T]`` arrays as
    :func:`~offrl_jax.mis.tabular_time_ratios`, plus ``rewards`` ``[N, T]`` and
    ``target_policies`` ``[K, S, A]``.
    """
    pi = _check_policies(target_policies)
    chex.assert_equal_shape([states, actions, next_states, discounts, mask, rewards])

    def one(p):
        w = tabular_time_ratios(states, actions, next_states, discounts, mask, p, pooled=pooled).weights
        r_m, m, g = (jnp.asarray(x, w.dtype) for x in (rewards, mask, gamma))
        return mis_finite_horizon(w, r_m, m, g)

    return jax.vmap(one)(pi)
