"""Value estimates from density ratios (array level; pure, jit/vmap-safe).

* :func:`mis_estimate`: J_hat = (1 / (1 - gamma)) (1/M) sum_m w_m r_m over M logged transitions
  (normalised discounted occupancy), or the self-normalised
  J_hat_SN = (1 / (1 - gamma)) sum_m w_m r_m / sum_m w_m.
* :func:`mis_average_reward`: the per-step average reward E_D[w r] (gamma -> 1 limit).
* :func:`mis_finite_horizon`: (1/N) sum_n sum_t gamma^t w_t r_t for time-indexed ratios.
* :func:`ratios_at`: w(s_m, a_m) gathered from an ``[S, A]`` ratio table.

Argument order: data arrays (``weights, rewards, mask``), then ``gamma``, then keyword-only
options (``self_normalize``). The ratios themselves come from :mod:`offrl_jax.mis.tabular`,
:mod:`offrl_jax.mis.time_indexed` or :mod:`offrl_jax.mis.dice`.

See "Breaking the Curse of Horizon: Infinite-Horizon Off-Policy Estimation", Liu, Li, Tang &
Zhou 2018, and "DualDICE: Behavior-Agnostic Estimation of Discounted Stationary Distribution
Corrections", Nachum, Chow, Dai & Li 2019.
"""

from __future__ import annotations

from typing import Any, Optional

import chex
import jax.numpy as jnp
import numpy as np

from offrl_jax.core.dtypes import float_inputs
from offrl_jax.core.validation import is_concrete

Array = Any

__all__ = ["mis_estimate", "mis_average_reward", "mis_finite_horizon", "ratios_at"]


def _masked(weights, rewards, mask):
    """The dtype policy (:mod:`offrl_jax.core.dtypes`), shape checks, padding zeroed."""
    w, r = float_inputs([weights, rewards], ["weights", "rewards"])
    m = jnp.ones(r.shape, r.dtype) if mask is None else jnp.asarray(mask).astype(r.dtype)
    chex.assert_equal_shape([w, r, m])
    w = jnp.where(m > 0, w, 0.0) * m
    r = jnp.where(m > 0, r, 0.0)
    return w, r, m


def mis_average_reward(
    weights: Array, rewards: Array, mask: Optional[Array] = None, *, self_normalize: bool = False
) -> Array:
    """Ratio-weighted mean reward over logged transitions.

    E_hat = sum_m mask_m w_m r_m / sum_m mask_m (or / sum_m mask_m w_m when ``self_normalize``).
    With w = d^pi / d^D this estimates E_{d^pi}[r]: the (1 - gamma)-scaled discounted value for
    the normalised occupancy, or the average reward per step for the stationary distribution.

    See "Breaking the Curse of Horizon", Liu, Li, Tang & Zhou 2018.

    Args:
      weights: ``[M]`` (any shape) w(s_m, a_m) at the logged pairs.
      rewards: same shape, r_m.
      mask: optional, same shape, 1 on real steps, 0 on padding.
      self_normalize: divide by the weight sum instead of the count (static).

    Returns:
      Scalar estimate (0 if the normaliser is 0).
    """
    w, r, m = _masked(weights, rewards, mask)
    num = jnp.sum(w * r)
    den = jnp.sum(w) if self_normalize else jnp.sum(m)
    return jnp.where(den != 0, num / jnp.where(den != 0, den, 1.0), 0.0)


def mis_estimate(
    weights: Array, rewards: Array, mask: Optional[Array], gamma: float, *, self_normalize: bool = False
) -> Array:
    """Discounted MIS value estimate J_hat = (1 / (1 - gamma)) E_hat_D[w r].

    J(pi) = E_{d^pi}[r] / (1 - gamma) for the normalised discounted occupancy
    d^pi(s, a) = (1 - gamma) sum_t gamma^t Pr_pi(s_t = s, a_t = a), so with
    w = d^pi / d^D: J_hat = (1 / (1 - gamma)) (1/M) sum_m w_m r_m, and the self-normalised form
    (1 / (1 - gamma)) sum_m w_m r_m / sum_m w_m.

    See "Breaking the Curse of Horizon", Liu, Li, Tang & Zhou 2018; "DualDICE", Nachum, Chow,
    Dai & Li 2019.

    Args:
      weights: ``[M]`` (any shape) w(s_m, a_m).
      rewards: same shape, r_m.
      mask: same shape, 1 on real steps, 0 on padding (or any sample weights), or ``None``.
      gamma: scalar discount in [0, 1).
      self_normalize: self-normalise by the weight sum (static).

    Returns:
      Scalar J_hat.
    """
    chex.assert_rank(jnp.asarray(gamma), 0)
    return mis_average_reward(weights, rewards, mask, self_normalize=self_normalize) / (1.0 - gamma)


def mis_finite_horizon(weights: Array, rewards: Array, mask: Array, gamma: float) -> Array:
    """Finite-horizon MIS estimate J_hat = (1/N) sum_n sum_t gamma^t w_t(s^n_t, a^n_t) r^n_t.

    Dataset-level, on padded ``[N, T]`` arrays with time-indexed ratios (e.g.
    :func:`offrl_jax.mis.tabular_time_ratios`). N counts the rows with a real first step.

    See "Towards Optimal Off-Policy Evaluation for Reinforcement Learning with Marginalized
    Importance Sampling", Xie, Ma & Wang 2019.

    Args:
      weights: ``[N, T]`` w_t at the logged steps.
      rewards: ``[N, T]`` r_t.
      mask: ``[N, T]`` 1 on real steps, 0 on padding.
      gamma: scalar discount in [0, 1].

    Returns:
      Scalar J_hat.
    """
    w, r, m = _masked(weights, rewards, mask)
    chex.assert_rank([w, r, m, jnp.asarray(gamma)], [2, 2, 2, 0])
    t = jnp.arange(r.shape[-1], dtype=r.dtype)
    disc = jnp.asarray(gamma, r.dtype) ** t
    n = jnp.sum(m[:, 0])
    return jnp.sum(w * r * disc[None, :]) / jnp.where(n > 0, n, 1.0)


def ratios_at(table: Array, states: Array, actions: Array) -> Array:
    """Gathers w(s_m, a_m) from an ``[S, A]`` ratio table at int ``states``/``actions`` (any shape).

    Indices may be integers or integral floats; called eagerly, indices outside the table raise
    ``ValueError`` naming the argument (under ``jit`` they are not checked).
    """
    if is_concrete(table, states, actions):
        shape = np.shape(table)
        if len(shape) != 2:
            raise ValueError(f"table: expected an [S, A] ratio table, found shape {list(shape)}")
        for name, x, size in (("states", states, shape[0]), ("actions", actions, shape[1])):
            a = np.asarray(x)
            if a.dtype.kind not in "biuf" or (a.dtype.kind == "f" and not np.all(a == np.round(a))):
                raise ValueError(f"{name}: expected integer indices, found {a.dtype} values")
            if a.size and (a.min() < 0 or a.max() >= size):
                raise ValueError(f"{name}: expected indices in [0, {size}), found range [{a.min()}, {a.max()}]")
    return jnp.asarray(table)[jnp.asarray(states).astype(jnp.int32), jnp.asarray(actions).astype(jnp.int32)]
