"""Nonparametric bootstrap intervals for any dataset-level estimator (approximate).

Resample whole trajectories: draw B index vectors i_b ~ Uniform{0..n-1}^n, evaluate
theta*_b = estimator(data[i_b]) (all B in one vmapped call), and read the interval off the
distribution of theta*:

* percentile: [q_{delta'}(theta*), q_{1-delta'}(theta*)], delta' = delta/2 (two-sided) or delta;
* BCa ("Better bootstrap confidence intervals", Efron 1987): the end at tail z is the quantile
  Phi(z0 + (z0 + z)/(1 - a-hat (z0 + z))) of theta*, with the bias correction
  z0 = Phi^{-1}(mid-rank of theta-hat among theta*) and the acceleration
  a-hat = sum(m - theta_(i))^3 / (6 [sum(m - theta_(i))^2]^{3/2}) from jackknife values theta_(i).

Self-normalised estimators (WIS, WDR) renormalise inside each resample. Neither method has a
finite-sample guarantee; Thomas, Theocharous & Ghavamzadeh 2015 ("High Confidence Policy
Improvement") use them as "semi-safe" bounds. See also "An Introduction to the Bootstrap",
Efron & Tibshirani 1993.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr, ndtri

from offrl_jax.core.validation import is_concrete
from offrl_jax.ope._common import (
    as_float,
    check_confidence,
    check_prng_key,
    check_samples,
    check_side,
    one_side,
    tail_mass,
)

Array = Any

__all__ = ["BootstrapInterval", "bootstrap_indices", "bootstrap_interval"]


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


def bootstrap_indices(key: Array, num_items: int, num_resamples: int) -> Array:
    """``[num_resamples, num_items]`` int32 indices drawn uniformly with replacement.

    For ``num_items <= 2**16`` one 32-bit draw per index, mapped by the multiply-shift
    floor(u n / 2^32) (probabilities exact to n / 2^32 relative); otherwise
    ``jax.random.randint``. Shared by :func:`bootstrap_interval` and MAGIC so that equal keys give
    equal resamples.
    """
    check_prng_key(key)
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
    n = sizes.pop()
    if n < 2:
        raise ValueError(f"data: expected at least n = 2 trajectories, found n = {n}")
    return n


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
    check_prng_key(key)
    _check_arguments(confidence, side, method, num_resamples, batch_size)
    data, estimator, closed_form_jackknife = _prepare(data, estimator)
    n = _leading_size(data)
    _check_estimator_output(estimator, data)

    def take(idx):
        return jax.tree_util.tree_map(lambda x: x[idx], data)

    estimate = estimator(data)
    idx = bootstrap_indices(key, n, int(num_resamples))
    theta = _map(lambda i: estimator(take(i)), idx, batch_size)
    dtype = theta.dtype
    tail = tail_mass(confidence, side, dtype)
    zero = jnp.zeros((), dtype)
    if method == "percentile":
        q_lo, q_hi, z0, acc = tail, 1 - tail, zero, zero
    else:
        if closed_form_jackknife:
            jack = (n * estimate - data) / (n - 1)
        else:
            ar = jnp.arange(n - 1)
            jack = _map(lambda i: estimator(take(ar + (ar >= i))), jnp.arange(n), batch_size)
        q_lo, q_hi, z0, acc = _bca_levels(theta, estimate, jack, tail)
    lo = jnp.quantile(theta, jnp.clip(q_lo, 0, 1))
    hi = jnp.quantile(theta, jnp.clip(q_hi, 0, 1))
    lower, upper = one_side(lo, hi, side, -jnp.inf, jnp.inf)
    return BootstrapInterval(
        estimate, lower, upper, jnp.std(theta, ddof=1), theta, z0.astype(dtype), acc.astype(dtype)
    )


def _check_arguments(confidence, side, method, num_resamples, batch_size) -> None:
    check_side(side)
    check_confidence(confidence)
    if method not in ("percentile", "bca"):
        raise ValueError(f"method: expected 'percentile' or 'bca', found {method!r}")
    if int(num_resamples) != num_resamples or num_resamples < 2:
        raise ValueError(f"num_resamples: expected an int >= 2, found {num_resamples}")
    if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
        raise ValueError(f"batch_size: expected a positive int or None, found {batch_size}")


def _prepare(data, estimator):
    """Checks ``data``; ``estimator=None`` becomes the mean (its jackknife is closed-form)."""
    if estimator is None:
        check_samples(data, "data")
        return as_float(data, "data"), jnp.mean, True
    if not callable(estimator):
        raise ValueError(f"estimator: expected a callable data -> scalar, found {type(estimator)}")
    if is_concrete(data):
        for leaf in jax.tree_util.tree_leaves(data):
            arr = np.asarray(leaf)
            if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                raise ValueError("data: expected finite values, found NaN or inf")
    return data, estimator, False


def _check_estimator_output(estimator, data) -> None:
    """``estimator(data)`` must be a real scalar (checked from shapes only, nothing is run)."""
    try:
        out = jax.eval_shape(estimator, data)
    except Exception as exc:  # noqa: BLE001 - report it against the argument
        raise ValueError(f"estimator: calling it on data failed ({type(exc).__name__}: {exc})") from exc
    shape = getattr(out, "shape", None)
    dtype = getattr(out, "dtype", None)
    if shape != () or dtype is None or not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
        found = f"shape {list(shape)} and dtype {dtype}" if shape is not None else type(out).__name__
        raise ValueError(f"estimator: expected a function data -> real scalar, it returned {found}")


def _bca_levels(theta, estimate, jack, tail):
    """BCa quantile levels (q_lo, q_hi) and their ingredients z0, a-hat (Efron 1987)."""
    b = theta.shape[0]
    zero = jnp.zeros((), theta.dtype)
    mid_rank = (jnp.sum(theta < estimate) + 0.5 * jnp.sum(theta == estimate)) / b
    z0 = ndtri(jnp.clip(mid_rank, 0.5 / b, 1 - 0.5 / b))
    dev = jnp.mean(jack) - jack
    den = 6 * jnp.sum(dev**2) ** 1.5
    acc = jnp.where(den > 0, jnp.sum(dev**3) / jnp.where(den > 0, den, 1), zero)

    def adjust(z):
        s = z0 + z
        d = 1 - acc * s
        return jnp.where(d > 0, ndtr(z0 + s / jnp.where(d > 0, d, 1)), jnp.where(z > 0, 1.0, 0.0))

    return adjust(ndtri(tail)), adjust(ndtri(1 - tail)), z0, acc
