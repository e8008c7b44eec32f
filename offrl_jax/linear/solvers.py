"""LSTD, LSTDQ and the linear model route: chunked accumulation and guarded linear solves.

Data are M transitions as row-aligned arrays (one problem per call; ``jax.vmap`` over
policies, datasets or ridge values):

* ``phi[m] = φ(s_m)`` (or φ(s_m, a_m)), ``[M, K]``;
* ``phi_next[m] = φ(s'_m)``; for LSTDQ ``phi_next_pi[m] = Σ_a π(a|s'_m) φ(s'_m, a)`` (see
  :func:`~offrl_jax.linear.features.expected_features`), ``[M, K]``;
* ``rewards[m]``, ``discounts[m]`` (0 where s'_m is terminal, else 1; γ applied separately),
  optional ``sample_weights[m] >= 0`` (e.g. a padding mask, or P(s'|s, a) for exact expected
  systems), all ``[M]``.

The systems are *sums* over samples, A = Σ_m w_m φ_m (φ_m − γ d_m φ'_m)ᵀ and b = Σ_m w_m φ_m r_m,
so ``ridge`` λ is added to a sum: (A + λI) w = b (scale λ with M to keep its effect fixed).
With ``chunk_size`` the sums are accumulated by ``lax.scan`` over blocks of rows; the last block
is read clamped to the end of the data and its already-counted rows are masked out, so M need
not be a multiple of the block and no padded copy of the data is made.
:func:`streaming_td_system` builds the features of each block on the fly from raw inputs (states,
keys), so memory stays O(chunk_size · K) whatever M is.

Solves: :func:`solve` factors A + λI once (LU, or Cholesky for the symmetric positive-definite
Gram systems) and returns a :class:`LinearSolution` with the weights, an ``ok`` flag and the
1-norm condition number κ₁ = ‖A + λI‖₁ ‖(A + λI)⁻¹‖₁ (Hager's estimate from the same factors).
``ok`` is False when the result is not finite or κ₁ ≥ 1/ε of the dtype (the system is singular to
working precision); the weights are then NaN rather than an arbitrary vector. The matrix is
equilibrated (symmetric diagonal scaling) before factoring, and κ₁ is that of the scaled matrix. The array-level
entry points return the weights; pass ``return_info=True`` for the :class:`LinearSolution`.

dtype: float32 by default, as the inputs; for float64 enable x64 (``JAX_ENABLE_X64=1`` or
``jax.config.update("jax_enable_x64", True)``) and pass float64 arrays. Ill-conditioned bases
(high-degree polynomials) need float64 or a ridge.

Value checks (NaN, ranges, emptiness) run on the host when the inputs are concrete arrays and
raise ``ValueError`` naming the argument; under ``jit``/``vmap`` only the shape checks run (call
:func:`validate_td_inputs` first on the host).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

Array = Any

__all__ = [
    "LinearModel",
    "LinearSolution",
    "LinearSystem",
    "linear_model",
    "linear_model_value",
    "lstd",
    "lstdq",
    "solve",
    "streaming_td_system",
    "td_system",
    "validate_td_inputs",
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


def _is_concrete(*xs: Any) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(xs))


def _check_scalar(x: Any, name: str, lo: float, hi: float) -> None:
    if isinstance(x, jax.core.Tracer):
        return
    v = np.asarray(x)
    if v.ndim != 0 or not np.isfinite(v) or not (lo <= float(v) <= hi):
        raise ValueError(f"{name}: expected a finite scalar in [{lo}, {hi}], found {x}")


def _check_chunk(chunk_size: Optional[int]) -> None:
    if chunk_size is not None and (int(chunk_size) != chunk_size or chunk_size < 1):
        raise ValueError(f"chunk_size: expected a positive int or None, found {chunk_size}")


def validate_td_inputs(phi: Array, phi_next: Array, rewards: Array, discounts: Array, gamma: Any = 0.0,
                       ridge: Any = 0.0, sample_weights: Optional[Array] = None,
                       names: Tuple[str, str] = ("phi", "phi_next"), next_rank: int = 2) -> None:
    """Checks TD-solver inputs; raises ``ValueError`` naming the argument.

    Shapes are always checked (they are static under ``jit``); values (finite, discounts and
    sample weights in range, gamma in [0, 1], ridge >= 0, a non-empty dataset) only when the
    arrays are concrete. ``next_rank`` is 3 for ``phi_next_all`` ``[M, A, K]``.
    """
    n_phi, n_next = names
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
    _check_scalar(gamma, "gamma", 0.0, 1.0)
    _check_scalar(ridge, "ridge", 0.0, np.inf)
    for name, x in ((n_phi, phi), (n_next, phi_next), ("rewards", rewards), ("discounts", discounts),
                    ("sample_weights", sample_weights)):
        if x is None or not _is_concrete(x):
            continue
        a = np.asarray(x)
        if not np.all(np.isfinite(a)):
            idx = tuple(np.argwhere(~np.isfinite(a))[0].tolist())
            raise ValueError(f"{name}: expected finite values, found {a[idx]} at index {idx}")
        if name == "discounts" and np.any((a < 0) | (a > 1)):
            raise ValueError(f"discounts: expected values in [0, 1] (0 where s' is terminal), found range [{a.min()}, {a.max()}]")
        if name == "sample_weights" and (np.any(a < 0) or a.sum() <= 0):
            raise ValueError("sample_weights: expected non-negative weights with a positive sum")


def _accumulate(block_sums: Callable[[Any, Array], Any], data: Any, chunk_size: Optional[int], dtype: Any) -> Any:
    """Σ over row blocks of ``block_sums(block, valid)`` by ``lax.scan`` (one block if None)."""
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


def _td_block(phi: Array, phi_next: Array, rewards: Array, discounts: Array, weights: Array, gamma: Any) -> LinearSystem:
    dt = phi.dtype
    g = jnp.asarray(gamma, dt)
    diff = phi - (g * discounts.astype(dt))[:, None] * phi_next
    wphi = weights.astype(dt)[:, None] * phi
    return LinearSystem(wphi.T @ diff, wphi.T @ rewards.astype(dt), jnp.sum(weights.astype(dt)))


def td_system(phi: Array, phi_next: Array, rewards: Array, discounts: Array, gamma: Any,
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
    validate_td_inputs(phi, phi_next, rewards, discounts, gamma, 0.0, sample_weights)
    _check_chunk(chunk_size)
    return _td_system(phi, phi_next, rewards, discounts, gamma, sample_weights, chunk_size)


def _td_system(phi, phi_next, rewards, discounts, gamma, sample_weights, chunk_size) -> LinearSystem:
    dt = phi.dtype
    w = jnp.ones(phi.shape[:1], dt) if sample_weights is None else sample_weights
    data = (phi, phi_next, rewards, discounts, w)

    def block(d, valid):
        p, pn, r, disc, wb = d
        return _td_block(p, pn, r, disc, wb * valid, gamma)

    return _accumulate(block, data, chunk_size, dt)


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
    _check_chunk(chunk_size)
    _check_scalar(gamma, "gamma", 0.0, 1.0)
    leaves = jax.tree_util.tree_leaves(data)
    if not leaves or leaves[0].shape[0] == 0:
        raise ValueError("data: empty dataset; expected a pytree of [M, ...] arrays with M >= 1")
    if any(x.shape[:1] != leaves[0].shape[:1] for x in leaves):
        raise ValueError(f"data: expected all leaves to share the leading size M, found {[x.shape for x in leaves]}")
    c = min(int(chunk_size), leaves[0].shape[0])
    out = jax.eval_shape(featurize, jax.tree_util.tree_map(lambda x: x[:c], data))
    dt = out[0].dtype

    def block(d, valid):
        p, pn, r, disc = featurize(d)
        return _td_block(p, pn, r, disc, valid, gamma)

    return _accumulate(block, data, chunk_size, dt)


def _eps_limit(dtype: Any) -> Array:
    return 1.0 / jnp.finfo(dtype).eps


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


def solve(a: Array, b: Array, ridge: Any = 0.0, method: str = "lu") -> LinearSolution:
    """Solves (A + λI) W = B with a failure flag and the 1-norm condition number.

    M = A + λI is first equilibrated, M_s = D M D with D = diag(1/√max(‖M_{:,j}‖_∞, ‖M_{j,:}‖_∞))
    (this leaves W unchanged and removes the condition number due to feature scales alone), then
    factored once (``method="lu"`` with partial pivoting for general A, or ``"cholesky"`` for
    symmetric positive-definite A). The same factors give W and, through a few single-vector
    solves, Hager's estimate of ‖M_s⁻¹‖₁ (as LAPACK's ``xGECON``), hence
    κ₁ ≈ ‖M_s‖₁ ‖M_s⁻¹‖₁. ``ok`` = all finite and κ₁ < 1/ε of the dtype; otherwise W is NaN.

    Args:
      a: ``[K, K]``.
      b: ``[K]`` or ``[K, J]``.
      ridge: scalar λ >= 0.
      method: ``"lu"`` or ``"cholesky"``.

    Returns:
      :class:`LinearSolution` with ``weights`` shaped like ``b``.
    """
    if method not in ("lu", "cholesky"):
        raise ValueError(f"method: expected 'lu' or 'cholesky', found {method!r}")
    if jnp.ndim(a) != 2 or a.shape[0] != a.shape[1] or b.shape[0] != a.shape[0] or jnp.ndim(b) not in (1, 2):
        raise ValueError(f"a, b: expected a [K, K] and b [K] or [K, J], found {list(a.shape)} and {list(b.shape)}")
    _check_scalar(ridge, "ridge", 0.0, np.inf)
    k = a.shape[0]
    eye = jnp.eye(k, dtype=a.dtype)
    mat = a + jnp.asarray(ridge, a.dtype) * eye
    # Symmetric equilibration D M D with D = diag(1 / sqrt(max(row/col max-abs))): the solution is
    # unchanged, the (scaled) condition number is what governs the accuracy of the solve.
    mag = jnp.sqrt(jnp.maximum(jnp.max(jnp.abs(mat), 0), jnp.max(jnp.abs(mat), 1)))
    scale = jnp.where(mag > 0, 1.0 / jnp.where(mag > 0, mag, 1.0), 1.0)
    mat_s = scale[:, None] * mat * scale[None, :]
    rhs = scale[:, None] * b.reshape(k, -1).astype(a.dtype)
    if method == "cholesky":
        factor = jsl.cho_factor(mat_s, lower=True)
        solve_n = solve_t = lambda v: jsl.cho_solve(factor, v)  # noqa: E731
    else:
        factor = jsl.lu_factor(mat_s)
        solve_n = lambda v: jsl.lu_solve(factor, v)  # noqa: E731
        solve_t = lambda v: jsl.lu_solve(factor, v, trans=1)  # noqa: E731
    x = solve_n(rhs)
    sol = scale[:, None] * x
    cond = jnp.max(jnp.sum(jnp.abs(mat_s), 0)) * _inverse_norm1(solve_n, solve_t, k, a.dtype)
    ok = jnp.all(jnp.isfinite(x)) & jnp.isfinite(cond) & (cond < _eps_limit(a.dtype))
    sol = jnp.where(ok, sol, jnp.nan).reshape(b.shape)
    return LinearSolution(sol, ok, jnp.where(jnp.isfinite(cond), cond, jnp.inf))


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
      return_info: return the :class:`LinearSolution` instead of the weights.

    Returns:
      ``[K]`` weights (NaN if the system is singular to working precision), or a
      :class:`LinearSolution` with the ``ok`` flag and condition number.
    """
    validate_td_inputs(phi, phi_next, rewards, discounts, gamma, ridge, sample_weights)
    _check_chunk(chunk_size)
    system = _td_system(phi, phi_next, rewards, discounts, gamma, sample_weights, chunk_size)
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
      ``[K]`` weights, or a :class:`LinearSolution` with ``return_info=True``.
    """
    validate_td_inputs(phi_sa, phi_next_pi, rewards, discounts, gamma, ridge, sample_weights,
                       names=("phi_sa", "phi_next_pi"))
    _check_chunk(chunk_size)
    system = _td_system(phi_sa, phi_next_pi, rewards, discounts, gamma, sample_weights, chunk_size)
    res = solve(system.a, system.b, ridge)
    return res if return_info else res.weights


def linear_model(phi: Array, phi_next: Array, rewards: Array, discounts: Array, ridge: Any = 0.0, *,
                 sample_weights: Optional[Array] = None, chunk_size: Optional[int] = None) -> LinearModel:
    """Least-squares reward and feature-transition models in feature space.

    w_r = (ΦᵀΦ + λI)⁻¹ Φᵀ r and P_Φ = (ΦᵀΦ + λI)⁻¹ Φᵀ D Φ', so that φ(s)ᵀ w_r ≈ r(s) and
    φ(s)ᵀ P_Φ ≈ E[d φ(s')ᵀ | s]. See "An Analysis of Linear Models, Linear Value-Function
    Approximation, and Feature Selection for Reinforcement Learning", Parr, Li, Taylor,
    Painter-Wakefield & Littman 2008.

    Args:
      phi, phi_next: ``[M, K]`` (for Q^π: φ(s, a) and φ'_π(s')).
      rewards, discounts: ``[M]``.
      ridge: λ >= 0 on the Gram matrix; sample_weights, chunk_size as in :func:`lstd`.

    Returns:
      :class:`LinearModel`.
    """
    validate_td_inputs(phi, phi_next, rewards, discounts, 0.0, ridge, sample_weights)
    _check_chunk(chunk_size)
    return _linear_model(phi, phi_next, rewards, discounts, ridge, sample_weights, chunk_size)


def _linear_model(phi, phi_next, rewards, discounts, ridge, sample_weights, chunk_size) -> LinearModel:
    dt = phi.dtype
    w = jnp.ones(phi.shape[:1], dt) if sample_weights is None else sample_weights

    def block(d, valid):
        p, pn, r, disc, wb = d
        wp = (wb * valid).astype(dt)[:, None] * p
        return wp.T @ p, wp.T @ (disc.astype(dt)[:, None] * pn), wp.T @ r.astype(dt)

    gram, cross, b = _accumulate(block, (phi, phi_next, rewards, discounts, w), chunk_size, dt)
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
        :func:`lstd` (for Q^π pass φ(s, a) and φ'_π(s')).
      return_info: return a :class:`LinearSolution` (``ok`` of both solves, the larger κ₁).

    Returns:
      ``[K]`` weights, or a :class:`LinearSolution`.
    """
    validate_td_inputs(phi, phi_next, rewards, discounts, gamma, ridge, sample_weights)
    _check_chunk(chunk_size)
    model = _linear_model(phi, phi_next, rewards, discounts, ridge, sample_weights, chunk_size)
    k = phi.shape[1]
    m = jnp.eye(k, dtype=phi.dtype) - jnp.asarray(gamma, phi.dtype) * model.transition
    res = solve(jnp.where(model.ok, m, jnp.eye(k, dtype=phi.dtype)), jnp.nan_to_num(model.reward_weights))
    ok = res.ok & model.ok
    out = LinearSolution(jnp.where(ok, res.weights, jnp.nan), ok, jnp.maximum(res.condition, model.condition))
    return out if return_info else out.weights
