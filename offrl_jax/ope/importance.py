"""Importance ratios and cumulative importance weights, all in log space.

Conventions: trajectory arrays are padded ``[N, T]`` with a
``mask`` that is 1 on real steps and 0 on padding (a prefix of ones per row); step ``t`` is
discounted by ``gamma**t``. The per-step log importance ratio is

    log rho_t = log pi(a_t | s_t) - log pi_beta(a_t | s_t),

0 on padding (a finished trajectory sits in an absorbing state with ratio 1), and the cumulative
weight is w_{0:t} = prod_{k<=t} rho_k = exp(sum_{k<=t} log rho_k). Computing the cumulative sum
of log ratios and taking one ``exp`` keeps weights finite over horizons of 10^4 steps where a
running product of ratios overflows, and weighted (self-normalised) estimators normalise across
trajectories with a max-shifted softmax that never forms the raw weights at all.

``log rho_t = -inf`` (the target never takes the logged action) is legal and gives weight 0;
``+inf`` (behaviour probability 0 where the target acts) violates coverage and is rejected by
the host checks.

See "Eligibility Traces for Off-Policy Policy Evaluation", Precup, Sutton & Singh 2000.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.data import check_mask

Array = Any

__all__ = [
    "log_importance_ratios",
    "clip_log_ratios",
    "cumulative_log_weights",
    "log_discounts",
    "normalized_weights",
    "validate_log_probs",
    "validate_ope_inputs",
    "row_chunk_size",
    "map_rows",
    "ColumnSoftmaxSums",
    "scan_rows",
]

# Rows per block of the dataset-level estimators on CPU: blocks of about 2^18 entries keep every
# [rows, T] intermediate in cache instead of materialising N x T temporaries in memory.
CHUNK_ELEMENTS = 1 << 18


# ----------------------------------------------------------------------------------------------
# Jit-able cores.
# ----------------------------------------------------------------------------------------------
def log_importance_ratios(target_log_probs: Array, behavior_log_probs: Array, mask: Array) -> Array:
    """Masked per-step log importance ratios.

    log rho_t = log pi(a_t|s_t) - log pi_beta(a_t|s_t) on real steps and 0 on padding. Uses the
    double-``where`` trick so that ``-inf`` log-probabilities on padding produce neither NaN
    values nor NaN gradients. Works on any shape (``[T]`` or ``[N, T]``).

    See "Eligibility Traces for Off-Policy Policy Evaluation", Precup, Sutton & Singh 2000.

    Args:
      target_log_probs: ``[N, T]`` log pi(a_t | s_t) at the logged actions.
      behavior_log_probs: ``[N, T]`` log pi_beta(a_t | s_t) at the logged actions.
      mask: ``[N, T]`` 1 on real steps, 0 on padding.

    Returns:
      ``[N, T]`` log rho_t, 0 on padding.
    """
    target_log_probs = jnp.asarray(target_log_probs)
    behavior_log_probs = jnp.asarray(behavior_log_probs)
    real = jnp.asarray(mask) > 0
    safe_t = jnp.where(real, target_log_probs, 0.0)
    safe_b = jnp.where(real, behavior_log_probs, 0.0)
    return jnp.where(real, safe_t - safe_b, jnp.zeros_like(safe_t - safe_b))


def clip_log_ratios(log_ratios: Array, max_log_ratio: Optional[float] = None) -> Array:
    """Per-step truncation rho_t <- min(rho_t, c), done in log space as min(log rho_t, log c).

    Args:
      log_ratios: ``[..., T]`` log rho_t.
      max_log_ratio: log c; ``None`` leaves the ratios unchanged.

    Returns:
      ``[..., T]`` clipped log ratios.
    """
    if max_log_ratio is None:
        return log_ratios
    return jnp.minimum(log_ratios, jnp.asarray(max_log_ratio, log_ratios.dtype))


def cumsum_last(x: Array, block: int = 128) -> Array:
    """Inclusive cumulative sum along the last axis, as blocked triangular matmuls.

    XLA's CPU ``cumsum`` costs O(T^2) per row (a reduce-window), which dominated the estimators
    at T = 100. Here the last axis is cut into blocks of ``block`` steps: one ``[.., B] @ [B, B]``
    upper-triangular matmul per block (full float32/float64 precision, never TF32) plus a short
    cumulative sum of the block totals. Infinite entries (log 0 = -inf) are carried through
    exactly: they are replaced by +-1e30 for the matmul and restored afterwards.

    Args:
      x: ``[..., T]`` values.
      block: block length B.

    Returns:
      ``[..., T]`` with out[..., t] = sum_{k<=t} x[..., k].
    """
    x = jnp.asarray(x)
    t = x.shape[-1]
    big = jnp.asarray(1e30, x.dtype)
    xf = jnp.clip(x, -big, big)
    b = min(block, t)
    nb = -(-t // b)
    pad = nb * b - t
    if pad:
        xf = jnp.concatenate([xf, jnp.zeros(xf.shape[:-1] + (pad,), xf.dtype)], axis=-1)
    xb = xf.reshape(xf.shape[:-1] + (nb, b))
    tri = jnp.triu(jnp.ones((b, b), xf.dtype))
    within = jnp.matmul(xb, tri, precision=jax.lax.Precision.HIGHEST)
    totals = within[..., -1]
    offsets = jnp.cumsum(totals, axis=-1) - totals
    out = (within + offsets[..., None]).reshape(xf.shape)[..., :t]
    out = jnp.where(out <= -1e29, -jnp.inf, out)
    return jnp.where(out >= 1e29, jnp.inf, out)


def cumulative_log_weights(
    log_ratios: Array,
    mask: Array,
    max_log_ratio: Optional[float] = None,
    max_log_weight: Optional[float] = None,
) -> Array:
    """Cumulative log importance weights log w_{0:t} = sum_{k<=t} log rho_k along the last axis.

    Padded steps add 0, so a finished trajectory keeps its final weight (w_{0:t} = w_{0:L-1} for
    t >= L), as the weighted per-decision normalisers require. Optional truncation, both in log
    space: per-step rho_k <- min(rho_k, exp(max_log_ratio)) before the sum, and cumulative
    w_{0:t} <- min(w_{0:t}, exp(max_log_weight)) after it (truncated importance sampling,
    "Truncated importance sampling", Ionides 2008). Truncation trades bias for variance.

    Args:
      log_ratios: ``[..., T]`` log rho_t (any leading shape, e.g. ``[T]`` or ``[N, T]``).
      mask: ``[..., T]`` 1 on real steps, 0 on padding.
      max_log_ratio: optional per-step bound on log rho_t.
      max_log_weight: optional bound on log w_{0:t}.

    Returns:
      ``[..., T]`` log w_{0:t} (``-inf`` where some earlier ratio is 0).
    """
    log_ratios = jnp.asarray(log_ratios)
    lr = jnp.where(jnp.asarray(mask) > 0, log_ratios, jnp.zeros_like(log_ratios))
    lr = clip_log_ratios(lr, max_log_ratio)
    log_w = cumsum_last(lr)
    if max_log_weight is not None:
        log_w = jnp.minimum(log_w, jnp.asarray(max_log_weight, log_w.dtype))
    return log_w


def log_discounts(gamma: Array, length: int, dtype: Any) -> Array:
    """``[length]`` log gamma^t = t log gamma for t = 0..length-1 (gamma = 0 gives 0, -inf, ...).

    Keeping the discount in log space lets gamma^t w_{0:t} be formed as one ``exp`` of a sum, so
    neither factor under- or overflows on its own.
    """
    t = jnp.arange(length, dtype=dtype)
    g = jnp.asarray(gamma, dtype)
    pos = g > 0
    log_g = jnp.log(jnp.where(pos, g, jnp.ones_like(g)))
    zero_case = jnp.where(t == 0, jnp.zeros_like(t), jnp.full_like(t, -jnp.inf))
    return jnp.where(pos, t * log_g, zero_case)


def normalized_weights(log_weights: Array, axis: int = 0) -> tuple[Array, Array]:
    """Self-normalised weights w_n / sum_j w_j from log weights, by a guarded softmax.

    Computed as exp(log w_n - max_j log w_j) / sum_j exp(log w_j - max_j log w_j), so weights of
    e^{+-1000} normalise exactly in float32. When every weight along ``axis`` is 0 (all log
    weights ``-inf``) the normaliser is 0/0: the normalised weights are defined as 0 there and the
    returned flag is True, instead of NaN.

    Args:
      log_weights: log weights, e.g. ``[N]`` or ``[N, T]`` with trajectories on ``axis``.
      axis: the trajectory axis to normalise over.

    Returns:
      ``(weights, zero_sum)``: weights of the input's shape, summing to 1 along ``axis`` (or all
      0), and a bool array of the input's shape without ``axis``, True where all weights are 0.
    """
    log_weights = jnp.asarray(log_weights)
    m = jnp.max(log_weights, axis=axis, keepdims=True)
    finite = jnp.isfinite(m)
    m_safe = jnp.where(finite, m, jnp.zeros_like(m))
    e = jnp.exp(log_weights - m_safe)
    s = jnp.sum(e, axis=axis, keepdims=True)
    ok = finite & (s > 0)
    w = jnp.where(ok, e / jnp.where(ok, s, jnp.ones_like(s)), jnp.zeros_like(e))
    return w, ~jnp.squeeze(ok, axis=axis)


def safe_ratio(num: Array, den: Array) -> Array:
    """num / den where den > 0, else 0 (the documented value of a 0/0 normaliser)."""
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, jnp.ones_like(den)), jnp.zeros_like(num))


# ----------------------------------------------------------------------------------------------
# Row-blocked evaluation of dataset-level estimators.
# ----------------------------------------------------------------------------------------------
def row_chunk_size(num_rows: int, num_steps: int, chunk_rows: Optional[int] = None) -> int:
    """Rows per block for :func:`map_rows` / :func:`scan_rows` (static).

    ``chunk_rows`` if given; otherwise about ``CHUNK_ELEMENTS / T`` rows on CPU (so a block's
    ``[rows, T]`` intermediates stay in cache) and all rows on accelerators (one block).
    """
    if chunk_rows is not None:
        if int(chunk_rows) < 1:
            raise ValueError(f"chunk_rows: expected a positive int or None, found {chunk_rows!r}")
        return max(1, min(int(chunk_rows), num_rows))
    if jax.default_backend() != "cpu":
        return max(1, num_rows)
    return max(1, min(num_rows, CHUNK_ELEMENTS // max(num_steps, 1)))


def _block_starts(num_rows: int, block: int):
    num_blocks = -(-num_rows // block)

    def start(i):
        # The last block is shifted back to end at row N (it overlaps its predecessor).
        return jnp.minimum(i * block, num_rows - block)

    return num_blocks, start


def map_rows(fn: Any, arrays: tuple, chunk_rows: Optional[int] = None) -> Any:
    """Applies a row-wise function to ``[N, ...]`` arrays one block of rows at a time.

    ``fn(*blocks)`` maps ``[B, ...]`` blocks to a pytree of ``[B, ...]`` per-row outputs; the
    result is the same pytree with leading size N, equal to ``fn(*arrays)``. The loop is a
    ``fori_loop`` over ceil(N / B) blocks (the last one overlaps its predecessor, so every block
    has the static size B and overlapping rows are simply written twice with the same values).
    On CPU this keeps each block's ``[B, T]`` intermediates in cache, which is several times
    faster than one pass over ``[N, T]`` temporaries; on accelerators B = N by default.

    Args:
      fn: row-wise function of ``len(arrays)`` arrays.
      arrays: tuple of arrays with a common leading size N.
      chunk_rows: rows per block (default :func:`row_chunk_size`).

    Returns:
      pytree of ``[N, ...]`` per-row outputs.
    """
    arrays = tuple(jnp.asarray(a) for a in arrays)
    n = arrays[0].shape[0]
    block = row_chunk_size(n, arrays[0].shape[-1] if arrays[0].ndim > 1 else 1, chunk_rows)
    if block >= n:
        return fn(*arrays)
    num_blocks, start = _block_starts(n, block)
    shapes = jax.eval_shape(fn, *(jax.ShapeDtypeStruct((block,) + a.shape[1:], a.dtype) for a in arrays))
    out0 = jax.tree_util.tree_map(lambda s: jnp.zeros((n,) + s.shape[1:], s.dtype), shapes)

    def body(i, out):
        s = start(i)
        blocks = [jax.lax.dynamic_slice_in_dim(a, s, block, 0) for a in arrays]
        res = fn(*blocks)
        return jax.tree_util.tree_map(lambda o, r: jax.lax.dynamic_update_slice_in_dim(o, r, s, 0), out, res)

    return jax.lax.fori_loop(0, num_blocks, body, out0)


class ColumnSoftmaxSums(NamedTuple):
    """Max-shifted column sums of one group of log weights, accumulated over row blocks.

    With M_t = max_n log w_{n,t}: ``total[t]`` = sum_n exp(log w_{n,t} - M_t) and
    ``sums[k, t]`` = sum_n exp(log w_{n,t} - M_t) x^k_{n,t}, so that the self-normalised average
    sum_n w-bar_{n,t} x^k_{n,t} is ``sums[k, t] / total[t]`` (0/0 where every weight is 0:
    ``log_max`` is ``-inf`` and both are 0).
    """

    log_max: Array
    total: Array
    sums: Array


def _softmax_sums(log_w: Array, values: Array) -> ColumnSoftmaxSums:
    m = jnp.max(log_w, axis=0)
    m_safe = jnp.where(jnp.isfinite(m), m, jnp.zeros_like(m))
    e = jnp.exp(log_w - m_safe[None, :])
    # One reduction per value row (a reduction over a middle axis does not vectorise on CPU).
    sums = jnp.stack([jnp.sum(e * values[k], axis=0) for k in range(values.shape[0])])
    return ColumnSoftmaxSums(m, jnp.sum(e, axis=0), sums)


def _merge_sums(a: ColumnSoftmaxSums, b: ColumnSoftmaxSums) -> ColumnSoftmaxSums:
    m = jnp.maximum(a.log_max, b.log_max)
    m_safe = jnp.where(jnp.isfinite(m), m, jnp.zeros_like(m))

    def scale(old):
        fin = jnp.isfinite(old)
        return jnp.where(fin, jnp.exp(jnp.where(fin, old, 0.0) - m_safe), jnp.zeros_like(m))

    sa, sb = scale(a.log_max), scale(b.log_max)
    return ColumnSoftmaxSums(m, a.total * sa + b.total * sb, a.sums * sa[None] + b.sums * sb[None])


def scan_rows(fn: Any, arrays: tuple, chunk_rows: Optional[int] = None) -> tuple[Any, tuple]:
    """Per-row outputs plus self-normalised column sums, in one blocked pass over the rows.

    ``fn(*blocks) -> (row_out, groups)`` where ``row_out`` is a pytree of ``[B, ...]`` per-row
    outputs and ``groups`` a tuple of ``(log_w [B, T], values [K, B, T])``. Each group's
    :class:`ColumnSoftmaxSums` are merged across blocks with the running-max rescaling of an
    online softmax, so the weights are never formed outside log space and no ``[N, T]``
    temporary is materialised. Rows that a block repeats from its predecessor are given weight 0
    in the sums.

    Args:
      fn: block function as above.
      arrays: tuple of arrays with a common leading size N.
      chunk_rows: rows per block (default :func:`row_chunk_size`).

    Returns:
      ``(row_out [N, ...], tuple of ColumnSoftmaxSums)``.
    """
    arrays = tuple(jnp.asarray(a) for a in arrays)
    n = arrays[0].shape[0]
    block = row_chunk_size(n, arrays[0].shape[-1] if arrays[0].ndim > 1 else 1, chunk_rows)

    def block_sums(groups, valid=None):
        out = []
        for log_w, values in groups:
            if valid is not None:
                log_w = jnp.where(valid[:, None], log_w, -jnp.inf)
            out.append(_softmax_sums(log_w, values))
        return tuple(out)

    if block >= n:
        row_out, groups = fn(*arrays)
        return row_out, block_sums(groups)
    num_blocks, start = _block_starts(n, block)
    shapes = jax.eval_shape(fn, *(jax.ShapeDtypeStruct((block,) + a.shape[1:], a.dtype) for a in arrays))
    row_shapes, group_shapes = shapes
    out0 = jax.tree_util.tree_map(lambda s: jnp.zeros((n,) + s.shape[1:], s.dtype), row_shapes)
    acc0 = tuple(
        ColumnSoftmaxSums(
            jnp.full(lw.shape[1:], -jnp.inf, lw.dtype),
            jnp.zeros(lw.shape[1:], lw.dtype),
            jnp.zeros((v.shape[0],) + v.shape[2:], v.dtype),
        )
        for lw, v in group_shapes
    )

    def body(i, carry):
        out, acc = carry
        s = start(i)
        blocks = [jax.lax.dynamic_slice_in_dim(a, s, block, 0) for a in arrays]
        row_out, groups = fn(*blocks)
        valid = s + jnp.arange(block) >= i * block
        new = block_sums(groups, valid)
        out = jax.tree_util.tree_map(lambda o, r: jax.lax.dynamic_update_slice_in_dim(o, r, s, 0), out, row_out)
        return out, tuple(_merge_sums(a, b) for a, b in zip(acc, new))

    return jax.lax.fori_loop(0, num_blocks, body, (out0, acc0))


# ----------------------------------------------------------------------------------------------
# Host-side validation (runs before tracing; raises ValueError naming the argument).
# ----------------------------------------------------------------------------------------------
def is_concrete(*arrays: Array) -> bool:
    """True when none of ``arrays`` is a tracer (so host checks can run)."""
    return not any(isinstance(a, jax.core.Tracer) for a in arrays if a is not None)


def _as_host(x: Array, name: str) -> np.ndarray:
    if isinstance(x, jax.core.Tracer):
        raise ValueError(f"{name}: host validation needs concrete arrays; got a traced value")
    return np.asarray(x)


def _check_same_shape(x: Array, name: str, shape: tuple) -> np.ndarray:
    a = _as_host(x, name)
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {list(shape)} (same as mask [N, T]), found {list(a.shape)}")
    return a


def _check_no_nan(a: np.ndarray, name: str, real: np.ndarray, allow_neg_inf: bool = False) -> None:
    bad = np.isnan(a) | (np.isposinf(a)) | (np.isneginf(a) & (not allow_neg_inf))
    bad &= real
    if np.any(bad):
        idx = tuple(np.argwhere(bad)[0].tolist())
        raise ValueError(f"{name}: expected finite values on real steps, found {a[idx]} at index {idx}")


def validate_gamma(gamma: Any) -> float:
    """Raises ``ValueError`` unless ``gamma`` is a finite number in [0, 1]; returns it."""
    if isinstance(gamma, jax.core.Tracer):
        return gamma
    g = np.asarray(gamma)
    if g.ndim != 0 or not np.isfinite(g) or not (0.0 <= float(g) <= 1.0):
        raise ValueError(f"gamma: expected a discount in [0, 1], found {gamma!r}")
    return float(g)


def validate_log_probs(target_log_probs: Array, behavior_log_probs: Array, mask: Array) -> None:
    """Host checks for :func:`log_importance_ratios`.

    Raises:
      ValueError: naming the argument, if shapes differ from ``mask``, a log-probability is NaN
        or > 0, or a behaviour probability is 0 (log-prob ``-inf``) at a real step where the
        target policy puts mass (coverage violated: the ratio would be ``+inf``).
    """
    m = check_mask(mask, "mask")
    real = m > 0
    lt = _check_same_shape(target_log_probs, "target_log_probs", m.shape)
    lb = _check_same_shape(behavior_log_probs, "behavior_log_probs", m.shape)
    for name, a in (("target_log_probs", lt), ("behavior_log_probs", lb)):
        if np.any(np.isnan(a) & real):
            idx = tuple(np.argwhere(np.isnan(a) & real)[0].tolist())
            raise ValueError(f"{name}: expected log-probabilities in (-inf, 0], found NaN at {idx}")
        if np.any((a > 1e-6) & real):
            idx = tuple(np.argwhere((a > 1e-6) & real)[0].tolist())
            raise ValueError(f"{name}: expected log-probabilities in (-inf, 0], found {a[idx]} at {idx}")
    bad = real & np.isneginf(lb) & ~np.isneginf(lt)
    if np.any(bad):
        idx = tuple(np.argwhere(bad)[0].tolist())
        raise ValueError(
            f"behavior_log_probs: behaviour probability is 0 at step {idx} where the target policy "
            "puts mass (coverage violated; the importance ratio would be +inf)"
        )


def validate_ope_inputs(
    rewards: Array,
    log_ratios: Array,
    mask: Array,
    gamma: Any,
    q_taken: Optional[Array] = None,
    v_hat: Optional[Array] = None,
) -> None:
    """Host checks shared by the dataset-level estimators (run before tracing).

    Raises:
      ValueError: naming the argument, for an empty dataset or a mask that is not ``[N, T]`` 0/1
        with a prefix of ones; arrays whose shape differs from ``mask``; NaN or inf rewards or
        model values on real steps; NaN log ratios; ``+inf`` log ratios (behaviour probability 0
        where the target policy puts mass); ``gamma`` outside [0, 1].
    """
    m = check_mask(mask, "mask")
    real = m > 0
    validate_gamma(gamma)
    r = _check_same_shape(rewards, "rewards", m.shape)
    _check_no_nan(r, "rewards", real)
    lr = _check_same_shape(log_ratios, "log_ratios", m.shape)
    if np.any(np.isnan(lr) & real):
        idx = tuple(np.argwhere(np.isnan(lr) & real)[0].tolist())
        raise ValueError(f"log_ratios: expected log pi - log pi_beta, found NaN at index {idx}")
    if np.any(np.isposinf(lr) & real):
        idx = tuple(np.argwhere(np.isposinf(lr) & real)[0].tolist())
        raise ValueError(
            f"log_ratios: +inf at index {idx}: behaviour probability 0 where the target policy puts "
            "mass (coverage violated)"
        )
    for name, x in (("q_taken", q_taken), ("v_hat", v_hat)):
        if x is not None:
            a = _check_same_shape(x, name, m.shape)
            _check_no_nan(a, name, real)
