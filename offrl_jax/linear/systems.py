"""The linear systems behind LSTD, LSTDQ, LSPI and linear FQI: accumulation and guarded solves.

Data are M transitions as row-aligned arrays (one problem per call; ``jax.vmap`` over
policies, datasets or ridge values):

* ``phi[m] = φ(s_m)`` (or φ(s_m, a_m)), ``[M, K]``;
* ``phi_next[m] = φ(s'_m)``; for LSTDQ ``phi_next_pi[m] = Σ_a π(a|s'_m) φ(s'_m, a)`` (see
  :func:`~offrl_jax.linear.features.expected_features`), ``[M, K]``;
* ``rewards[m]``, ``discounts[m]`` (0 where s'_m is terminal, else 1; γ applied separately),
  optional ``sample_weights[m] >= 0`` (e.g. a padding mask, or P(s'|s, a) for exact expected
  systems), all ``[M]``.

**Accumulation.** The TD system is a *sum* over samples,

    A = Φᵀ W (Φ − γ D Φ') = Σ_m w_m φ_m (φ_m − γ d_m φ'_m)ᵀ,   b = Φᵀ W r = Σ_m w_m φ_m r_m,

(W = diag(sample_weights), D = diag(discounts)), so a ``ridge`` λ is added to a sum:
(A + λI) w = b (scale λ with M to keep its effect fixed). With ``chunk_size`` the sums are
accumulated by ``lax.scan`` over blocks of rows (:func:`accumulate`); the last block is read
clamped to the end of the data and its already-counted rows are masked out, so M need not be a
multiple of the block and no padded copy of the data is made. :func:`streaming_td_system` builds
the features of each block on the fly from raw inputs (states, keys), so memory stays
O(chunk_size · K) whatever M is.

**Guarded solves.** :func:`factorize` equilibrates M = A + λI (symmetric diagonal scaling) and
factors it once (LU, or Cholesky for the symmetric positive-definite Gram systems), with the
1-norm condition number κ₁ = ‖M_s‖₁ ‖M_s⁻¹‖₁ of the scaled matrix (Hager's estimate from the same
factors). :func:`solve` returns a :class:`LinearSolution` with the weights, an ``ok`` flag and κ₁;
``ok`` is False when the result is not finite or κ₁ ≥ 1/ε of the dtype (singular to working
precision), and the weights are then NaN rather than an arbitrary vector.

dtype: float32 by default, as the inputs; for float64 enable x64 (``JAX_ENABLE_X64=1`` or
``jax.config.update("jax_enable_x64", True)``) and pass float64 arrays. Ill-conditioned bases
(high-degree polynomials) need float64 or a ridge.

Value checks (NaN, ranges, emptiness) run on the host when the inputs are concrete arrays
(:func:`check_td_inputs`, called by every public entry point of :mod:`offrl_jax.linear`) and
raise ``ValueError`` naming the argument; under ``jit``/``vmap`` only the shape checks run.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

from offrl_jax.core.dtypes import as_float, float_inputs
from offrl_jax.core.validation import check_positive_int, is_concrete, validate_gamma

Array = Any

__all__ = [
    "LinearSystem",
    "LinearSolution",
    "Factorization",
    "td_system",
    "streaming_td_system",
    "solve",
    "factorize",
    "accumulate",
    "td_block",
    "accumulate_td_system",
    "check_td_inputs",
]


class LinearSystem(NamedTuple):
    """Accumulated TD system A w = b.

    Attributes:
      a: ``[K, K]`` A = Σ_m w_m φ_m (φ_m − γ d_m φ'_m)ᵀ.
      b: ``[K]`` b = Σ_m w_m φ_m r_m.
      count: scalar Σ_m w_m (the number of samples when unweighted).
    """

    a: Array
    b: Array
    count: Array


class LinearSolution(NamedTuple):
    """Weights of a guarded solve.

    Attributes:
      weights: ``[K]`` solution (NaN where ``ok`` is False).
      ok: bool, finite and κ₁ < 1/ε of the dtype.
      condition: scalar estimated 1-norm condition number of the (regularised, equilibrated)
        matrix (a lower bound, exact or close in practice).
    """

    weights: Array
    ok: Array
    condition: Array


class Factorization(NamedTuple):
    """A factored, equilibrated A + λI (from :func:`factorize`), reusable for many right-hand sides.

    Attributes:
      solve: ``B [K] or [K, J] -> (A + λI)⁻¹ B`` (not NaN-guarded; check ``ok``).
      ok: bool, the factors are finite and κ₁ < 1/ε of the dtype.
      condition: κ₁ of the equilibrated matrix (``inf`` when not finite).
    """

    solve: Callable[[Array], Array]
    ok: Array
    condition: Array


# ----------------------------------------------------------------------------------------------
# Host-side checks (skipped for traced values).
# ----------------------------------------------------------------------------------------------
def _check_nonnegative(x: Any, name: str) -> None:
    if not is_concrete(x):
        return
    v = np.asarray(x)
    if v.ndim != 0 or not np.isfinite(v) or float(v) < 0:
        raise ValueError(f"{name}: expected a finite scalar >= 0, found {x}")


def check_td_inputs(phi: Array, phi_next: Array, rewards: Array, discounts: Array, gamma: Any = 0.0,
                    ridge: Any = 0.0, sample_weights: Optional[Array] = None, *,
                    names: Tuple[str, str] = ("phi", "phi_next"), next_rank: int = 2,
                    chunk_size: Optional[int] = None) -> tuple:
    """Checks the inputs of a TD solver; raises ``ValueError`` naming the argument.

    The numeric inputs first follow the dtype policy of :mod:`offrl_jax.core.dtypes` (integers,
    bools and lists as floats, half precision computed in float32, mixed dtypes promoted to the
    widest float). Shapes (static under ``jit``) are always checked; values (finite, discounts
    and sample weights in range, gamma in [0, 1], ridge >= 0, a non-empty dataset) only when
    concrete. ``names`` are the caller's names of the two feature arrays; ``next_rank`` is 3 for
    ``phi_next_all`` ``[M, A, K]``.

    Returns:
      ``(phi, phi_next, rewards, discounts, sample_weights)`` as arrays of one float dtype
      (``sample_weights`` stays ``None`` if it was).
    """
    n_phi, n_next = names
    phi, phi_next, rewards, discounts, sample_weights = float_inputs(
        [phi, phi_next, rewards, discounts, sample_weights], [n_phi, n_next, "rewards", "discounts", "sample_weights"]
    )
    if jnp.ndim(phi) != 2:
        raise ValueError(f"{n_phi}: expected shape [M, K], found {list(jnp.shape(phi))}")
    m, k = jnp.shape(phi)
    if m == 0 or k == 0:
        raise ValueError(f"{n_phi}: empty data (shape {[m, k]}); expected M >= 1 samples and K >= 1 features")
    nshape = jnp.shape(phi_next)
    if len(nshape) != next_rank or nshape[0] != m or nshape[-1] != k:
        want = "[M, K]" if next_rank == 2 else "[M, A, K]"
        raise ValueError(f"{n_next}: expected shape {want} with M = {m}, K = {k} (as {n_phi}), found {list(nshape)}")
    for name, x in (("rewards", rewards), ("discounts", discounts), ("sample_weights", sample_weights)):
        if x is not None and tuple(jnp.shape(x)) != (m,):
            raise ValueError(f"{name}: expected shape [M] = [{m}] (rows of {n_phi}), found {list(jnp.shape(x))}")
    validate_gamma(gamma)
    _check_nonnegative(ridge, "ridge")
    check_positive_int(chunk_size, "chunk_size", allow_none=True)
    for name, x in ((n_phi, phi), (n_next, phi_next), ("rewards", rewards), ("discounts", discounts),
                    ("sample_weights", sample_weights)):
        if x is None or not is_concrete(x):
            continue
        a = np.asarray(x)
        if not np.all(np.isfinite(a)):
            idx = tuple(np.argwhere(~np.isfinite(a))[0].tolist())
            raise ValueError(f"{name}: expected finite values, found {a[idx]} at index {idx}")
        if name == "discounts" and np.any((a < 0) | (a > 1)):
            raise ValueError(f"discounts: expected values in [0, 1] (0 where s' is terminal), found range [{a.min()}, {a.max()}]")
        if name == "sample_weights" and (np.any(a < 0) or a.sum() <= 0):
            raise ValueError("sample_weights: expected non-negative weights with a positive sum")
    return phi, phi_next, rewards, discounts, sample_weights


# ----------------------------------------------------------------------------------------------
# Accumulation.
# ----------------------------------------------------------------------------------------------
def accumulate(block_sums: Callable[[Any, Array], Any], data: Any, chunk_size: Optional[int], dtype: Any) -> Any:
    """Σ over row blocks of ``block_sums(block, valid)`` by ``lax.scan`` (one block if None).

    ``data`` is a pytree of ``[M, ...]`` arrays; ``block_sums`` maps a block of ``C`` rows and
    a ``[C]`` 0/1 ``valid`` mask (0 on rows an earlier block already counted) to a pytree of sums.
    """
    m = jax.tree_util.tree_leaves(data)[0].shape[0]
    if chunk_size is None or chunk_size >= m:
        return block_sums(data, jnp.ones((m,), dtype))
    c = int(chunk_size)
    n_blocks = -(-m // c)

    def body(total, i):
        start = jnp.minimum(i * c, m - c)  # the last block is read clamped to the end of the data
        block = jax.tree_util.tree_map(lambda x: jax.lax.dynamic_slice_in_dim(x, start, c, 0), data)
        valid = (start + jnp.arange(c) >= i * c).astype(dtype)  # drop rows counted by the previous block
        return jax.tree_util.tree_map(jnp.add, total, block_sums(block, valid)), None

    zero = jax.eval_shape(block_sums, jax.tree_util.tree_map(lambda x: x[:c], data), jnp.ones((c,), dtype))
    zero = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), zero)
    total, _ = jax.lax.scan(body, zero, jnp.arange(n_blocks))
    return total


def td_block(phi: Array, phi_next: Array, rewards: Array, discounts: Array, weights: Array, gamma: Any) -> LinearSystem:
    """One block's sums: Φᵀ W (Φ − γ D Φ'), Φᵀ W r and Σ w (``weights`` ``[C]``, 0 drops a row)."""
    dt = phi.dtype
    g = jnp.asarray(gamma, dt)
    diff = phi - (g * discounts.astype(dt))[:, None] * phi_next
    wphi = weights.astype(dt)[:, None] * phi
    return LinearSystem(wphi.T @ diff, wphi.T @ rewards.astype(dt), jnp.sum(weights.astype(dt)))


def accumulate_td_system(phi: Array, phi_next: Array, rewards: Array, discounts: Array, gamma: Any,
                         sample_weights: Optional[Array] = None, chunk_size: Optional[int] = None) -> LinearSystem:
    """:func:`td_system` without the host checks (for callers that ran :func:`check_td_inputs`)."""
    dt = phi.dtype
    w = jnp.ones(phi.shape[:1], dt) if sample_weights is None else sample_weights
    data = (phi, phi_next, rewards, discounts, w)

    def block(d, valid):
        p, pn, r, disc, wb = d
        return td_block(p, pn, r, disc, wb * valid, gamma)

    return accumulate(block, data, chunk_size, dt)


def td_system(phi: Array, phi_next: Array, rewards: Array, discounts: Array, gamma: Any, *,
              sample_weights: Optional[Array] = None, chunk_size: Optional[int] = None) -> LinearSystem:
    """Accumulates the LSTD system A = Σ_m w_m φ_m (φ_m − γ d_m φ'_m)ᵀ, b = Σ_m w_m φ_m r_m.

    See "Linear Least-Squares Algorithms for Temporal Difference Learning", Bradtke & Barto 1996.

    Args:
      phi, phi_next: ``[M, K]``.
      rewards, discounts: ``[M]``.
      gamma: scalar discount.
      sample_weights: optional ``[M]`` non-negative weights w_m (default 1).
      chunk_size: rows per block of the ``lax.scan`` accumulation (None: one block).

    Returns:
      :class:`LinearSystem` with ``a`` ``[K, K]``, ``b`` ``[K]``.
    """
    phi, phi_next, rewards, discounts, sample_weights = check_td_inputs(
        phi, phi_next, rewards, discounts, gamma, 0.0, sample_weights, chunk_size=chunk_size
    )
    return accumulate_td_system(phi, phi_next, rewards, discounts, gamma, sample_weights, chunk_size)


def streaming_td_system(featurize: Callable[[Any], Tuple[Array, Array, Array, Array]], data: Any, gamma: Any,
                        chunk_size: int) -> LinearSystem:
    """The LSTD system with features built per block, for data too big to featurise at once.

    ``featurize(block)`` maps a block of ``data`` (a pytree of arrays with ``chunk_size`` leading
    rows: states, actions, PRNG keys, ...) to ``(phi [C, K], phi_next [C, K], rewards [C],
    discounts [C])``. Only O(chunk_size · K) feature memory is live at any time; the rows that
    overlap the previous block in the clamped last block are masked out.

    Args:
      featurize: pure function of one block.
      data: pytree of ``[M, ...]`` arrays.
      gamma: scalar discount.
      chunk_size: rows per block.

    Returns:
      :class:`LinearSystem` summed over all M rows.
    """
    if chunk_size is None:
        raise ValueError("chunk_size: expected a positive int (rows per block), found None")
    check_positive_int(chunk_size, "chunk_size")
    validate_gamma(gamma)
    leaves = jax.tree_util.tree_leaves(data)
    if not leaves or leaves[0].shape[0] == 0:
        raise ValueError("data: empty dataset; expected a pytree of [M, ...] arrays with M >= 1")
    if any(x.shape[:1] != leaves[0].shape[:1] for x in leaves):
        raise ValueError(f"data: expected all leaves to share the leading size M, found {[x.shape for x in leaves]}")
    c = min(int(chunk_size), leaves[0].shape[0])
    dt = jax.eval_shape(featurize, jax.tree_util.tree_map(lambda x: x[:c], data))[0].dtype

    def block(d, valid):
        p, pn, r, disc = featurize(d)
        return td_block(p, pn, r, disc, valid, gamma)

    return accumulate(block, data, chunk_size, dt)


# ----------------------------------------------------------------------------------------------
# Guarded solves.
# ----------------------------------------------------------------------------------------------
def _inverse_norm1(solve_n: Callable[[Array], Array], solve_t: Callable[[Array], Array], k: int, dtype: Any,
                   iterations: int = 4) -> Array:
    """Estimate of ‖M⁻¹‖₁ from solves with M and Mᵀ (Hager 1984; Higham 1988, LAPACK ``xLACN2``).

    A lower bound that is exact or within a small factor in practice; it needs 2·iterations + 1
    single-vector solves, where forming M⁻¹ would need K.
    """
    def body(_, carry):
        x, est = carry
        y = solve_n(x)
        est = jnp.maximum(est, jnp.sum(jnp.abs(y)))
        z = solve_t(jnp.where(y >= 0, 1.0, -1.0).astype(dtype))
        return jax.nn.one_hot(jnp.argmax(jnp.abs(z)), k, dtype=dtype), est

    x0 = jnp.full((k,), 1.0 / k, dtype)
    _, est = jax.lax.fori_loop(0, iterations, body, (x0, jnp.zeros((), dtype)))
    i = jnp.arange(k, dtype=dtype)
    alt = jnp.where(jnp.arange(k) % 2 == 0, 1.0, -1.0).astype(dtype) * (1.0 + i / max(k - 1, 1))
    return jnp.maximum(est, 2.0 * jnp.sum(jnp.abs(solve_n(alt))) / (3.0 * k))


def factorize(a: Array, ridge: Any = 0.0, *, method: str = "lu") -> Factorization:
    """Equilibrates and factors M = A + λI once, with its condition number and a success flag.

    M_s = D M D with D = diag(1/√max(‖M_{:,j}‖_∞, ‖M_{j,:}‖_∞)) (this leaves the solution
    unchanged and removes the condition number due to feature scales alone) is factored by LU
    with partial pivoting (``method="lu"``, general A) or Cholesky (``"cholesky"``, symmetric
    positive-definite A). The same factors give, through a few single-vector solves, Hager's
    estimate of ‖M_s⁻¹‖₁ (as LAPACK's ``xGECON``), hence κ₁ ≈ ‖M_s‖₁ ‖M_s⁻¹‖₁.

    Args:
      a: ``[K, K]``.
      ridge: scalar λ >= 0.
      method: ``"lu"`` or ``"cholesky"``.

    Returns:
      :class:`Factorization`.
    """
    if method not in ("lu", "cholesky"):
        raise ValueError(f"method: expected 'lu' or 'cholesky', found {method!r}")
    _check_nonnegative(ridge, "ridge")
    a = as_float(a, "a")
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"a: expected a square [K, K] matrix, found shape {list(a.shape)}")
    k = a.shape[0]
    mat = a + jnp.asarray(ridge, a.dtype) * jnp.eye(k, dtype=a.dtype)
    mag = jnp.sqrt(jnp.maximum(jnp.max(jnp.abs(mat), 0), jnp.max(jnp.abs(mat), 1)))
    scale = jnp.where(mag > 0, 1.0 / jnp.where(mag > 0, mag, 1.0), 1.0)
    mat_s = scale[:, None] * mat * scale[None, :]
    if method == "cholesky":
        factor = jsl.cho_factor(mat_s, lower=True)
        solve_n = solve_t = lambda v: jsl.cho_solve(factor, v)  # noqa: E731
    else:
        factor = jsl.lu_factor(mat_s)
        solve_n = lambda v: jsl.lu_solve(factor, v)  # noqa: E731
        solve_t = lambda v: jsl.lu_solve(factor, v, trans=1)  # noqa: E731
    cond = jnp.max(jnp.sum(jnp.abs(mat_s), 0)) * _inverse_norm1(solve_n, solve_t, k, a.dtype)
    ok = jnp.all(jnp.isfinite(factor[0])) & jnp.isfinite(cond) & (cond < 1.0 / jnp.finfo(a.dtype).eps)

    def solve_scaled(b: Array) -> Array:
        rhs = scale.reshape((k,) + (1,) * (b.ndim - 1)) * b.astype(a.dtype)
        return scale.reshape((k,) + (1,) * (b.ndim - 1)) * solve_n(rhs)

    return Factorization(solve_scaled, ok, jnp.where(jnp.isfinite(cond), cond, jnp.inf))


def solve(a: Array, b: Array, ridge: Any = 0.0, *, method: str = "lu") -> LinearSolution:
    """Solves (A + λI) W = B with a failure flag and the 1-norm condition number.

    Factors A + λI once by :func:`factorize` (equilibrated; LU or Cholesky); ``ok`` = the
    factors and W are finite and κ₁ < 1/ε of the dtype; otherwise W is NaN.

    Args:
      a: ``[K, K]``.
      b: ``[K]`` or ``[K, J]``.
      ridge: scalar λ >= 0.
      method: ``"lu"`` or ``"cholesky"``.

    Returns:
      :class:`LinearSolution` with ``weights`` shaped like ``b``.
    """
    a, b = float_inputs([a, b], ["a", "b"])
    if jnp.ndim(a) != 2 or a.shape[0] != a.shape[1] or b.shape[0] != a.shape[0] or jnp.ndim(b) not in (1, 2):
        raise ValueError(f"a, b: expected a [K, K] and b [K] or [K, J], found {list(a.shape)} and {list(b.shape)}")
    fac = factorize(a, ridge, method=method)
    x = fac.solve(b.reshape(a.shape[0], -1))
    ok = fac.ok & jnp.all(jnp.isfinite(x))
    return LinearSolution(jnp.where(ok, x, jnp.nan).reshape(b.shape), ok, fac.condition)
