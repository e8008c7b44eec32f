"""Linear fitted Q iteration: least-squares regression onto Bellman-optimality targets.

Q̂_0 = φᵀ w_0 (default 0). For k = 0..K−1 regress on y_m = r_m + γ d_m max_a' φ(s'_m, a')ᵀ w_k:
w_{k+1} = (ΦᵀΦ + λI)⁻¹ Φᵀ y. The regularised Gram matrix is factored once (Cholesky) and the
iterations run under ``lax.scan``. See "Tree-Based Batch Mode Reinforcement Learning", Ernst,
Geurts & Wehenkel 2005 (with extra-trees instead of a linear model). Unlike LSPI it is not a
fixed-point solve of a policy's Bellman equation, and off-policy it can diverge when the
projected operator is not a contraction; compare with :func:`~offrl_jax.linear.lspi.lspi`.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from offrl_jax.core.validation import check_positive_int
from offrl_jax.linear.systems import check_td_inputs, factorize

Array = Any

__all__ = ["LinearFQIResult", "linear_fqi"]


class LinearFQIResult(NamedTuple):
    """Result of :func:`linear_fqi`.

    Attributes:
      weights: ``[K]`` w_K.
      weights_history: ``[num_iterations + 1, K]`` w_0 .. w_K.
      weight_change: ``[num_iterations]`` ‖w_{k+1} − w_k‖₂.
      ok: bool, the Gram solve was well conditioned and every iterate is finite.
      condition: estimated 1-norm condition number of the equilibrated ΦᵀWΦ + λI (Hager's
        estimator, see :func:`~offrl_jax.linear.systems.factorize`).
    """

    weights: Array
    weights_history: Array
    weight_change: Array
    ok: Array
    condition: Array


def linear_fqi(phi_sa: Array, phi_next_all: Array, rewards: Array, discounts: Array, gamma: Any,
               ridge: Any = 0.0, *, num_iterations: int = 50, initial_weights: Optional[Array] = None,
               sample_weights: Optional[Array] = None) -> LinearFQIResult:
    """Linear fitted Q iteration: w_{k+1} = (ΦᵀWΦ + λI)⁻¹ ΦᵀW (r + γ D max_a' Φ'_{a'} w_k).

    See "Tree-Based Batch Mode Reinforcement Learning", Ernst, Geurts & Wehenkel 2005.

    Args:
      phi_sa: ``[M, K]`` φ(s_m, a_m).
      phi_next_all: ``[M, A, K]`` φ(s'_m, a) for every action.
      rewards: ``[M]``.
      discounts: ``[M]``, 0 where s'_m is terminal.
      gamma: scalar discount.
      ridge: λ >= 0 added to the (summed) Gram matrix.
      num_iterations: static number of regressions K.
      initial_weights: ``[K]`` w_0 (default zeros).
      sample_weights: optional ``[M]`` non-negative weights W.

    Returns:
      :class:`LinearFQIResult`.
    """
    phi_sa, phi_next_all, rewards, discounts, sample_weights = check_td_inputs(
        phi_sa, phi_next_all, rewards, discounts, gamma, ridge, sample_weights,
        names=("phi_sa", "phi_next_all"), next_rank=3)
    check_positive_int(num_iterations, "num_iterations")
    m, k = phi_sa.shape
    dt = phi_sa.dtype
    if initial_weights is not None and jnp.shape(initial_weights) != (k,):
        raise ValueError(f"initial_weights: expected shape [K] = [{k}], found {list(jnp.shape(initial_weights))}")
    w0 = jnp.zeros((k,), dt) if initial_weights is None else jnp.asarray(initial_weights, dt)
    sw = jnp.ones((m,), dt) if sample_weights is None else sample_weights.astype(dt)
    wphi = sw[:, None] * phi_sa
    gram = factorize(wphi.T @ phi_sa, ridge, method="cholesky")  # factored once for every iteration
    g, disc = jnp.asarray(gamma, dt), discounts.astype(dt)

    def step(w, _):
        target = rewards.astype(dt) + g * disc * jnp.max(phi_next_all @ w, axis=-1)
        w_new = gram.solve(wphi.T @ jax.lax.stop_gradient(target))
        return w_new, (w_new, jnp.linalg.norm(w_new - w))

    w, (ws, change) = jax.lax.scan(step, w0, None, length=int(num_iterations))
    ok = gram.ok & jnp.all(jnp.isfinite(ws))
    history = jnp.concatenate([w0[None], ws], axis=0)
    nan = jnp.asarray(jnp.nan, dt)
    return LinearFQIResult(jnp.where(ok, w, nan), jnp.where(ok, history, nan), change, ok, gram.condition)
