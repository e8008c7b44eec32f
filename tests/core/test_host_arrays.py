"""Host numpy arrays read in place: every alignment, dtype and block part gives the array's rows."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.core import host_arrays as ha

N, T, BLOCK = 11, 3, 4  # blocks [0, 4), [4, 8), last [7, 11)


def _at_offset(x, offset_bytes):
    """A copy of ``x`` whose data starts ``offset_bytes`` past a 64-byte boundary."""
    buf = np.empty(x.nbytes + 128, np.uint8)
    start = (-buf.ctypes.data) % 64 + offset_bytes
    out = buf[start : start + x.nbytes].view(x.dtype).reshape(x.shape)
    out[...] = x
    return out


@pytest.fixture(scope="module")
def reader():
    """Every row block of a view, and the whole array, from one compiled program."""

    def read(view):
        parts = [ha.read_rows(view, jnp.int32(0), BLOCK, "first", jnp.float32)]
        parts.append(ha.read_rows(view, jnp.int32(BLOCK), BLOCK, "middle", jnp.float32))
        parts.append(ha.read_rows(view, jnp.int32(N - BLOCK), BLOCK, "last", jnp.float32))
        return parts, ha.materialize(view, jnp.float32)

    return jax.jit(read)


def _expect(x):
    x = x.astype(np.float32)
    return [x[:BLOCK], x[BLOCK : 2 * BLOCK], x[N - BLOCK :]], x


@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_every_offset_reads_the_same_rows(reader, dtype):
    x = (np.arange(N * T * 2).reshape(N, T, 2) * 3 - 7).astype(dtype)
    want_parts, want_all = _expect(x)
    for off in range(0, 64, 4):
        y = _at_offset(x, off)
        view = ha.row_view(y, np.float32, BLOCK)
        assert isinstance(view, ha.RowView) and int(view.offset) == (16 - off // 4) % 16
        assert view.tail.unsafe_buffer_pointer() % 64 == 0
        assert view.tail.unsafe_buffer_pointer() == y.ctypes.data + 4 * int(view.offset)  # no copy
        parts, whole = reader(view)
        for got, want in zip(parts, want_parts):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(whole, want_all)


def test_int64_pairs_and_out_of_range(reader):
    x = np.arange(N * T, dtype=np.int64).reshape(N, T) - 5
    x[9, 1] = 2**40  # does not fit in int32: read as INT32_MIN, out of any index range
    with jax.enable_x64(False):
        view = ha.row_view(_at_offset(x, 8), np.int32, BLOCK)
        assert view.pairs
        whole = jax.jit(lambda v: ha.materialize(v, jnp.int32))(view)
    want = x.astype(np.int32)
    want[9, 1] = np.iinfo(np.int32).min
    np.testing.assert_array_equal(whole, want)


def test_copies_where_it_cannot_wrap():
    x = np.arange(N * T, dtype=np.float32).reshape(N, T)
    for y in (np.asfortranarray(x), x[:, ::-1], x[:3]):  # not C-contiguous; one block only
        out = ha.row_view(y, np.float32, BLOCK)
        assert isinstance(out, jax.Array) and out.unsafe_buffer_pointer() % 64 == 0
        np.testing.assert_array_equal(out, y)
    read_only = _at_offset(np.arange(N * 8, dtype=np.float32).reshape(N, 8), 4)
    read_only.flags.writeable = False
    assert isinstance(ha.row_view(read_only, np.float32, BLOCK), ha.RowView)
    with jax.enable_x64(False):
        out = ha.row_view(x.astype(np.float64), np.float32, BLOCK)  # float64 is not held: one cast copy
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, x)
