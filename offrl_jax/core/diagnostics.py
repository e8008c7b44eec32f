"""Importance-weight diagnostics: effective sample size, largest weight share, per-step ESS.

All are computed from log weights without forming the raw weights (max-shifted sums), so they
stay finite in float32 when weights span e^{+-1000}. The per-step ESS shows the exponential
decay of the usable sample with the horizon that makes long-horizon importance sampling hard.

See "Monte Carlo theory, methods and examples", Owen 2013, Ch. 9 (effective sample size
(sum w)^2 / sum w^2, after Kong 1992).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from offrl_jax.core.validation import is_concrete, validate_ope_inputs
from offrl_jax.core.weights import cumulative_log_weights

Array = Any

__all__ = [
    "WeightDiagnostics",
    "effective_sample_size",
    "max_weight_share",
    "per_timestep_ess",
    "weight_diagnostics",
]


class WeightDiagnostics(NamedTuple):
    """Diagnostics of the trajectory importance weights w^n_{0:T-1}.

    Attributes:
      ess: scalar effective sample size (sum w)^2 / sum w^2, in [1, N] (0 if all weights are 0).
      ess_fraction: scalar ess / N.
      max_weight_share: scalar max_n w^n / sum_j w^j (1/N is ideal, 1 means one trajectory
        carries the estimate).
      per_step_ess: ``[T]`` ESS of w^n_{0:t} across n at each step t.
      max_log_weight: scalar max_n log w^n_{0:T-1}.
      min_log_weight: scalar min_n log w^n_{0:T-1} (``-inf`` if some weight is 0).
      zero_weight_sum: bool scalar, True if every trajectory weight is 0.
    """

    ess: Array
    ess_fraction: Array
    max_weight_share: Array
    per_step_ess: Array
    max_log_weight: Array
    min_log_weight: Array
    zero_weight_sum: Array


def effective_sample_size(log_weights: Array, axis: int = 0) -> Array:
    """Kish effective sample size of weights given in log space.

    ESS = (sum_n w_n)^2 / sum_n w_n^2 = exp(2 logsumexp(log w) - logsumexp(2 log w)); 0 when all
    weights are 0. See Owen 2013, "Monte Carlo theory, methods and examples", Eq. 9.13.

    Args:
      log_weights: log weights with trajectories on ``axis`` (e.g. ``[N]`` or ``[N, T]``).
      axis: the trajectory axis.

    Returns:
      ESS, the input's shape without ``axis``.
    """
    lw = jnp.asarray(log_weights)
    lse1 = logsumexp(lw, axis=axis)
    lse2 = logsumexp(2.0 * lw, axis=axis)
    ok = jnp.isfinite(lse1) & jnp.isfinite(lse2)
    return jnp.where(ok, jnp.exp(jnp.where(ok, 2.0 * lse1 - lse2, 0.0)), jnp.zeros_like(lse1))


def max_weight_share(log_weights: Array, axis: int = 0) -> Array:
    """Largest normalised weight max_n w_n / sum_j w_j, from log weights (0 if all are 0).

    Args:
      log_weights: log weights with trajectories on ``axis``.
      axis: the trajectory axis.

    Returns:
      the share, the input's shape without ``axis``.
    """
    lw = jnp.asarray(log_weights)
    lse = logsumexp(lw, axis=axis)
    ok = jnp.isfinite(lse)
    return jnp.where(ok, jnp.exp(jnp.max(lw, axis=axis) - jnp.where(ok, lse, 0.0)), jnp.zeros_like(lse))


def per_timestep_ess(log_ratios: Array, mask: Array) -> Array:
    """``[T]`` effective sample size of the cumulative weights w^n_{0:t} across n at each step.

    ESS_t = (sum_n w^n_{0:t})^2 / sum_n (w^n_{0:t})^2. Finished trajectories keep their final
    weight. Under a policy mismatch ESS_t typically decays exponentially in t.

    Args:
      log_ratios: ``[N, T]`` log rho_t.
      mask: ``[N, T]`` 1 on real steps, 0 on padding.

    Returns:
      ``[T]`` ESS per step.
    """
    chex.assert_rank([log_ratios, mask], 2)
    return effective_sample_size(cumulative_log_weights(log_ratios, mask), axis=0)


def weight_diagnostics(log_ratios: Array, mask: Array, validate: bool = True) -> WeightDiagnostics:
    """ESS, largest weight share and per-step ESS of a dataset's importance weights.

    Args:
      log_ratios: ``[N, T]`` log rho_t.
      mask: ``[N, T]`` 1 on real steps, 0 on padding.
      validate: run the host checks when the inputs are concrete.

    Returns:
      :class:`WeightDiagnostics`.
    """
    if validate and is_concrete(log_ratios, mask):
        lr = jnp.asarray(log_ratios)
        validate_ope_inputs(jnp.zeros_like(lr), lr, mask, 1.0)
    chex.assert_rank([log_ratios, mask], 2)
    chex.assert_equal_shape([log_ratios, mask])
    log_w = cumulative_log_weights(log_ratios, mask)
    final = log_w[:, -1]
    ess = effective_sample_size(final)
    return WeightDiagnostics(
        ess=ess,
        ess_fraction=ess / final.shape[0],
        max_weight_share=max_weight_share(final),
        per_step_ess=effective_sample_size(log_w, axis=0),
        max_log_weight=jnp.max(final),
        min_log_weight=jnp.min(final),
        zero_weight_sum=~jnp.any(jnp.isfinite(final)),
    )
