"""The compiled passes behind :mod:`offrl_jax.ope.from_distributions` (private).

Two passes compute the same estimators from ``[N, T, A]`` action distributions:

* :func:`linear_pass`, the fast path: one walk over blocks of rows (a ``fori_loop`` of
  ``dynamic_slice`` blocks, so no ``[N, T]`` temporary leaves the cache). In a block, π(a_t|s_t)
  and Q̂(s_t, a_t) are picked by a select unrolled over the A columns, ρ_t = π/β, and one forward
  ``lax.scan`` over time carries the running weight w_{0:t} = w_{0:t−1} ρ_t with the per-row
  PDIS and DR sums and emits the per-step column sums the weighted estimators need. No log or
  exp is evaluated per step, which is what makes the pass as fast as reading its inputs.
* :func:`log_pass`, the reference: log ρ_t, cumulative log weights (blocked triangular matmul,
  :func:`~offrl_jax.core.weights.cumsum_last`) and self-normalisation by max-shifted softmax
  (:func:`~offrl_jax.core.blocking.scan_rows`), as in :mod:`offrl_jax.ope.importance_sampling`.

Products of ratios can overflow (or all underflow) in float32 where log-space weights do not;
:func:`fused_estimates` therefore runs the linear pass and, when any of its outputs is not finite
or a self-normalising sum falls below 1e-30, the log-space pass instead (a ``lax.cond`` on a
scalar: only the branch taken runs; or, forced ``"linear"``, it returns the validity flag so the
caller runs the log-space pass as a second program). Both give the same numbers up to rounding.

The arrays may be JAX arrays or :class:`~offrl_jax.core.host_arrays.RowView` (numpy buffers read
in place, in blocks of rows). With ``checks``, each block also counts bad input values
(:func:`_check_block`).
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp

from offrl_jax.core.blocking import row_chunk_size, scan_rows
from offrl_jax.core.diagnostics import effective_sample_size
from offrl_jax.core.host_arrays import materialize, read_rows, view_shape
from offrl_jax.core.weights import cumsum_last, log_discounts, normalized_weights, safe_ratio

Array = Any

_SCAN = ("pdis", "wpdis", "dr", "wdr")
ESTIMATORS_READING_R = ("is", "pdis", "wis", "wpdis", "dr", "wdr")
_Q = ("dm", "dr", "wdr")
_SMALL = 1e-30
# Tolerance on |sum_a pi(a|s) - 1|.
SUM_TOL = 1e-3
# Rows per block of the linear pass on CPU (its [B, T] intermediates stay in L2).
LINEAR_BLOCK_ROWS = 1024


def _pick(a, p, q):
    """π(a_t|s_t), Q̂(s_t, a_t) and V̂(s_t) = Σ_a π(a|s_t) Q̂(s_t, a), selects unrolled over A."""
    pa = jnp.zeros(a.shape, p.dtype)
    qa = v = None if q is None else jnp.zeros(a.shape, p.dtype)
    for k in range(p.shape[-1]):
        hit = a == k
        pa = jnp.where(hit, p[..., k], pa)
        if q is not None:
            qa = jnp.where(hit, q[..., k], qa)
            v = v + p[..., k] * q[..., k]
    return pa, qa, v


# ----------------------------------------------------------------------------------------------
# The linear (fast) pass.
# ----------------------------------------------------------------------------------------------
def _check_block(r, a, m, p, b, v, is_log):
    """The value checks of the public entry points on a block, as a count of bad values: π in
    [0, 1] (at every step, as the host check); on real steps π(·|s_t) summing to 1 within
    :data:`SUM_TOL`, β in (0, 1] (log β in (-inf, 0]) and a_t in [0, A); a mask of 0/1 with a
    prefix of ones. Non-finite rewards and Q̂ need no check here: they make every estimator that
    reads them non-finite (DM alone reads V̂ at the first step only: with ``v`` given, r_t and
    V̂_t are checked too).

    Written as comparisons summed as 0/1 floats, which vectorise on CPU (a NaN fails every
    comparison, so it counts); NaN-propagating ``max``/``min`` reductions, or the checks folded
    into the pass's own elementwise loop, compile to scalar code several times slower.
    """
    real = m > 0
    n_actions = p.shape[-1]
    count = lambda bad: jnp.sum(jnp.where(bad, 1.0, 0.0).astype(m.dtype))
    total = p[..., 0]
    for k in range(1, n_actions):
        total = total + p[..., k]
    b_ok = ((b <= 1e-6) & (b > -jnp.inf)) if is_log else ((b > 0) & (b <= 1 + 1e-6))
    ok = (jnp.abs(total - 1) <= SUM_TOL) & b_ok & (a >= 0) & (a < n_actions)
    m_prev = jnp.concatenate([jnp.ones_like(m[:, :1]), m[:, :-1]], axis=1)
    bad = (real & ~ok) | ~((m == 0) | (m == 1)) | (m > m_prev)
    out = count(bad) + count(~((p >= 0) & (p <= 1 + 1e-6)))
    if v is not None:
        out = out + count(real & ~jnp.isfinite(r + v))
    return out


def _linear_block(r, a, m, p, b, q, valid, disc, is_log, estimators, checks):
    rows, cols = _linear_terms(r, a, m, p, b, q, valid, disc, is_log, estimators)
    if checks:
        dm_only = q is not None and not any(e in estimators for e in ESTIMATORS_READING_R)
        cols["check"] = _check_block(r, a, m, p, b, _pick(a, p, q)[2] if dm_only else None, is_log)
    return rows, cols


def _linear_terms(r, a, m, p, b, q, valid, disc, is_log, estimators):
    real = m > 0
    zero = jnp.zeros_like(r)
    pa, qa, v = _pick(a, p, q)
    one = jnp.ones_like(r)
    rho = pa * jnp.exp(-jnp.where(real, b, zero)) if is_log else pa / jnp.where(real, b, one)
    rho = jnp.where(real, rho, one)
    r = jnp.where(real, r, zero)
    rows = {"g": jnp.sum(r * disc[None], axis=-1), "m0": m[:, 0]}
    if q is not None:
        td = jnp.where(real, r - qa, zero)
        v = jnp.where(real, v, zero)
        rows["v0"] = v[:, 0]
    if not any(e in estimators for e in _SCAN):
        rows["w"] = jnp.prod(rho, axis=-1)
        return rows, {}
    xs = {"rho": rho.T, "r": r.T, "d": disc}
    if q is not None:
        xs.update(td=td.T, v=v.T)
    weighted = "wpdis" in estimators or "wdr" in estimators

    def step(c, x):
        w_prev = c["w"]
        w = w_prev * x["rho"]
        new, out = {"w": w}, {}
        if "pdis" in estimators:
            new["pdis"] = c["pdis"] + x["d"] * w * x["r"]
        if "dr" in estimators:
            new["dr"] = c["dr"] + x["d"] * (w * x["td"] + w_prev * x["v"])
        if weighted:
            wv = jnp.where(valid, w, 0.0)
            out["S"] = jnp.sum(wv)
            if "wpdis" in estimators:
                out["R"] = jnp.sum(wv * x["r"])
            if "wdr" in estimators:
                out["D"] = jnp.sum(wv * x["td"])
                out["P"] = jnp.sum(jnp.where(valid, w_prev, 0.0) * x["v"])
        return new, out

    c0 = {"w": jnp.ones(r.shape[:1], r.dtype)}
    c0.update({k: jnp.zeros(r.shape[:1], r.dtype) for k in ("pdis", "dr") if k in estimators})
    carry, cols = jax.lax.scan(step, c0, xs)
    rows.update(carry)
    return rows, cols


def _blocks(fn, arrays, dtypes, block):
    """Row outputs ``[N]`` and column sums of ``fn`` over row blocks of ``arrays`` (arrays or
    :class:`~offrl_jax.core.host_arrays.RowView`, read as ``dtypes``): the first block, a
    ``fori_loop`` over the middle ones, and a last block that overlaps its predecessor
    (``valid`` marks the rows it adds)."""
    n = view_shape(arrays[0])[0]
    block = min(block, n)
    num = -(-n // block)

    def run(start, part, valid):
        return fn(*[read_rows(x, start, block, part, dt) for x, dt in zip(arrays, dtypes)], valid)

    zero = jnp.zeros((), jnp.int32)
    rows, cols = run(zero, "first", jnp.ones((block,), bool))
    if num == 1:
        return rows, cols
    rows = {k: jnp.zeros((n,) + v.shape[1:], v.dtype).at[:block].set(v) for k, v in rows.items()}

    def body(i, carry):
        rows, cols = carry
        start = i * block
        r, c = run(start, "middle", jnp.ones((block,), bool))
        rows = {k: jax.lax.dynamic_update_slice_in_dim(rows[k], r[k], start, 0) for k in rows}
        return rows, {k: cols[k] + c[k] for k in cols}

    rows, cols = jax.lax.fori_loop(1, num - 1, body, (rows, cols))
    start = n - block
    r, c = run(jnp.asarray(start, jnp.int32), "last", start + jnp.arange(block) >= (num - 1) * block)
    rows = {k: rows[k].at[start:].set(r[k]) for k in rows}
    return rows, {k: cols[k] + c[k] for k in cols}


def linear_pass(r, a, m, p, b, q, gamma, *, is_log, estimators, block_rows, dtype, checks=False):
    """Estimates, a validity flag (finite, with positive normalisers) and ``{"any_real"}`` (> 0
    when some step is real) from the linear pass (module docstring); with ``checks``, a bad
    input value makes the flag False (:func:`_checked_ratios`). The arrays may be
    :class:`~offrl_jax.core.host_arrays.RowView`."""
    n, t = view_shape(r)
    disc = jnp.exp(log_discounts(gamma, t, dtype))
    fn = lambda r, a, m, p, b, *rest: _linear_block(
        r, a, m, p, b, rest[0] if q is not None else None, rest[-1], disc, is_log, estimators, checks
    )
    arrays = (r, a, m, p, b) + (() if q is None else (q,))
    dtypes = (dtype, jnp.int32, dtype, dtype, dtype, dtype)[: len(arrays)]
    rows, cols = _blocks(fn, arrays, dtypes, block_rows)
    w, g = rows["w"], rows["g"]
    out = {}
    if "is" in estimators:
        out["is_"] = jnp.mean(w * g)
    if "pdis" in estimators:
        out["pdis"] = jnp.mean(rows["pdis"])
    if "wis" in estimators:
        out["wis"] = jnp.sum(w * g) / jnp.sum(w)
    if "dm" in estimators:
        out["dm"] = jnp.mean(rows["v0"])
    if "dr" in estimators:
        out["dr"] = jnp.mean(rows["dr"])
    sums = []
    if "wis" in estimators:
        sums.append(jnp.sum(w)[None])
    if "wpdis" in estimators:
        out["wpdis"] = jnp.sum(disc * cols["R"] / cols["S"])
        sums.append(cols["S"])
    if "wdr" in estimators:
        s_prev = jnp.concatenate([jnp.full((1,), n, dtype), cols["S"][:-1]])
        out["wdr"] = jnp.sum(disc * (cols["D"] / cols["S"] + cols["P"] / s_prev))
        sums.append(cols["S"])
    w_max = jnp.max(w)
    ok = jnp.isfinite(w_max) & (w_max > 0)
    for v in out.values():
        ok = ok & jnp.isfinite(v)
    for s in sums:
        ok = ok & jnp.all(s > _SMALL)
    u = w / jnp.where(ok, w_max, 1.0)
    out["ess"] = jnp.sum(u) ** 2 / jnp.where(ok, jnp.sum(u * u), 1.0)
    out["zero_weight_sum"] = jnp.asarray(False)
    if checks:
        ok = ok & (cols["check"] == 0)
    return out, ok, {"any_real": jnp.max(rows["m0"])}


# ----------------------------------------------------------------------------------------------
# The log-space (reference) pass.
# ----------------------------------------------------------------------------------------------
def _log_block(r, a, m, p, b, q, log_disc, is_log, estimators):
    real = m > 0
    zero = jnp.zeros_like(r)
    pa, qa, v = _pick(a, p, q)
    log_b = b if is_log else jnp.log(jnp.where(real, b, jnp.ones_like(b)))
    log_pi = jnp.log(jnp.where(real, pa, jnp.ones_like(pa)))
    log_rho = jnp.where(real, log_pi - jnp.where(real, log_b, zero), zero)
    r = jnp.where(real, r, zero)
    rows = {"log_w": jnp.sum(log_rho, axis=-1), "g": jnp.sum(r * jnp.exp(log_disc), axis=-1)}
    groups = []
    if q is not None:
        td = jnp.where(real, r - qa, zero)
        v = jnp.where(real, v, zero)
        rows["v0"] = v[:, 0]
    if any(e in estimators for e in _SCAN):
        log_w = cumsum_last(log_rho)
        w_disc = jnp.exp(log_w + log_disc)
        if "pdis" in estimators:
            rows["pdis"] = jnp.sum(jnp.where(r == 0, zero, w_disc * r), axis=-1)
        if "wpdis" in estimators:
            groups.append((log_w, r[None]))
        if "dr" in estimators:
            log_w_prev = jnp.concatenate([jnp.zeros_like(log_w[:, :1]), log_w[:, :-1]], axis=1)
            terms = jnp.where(td == 0, zero, w_disc * td)
            terms = terms + jnp.where(v == 0, zero, jnp.exp(log_w_prev + log_disc) * v)
            rows["dr"] = jnp.sum(terms, axis=-1)
        if "wdr" in estimators:
            v_next = jnp.concatenate([v[:, 1:], jnp.zeros_like(v[:, :1])], axis=1)
            groups.append((log_w, jnp.stack([td, v_next])))
    return rows, tuple(groups)


def log_pass(r, a, m, p, b, q, gamma, *, is_log, estimators, chunk_rows: Optional[int] = None):
    """Estimates from log-space weights (module docstring)."""
    log_disc = log_discounts(gamma, r.shape[1], r.dtype)[None, :]
    disc = jnp.exp(log_disc[0])
    fn = lambda r, a, m, p, b, *qs: _log_block(r, a, m, p, b, qs[0] if qs else None, log_disc, is_log, estimators)
    rows, sums = scan_rows(fn, (r, a, m, p, b) + (() if q is None else (q,)), chunk_rows)
    log_w, g = rows["log_w"], rows["g"]
    w_bar, zero_is = normalized_weights(log_w, axis=0)
    out, zero = {"ess": effective_sample_size(log_w)}, jnp.asarray(False)
    if "is" in estimators:
        out["is_"] = jnp.mean(jnp.where(g == 0, jnp.zeros_like(g), jnp.exp(log_w) * g))
    if "pdis" in estimators:
        out["pdis"] = jnp.mean(rows["pdis"])
    if "wis" in estimators:
        out["wis"] = jnp.sum(w_bar * g)
        zero = zero | zero_is
    if "dm" in estimators:
        out["dm"] = jnp.mean(rows["v0"])
    if "dr" in estimators:
        out["dr"] = jnp.mean(rows["dr"])
    groups = list(sums)
    if "wpdis" in estimators:
        s = groups.pop(0)
        out["wpdis"] = jnp.sum(disc * safe_ratio(s.sums[0], s.total))
        zero = zero | jnp.any(s.total <= 0)
    if "wdr" in estimators:
        s = groups.pop(0)
        prev = jnp.concatenate([jnp.mean(rows["v0"])[None], safe_ratio(s.sums[1], s.total)[:-1]])
        out["wdr"] = jnp.sum(disc * (safe_ratio(s.sums[0], s.total) + prev))
        zero = zero | jnp.any(s.total <= 0)
    out["zero_weight_sum"] = zero
    return out


def fused_estimates(r, a, m, p, b, q, gamma, *, is_log, estimators, dtype, block_rows=None, chunk_rows=None,
                    method="auto", checks=False):
    """``(estimates, info, ok)``: the requested estimators as a dict, from the linear pass or
    the log-space pass where the linear one is not finite (``method="auto"``; ``"linear"`` and
    ``"log"`` force one); ``info`` and ``ok`` as :func:`linear_pass` returns them for a forced
    linear pass (``ok`` is True otherwise). The arrays may be
    :class:`~offrl_jax.core.host_arrays.RowView` (read in place by the linear pass; the
    log-space pass, a fallback, reads a copy). ``checks`` folds the value checks into the linear
    pass (:func:`_checked_ratios`)."""
    if block_rows is None:
        block_rows = linear_block_rows(view_shape(r)[0], view_shape(r)[1], chunk_rows)

    def slow():
        dtypes = (dtype, jnp.int32) + (dtype,) * 4
        full = [None if x is None else materialize(x, dt) for x, dt in zip((r, a, m, p, b, q), dtypes)]
        return log_pass(*full, gamma, is_log=is_log, estimators=estimators, chunk_rows=chunk_rows)

    if method == "log":
        return slow(), {}, jnp.asarray(True)
    fast, ok, info = linear_pass(
        r, a, m, p, b, q, gamma, is_log=is_log, estimators=estimators, block_rows=block_rows, dtype=dtype, checks=checks
    )
    if method == "linear":
        return fast, info, ok
    return jax.lax.cond(ok, lambda: fast, slow), info, jnp.asarray(True)


def linear_block_rows(n: int, t: int, chunk_rows: Optional[int] = None) -> int:
    """Rows per block of the linear pass (``chunk_rows`` when given)."""
    if chunk_rows is not None:
        return int(chunk_rows)
    return LINEAR_BLOCK_ROWS if jax.default_backend() == "cpu" else row_chunk_size(n, t)
