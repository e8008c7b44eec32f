"""Confidence intervals for the mean of i.i.d. per-trajectory statistics.

Each function takes ``[n]`` i.i.d. statistics (e.g. the importance-weighted returns w_n G_n, or
the per-trajectory DR values) and returns a :class:`ConfidenceInterval` ``(estimate, lower,
upper)``. ``confidence`` is the level 1 - delta; ``side`` is ``"two-sided"`` (delta/2 in each
tail), ``"lower"`` (a one-sided lower bound; ``upper`` is the trivial bound: ``b`` for the
bounded methods, +inf otherwise) or ``"upper"`` (mirror image). With delta' = delta/2
(two-sided) or delta (one-sided):

* Student t (approximate; exact only for Gaussian samples):
  X-bar -+ t_{1-delta', n-1} s / sqrt(n), s^2 = sum_i (X_i - X-bar)^2 / (n - 1).
* Hoeffding (exact, finite-sample, samples in a known [a, b]; "Probability inequalities for
  sums of bounded random variables", Hoeffding 1963):
  E X >= X-bar - (b - a) sqrt(ln(1/delta') / (2n)).
* Empirical Bernstein (exact, finite-sample, i.i.d. samples in [a, b]; "Empirical Bernstein
  bounds and sample variance penalization", Maurer & Pontil 2009, Thm 4), on Z = (X - a)/(b - a):
  E Z >= Z-bar - sqrt(2 V_n ln(2/delta') / n) - 7 ln(2/delta') / (3(n - 1)).

The bootstrap is in :mod:`offrl_jax.ope.bootstrap`, the high-confidence lower bound of Thomas,
Theocharous & Ghavamzadeh 2015 in :mod:`offrl_jax.ope.hcope`.

Validation: each function checks its concrete (non-traced) arguments on the host and raises
``ValueError`` naming the argument (confidence in (0, 1), n >= 2, finite samples, a < b,
samples inside [a, b]). Under ``jit``/``vmap`` the checks are skipped. Nothing here is decorated
with ``jax.jit``; callers jit.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import betainc, ndtri

from offrl_jax.ope._common import (
    as_float,
    check_confidence,
    check_range,
    check_samples,
    check_side,
    one_side,
    tail_mass,
)

Array = Any

__all__ = [
    "ConfidenceInterval",
    "student_t_quantile",
    "student_t_interval",
    "hoeffding_bound",
    "empirical_bernstein_bound",
]


class ConfidenceInterval(NamedTuple):
    """``(estimate, lower, upper)``: scalars (``lower``/``upper`` may be -inf/+inf one-sided)."""

    estimate: Array
    lower: Array
    upper: Array


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
    p = as_float(p, "p")
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
    check_side(side)
    check_confidence(confidence)
    check_samples(samples)
    x = as_float(samples)
    n = x.shape[0]
    mean = jnp.mean(x)
    se = jnp.std(x, ddof=1) / math.sqrt(n)
    q = student_t_quantile(1 - tail_mass(confidence, side, x.dtype), n - 1)
    return ConfidenceInterval(mean, *one_side(mean - q * se, mean + q * se, side, -jnp.inf, jnp.inf))


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
    check_side(side)
    check_confidence(confidence)
    check_samples(samples, min_size=1)
    check_range(samples, a, b)
    x = as_float(samples)
    n = x.shape[0]
    mean = jnp.mean(x)
    span = jnp.asarray(b, x.dtype) - jnp.asarray(a, x.dtype)
    width = span * jnp.sqrt(jnp.log(1 / tail_mass(confidence, side, x.dtype)) / (2 * n))
    lo = jnp.maximum(mean - width, jnp.asarray(a, x.dtype))
    hi = jnp.minimum(mean + width, jnp.asarray(b, x.dtype))
    return ConfidenceInterval(mean, *one_side(lo, hi, side, a, b))


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
    check_side(side)
    check_confidence(confidence)
    check_samples(samples)
    check_range(samples, a, b)
    x = as_float(samples)
    n = x.shape[0]
    a_, b_ = jnp.asarray(a, x.dtype), jnp.asarray(b, x.dtype)
    span = b_ - a_
    z = (x - a_) / span
    log_term = jnp.log(2 / tail_mass(confidence, side, x.dtype))
    width_z = jnp.sqrt(2 * jnp.var(z, ddof=1) * log_term / n) + 7 * log_term / (3 * (n - 1))
    mean = jnp.mean(x)
    lo = jnp.maximum(mean - span * width_z, a_)
    hi = jnp.minimum(mean + span * width_z, b_)
    return ConfidenceInterval(mean, *one_side(lo, hi, side, a, b))
