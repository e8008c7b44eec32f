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
scalar: only the branch taken runs). Both give the same numbers up to rounding.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp

from offrl_jax.core.blocking import row_chunk_size, scan_rows
from offrl_jax.core.diagnostics import effective_sample_size
from offrl_jax.core.weights import cumsum_last, log_discounts, normalized_weights, safe_ratio

Array = Any

_SCAN = ("pdis", "wpdis", "dr", "wdr")
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
def _check_counts(r, a, m, p, b, q, is_log):
    """Counts of bad values in a block (the value checks of the public entry points)."""
    real = m > 0
    count = lambda bad: jnp.sum(bad.astype(jnp.int32))
    # Unrolled over the A columns: a reduction over a short minor axis does not vectorise on CPU.
    total, p_ok, q_ok = jnp.zeros_like(r), jnp.ones(r.shape, bool), jnp.ones(r.shape, bool)
    for k in range(p.shape[-1]):
        total = total + p[..., k]
        p_ok = p_ok & (p[..., k] >= 0) & (p[..., k] <= 1 + 1e-6)
        if q is not None:
            q_ok = q_ok & jnp.isfinite(q[..., k])
    b_ok = ((b <= 1e-6) & (b > -jnp.inf)) if is_log else ((b > 0) & (b <= 1 + 1e-6))
    a_ok = (a >= 0) & (a < p.shape[-1])
    ok = p_ok & (jnp.abs(total - 1) <= SUM_TOL) & b_ok & a_ok & jnp.isfinite(r) & q_ok
    bad = ((m != 0) & (m != 1)) | (real & ~ok)
    # One combined count (the host checks then name the argument) and the real steps.
    return {"bad": count(bad) + count(m[:, 1:] > m[:, :-1]), "real_steps": count(real)}


def _linear_block(r, a, m, p, b, q, valid, disc, is_log, estimators, checks):
    counts = _check_counts(r, a, m, p, b, q, is_log) if checks else {}
    rows, cols = _linear_terms(r, a, m, p, b, q, valid, disc, is_log, estimators)
    return rows, {**cols, **{f"check_{k}": v for k, v in counts.items()}}


def _linear_terms(r, a, m, p, b, q, valid, disc, is_log, estimators):
    real = m > 0
    zero = jnp.zeros_like(r)
    pa, qa, v = _pick(a, p, q)
    one = jnp.ones_like(r)
    rho = pa * jnp.exp(-jnp.where(real, b, zero)) if is_log else pa / jnp.where(real, b, one)
    rho = jnp.where(real, rho, one)
    r = jnp.where(real, r, zero)
    rows = {"g": jnp.sum(r * disc[None], axis=-1)}
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


def _blocks(fn, arrays, block):
    """Row outputs ``[N]`` and column sums of ``fn`` over row blocks (the last block overlaps
    its predecessor; ``valid`` marks the rows it adds)."""
    n = arrays[0].shape[0]
    block = min(block, n)
    num = -(-n // block)
    spec = [jax.ShapeDtypeStruct((block,) + x.shape[1:], x.dtype) for x in arrays]
    row_s, col_s = jax.eval_shape(lambda *x: fn(*x, jnp.ones((block,), bool)), *spec)
    rows0 = {k: jnp.zeros((n,) + s.shape[1:], s.dtype) for k, s in row_s.items()}
    cols0 = {k: jnp.zeros(s.shape, s.dtype) for k, s in col_s.items()}

    def body(i, carry):
        rows, cols = carry
        start = jnp.minimum(i * block, n - block)
        parts = [jax.lax.dynamic_slice_in_dim(x, start, block, 0) for x in arrays]
        r, c = fn(*parts, start + jnp.arange(block) >= i * block)
        rows = {k: jax.lax.dynamic_update_slice_in_dim(rows[k], r[k], start, 0) for k in rows}
        return rows, {k: cols[k] + c[k] for k in cols}

    return jax.lax.fori_loop(0, num, body, (rows0, cols0))


def linear_pass(r, a, m, p, b, q, gamma, *, is_log, estimators, block_rows, checks=False):
    """Estimates, a validity flag and (``checks``) counts of bad input values from the linear
    pass (module docstring)."""
    n, t = r.shape
    disc = jnp.exp(log_discounts(gamma, t, r.dtype))
    fn = lambda r, a, m, p, b, *rest: _linear_block(
        r, a, m, p, b, rest[0] if q is not None else None, rest[-1], disc, is_log, estimators, checks
    )
    arrays = (r, a, m, p, b) + (() if q is None else (q,))
    rows, cols = _blocks(fn, arrays, block_rows)
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
        s_prev = jnp.concatenate([jnp.full((1,), n, r.dtype), cols["S"][:-1]])
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
    counts = {k[len("check_"):]: v for k, v in cols.items() if k.startswith("check_")}
    return out, ok, counts


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


def fused_estimates(r, a, m, p, b, q, gamma, *, is_log, estimators, chunk_rows=None, method="auto", checks=False):
    """``(estimates, check counts)``: the requested estimators as a dict, from the linear pass or
    the log-space pass where the linear one is not finite (``method="auto"``; ``"linear"`` and
    ``"log"`` force one), and with ``checks`` the counts of bad input values per argument, from
    the same pass over the data."""
    block = chunk_rows if chunk_rows is not None else (
        LINEAR_BLOCK_ROWS if jax.default_backend() == "cpu" else row_chunk_size(r.shape[0], r.shape[1])
    )
    slow = lambda: log_pass(r, a, m, p, b, q, gamma, is_log=is_log, estimators=estimators, chunk_rows=chunk_rows)
    if method == "log" and not checks:
        return slow(), {}
    fast, ok, counts = linear_pass(
        r, a, m, p, b, q, gamma, is_log=is_log, estimators=estimators, block_rows=block, checks=checks
    )
    if method == "linear":
        return fast, counts
    if method == "log":
        return slow(), counts
    return jax.lax.cond(ok, lambda: fast, slow), counts
