"""The linear model route: fit reward and feature-transition models, then solve them for V.

A least-squares linear model in feature space (Parr et al. 2008) predicts the reward and the
(discounted) next features from the current ones:

    w_r = (ΦᵀWΦ + λI)⁻¹ ΦᵀW r,     P_Φ = (ΦᵀWΦ + λI)⁻¹ ΦᵀW D Φ',

and the value of the model is w_V = (I − γ P_Φ)⁻¹ w_r. With the same ridge λ this is exactly
LSTD: multiplying (I − γP_Φ) w = w_r by (ΦᵀWΦ + λI) gives (ΦᵀWΦ + λI − γ ΦᵀW D Φ') w = ΦᵀW r.
For Q^π pass φ(s, a) and φ'_π(s') as for LSTDQ. See "An Analysis of Linear Models, Linear
Value-Function Approximation, and Feature Selection for Reinforcement Learning", Parr, Li,
Taylor, Painter-Wakefield & Littman 2008. Data conventions are those of
:mod:`offrl_jax.linear.systems`.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax.numpy as jnp

from offrl_jax.linear.systems import LinearSolution, accumulate, check_td_inputs, solve

Array = Any

__all__ = ["LinearModel", "linear_model", "linear_model_value"]


class LinearModel(NamedTuple):
    """Least-squares linear model in feature space (Parr et al. 2008).

    Attributes:
      reward_weights: ``[K]`` w_r = (ΦᵀΦ + λI)⁻¹ Φᵀ r.
      transition: ``[K, K]`` P_Φ = (ΦᵀΦ + λI)⁻¹ Φᵀ D Φ' (D = diag(discounts)).
      gram: ``[K, K]`` ΦᵀΦ (weighted, without λ).
      ok: bool, the Gram solve succeeded.
      condition: 1-norm condition number of ΦᵀΦ + λI.
    """

    reward_weights: Array
    transition: Array
    gram: Array
    ok: Array
    condition: Array


def linear_model(phi: Array, phi_next: Array, rewards: Array, discounts: Array, ridge: Any = 0.0, *,
                 sample_weights: Optional[Array] = None, chunk_size: Optional[int] = None) -> LinearModel:
    """Least-squares reward and feature-transition models in feature space.

    w_r = (ΦᵀΦ + λI)⁻¹ Φᵀ r and P_Φ = (ΦᵀΦ + λI)⁻¹ Φᵀ D Φ', so that φ(s)ᵀ w_r ≈ r(s) and
    φ(s)ᵀ P_Φ ≈ E[d φ(s')ᵀ | s]. See "An Analysis of Linear Models, Linear Value-Function
    Approximation, and Feature Selection for Reinforcement Learning", Parr et al. 2008.

    Args:
      phi, phi_next: ``[M, K]`` (for Q^π: φ(s, a) and φ'_π(s')).
      rewards, discounts: ``[M]``.
      ridge: λ >= 0 on the Gram matrix; sample_weights, chunk_size as in
        :func:`~offrl_jax.linear.lstd.lstd`.

    Returns:
      :class:`LinearModel`.
    """
    phi, phi_next, rewards, discounts, sample_weights = check_td_inputs(
        phi, phi_next, rewards, discounts, 0.0, ridge, sample_weights, chunk_size=chunk_size
    )
    return _linear_model(phi, phi_next, rewards, discounts, ridge, sample_weights, chunk_size)


def _linear_model(phi, phi_next, rewards, discounts, ridge, sample_weights, chunk_size) -> LinearModel:
    dt = phi.dtype
    w = jnp.ones(phi.shape[:1], dt) if sample_weights is None else sample_weights

    def block(d, valid):
        p, pn, r, disc, wb = d
        wp = (wb * valid).astype(dt)[:, None] * p
        return wp.T @ p, wp.T @ (disc.astype(dt)[:, None] * pn), wp.T @ r.astype(dt)

    gram, cross, b = accumulate(block, (phi, phi_next, rewards, discounts, w), chunk_size, dt)
    res = solve(gram, jnp.concatenate([b[:, None], cross], axis=1), ridge, method="cholesky")
    return LinearModel(res.weights[:, 0], res.weights[:, 1:], gram, res.ok, res.condition)


def linear_model_value(phi: Array, phi_next: Array, rewards: Array, discounts: Array, gamma: Any,
                       ridge: Any = 0.0, *, sample_weights: Optional[Array] = None,
                       chunk_size: Optional[int] = None, return_info: bool = False):
    """Value weights by solving the least-squares linear model: w_V = (I − γ P_Φ)⁻¹ w_r.

    With the same ridge λ this equals LSTD: multiplying (I − γP_Φ) w = w_r by (ΦᵀΦ + λI) gives
    (ΦᵀΦ + λI − γ Φᵀ D Φ') w = Φᵀ r. See "An Analysis of Linear Models, Linear Value-Function
    Approximation, and Feature Selection for Reinforcement Learning", Parr et al. 2008.

    Args:
      phi, phi_next, rewards, discounts, gamma, ridge, sample_weights, chunk_size: as in
        :func:`~offrl_jax.linear.lstd.lstd` (for Q^π pass φ(s, a) and φ'_π(s')).
      return_info: return a :class:`~offrl_jax.linear.systems.LinearSolution` (``ok`` of both
        solves, the larger κ₁).

    Returns:
      ``[K]`` weights, or a :class:`~offrl_jax.linear.systems.LinearSolution`.
    """
    phi, phi_next, rewards, discounts, sample_weights = check_td_inputs(
        phi, phi_next, rewards, discounts, gamma, ridge, sample_weights, chunk_size=chunk_size
    )
    model = _linear_model(phi, phi_next, rewards, discounts, ridge, sample_weights, chunk_size)
    eye = jnp.eye(phi.shape[1], dtype=phi.dtype)
    m = eye - jnp.asarray(gamma, phi.dtype) * model.transition
    res = solve(jnp.where(model.ok, m, eye), jnp.nan_to_num(model.reward_weights))
    ok = res.ok & model.ok
    out = LinearSolution(jnp.where(ok, res.weights, jnp.nan), ok, jnp.maximum(res.condition, model.condition))
    return out if return_info else out.weights
