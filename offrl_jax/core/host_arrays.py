"""Host numpy arrays read in place by a compiled program, in blocks of rows (CPU backend).

On the CPU backend ``jax.device_put`` wraps a C-contiguous numpy array without copying it when
its data pointer is 64-byte aligned, and copies it otherwise. numpy aligns its buffers to 16
bytes only, so a researcher's arrays are usually copied, and for arrays of hundreds of MB the
copy (mostly page faults into a fresh buffer) costs more than the estimator that reads them.

:func:`row_view` avoids the copy: it wraps, without copying, the array *from its first 64-byte
aligned element on* (``tail``), and passes the few elements before it and the same number after
the tail's end as a tiny ``[2, H]`` array (``edges``, H = 64 bytes in elements) together with
their count ``offset`` as a traced scalar, so that every alignment shares one compiled program.
A compiled program then reads rows ``[start, start + rows)`` with :func:`read_rows`:

* the first and the last block of rows (``part="first"``, ``"last"``) from a small
  concatenation of ``edges`` with the ``rows`` rows of ``tail`` next to it (a block-sized
  temporary);
* every other block (``part="middle"``) as a ``dynamic_slice`` of ``tail`` at element
  ``start * R - offset`` (R elements per row), which XLA fuses into its consumer: no copy of
  the array is ever made.

64-bit integers, which JAX holds as 32-bit unless ``jax_enable_x64`` is set, are wrapped as
pairs of 32-bit words (little-endian) and read as the low word where the high word is its sign
extension, and as ``INT32_MIN`` (out of any index range) where the value does not fit.
Other dtypes JAX does not hold (``float64`` without x64, ``float16``) are copied once, into an
aligned buffer of the compute dtype. JAX arrays pass through :func:`row_view` unchanged.

Only for the CPU backend; on accelerators the arrays are copied to the device as usual.
"""

from __future__ import annotations

import sys
from typing import Any, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

Array = Any

__all__ = ["ALIGN_BYTES", "RowView", "aligned_copy", "materialize", "read_rows", "row_view", "view_shape"]

ALIGN_BYTES = 64
_INT32_MIN = np.iinfo(np.int32).min


@struct.dataclass
class RowView:
    """A ``shape`` array held as a zero-copy aligned ``tail`` plus ``edges`` (module docstring).

    Attributes:
      tail: 1-D words from the first aligned one on, ``size - H`` of them.
      edges: ``[2, H]``: row 0 ends with the ``offset`` words before ``tail`` (right-aligned),
        row 1 starts with the ``H - offset`` words after it (left-aligned).
      offset: int32 scalar, the words before ``tail``.
      shape: the array's shape (static).
      pairs: 64-bit integers held as two 32-bit words each (static).
    """

    tail: jax.Array
    edges: jax.Array
    offset: jax.Array
    shape: Tuple[int, ...] = struct.field(pytree_node=False)
    pairs: bool = struct.field(pytree_node=False, default=False)


def view_shape(x: Any) -> Tuple[int, ...]:
    """The logical shape of a :class:`RowView` or an array."""
    return tuple(x.shape)


def aligned_copy(x: np.ndarray, dtype: Any) -> jax.Array:
    """``x`` as ``dtype``, copied by numpy into a 64-byte aligned buffer that ``device_put`` then
    wraps without a second copy (about twice as fast as letting ``device_put`` copy)."""
    dtype = np.dtype(dtype)
    nbytes = max(x.size * dtype.itemsize, 1)
    buf = np.empty(nbytes + ALIGN_BYTES, np.uint8)
    start = (-buf.ctypes.data) % ALIGN_BYTES
    out = buf[start : start + x.size * dtype.itemsize].view(dtype).reshape(x.shape)
    if dtype.kind in "iu" and x.dtype.kind in "iu" and dtype.itemsize < x.dtype.itemsize:
        info = np.iinfo(dtype)
        x = np.clip(x, info.min, info.max)  # out-of-range indices stay out of range
    np.copyto(out, x, casting="unsafe")
    return jax.device_put(out)


