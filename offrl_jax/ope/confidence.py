"""Confidence intervals and high-confidence lower bounds for off-policy estimates.

Every function takes i.i.d. per-trajectory statistics (or, for the bootstrap, any dataset-level
estimator and the trajectory arrays it reads) and returns a NamedTuple whose first three fields
are ``(estimate, lower, upper)``. ``confidence`` is the level 1 - delta; ``side`` is
``"two-sided"`` (delta/2 in each tail), ``"lower"`` (a one-sided lower bound; ``upper`` is the
trivial bound: ``b`` for the bounded methods, +inf otherwise) or ``"upper"`` (mirror image).

Two kinds of guarantee:

* **Exact, finite-sample** (hold for every n when the assumptions hold): :func:`hoeffding_bound`,
  :func:`empirical_bernstein_bound`, :func:`hcope_lower_bound`. They need a known range.
* **Approximate** (asymptotic; may under-cover for small n or heavy-tailed importance weights):
  :func:`student_t_interval`, :func:`bootstrap_interval` (percentile and BCa).

Validation: each public function checks its concrete (non-traced) arguments on the host and
raises ``ValueError`` naming the argument (confidence in (0, 1), n >= 2, finite samples, a < b,
samples inside [a, b]). Called under ``jit``/``vmap`` the arguments are tracers and the checks
are skipped: validate the data once outside (e.g. call the function eagerly once, or use
:func:`validate_samples`). Nothing here is decorated with ``jax.jit``; callers jit.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import betainc, ndtr, ndtri

from offrl_jax.core.validation import is_concrete

Array = Any

__all__ = [
    "ConfidenceInterval",
    "BootstrapInterval",
    "HCOPEResult",
    "student_t_interval",
    "hoeffding_bound",
    "empirical_bernstein_bound",
    "bootstrap_indices",
    "bootstrap_interval",
    "hcope_split",
    "hcope_threshold",
    "hcope_lower_bound",
    "student_t_quantile",
    "validate_samples",
]

_SIDES = ("two-sided", "lower", "upper")


class ConfidenceInterval(NamedTuple):
    """``(estimate, lower, upper)``: scalars (``lower``/``upper`` may be -inf/+inf one-sided)."""

    estimate: Array
    lower: Array
    upper: Array


class BootstrapInterval(NamedTuple):
    """Bootstrap interval with its ingredients.

    Attributes:
      estimate: the estimator on the full data.
      lower, upper: interval ends (+-inf on the open side of a one-sided interval).
      std_error: standard deviation of the resampled estimates.
      resampled: ``[B]`` the estimator on each resample.
      bias_correction: BCa z0 (0 for the percentile method).
      acceleration: BCa a-hat (0 for the percentile method).
    """

    estimate: Array
    lower: Array
    upper: Array
    std_error: Array
    resampled: Array
    bias_correction: Array
    acceleration: Array


class HCOPEResult(NamedTuple):
    """High-confidence lower bound of Thomas et al. 2015.

    Attributes:
      estimate: trajectory-wise IS estimate on all the data (in return units).
      lower: the 1 - delta lower bound (return units), computed on D_post.
      upper: ``g_max`` (the trivial upper bound).
      threshold: truncation constant c chosen on D_pre (normalised units, X = w R~).
      num_pre, num_post: sizes of the two splits (Python ints).
    """

    estimate: Array
    lower: Array
    upper: Array
    threshold: Array
    num_pre: int
    num_post: int


# ----------------------------------------------------------------------------------------------
# Host-side validation (skipped for tracers).
# ----------------------------------------------------------------------------------------------


def _check_confidence(confidence: Any) -> None:
    if not is_concrete(confidence):
        return
    c = np.asarray(confidence, dtype=np.float64)
    if c.shape != () or not np.isfinite(c) or not 0.0 < float(c) < 1.0:
        raise ValueError(f"confidence: expected a scalar in (0, 1), found {confidence}")


def _check_side(side: str) -> None:
    if side not in _SIDES:
        raise ValueError(f"side: expected one of {_SIDES}, found {side!r}")


def validate_samples(samples: Array, name: str = "samples", min_size: int = 2) -> None:
    """Raises ``ValueError`` unless ``samples`` is a finite ``[n]`` array with n >= ``min_size``."""
    if not is_concrete(samples):
        return
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"{name}: expected shape [n] (one statistic per trajectory), found {list(x.shape)}")
    if x.shape[0] < min_size:
        raise ValueError(f"{name}: expected at least n = {min_size} samples, found n = {x.shape[0]}")
    if x.dtype.kind not in "fiub":
        raise ValueError(f"{name}: expected a real dtype, found {x.dtype}")
    if not np.all(np.isfinite(x)):
        idx = int(np.argwhere(~np.isfinite(x))[0, 0])
        raise ValueError(f"{name}: expected finite values, found {x[idx]} at index {idx}")


def _check_range(
    samples: Array, a: Any, b: Any, name: str = "samples", tol: float = 1e-6, range_names: str = "a, b"
) -> None:
    if not is_concrete(samples, a, b):
        return
    a_, b_ = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a_.shape != () or b_.shape != () or not (np.isfinite(a_) and np.isfinite(b_)):
        raise ValueError(f"{range_names}: expected finite scalars, found {a}, {b}")
    if not a_ < b_:
        raise ValueError(f"{range_names}: expected {range_names.replace(', ', ' < ')}, found {a}, {b}")
    x = np.asarray(samples, np.float64)
    slack = tol * (b_ - a_)
    if np.any(x < a_ - slack) or np.any(x > b_ + slack):
        idx = int(np.argwhere((x < a_ - slack) | (x > b_ + slack))[0, 0])
        raise ValueError(f"{name}: expected values in [{range_names}] = [{a}, {b}], found {x[idx]} at index {idx}")


def _float(x: Array) -> Array:
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))


def _tail_mass(confidence: Array, side: str, dtype) -> Array:
    delta = 1.0 - jnp.asarray(confidence, dtype)
    return delta / 2 if side == "two-sided" else delta


def _assemble(estimate, lo, hi, side, lo_trivial, hi_trivial) -> ConfidenceInterval:
    lower = lo if side in ("two-sided", "lower") else jnp.full_like(lo, lo_trivial)
    upper = hi if side in ("two-sided", "upper") else jnp.full_like(hi, hi_trivial)
    return ConfidenceInterval(estimate, lower, upper)


# ----------------------------------------------------------------------------------------------
# Student t.
# ----------------------------------------------------------------------------------------------
def student_t_quantile(p: Array, df: int) -> Array:
    """Quantile function of Student's t with ``df`` degrees of freedom (jit-able in ``p``).

    For df < 30 the equation P(T > t) = I_x(df/2, 1/2)/2, x = df/(df + t^2), is solved by
    bisection on log t (60 steps, regularised incomplete beta); for df >= 30 the Cornish-Fisher
    expansion to order df^-4 (Abramowitz & Stegun 26.7.5) is used, accurate to ~1e-5 relative for
    tail masses >= 1e-4 (and free of the incomplete beta's float32 loss at large df).

    Args:
      p: probability in (0, 1), any shape.
      df: degrees of freedom, a positive Python int (static).

    Returns:
      t with P(T <= t) = p, same shape and dtype as ``p``.
    """
    p = _float(p)
    dtype = p.dtype
    if df >= 30:
        z = ndtri(p)
        z2 = z * z
        g1 = (z2 + 1) * z / 4
        g2 = ((5 * z2 + 16) * z2 + 3) * z / 96
        g3 = (((3 * z2 + 19) * z2 + 17) * z2 - 15) * z / 384
        g4 = ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945) * z / 92160
        nu = float(df)
        return z + g1 / nu + g2 / nu**2 + g3 / nu**3 + g4 / nu**4
    nu = jnp.asarray(df, dtype)
    half = jnp.asarray(0.5, dtype)
    tail = jnp.minimum(p, 1 - p)

    def tail_of(log_t):
        t2 = jnp.exp(2 * log_t)
        x, y = 1 / (1 + t2 / nu), 1 / (1 + nu / t2)
        return jnp.where(
            x < 0.5, 0.5 * betainc(nu / 2, half, x), 0.5 * (1 - betainc(half, nu / 2, y))
        )

    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        too_small = tail_of(mid) > tail
        return jnp.where(too_small, mid, lo), jnp.where(too_small, hi, mid)

    init = (jnp.full_like(p, -30.0), jnp.full_like(p, 30.0))
    lo, hi = jax.lax.fori_loop(0, 60, body, init)
    return jnp.sign(p - 0.5) * jnp.exp(0.5 * (lo + hi))


def student_t_interval(
    samples: Array, confidence: float = 0.95, side: str = "two-sided"
) -> ConfidenceInterval:
    """Student-t interval for the mean (approximate: exact only for Gaussian samples).

    X-bar -+ t_{1-delta', n-1} s / sqrt(n), s^2 = sum_i (X_i - X-bar)^2 / (n - 1), with
    delta' = delta/2 (two-sided) or delta (one-sided). Used as the "semi-safe" bound in
    'High Confidence Policy Improvement', Thomas, Theocharous & Ghavamzadeh 2015. Importance-
    weighted returns are skewed, so small samples can under-cover.

    Args:
      samples: ``[n]`` i.i.d. per-trajectory statistics (e.g. w_n G_n), n >= 2.
      confidence: 1 - delta in (0, 1).
      side: ``"two-sided"``, ``"lower"`` or ``"upper"``.

    Returns:
      :class:`ConfidenceInterval` of scalars.
    """
    _check_side(side)
    _check_confidence(confidence)
    validate_samples(samples)
    x = _float(samples)
    n = x.shape[0]
    mean = jnp.mean(x)
    se = jnp.std(x, ddof=1) / math.sqrt(n)
    q = student_t_quantile(1 - _tail_mass(confidence, side, x.dtype), n - 1)
    return _assemble(mean, mean - q * se, mean + q * se, side, -jnp.inf, jnp.inf)


# ----------------------------------------------------------------------------------------------
# Concentration inequalities (finite-sample).
# ----------------------------------------------------------------------------------------------
def hoeffding_bound(
    samples: Array, a: float, b: float, confidence: float = 0.95, side: str = "lower"
) -> ConfidenceInterval:
    """Hoeffding's bound for the mean of independent samples in [a, b] (exact, finite-sample).

    With probability >= 1 - delta: E X >= X-bar - (b - a) sqrt(ln(1/delta') / (2n)), delta' =
    delta (one-sided) or delta/2 per side (two-sided). See 'Probability inequalities for sums of
    bounded random variables', Hoeffding 1963. The ends are clipped to [a, b] (the mean lies
    there anyway); the open side of a one-sided bound is the trivial a or b. For raw importance
    sampling b = (largest weight) G_max, hence the loose bounds that HCOPE truncation avoids.

    Args:
      samples: ``[n]`` independent statistics, each in [a, b].
      a, b: known range, a < b.
      confidence: 1 - delta in (0, 1).
      side: ``"lower"`` (default), ``"upper"`` or ``"two-sided"``.

    Returns:
      :class:`ConfidenceInterval`; the half-width shrinks exactly as 1/sqrt(n).
    """
    _check_side(side)
    _check_confidence(confidence)
    validate_samples(samples, min_size=1)
    _check_range(samples, a, b)
    x = _float(samples)
    n = x.shape[0]
    mean = jnp.mean(x)
    span = jnp.asarray(b, x.dtype) - jnp.asarray(a, x.dtype)
    width = span * jnp.sqrt(jnp.log(1 / _tail_mass(confidence, side, x.dtype)) / (2 * n))
    lo = jnp.maximum(mean - width, jnp.asarray(a, x.dtype))
    hi = jnp.minimum(mean + width, jnp.asarray(b, x.dtype))
    return _assemble(mean, lo, hi, side, a, b)


def empirical_bernstein_bound(
    samples: Array, a: float, b: float, confidence: float = 0.95, side: str = "lower"
) -> ConfidenceInterval:
    """Empirical Bernstein bound of Maurer & Pontil (exact, finite-sample, i.i.d. samples in [a, b]).

    With Z = (X - a)/(b - a) in [0, 1] and probability >= 1 - delta:
    E Z >= Z-bar - sqrt(2 V_n ln(2/delta') / n) - 7 ln(2/delta') / (3(n - 1)), V_n the unbiased
    sample variance, delta' = delta (one-sided) or delta/2 per side (two-sided); mapped back by
    x = a + (b - a) z. See 'Empirical Bernstein bounds and sample variance penalization', Maurer &
    Pontil 2009, Thm 4. Tighter than Hoeffding when the variance is small against the range.

    Args:
      samples: ``[n]`` i.i.d. statistics in [a, b], n >= 2.
      a, b: known range, a < b.
      confidence: 1 - delta in (0, 1).
      side: ``"lower"`` (default), ``"upper"`` or ``"two-sided"``.

    Returns:
      :class:`ConfidenceInterval` clipped to [a, b].
    """
    _check_side(side)
    _check_confidence(confidence)
    validate_samples(samples)
    _check_range(samples, a, b)
    x = _float(samples)
    n = x.shape[0]
    a_, b_ = jnp.asarray(a, x.dtype), jnp.asarray(b, x.dtype)
    span = b_ - a_
    z = (x - a_) / span
    log_term = jnp.log(2 / _tail_mass(confidence, side, x.dtype))
    width_z = jnp.sqrt(2 * jnp.var(z, ddof=1) * log_term / n) + 7 * log_term / (3 * (n - 1))
    mean = jnp.mean(x)
    lo = jnp.maximum(mean - span * width_z, a_)
    hi = jnp.minimum(mean + span * width_z, b_)
    return _assemble(mean, lo, hi, side, a, b)


# ----------------------------------------------------------------------------------------------
# Bootstrap.
# ----------------------------------------------------------------------------------------------
def bootstrap_indices(key: Array, num_items: int, num_resamples: int) -> Array:
    """``[num_resamples, num_items]`` int32 indices drawn uniformly with replacement.

    For ``num_items <= 2**16`` one 32-bit draw per index, mapped by the multiply-shift
    floor(u n / 2^32) (probabilities exact to n / 2^32 relative); otherwise
    ``jax.random.randint``. Shared by :func:`bootstrap_interval` and MAGIC so that equal keys give
    equal resamples.
    """
    if num_items <= 2**16:
        u = jax.random.bits(key, (num_resamples, num_items), jnp.uint32)
        n = jnp.uint32(num_items)
        hi, lo = u >> 16, u & jnp.uint32(0xFFFF)
        return ((hi * n + ((lo * n) >> 16)) >> 16).astype(jnp.int32)
    return jax.random.randint(key, (num_resamples, num_items), 0, num_items)


def _map(fn: Callable, xs: Array, batch_size: Optional[int]) -> Array:
    if batch_size is None:
        return jax.vmap(fn)(xs)
    return jax.lax.map(fn, xs, batch_size=batch_size)


def _leading_size(data: Any) -> int:
    sizes = {int(np.shape(leaf)[0]) if np.ndim(leaf) else -1 for leaf in jax.tree_util.tree_leaves(data)}
    if len(sizes) != 1 or -1 in sizes:
        raise ValueError(
            f"data: expected every array to share the leading axis n (trajectories), found sizes {sorted(sizes)}"
        )
    return sizes.pop()


def bootstrap_interval(
    key: Array,
    data: Any,
    estimator: Optional[Callable[[Any], Array]] = None,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    method: str = "percentile",
    side: str = "two-sided",
    batch_size: Optional[int] = None,
) -> BootstrapInterval:
    """Nonparametric bootstrap interval for any dataset-level estimator (approximate).

    Resamples whole trajectories: draws B index vectors i_b ~ Uniform{0..n-1}^n and evaluates
    theta*_b = estimator(data[i_b]), all B in one vmapped call. Estimators that self-normalise
    (WIS, WDR) therefore renormalise inside each resample, as MAGIC needs.

    * percentile: [q_{delta'}(theta*), q_{1-delta'}(theta*)] (linear interpolation quantiles).
    * bca (Efron 1987, 'Better bootstrap confidence intervals'): z0 = Phi^{-1}(mid-rank of theta-hat
      among theta*), a-hat = sum(m - theta_(i))^3 / (6 [sum(m - theta_(i))^2]^{3/2}) from jackknife
      leave-one-out values theta_(i) (mean m); the end at tail z is the quantile
      Phi(z0 + (z0 + z)/(1 - a-hat (z0 + z))) of theta*. The jackknife costs n estimator calls
      (closed form when ``estimator`` is the mean).

    Both are approximate: no finite-sample guarantee (see Thomas, Theocharous & Ghavamzadeh 2015b
    for their use as "semi-safe" bounds).

    Args:
      key: PRNG key.
      data: ``[n]`` samples, or a pytree of arrays sharing the leading trajectory axis n (e.g.
        ``(rewards, log_ratios, mask)`` each ``[n, T]``).
      estimator: ``estimator(data_subset) -> scalar``; ``None`` means the mean of ``[n]`` samples.
      num_resamples: B (static).
      confidence: 1 - delta in (0, 1).
      method: ``"percentile"`` or ``"bca"``.
      side: ``"two-sided"``, ``"lower"`` or ``"upper"``.
      batch_size: if set, resamples are evaluated in vmapped chunks of this size with
        ``lax.map`` (bounds memory at batch_size * data size).

    Returns:
      :class:`BootstrapInterval`.
    """
    _check_side(side)
    _check_confidence(confidence)
    if method not in ("percentile", "bca"):
        raise ValueError(f"method: expected 'percentile' or 'bca', found {method!r}")
    if int(num_resamples) != num_resamples or num_resamples < 2:
        raise ValueError(f"num_resamples: expected an int >= 2, found {num_resamples}")
    if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
        raise ValueError(f"batch_size: expected a positive int or None, found {batch_size}")
    if estimator is None:
        validate_samples(data, "data")
        data = _float(data)
        estimator = jnp.mean
        closed_form_jackknife = True
    else:
        if not callable(estimator):
            raise ValueError(f"estimator: expected a callable data -> scalar, found {type(estimator)}")
        closed_form_jackknife = False
        if is_concrete(data):
            for leaf in jax.tree_util.tree_leaves(data):
                arr = np.asarray(leaf)
                if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                    raise ValueError("data: expected finite values, found NaN or inf")
    n = _leading_size(data)
    if n < 2:
        raise ValueError(f"data: expected at least n = 2 trajectories, found n = {n}")

    def take(idx):
        return jax.tree_util.tree_map(lambda x: x[idx], data)

    estimate = estimator(data)
    idx = bootstrap_indices(key, n, int(num_resamples))
    theta = _map(lambda i: estimator(take(i)), idx, batch_size)
    dtype = theta.dtype
    tail = _tail_mass(confidence, side, dtype)
    zero = jnp.zeros((), dtype)
    if method == "percentile":
        q_lo, q_hi, z0, acc = tail, 1 - tail, zero, zero
    else:
        mid_rank = (jnp.sum(theta < estimate) + 0.5 * jnp.sum(theta == estimate)) / num_resamples
        z0 = ndtri(jnp.clip(mid_rank, 0.5 / num_resamples, 1 - 0.5 / num_resamples))
        if closed_form_jackknife:
            jack = (n * estimate - data) / (n - 1)
        else:
            ar = jnp.arange(n - 1)
            jack = _map(lambda i: estimator(take(ar + (ar >= i))), jnp.arange(n), batch_size)
        dev = jnp.mean(jack) - jack
        den = 6 * jnp.sum(dev**2) ** 1.5
        acc = jnp.where(den > 0, jnp.sum(dev**3) / jnp.where(den > 0, den, 1), zero)

        def adjust(z):
            s = z0 + z
            d = 1 - acc * s
            return jnp.where(d > 0, ndtr(z0 + s / jnp.where(d > 0, d, 1)), jnp.where(z > 0, 1.0, 0.0))

        q_lo, q_hi = adjust(ndtri(tail)), adjust(ndtri(1 - tail))
    lo = jnp.quantile(theta, jnp.clip(q_lo, 0, 1))
    hi = jnp.quantile(theta, jnp.clip(q_hi, 0, 1))
    ci = _assemble(estimate, lo, hi, side, -jnp.inf, jnp.inf)
    return BootstrapInterval(
        ci.estimate, ci.lower, ci.upper, jnp.std(theta, ddof=1), theta, z0.astype(dtype), acc.astype(dtype)
    )


# ----------------------------------------------------------------------------------------------
# HCOPE (Thomas, Theocharous & Ghavamzadeh 2015).
# ----------------------------------------------------------------------------------------------
def hcope_split(key: Array, num_items: int, split: float = 0.05):
    """Random disjoint split of trajectory indices into D_pre (floor(split n)) and D_post (the rest).

    Returns:
      ``(pre_indices [n_pre], post_indices [n - n_pre])`` int arrays.
    """
    n_pre = int(math.floor(split * num_items))
    perm = jax.random.permutation(key, num_items)
    return perm[:n_pre], perm[n_pre:]


def _truncated_bound(log_x: Array, log_c: Array, n_conf: int, delta: Array) -> Array:
    """Thomas et al. 2015 Thm 1 with equal thresholds c, on [..., m] samples X = exp(log_x).

    LB(c) = Y-bar - 7 c ln(2/delta) / (3 (n_conf - 1)) - sqrt(2 ln(2/delta) s_Y^2 / n_conf), with
    Y = min(X, c) (computed in log space), s_Y^2 the 1/(m - 1) sample variance over the last axis.
    Non-finite values (overflowing c) give -inf.
    """
    y = jnp.exp(jnp.minimum(log_x, log_c[..., None]))
    c = jnp.exp(log_c)
    ln = jnp.log(2 / delta)
    lb = (
        jnp.mean(y, -1)
        - 7 * c * ln / (3 * (n_conf - 1))
        - jnp.sqrt(2 * ln * jnp.var(y, -1, ddof=1) / n_conf)
    )
    return jnp.where(jnp.isfinite(lb), lb, -jnp.inf)


def hcope_threshold(log_x_pre: Array, num_post: int, delta: Array, num_candidates: int = 64) -> Array:
    """Chooses the truncation constant c on D_pre only (returns log c).

    Maximises LB(c) of Thm 1 with D_pre's own mean and variance of Y = min(X, c) but n_post in the
    confidence terms, over a vectorised candidate set: every value of X in D_pre plus
    ``num_candidates`` log-spaced points between the smallest positive and the largest X in D_pre
    (LB increases in c below min X and decreases above max X, so the optimum lies in between).
    If no X in D_pre is positive, c = 1 (the range of the normalised return).

    Args:
      log_x_pre: ``[n_pre]`` log X on D_pre (X = w R~ >= 0; -inf where X = 0).
      num_post: n_post, a Python int >= 2.
      delta: 1 - confidence.
      num_candidates: size of the log-spaced grid (static).

    Returns:
      scalar log c.
    """
    finite = jnp.isfinite(log_x_pre)
    any_pos = jnp.any(finite)
    hi = jnp.max(jnp.where(finite, log_x_pre, -jnp.inf))
    lo = jnp.min(jnp.where(finite, log_x_pre, jnp.inf))
    hi, lo = jnp.where(any_pos, hi, 0.0), jnp.where(any_pos, lo, 0.0)
    grid = lo + (hi - lo) * jnp.linspace(0.0, 1.0, num_candidates, dtype=log_x_pre.dtype)
    cands = jnp.concatenate([grid, jnp.where(finite, log_x_pre, hi)])
    scores = _truncated_bound(log_x_pre[None, :], cands, num_post, delta)
    return jnp.where(any_pos, cands[jnp.argmax(scores)], 0.0)


def hcope_lower_bound(
    key: Array,
    log_weights: Array,
    returns: Array,
    g_min: float,
    g_max: float,
    confidence: float = 0.95,
    split: float = 0.05,
    num_candidates: int = 64,
) -> HCOPEResult:
    """High-confidence off-policy lower bound (exact, finite-sample), as Thomas et al. 2015 do it.

    X_n = w_n R~_n with R~ = (G - g_min)/(g_max - g_min) in [0, 1], so X >= 0 and E X = J~(pi).
    The trajectories are split at random into D_pre (floor(split n)) and D_post; the truncation
    constant c is chosen on D_pre only (:func:`hcope_threshold`) and Thm 1 is applied to D_post:
    LB = Y-bar - 7c ln(2/delta)/(3(n_post - 1)) - sqrt(2 ln(2/delta) s_Y^2 / n_post), Y = min(X, c),
    clipped at 0 and mapped back to g_min + (g_max - g_min) LB. Truncation only lowers the mean,
    so any c independent of D_post keeps the 1 - delta guarantee. Choosing c on the same data
    as the bound voids it. See 'High confidence off-policy evaluation', Thomas, Theocharous &
    Ghavamzadeh 2015 (AAAI), and Maurer & Pontil 2009.

    Args:
      key: PRNG key for the split.
      log_weights: ``[n]`` trajectory log importance weights log w_n = sum_t log rho_t
        (may be -inf where w = 0).
      returns: ``[n]`` discounted returns G_n in [g_min, g_max].
      g_min, g_max: known bounds on the return (e.g. sum_t gamma^t r_min), g_min < g_max.
      confidence: 1 - delta in (0, 1).
      split: fraction of trajectories in D_pre; floor(split n) and the rest must both be >= 2.
      num_candidates: grid size for the choice of c (static).

    Returns:
      :class:`HCOPEResult` (``lower`` is the bound; ``estimate`` the IS estimate on all data).
    """
    _check_confidence(confidence)
    validate_samples(returns, "returns")
    _check_range(returns, g_min, g_max, "returns", range_names="g_min, g_max")
    lw = _float(log_weights)
    if is_concrete(log_weights):
        a = np.asarray(log_weights)
        if a.shape != np.shape(returns):
            raise ValueError(
                f"log_weights: expected shape {list(np.shape(returns))} like returns, found {list(a.shape)}"
            )
        if np.any(np.isnan(a)) or np.any(a == np.inf):
            raise ValueError("log_weights: expected values in [-inf, inf), found NaN or +inf")
    n = lw.shape[0]
    n_pre = int(math.floor(split * n))
    if not 0.0 < split < 1.0 or n_pre < 2 or n - n_pre < 2:
        raise ValueError(
            f"split: expected a fraction in (0, 1) leaving >= 2 trajectories in each part; "
            f"n = {n}, split = {split} gives n_pre = {n_pre}"
        )
    dtype = jnp.result_type(lw.dtype, _float(returns).dtype)
    g_lo, g_hi = jnp.asarray(g_min, dtype), jnp.asarray(g_max, dtype)
    r_norm = jnp.clip((jnp.asarray(returns, dtype) - g_lo) / (g_hi - g_lo), 0, 1)
    log_x = lw.astype(dtype) + jnp.where(r_norm > 0, jnp.log(jnp.where(r_norm > 0, r_norm, 1)), -jnp.inf)
    delta = 1 - jnp.asarray(confidence, dtype)
    pre, post = hcope_split(key, n, split)
    n_post = n - n_pre
    log_c = hcope_threshold(log_x[pre], n_post, delta, num_candidates)
    lb = jnp.maximum(_truncated_bound(log_x[post], log_c, n_post, delta), 0.0)
    estimate = g_lo + (g_hi - g_lo) * jnp.mean(jnp.exp(log_x))
    return HCOPEResult(estimate, g_lo + (g_hi - g_lo) * lb, g_hi, jnp.exp(log_c), n_pre, n_post)
