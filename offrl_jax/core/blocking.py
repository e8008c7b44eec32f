"""Row blocking: dataset-level reductions computed one cache-sized block of rows at a time.

On CPU, XLA spends most of a dataset-level estimator's time creating and page-faulting each
``[N, T]`` temporary. :func:`map_rows` and :func:`scan_rows` instead walk the rows in blocks of
about 2^18 entries (one block on accelerators), and :func:`scan_rows` merges self-normalised
column sums across blocks with the running-max rescaling of an online softmax, so weights never
leave log space. Every family with ``[N, T]`` reductions uses these.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from offrl_jax.core.sharding import rows_are_sharded

Array = Any

__all__ = ["CHUNK_ELEMENTS", "row_chunk_size", "map_rows", "ColumnSoftmaxSums", "scan_rows"]

# Rows per block of the dataset-level estimators on CPU: blocks of about 2^18 entries keep every
# [rows, T] intermediate in cache instead of materialising N x T temporaries in memory.
CHUNK_ELEMENTS = 1 << 18


def row_chunk_size(num_rows: int, num_steps: int, chunk_rows: Optional[int] = None) -> int:
    """Rows per block for :func:`map_rows` / :func:`scan_rows` (static).

    ``chunk_rows`` if given; otherwise about ``CHUNK_ELEMENTS / T`` rows on CPU (so a block's
    ``[rows, T]`` intermediates stay in cache) and all rows on accelerators (one block). Rows split
    over several devices (:func:`~offrl_jax.core.sharding.rows_are_sharded`) are one block too:
    each device then reduces its own rows, where a loop of row slices would gather them all.
    """
    if chunk_rows is not None:
        if int(chunk_rows) < 1:
            raise ValueError(f"chunk_rows: expected a positive int or None, found {chunk_rows!r}")
        return max(1, min(int(chunk_rows), num_rows))
    if jax.default_backend() != "cpu" or rows_are_sharded():
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
