"""Diagnostics of an estimated behaviour policy, to read before trusting importance sampling.

* held-out log-likelihood: the mean of log β̂(a_t|s_t) over the logged steps, each from a model
  that never saw its trajectory (cross-fitted), so it measures fit, not memorisation;
* expected calibration error (ECE) of the action probabilities: every (step, action) pair is a
  forecast β̂(a|s_t) of the event 1[a_t = a]; with the forecasts binned into ``num_bins``
  equal-width bins B_b of [0, 1],

      ECE = Σ_b (|B_b| / (M A)) |mean_{B_b} β̂(a|s) − mean_{B_b} 1[a_t = a]|

  (the class-wise / static calibration error of "Measuring Calibration in Deep Learning",
  Nixon et al. 2019; the binned ECE of "Obtaining Well Calibrated Probabilities Using Bayesian
  Binning", Naeini, Cooper & Hauskrecht 2015). For a Gaussian it is the calibration of the
  probability integral transform u = Φ((a − μ̂)/σ̂) per action dimension:
  ECE = (1/num_bins) Σ_b |F̂_u(b/num_bins) − b/num_bins| with F̂_u the empirical CDF of u;
* the smallest estimated propensity min_t β̂(a_t|s_t) at the logged actions (a tiny one means
  one huge importance ratio);
* the target policy's mass off the estimated support: at each step
  m_t = Σ_a π(a|s_t) 1[β̂(a|s_t) < τ] with τ = ``support_threshold`` (default 0.01: an action the
  estimated behaviour takes less than once in a hundred visits). Its mean and maximum over the
  logged steps; a large mean says π acts where the data hardly go, so IS has little to weight
  and its estimate rests on a few huge ratios (or is biased if β truly never acts there).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

Array = Any

__all__ = [
    "BehaviorDiagnostics",
    "DEFAULT_SUPPORT_THRESHOLD",
    "expected_calibration_error",
    "gaussian_calibration_error",
    "target_mass_off_support",
    "behavior_diagnostics",
]

DEFAULT_SUPPORT_THRESHOLD = 0.01


class BehaviorDiagnostics(NamedTuple):
    """Scalar diagnostics of an estimated behaviour policy (see the module docstring).

    Attributes:
      heldout_log_likelihood: mean log β̂(a_t|s_t) over logged steps (cross-fitted).
      calibration_error: ECE (NaN when not computed).
      min_propensity: min over logged steps of β̂(a_t|s_t) (a density for the Gaussian).
      target_mass_off_support: mean over logged steps of m_t (NaN without a target).
      max_target_mass_off_support: max over logged steps of m_t (NaN without a target).
      support_threshold: τ.
      num_steps: the number of logged (real) steps.
    """

    heldout_log_likelihood: Array
    calibration_error: Array
    min_propensity: Array
    target_mass_off_support: Array
    max_target_mass_off_support: Array
    support_threshold: float
    num_steps: Array


def expected_calibration_error(probs: Array, actions: Array, mask: Array, num_bins: int = 10) -> Array:
    """Class-wise binned ECE of action probabilities ``[..., A]`` against logged actions ``[...]``.

    Pure (one ``segment_sum`` per statistic). Padded steps (``mask`` 0) are left out.

    Args:
      probs: ``[..., A]`` β̂(·|s_t).
      actions: ``[...]`` int logged actions.
      mask: ``[...]`` 1 on real steps, 0 on padding.
      num_bins: equal-width bins of [0, 1] (static).

    Returns:
      scalar ECE in [0, 1].
    """
    p = jnp.asarray(probs)
    num_actions = p.shape[-1]
    hit = jax.nn.one_hot(jnp.asarray(actions).astype(jnp.int32), num_actions, dtype=p.dtype)
    w = jnp.broadcast_to((jnp.asarray(mask) > 0)[..., None], p.shape).astype(p.dtype).reshape(-1)
    b = jnp.clip(jnp.floor(p * num_bins).astype(jnp.int32), 0, num_bins - 1).reshape(-1)
    count = jax.ops.segment_sum(w, b, num_bins)
    conf = jax.ops.segment_sum(w * p.reshape(-1), b, num_bins)
    freq = jax.ops.segment_sum(w * hit.reshape(-1), b, num_bins)
    return jnp.sum(jnp.abs(conf - freq)) / jnp.maximum(jnp.sum(count), 1.0)


def gaussian_calibration_error(mean: Array, log_std: Array, actions: Array, mask: Array, num_bins: int = 10) -> Array:
    """PIT calibration error of a diagonal Gaussian ``[..., d]`` against logged actions ``[..., d]``.

    u = Φ((a − μ)/σ) per dimension is uniform under a calibrated model;
    ECE = (1/B) Σ_{b=1..B} |F̂_u(b/B) − b/B|, F̂_u the empirical CDF over real steps and dimensions.
    """
    u = jax.scipy.stats.norm.cdf((jnp.asarray(actions) - mean) * jnp.exp(-log_std))
    w = jnp.broadcast_to((jnp.asarray(mask) > 0)[..., None], u.shape).astype(u.dtype)
    edges = jnp.arange(1, num_bins + 1, dtype=u.dtype) / num_bins
    below = u[..., None] <= edges.reshape((1,) * u.ndim + (num_bins,))
    cdf = jnp.sum(w[..., None] * below, axis=tuple(range(u.ndim))) / jnp.maximum(jnp.sum(w), 1.0)
    return jnp.mean(jnp.abs(cdf - edges))


def target_mass_off_support(
    target_probs: Array, behavior_probs: Array, mask: Array, threshold: float = DEFAULT_SUPPORT_THRESHOLD
) -> Array:
    """``[...]`` m_t = Σ_a π(a|s_t) 1[β̂(a|s_t) < τ] per step (0 on padding).

    Args:
      target_probs: ``[..., A]`` π(·|s_t).
      behavior_probs: ``[..., A]`` β̂(·|s_t).
      mask: ``[...]`` 1 on real steps.
      threshold: τ.
    """
    pi = jnp.asarray(target_probs)
    off = jnp.sum(jnp.where(jnp.asarray(behavior_probs) < threshold, pi, 0.0), axis=-1)
    return jnp.where(jnp.asarray(mask) > 0, off, 0.0)


def behavior_diagnostics(
    log_probs: Array,
    mask: Array,
    *,
    probs: Optional[Array] = None,
    actions: Optional[Array] = None,
    target_probs: Optional[Array] = None,
    support_threshold: float = DEFAULT_SUPPORT_THRESHOLD,
    calibration_error: Optional[Array] = None,
    num_bins: int = 10,
) -> BehaviorDiagnostics:
    """The diagnostics of cross-fitted behaviour log-probabilities (dataset level, pure).

    Args:
      log_probs: ``[N, T]`` log β̂(a_t|s_t) at the logged actions (cross-fitted).
      mask: ``[N, T]`` 1 on real steps, 0 on padding.
      probs: optional ``[N, T, A]`` β̂(·|s_t) (discrete actions) for the ECE and the support check.
      actions: ``[N, T]`` int logged actions, with ``probs``.
      target_probs: optional ``[N, T, A]`` π(·|s_t) for the support check (needs ``probs``).
      support_threshold: τ of the support check.
      calibration_error: a precomputed ECE (e.g. the Gaussian's) used when ``probs`` is None.
      num_bins: ECE bins.

    Returns:
      :class:`BehaviorDiagnostics`.
    """
    lp = jnp.asarray(log_probs)
    real = jnp.asarray(mask) > 0
    n = jnp.sum(real)
    ll = jnp.sum(jnp.where(real, lp, 0.0)) / jnp.maximum(n, 1)
    min_p = jnp.exp(jnp.min(jnp.where(real, lp, jnp.inf)))
    nan = jnp.asarray(jnp.nan, lp.dtype)
    ece = nan if calibration_error is None else jnp.asarray(calibration_error, lp.dtype)
    off_mean = off_max = nan
    if probs is not None:
        ece = expected_calibration_error(probs, actions, mask, num_bins)
        if target_probs is not None:
            off = target_mass_off_support(target_probs, probs, mask, support_threshold)
            off_mean = jnp.sum(off) / jnp.maximum(n, 1)
            off_max = jnp.max(off)
    return BehaviorDiagnostics(ll, ece, min_p, off_mean, off_max, float(support_threshold), n)
