"""Row-blocked evaluation: every dataset-level estimator gives the same numbers for any block size.

The blocks overlap at the end when the block size does not divide N, and the weighted
estimators merge max-shifted column sums across blocks (online softmax), so the cases below use
N = 37 with block sizes that do and do not divide it, log weights spanning hundreds of nats
between blocks, -inf log ratios (target never takes the logged action), padding with garbage,
and a step where every weight is 0.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax import ope
from offrl_jax.core import blocking as importance


N, T = 37, 9


def _data(seed=0):
    rng = np.random.default_rng(seed)
    lr = rng.normal(size=(N, T))
    lr[:12] += 30.0  # the first block's weights dwarf the rest (e^{270})
    lr[20, 3] = -np.inf
    lr[25, 0] = -np.inf
    lengths = rng.integers(1, T + 1, size=N)
    lengths[:3] = T
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(float)
    r = rng.normal(size=(N, T))
    q = rng.normal(size=(N, T))
    v = rng.normal(size=(N, T))
    pad = mask == 0
    r[pad], lr[pad], q[pad], v[pad] = 1e3, 7.0, -5.0, 3.0  # garbage on padding
    return r, lr, mask, q, v


def _estimates(chunk_rows, r, lr, mask, q, v, gamma=0.9):
    k = dict(validate=False, chunk_rows=chunk_rows)
    out = [
        ope.trajectory_is(r, lr, mask, gamma, **k),
        ope.per_decision_is(r, lr, mask, gamma, **k),
        ope.weighted_is(r, lr, mask, gamma, **k),
        ope.weighted_per_decision_is(r, lr, mask, gamma, **k),
        ope.weighted_doubly_robust(r, lr, mask, gamma, q, v, **k),
        ope.weighted_per_decision_is_with_info(r, lr, mask, gamma, **k).ess,
        ope.weighted_doubly_robust_with_info(r, lr, mask, gamma, q, v, **k).ess,
    ]
    out += [ope.doubly_robust(r, lr, mask, gamma, q, v, method=mth, **k) for mth in ("scan", "weights", "associative")]
    out += [
        ope.per_decision_is_returns(r, lr, mask, gamma, chunk_rows=chunk_rows),
        ope.trajectory_is_returns(r, lr, mask, gamma, chunk_rows=chunk_rows),
        ope.doubly_robust_returns(r, lr, mask, gamma, q, v, chunk_rows=chunk_rows),
    ]
    return out


def _references(r, lr, mask, q, v, gamma=0.9):
    """Direct numpy evaluation of the defining sums (no blocking, float64)."""
    real = mask > 0
    lrm = np.where(real, lr, 0.0)
    log_w = np.cumsum(lrm, axis=1)
    w = np.exp(log_w)
    disc = gamma ** np.arange(T)
    rm, qm, vm = (np.where(real, x, 0.0) for x in (r, q, v))
    pdis_rows = (w * rm * disc).sum(1)
    is_rows = w[:, -1] * (rm * disc).sum(1)
    w_prev = np.concatenate([np.ones((N, 1)), w[:, :-1]], 1)
    dr_rows = (disc * (w * (rm - qm) + w_prev * vm)).sum(1)
    wbar = w / w.sum(0)
    wbar_prev = np.concatenate([np.full((N, 1), 1.0 / N), wbar[:, :-1]], 1)
    wpdis = (disc * (wbar * rm).sum(0)).sum()
    wdr = (disc * ((wbar * (rm - qm)).sum(0) + (wbar_prev * vm).sum(0))).sum()
    wis = (w[:, -1] * (rm * disc).sum(1)).sum() / w[:, -1].sum()
    return is_rows, pdis_rows, dr_rows, wis, wpdis, wdr


_ESTIMATES = jax.jit(_estimates, static_argnums=0)
NAMES = ("is", "pdis", "wis", "wpdis", "wdr", "wpdis_ess", "wdr_ess", "dr_scan", "dr_weights", "dr_assoc",
         "pdis_rows", "is_rows", "dr_rows")


def test_blocked_equals_one_block_and_numpy_reference(fast_compiles):
    """Blocks of 5 (last block overlapping) and 36 (N - 1) against one block and numpy."""
    data = _data()
    one = _ESTIMATES(None, *data)
    for chunk_rows in (5, 36):
        got = _ESTIMATES(chunk_rows, *data)
        for name, g, e in zip(NAMES, got, one):
            np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=1e-10, atol=1e-300, err_msg=name)
    # The huge weights make per-row terms ~e^{270}: relative comparisons.
    is_rows, pdis_rows, dr_rows, wis, wpdis, wdr = _references(*data)
    got = dict(zip(NAMES, _ESTIMATES(5, *data)))
    for name, ref in (("is_rows", is_rows), ("pdis_rows", pdis_rows), ("dr_rows", dr_rows), ("wis", wis),
                      ("wpdis", wpdis), ("wdr", wdr)):
        np.testing.assert_allclose(np.asarray(got[name]), ref, rtol=1e-9, err_msg=name)
    for name in ("dr_scan", "dr_weights", "dr_assoc"):
        assert float(got[name]) == pytest.approx(float(np.mean(dr_rows)), rel=1e-9)


def test_all_zero_column_in_some_blocks_only(fast_compiles):
    """A step whose weights are 0 in every row gives the documented 0 and the flag, blocked too."""
    r, lr, mask, q, v = _data(2)
    mask = np.ones_like(mask)
    lr = np.where(np.arange(T)[None, :] == 4, -np.inf, np.clip(lr, -3, 3))
    lr[:12] += 30.0
    f = jax.jit(
        lambda c, *d: (
            ope.weighted_per_decision_is_with_info(*d[:3], 0.9, validate=False, chunk_rows=c),
            ope.weighted_doubly_robust_with_info(*d[:3], 0.9, *d[3:], validate=False, chunk_rows=c),
        ),
        static_argnums=0,
    )
    out = {c: f(c, r, lr, mask, q, v) for c in (None, 5)}
    for c in (None, 5):
        for res in out[c]:
            assert bool(res.zero_weight_sum) and np.isfinite(float(res.estimate))
    for a, b in zip(out[None], out[5]):
        assert float(a.estimate) == pytest.approx(float(b.estimate), rel=1e-10)


def test_blocked_under_vmap(fast_compiles):
    data = [jnp.asarray(x) for x in _data(3)]
    f = lambda *d: jnp.stack(_estimates(5, *d)[:10])
    stacked = jax.tree_util.tree_map(lambda x: jnp.stack([x, x * 1.0]), data)
    got = jax.jit(jax.vmap(f))(*stacked)
    np.testing.assert_allclose(got[0], _ESTIMATES(5, *data)[:10], rtol=1e-10)
    np.testing.assert_allclose(got[1], got[0], rtol=0, atol=0)


def test_chunk_rows_validation():
    with pytest.raises(ValueError, match="chunk_rows"):
        importance.row_chunk_size(10, 5, chunk_rows=0)
    assert importance.row_chunk_size(10, 5, chunk_rows=4) == 4
    assert importance.row_chunk_size(10, 5, chunk_rows=40) == 10