def row_view(x: Array, dtype: Any, block_rows: int) -> Any:
    """What :func:`read_rows` reads ``x`` from, as ``dtype`` in blocks of ``block_rows`` rows.

    JAX arrays are returned cast to ``dtype``. A numpy array on the CPU backend becomes a
    zero-copy :class:`RowView` when it is C-contiguous, of a dtype JAX holds as it is (or a
    64-bit integer), and large enough for at least two blocks whose last one holds ``H``
    elements; otherwise it is copied once (:func:`aligned_copy`).
    """
    if not isinstance(x, np.ndarray):
        return jnp.asarray(x).astype(dtype)
    native = np.dtype(jax.dtypes.canonicalize_dtype(x.dtype)) == x.dtype
    pairs = not native and x.dtype.kind in "iu" and x.dtype.itemsize == 8 and sys.byteorder == "little"
    n = x.shape[0] if x.ndim else 0
    block = min(block_rows, n)
    num = -(-n // block) if block else 0
    words = x.view(np.int32) if pairs else x
    word_size = words.dtype.itemsize
    h = ALIGN_BYTES // word_size
    row_words = int(np.prod(x.shape[1:], dtype=np.int64)) * (2 if pairs else 1)
    fits = num >= 2 and (n - (num - 1) * block) * row_words >= h
    if not (jax.default_backend() == "cpu" and (native or pairs) and fits and x.flags.c_contiguous):
        return aligned_copy(x, dtype)
    flat = words.reshape(-1)
    size = flat.size
    k = ((-flat.ctypes.data) % ALIGN_BYTES) // word_size
    if flat.ctypes.data % word_size:
        return aligned_copy(x, dtype)
    edges = np.zeros((2, h), flat.dtype)
    edges[0, h - k :] = flat[:k]
    edges[1, : h - k] = flat[size - h + k :]
    tail, edges, offset = jax.device_put((flat[k : k + size - h], edges, np.int32(k)))
    return RowView(tail, edges, offset, tuple(x.shape), pairs)


def _words_to_values(w: jax.Array, shape: Tuple[int, ...], pairs: bool) -> jax.Array:
    if not pairs:
        return w.reshape(shape)
    w = w.reshape(shape + (2,))
    low, high = w[..., 0], w[..., 1]
    return jnp.where(high == jnp.right_shift(low, 31), low, _INT32_MIN)


def read_rows(x: Any, start: Array, rows: int, part: str, dtype: Any) -> jax.Array:
    """Rows ``[start, start + rows)`` of ``x`` (a :class:`RowView` or an array) as ``dtype``.

    ``part``: ``"first"`` (``start`` is 0), ``"last"`` (``start`` is ``N - rows``) or
    ``"middle"`` (any block between; ``start >= rows``). Inside a compiled program.
    """
    if not isinstance(x, RowView):
        return jax.lax.dynamic_slice_in_dim(x, start, rows, 0).astype(dtype)
    h = x.edges.shape[1]
    row_words = (x.tail.size + h) // x.shape[0]
    count = rows * row_words
    if part == "first":
        start_words = jnp.concatenate([x.edges[0], x.tail[:count]])
        w = jax.lax.dynamic_slice_in_dim(start_words, h - x.offset, count)
    elif part == "last":
        end = jnp.concatenate([x.tail[x.tail.size - count :], x.edges[1]])
        w = jax.lax.dynamic_slice_in_dim(end, h - x.offset, count)
    else:
        w = jax.lax.dynamic_slice_in_dim(x.tail, start * row_words - x.offset, count)
    return _words_to_values(w, (rows,) + x.shape[1:], x.pairs).astype(dtype)


def materialize(x: Any, dtype: Any) -> jax.Array:
    """The whole array ``x`` as ``dtype`` (a copy for a :class:`RowView`), inside a compiled program."""
    if not isinstance(x, RowView):
        return x.astype(dtype)
    h = x.edges.shape[1]
    size = x.tail.size + h
    w = jax.lax.dynamic_slice_in_dim(jnp.concatenate([x.edges[0], x.tail, x.edges[1]]), h - x.offset, size)
    return _words_to_values(w, x.shape, x.pairs).astype(dtype)
