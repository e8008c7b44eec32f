"""LSTD and LSTDQ: the TD fixed point of a linear value function, solved in closed form.

LSTD (Bradtke & Barto 1996) finds V(s) = φ(s)ᵀ w from samples of the evaluated policy:

    Φᵀ W (r + γ D Φ' w − Φ w) = λ w   ⇔   (A + λI) w = b,
    A = Σ_m w_m φ_m (φ_m − γ d_m φ'_m)ᵀ,   b = Σ_m w_m φ_m r_m.

LSTDQ (Lagoudakis & Parr 2003) is the same system in state-action features, Q(s, a) = φ(s, a)ᵀ w,
with the next features taken at the *evaluated* policy's action,
φ'_π(s') = Σ_a' π(a'|s') φ(s', a') (never the logged next action), so it evaluates π off-policy.

Both accumulate the system with :func:`~offrl_jax.linear.systems.accumulate_td_system` (chunked
by ``chunk_size``) and solve it with the guarded :func:`~offrl_jax.linear.systems.solve`. Data
conventions are those of :mod:`offrl_jax.linear.systems`. See "Linear Least-Squares Algorithms for
Temporal Difference Learning", Bradtke & Barto 1996, and "Least-Squares Policy Iteration",
Lagoudakis & Parr 2003 (their absorbing flag is our ``discounts[m] = 0``).
"""

from __future__ import annotations

from typing import Any, Optional

from offrl_jax.linear.systems import accumulate_td_system, check_td_inputs, solve

Array = Any

__all__ = ["lstd", "lstdq"]


def lstd(phi: Array, phi_next: Array, rewards: Array, discounts: Array, gamma: Any, ridge: Any = 0.0, *,
         sample_weights: Optional[Array] = None, chunk_size: Optional[int] = None, return_info: bool = False):
    """LSTD: value weights w with V(s) = φ(s)ᵀ w from samples of the evaluated policy.

    w = (A + λI)⁻¹ b with A = Σ_m φ_m (φ_m − γ d_m φ'_m)ᵀ and b = Σ_m φ_m r_m: the TD fixed point
    Φᵀ(r + γ D Φ' w − Φ w) = λ w. See "Linear Least-Squares Algorithms for Temporal Difference
    Learning", Bradtke & Barto 1996.

    Args:
      phi: ``[M, K]`` φ(s_m).
      phi_next: ``[M, K]`` φ(s'_m).
      rewards: ``[M]`` r_m.
      discounts: ``[M]`` d_m, 0 where s'_m is terminal, else 1.
      gamma: scalar discount.
      ridge: scalar λ >= 0, added to the summed system.
      sample_weights: optional ``[M]`` non-negative weights.
      chunk_size: rows per ``lax.scan`` block of the accumulation (None: one block).
      return_info: return the :class:`~offrl_jax.linear.systems.LinearSolution` instead of the
        weights.

    Returns:
      ``[K]`` weights (NaN if the system is singular to working precision), or a
      :class:`~offrl_jax.linear.systems.LinearSolution` with the ``ok`` flag and condition number.
    """
    phi, phi_next, rewards, discounts, sample_weights = check_td_inputs(
        phi, phi_next, rewards, discounts, gamma, ridge, sample_weights, chunk_size=chunk_size
    )
    system = accumulate_td_system(phi, phi_next, rewards, discounts, gamma, sample_weights, chunk_size)
    res = solve(system.a, system.b, ridge)
    return res if return_info else res.weights


def lstdq(phi_sa: Array, phi_next_pi: Array, rewards: Array, discounts: Array, gamma: Any, ridge: Any = 0.0, *,
          sample_weights: Optional[Array] = None, chunk_size: Optional[int] = None, return_info: bool = False):
    """LSTDQ: Q^π weights w, Q(s, a) = φ(s, a)ᵀ w, from off-policy transitions.

    w = (Ã + λI)⁻¹ b̃ with Ã = Σ_m φ(s_m, a_m)(φ(s_m, a_m) − γ d_m φ'_π(s'_m))ᵀ and
    b̃ = Σ_m φ(s_m, a_m) r_m, where φ'_π(s') = Σ_a' π(a'|s') φ(s', a') uses the *evaluated*
    policy's action at s' (never the logged next action); for a deterministic π it is
    φ(s', π(s')). Terminal s' (d_m = 0) contribute no next features. See "Least-Squares Policy
    Iteration", Lagoudakis & Parr 2003 (their absorbing flag is our d_m = 0).

    Args:
      phi_sa: ``[M, K]`` φ(s_m, a_m) at the logged actions.
      phi_next_pi: ``[M, K]`` φ'_π(s'_m) (:func:`~offrl_jax.linear.features.expected_features`).
      rewards, discounts: ``[M]``.
      gamma, ridge, sample_weights, chunk_size, return_info: as in :func:`lstd`.

    Returns:
      ``[K]`` weights, or a :class:`~offrl_jax.linear.systems.LinearSolution` with
      ``return_info=True``.
    """
    phi_sa, phi_next_pi, rewards, discounts, sample_weights = check_td_inputs(
        phi_sa, phi_next_pi, rewards, discounts, gamma, ridge, sample_weights,
        names=("phi_sa", "phi_next_pi"), chunk_size=chunk_size)
    system = accumulate_td_system(phi_sa, phi_next_pi, rewards, discounts, gamma, sample_weights, chunk_size)
    res = solve(system.a, system.b, ridge)
    return res if return_info else res.weights
