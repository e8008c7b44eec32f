"""The importance-sampling family: IS, per-decision IS and their self-normalised versions.

Two layers, as everywhere in :mod:`offrl_jax.ope`:

* per-trajectory cores on ``[T]`` arrays (``trajectory_is_return``, ``per_decision_is_return``)
  that callers ``vmap``;
* dataset-level estimators on padded ``[N, T]`` arrays with ``mask`` (the array API:
  ``trajectory_is``, ``per_decision_is``, ``weighted_is``, ``weighted_per_decision_is``).

The dataset-level functions are jit- and vmap-safe. Called on concrete arrays they first run
the host checks of :func:`~offrl_jax.core.validation.validate_ope_inputs` (``ValueError`` naming
the argument); under ``jit``/``vmap`` the checks are skipped and status comes back as flags from
the ``*_with_info`` variants. Weights are formed in log space (cumulative sums of log ratios,
discount folded into the exponent; softmax across trajectories for the weighted forms).

Notation: G_n = sum_t gamma^t r^n_t; w^n_{0:t} = prod_{k<=t} rho^n_k; padding has ratio 1 and
reward 0, so a finished trajectory keeps its final weight.

See "Eligibility Traces for Off-Policy Policy Evaluation", Precup, Sutton & Singh 2000.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp

from offrl_jax.core.blocking import map_rows, scan_rows
from offrl_jax.core.diagnostics import effective_sample_size
from offrl_jax.core.validation import is_concrete, validate_ope_inputs
from offrl_jax.core.weights import (
    clip_log_ratios,
    cumulative_log_weights,
    final_log_weight,
    log_discounts,
    normalized_weights,
    safe_ratio,
)
from offrl_jax.ope._common import check_shapes, ope_arrays
from offrl_jax.ope._common import masked as _masked

Array = Any

__all__ = [
    "WeightedEstimate",
    "trajectory_is_return",
    "per_decision_is_return",
    "trajectory_is_returns",
    "per_decision_is_returns",
    "trajectory_is",
    "per_decision_is",
    "weighted_is",
    "weighted_per_decision_is",
    "weighted_is_with_info",
    "weighted_per_decision_is_with_info",
]


class WeightedEstimate(NamedTuple):
    """Result of a self-normalised estimator.

    Attributes:
      estimate: scalar estimate. Where a normaliser sum_n w^n is 0 (every trajectory has weight
        0 there), that term contributes 0: the documented value, never NaN.
      zero_weight_sum: bool scalar, True if some normaliser was 0.
      ess: scalar effective sample size (sum w)^2 / sum w^2 of the final trajectory weights.
    """

    estimate: Array
    zero_weight_sum: Array
    ess: Array


# ----------------------------------------------------------------------------------------------
# Per-trajectory cores ([T] arrays).
# ----------------------------------------------------------------------------------------------
def trajectory_is_return(
    rewards: Array,
    log_ratios: Array,
    mask: Array,
    gamma: Array,
    *,
    max_log_ratio: Optional[float] = None,
    max_log_weight: Optional[float] = None,
) -> Array:
    """One trajectory's importance-weighted return w_{0:L-1} G (per-trajectory core).

    w_{0:L-1} G = exp(sum_t log rho_t) * sum_t gamma^t r_t over the L real steps.

    See "Eligibility Traces for Off-Policy Policy Evaluation", Precup, Sutton & Singh 2000.

    Args:
      rewards: ``[T]`` r_t.
      log_ratios: ``[T]`` log rho_t.
      mask: ``[T]`` 1 on real steps, 0 on padding.
      gamma: scalar discount.
      max_log_ratio: optional per-step truncation of log rho_t.
      max_log_weight: optional truncation of the log trajectory weight.

    Returns:
      scalar w_{0:L-1} G.
    """
    rewards, log_ratios, mask = ope_arrays(rewards, log_ratios, mask)
    chex.assert_rank([rewards, log_ratios, mask], 1)
    chex.assert_equal_shape([rewards, log_ratios, mask])
    r = _masked(rewards, mask)
    log_w = final_log_weight(log_ratios, mask, max_log_ratio, max_log_weight)
    disc = jnp.exp(log_discounts(gamma, r.shape[-1], r.dtype))
    return jnp.exp(log_w) * jnp.sum(disc * r)


def per_decision_is_return(
    rewards: Array,
    log_ratios: Array,
    mask: Array,
    gamma: Array,
    *,
    max_log_ratio: Optional[float] = None,
    max_log_weight: Optional[float] = None,
) -> Array:
    """One trajectory's per-decision importance-weighted return (per-trajectory core).

    sum_t gamma^t w_{0:t} r_t, each term formed as exp(t log gamma + log w_{0:t}) r_t: the
    reward at step t is weighted only by the ratios up to t. Computed by a forward ``lax.scan``
    over time that carries log w_{0:t} (vmapped over a block of trajectories this is one pass
    over cache-resident data, with no ``[T, T]`` cumulative-sum work).

    See "Eligibility Traces for Off-Policy Policy Evaluation", Precup, Sutton & Singh 2000.

    Args:
      rewards: ``[T]`` r_t.
      log_ratios: ``[T]`` log rho_t.
      mask: ``[T]`` 1 on real steps, 0 on padding.
      gamma: scalar discount.
      max_log_ratio: optional per-step truncation of log rho_t.
      max_log_weight: optional truncation of log w_{0:t}.

    Returns:
      scalar sum_t gamma^t w_{0:t} r_t.
    """
    rewards, log_ratios, mask = ope_arrays(rewards, log_ratios, mask)
    chex.assert_rank([rewards, log_ratios, mask], 1)
    chex.assert_equal_shape([rewards, log_ratios, mask])
    r = _masked(rewards, mask)
    lr = clip_log_ratios(_masked(log_ratios, mask), max_log_ratio)
    cap = None if max_log_weight is None else jnp.asarray(max_log_weight, lr.dtype)

    def step(carry, x):
        log_w, total = carry
        lr_t, r_t, log_d_t = x
        log_w = log_w + lr_t
        capped = log_w if cap is None else jnp.minimum(log_w, cap)
        # A zero reward contributes exactly 0, even where its weight overflows to inf.
        term = jnp.where(r_t == 0, jnp.zeros_like(r_t), jnp.exp(capped + log_d_t) * r_t)
        return (log_w, total + term), None

    zero = jnp.zeros((), r.dtype)
    (_, total), _ = jax.lax.scan(step, (zero, zero), (lr, r, log_discounts(gamma, r.shape[-1], r.dtype)))
    return total


def trajectory_is_returns(
    rewards: Array,
    log_ratios: Array,
    mask: Array,
    gamma: Any,
    *,
    max_log_ratio: Optional[float] = None,
    max_log_weight: Optional[float] = None,
    chunk_rows: Optional[int] = None,
) -> Array:
    """``[N]`` per-trajectory terms w^n_{0:L-1} G_n (vmapped :func:`trajectory_is_return`).

    Their mean is :func:`trajectory_is`; they are i.i.d. across trajectories, so they feed
    t-intervals and the bootstrap. Shapes: ``[N, T]`` inputs, ``[N]`` output. Rows are processed
    in blocks of ``chunk_rows`` (see :func:`~offrl_jax.core.blocking.map_rows`).
    """
    rewards, log_ratios, mask = _arrays(rewards, log_ratios, mask)
    f = lambda r, lr, m: trajectory_is_return(r, lr, m, gamma, max_log_ratio=max_log_ratio, max_log_weight=max_log_weight)
    return map_rows(jax.vmap(f), (rewards, log_ratios, mask), chunk_rows)


def per_decision_is_returns(
    rewards: Array,
    log_ratios: Array,
    mask: Array,
    gamma: Any,
    *,
    max_log_ratio: Optional[float] = None,
    max_log_weight: Optional[float] = None,
    chunk_rows: Optional[int] = None,
) -> Array:
    """``[N]`` per-trajectory terms sum_t gamma^t w^n_{0:t} r^n_t (vmapped core).

    Their mean is :func:`per_decision_is`. Shapes: ``[N, T]`` inputs, ``[N]`` output. Rows are
    processed in blocks of ``chunk_rows`` (see :func:`~offrl_jax.core.blocking.map_rows`).
    """
    rewards, log_ratios, mask = _arrays(rewards, log_ratios, mask)
    f = lambda r, lr, m: per_decision_is_return(r, lr, m, gamma, max_log_ratio=max_log_ratio, max_log_weight=max_log_weight)
    return map_rows(jax.vmap(f), (rewards, log_ratios, mask), chunk_rows)


# ----------------------------------------------------------------------------------------------
# Dataset-level estimators ([N, T] arrays).
# ----------------------------------------------------------------------------------------------
def _arrays(rewards, log_ratios, mask):
    """The dtype policy and the ``[N, T]`` shape check (named ``ValueError``)."""
    rewards, log_ratios, mask = ope_arrays(rewards, log_ratios, mask)
    check_shapes(("rewards", rewards), ("log_ratios", log_ratios), mask=mask)
    return rewards, log_ratios, mask


def _check(rewards, log_ratios, mask, gamma, validate):
    """Dtype policy, shapes and (when concrete) the host checks; returns the converted arrays."""
    rewards, log_ratios, mask = _arrays(rewards, log_ratios, mask)
    if validate and is_concrete(rewards, log_ratios, mask, gamma):
        validate_ope_inputs(rewards, log_ratios, mask, gamma)
    return rewards, log_ratios, mask


def trajectory_is(
    rewards: Array,
    log_ratios: Array,
    mask: Array,
    gamma: Any,
    *,
    max_log_ratio: Optional[float] = None,
    max_log_weight: Optional[float] = None,
    validate: bool = True,
    chunk_rows: Optional[int] = None,
) -> Array:
    """Trajectory-wise importance sampling (dataset level).

    J_IS = (1/N) sum_n w^n_{0:T-1} G_n. Unbiased under coverage (without truncation).

    See "Eligibility Traces for Off-Policy Policy Evaluation", Precup, Sutton & Singh 2000.

    Args:
      rewards: ``[N, T]`` r_t (ignored on padding).
      log_ratios: ``[N, T]`` log pi(a_t|s_t) - log pi_beta(a_t|s_t).
      mask: ``[N, T]`` 1 on real steps, 0 on padding (prefix of ones).
      gamma: discount in [0, 1].
      max_log_ratio: optional per-step truncation of log rho_t.
      max_log_weight: optional truncation of the log trajectory weight.
      validate: run the host checks when the inputs are concrete (skipped under tracing).
      chunk_rows: rows per block (a speed/memory knob; default automatic, see
        :func:`~offrl_jax.core.blocking.map_rows`).

    Returns:
      scalar estimate of J(pi).

    Raises:
      ValueError: naming the argument, on bad input (see ``validate_ope_inputs``).
    """
    rewards, log_ratios, mask = _check(rewards, log_ratios, mask, gamma, validate)
    options = dict(max_log_ratio=max_log_ratio, max_log_weight=max_log_weight, chunk_rows=chunk_rows)
    return jnp.mean(
        trajectory_is_returns(rewards, log_ratios, mask, gamma, **options)
    )


def per_decision_is(
    rewards: Array,
    log_ratios: Array,
    mask: Array,
    gamma: Any,
    *,
    max_log_ratio: Optional[float] = None,
    max_log_weight: Optional[float] = None,
    validate: bool = True,
    chunk_rows: Optional[int] = None,
) -> Array:
    """Per-decision importance sampling (dataset level).

    J_PDIS = (1/N) sum_n sum_t gamma^t w^n_{0:t} r^n_t. Unbiased under coverage.

    See "Eligibility Traces for Off-Policy Policy Evaluation", Precup, Sutton & Singh 2000.

    Args:
      rewards: ``[N, T]`` r_t.
      log_ratios: ``[N, T]`` log rho_t.
      mask: ``[N, T]`` 1 on real steps, 0 on padding.
      gamma: discount in [0, 1].
      max_log_ratio: optional per-step truncation of log rho_t.
      max_log_weight: optional truncation of log w_{0:t}.
      validate: run the host checks when the inputs are concrete.
      chunk_rows: rows per block (default automatic).

    Returns:
      scalar estimate of J(pi).
    """
    rewards, log_ratios, mask = _check(rewards, log_ratios, mask, gamma, validate)
    options = dict(max_log_ratio=max_log_ratio, max_log_weight=max_log_weight, chunk_rows=chunk_rows)
    return jnp.mean(
        per_decision_is_returns(rewards, log_ratios, mask, gamma, **options)
    )


def weighted_is_with_info(
    rewards: Array,
    log_ratios: Array,
    mask: Array,
    gamma: Any,
    *,
    max_log_ratio: Optional[float] = None,
    max_log_weight: Optional[float] = None,
    validate: bool = True,
    chunk_rows: Optional[int] = None,
) -> WeightedEstimate:
    """Weighted (self-normalised) importance sampling with status (dataset level).

    J_WIS = sum_n w^n_{0:T-1} G_n / sum_n w^n_{0:T-1}, with w^n / sum_j w^j a softmax of the log
    weights over n. If every trajectory weight is 0 the estimate is 0 and ``zero_weight_sum`` is
    True. Biased, consistent; a convex combination of the returns G_n.

    See "Eligibility Traces for Off-Policy Policy Evaluation", Precup, Sutton & Singh 2000.

    Args: as :func:`weighted_is`.

    Returns:
      :class:`WeightedEstimate` (scalar estimate, bool flag, scalar ESS).
    """
    rewards, log_ratios, mask = _check(rewards, log_ratios, mask, gamma, validate)
    disc = jnp.exp(log_discounts(gamma, rewards.shape[-1], rewards.dtype))

    def rows(r, lr, m):
        log_w = final_log_weight(lr, m, max_log_ratio, max_log_weight)
        return log_w, jnp.sum(_masked(r, m) * disc[None, :], axis=-1)

    log_w, returns = map_rows(rows, (rewards, log_ratios, mask), chunk_rows)
    w_bar, zero = normalized_weights(log_w, axis=0)
    return WeightedEstimate(jnp.sum(w_bar * returns), zero, effective_sample_size(log_w))


def weighted_is(
    rewards: Array,
    log_ratios: Array,
    mask: Array,
    gamma: Any,
    *,
    max_log_ratio: Optional[float] = None,
    max_log_weight: Optional[float] = None,
    validate: bool = True,
    chunk_rows: Optional[int] = None,
) -> Array:
    """Weighted (self-normalised) importance sampling (dataset level).

    J_WIS = sum_n w^n_{0:T-1} G_n / sum_n w^n_{0:T-1}; 0 if every weight is 0 (use
    :func:`weighted_is_with_info` for the flag).

    See "Eligibility Traces for Off-Policy Policy Evaluation", Precup, Sutton & Singh 2000.

    Args:
      rewards: ``[N, T]`` r_t.
      log_ratios: ``[N, T]`` log rho_t.
      mask: ``[N, T]`` 1 on real steps, 0 on padding.
      gamma: discount in [0, 1].
      max_log_ratio: optional per-step truncation of log rho_t.
      max_log_weight: optional truncation of the log trajectory weight.
      validate: run the host checks when the inputs are concrete.
      chunk_rows: rows per block (default automatic).

    Returns:
      scalar estimate of J(pi).
    """
    return weighted_is_with_info(
        rewards, log_ratios, mask, gamma, max_log_ratio=max_log_ratio, max_log_weight=max_log_weight,
        validate=validate, chunk_rows=chunk_rows,
    ).estimate


def weighted_per_decision_is_with_info(
    rewards: Array,
    log_ratios: Array,
    mask: Array,
    gamma: Any,
    *,
    max_log_ratio: Optional[float] = None,
    max_log_weight: Optional[float] = None,
    validate: bool = True,
    chunk_rows: Optional[int] = None,
) -> WeightedEstimate:
    """Weighted per-decision IS with a normaliser per step, plus status (dataset level).

    J_WPDIS = sum_t gamma^t [sum_n w^n_{0:t} r^n_t / sum_n w^n_{0:t}]. Finished trajectories keep
    their frozen weight w^n_{0:L_n-1} (and reward 0) in later normalisers. A step whose
    normaliser is 0 contributes 0 and sets ``zero_weight_sum``. Thomas calls this per-step form
    CWPDIS ("consistent weighted per-decision IS"); it is biased and consistent.

    See "Eligibility Traces for Off-Policy Policy Evaluation", Precup, Sutton & Singh 2000, and
    "Safe Reinforcement Learning", Thomas 2015 (PhD thesis, CWPDIS).

    Args: as :func:`weighted_per_decision_is`.

    Returns:
      :class:`WeightedEstimate` (scalar estimate, bool flag, scalar ESS of the final weights).
    """
    rewards, log_ratios, mask = _check(rewards, log_ratios, mask, gamma, validate)
    disc = jnp.exp(log_discounts(gamma, rewards.shape[-1], rewards.dtype))

    def rows(r, lr, m):
        log_w = cumulative_log_weights(lr, m, max_log_ratio, max_log_weight)
        return log_w[:, -1], ((log_w, _masked(r, m)[None]),)

    log_w_final, (sums,) = scan_rows(rows, (rewards, log_ratios, mask), chunk_rows)
    per_step = safe_ratio(sums.sums[0], sums.total)
    ess = effective_sample_size(log_w_final)
    return WeightedEstimate(jnp.sum(disc * per_step), jnp.any(sums.total <= 0), ess)


def weighted_per_decision_is(
    rewards: Array,
    log_ratios: Array,
    mask: Array,
    gamma: Any,
    *,
    max_log_ratio: Optional[float] = None,
    max_log_weight: Optional[float] = None,
    validate: bool = True,
    chunk_rows: Optional[int] = None,
) -> Array:
    """Weighted per-decision importance sampling (dataset level).

    J_WPDIS = sum_t gamma^t [sum_n w^n_{0:t} r^n_t / sum_n w^n_{0:t}], finished trajectories keeping
    their final weight in the normalisers; a 0/0 step contributes 0 (see
    :func:`weighted_per_decision_is_with_info` for the flag).

    See "Eligibility Traces for Off-Policy Policy Evaluation", Precup, Sutton & Singh 2000.

    Args:
      rewards: ``[N, T]`` r_t.
      log_ratios: ``[N, T]`` log rho_t.
      mask: ``[N, T]`` 1 on real steps, 0 on padding.
      gamma: discount in [0, 1].
      max_log_ratio: optional per-step truncation of log rho_t.
      max_log_weight: optional truncation of log w_{0:t}.
      validate: run the host checks when the inputs are concrete.
      chunk_rows: rows per block (default automatic).

    Returns:
      scalar estimate of J(pi).
    """
    return weighted_per_decision_is_with_info(
        rewards, log_ratios, mask, gamma, max_log_ratio=max_log_ratio, max_log_weight=max_log_weight,
        validate=validate, chunk_rows=chunk_rows,
    ).estimate

