"""Importance ratios and cumulative importance weights, all in log space.

Conventions: trajectory arrays are padded ``[N, T]`` with a
``mask`` that is 1 on real steps and 0 on padding (a prefix of ones per row); step ``t`` is
discounted by ``gamma**t``. The per-step log importance ratio is

    log rho_t = log pi(a_t | s_t) - log pi_beta(a_t | s_t),

0 on padding (a finished trajectory sits in an absorbing state with ratio 1), and the cumulative
weight is w_{0:t} = prod_{k<=t} rho_k = exp(sum_{k<=t} log rho_k). Computing the cumulative sum
of log ratios and taking one ``exp`` keeps weights finite over horizons of 10^4 steps where a
running product of ratios overflows, and weighted (self-normalised) estimators normalise across
trajectories with a max-shifted softmax that never forms the raw weights at all.

``log rho_t = -inf`` (the target never takes the logged action) is legal and gives weight 0;
``+inf`` (behaviour probability 0 where the target acts) violates coverage and is rejected by
the host checks.

See "Eligibility Traces for Off-Policy Policy Evaluation", Precup, Sutton & Singh 2000.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp

from offrl_jax.core.dtypes import as_float, float_inputs
from offrl_jax.core.validation import check_log_prob_pair, is_concrete

Array = Any

__all__ = [
    "log_importance_ratios",
    "clip_log_ratios",
    "cumsum_last",
    "cumulative_log_weights",
    "final_log_weight",
    "log_discounts",
    "normalized_weights",
    "importance_weights",
    "safe_ratio",
]

def log_importance_ratios(
    target_log_probs: Array, behavior_log_probs: Array, mask: Array, *, validate: bool = True
) -> Array:
    """Masked per-step log importance ratios.

    log rho_t = log pi(a_t|s_t) - log pi_beta(a_t|s_t) on real steps and 0 on padding. Uses the
    double-``where`` trick so that ``-inf`` log-probabilities on padding produce neither NaN
    values nor NaN gradients. Works on any shape (``[T]`` or ``[N, T]``).

    See "Eligibility Traces for Off-Policy Policy Evaluation", Precup, Sutton & Singh 2000.

    Args:
      target_log_probs: ``[N, T]`` log pi(a_t | s_t) at the logged actions.
      behavior_log_probs: ``[N, T]`` log pi_beta(a_t | s_t) at the logged actions.
      mask: ``[N, T]`` 1 on real steps, 0 on padding.
      validate: run the host checks when the inputs are concrete (skipped under tracing); pass
        ``False`` where invalid values are expected and handled by the caller.

    Returns:
      ``[N, T]`` log rho_t, 0 on padding.

    Raises:
      ValueError: naming the argument (checked when the inputs are concrete), if a shape differs
        from ``mask``'s, a log-probability on a real step is NaN, ``+inf`` or > 0, or the
        behaviour log-probability is ``-inf`` where the target's is not (the ratio would be
        ``+inf``). Numeric inputs follow :mod:`offrl_jax.core.dtypes`.
    """
    if validate and is_concrete(target_log_probs, behavior_log_probs, mask):
        check_log_prob_pair(target_log_probs, behavior_log_probs, mask)
    target_log_probs, behavior_log_probs = float_inputs(
        [target_log_probs, behavior_log_probs], ["target_log_probs", "behavior_log_probs"]
    )
    real = jnp.asarray(mask) > 0
    safe_t = jnp.where(real, target_log_probs, 0.0)
    safe_b = jnp.where(real, behavior_log_probs, 0.0)
    return jnp.where(real, safe_t - safe_b, jnp.zeros_like(safe_t - safe_b))


def clip_log_ratios(log_ratios: Array, max_log_ratio: Optional[float] = None) -> Array:
    """Per-step truncation rho_t <- min(rho_t, c), done in log space as min(log rho_t, log c).

    Args:
      log_ratios: ``[..., T]`` log rho_t.
      max_log_ratio: log c; ``None`` leaves the ratios unchanged.

    Returns:
      ``[..., T]`` clipped log ratios.
    """
    log_ratios = as_float(log_ratios, "log_ratios")
    if max_log_ratio is None:
        return log_ratios
    return jnp.minimum(log_ratios, jnp.asarray(max_log_ratio, log_ratios.dtype))


def cumsum_last(x: Array, block: int = 128) -> Array:
    """Inclusive cumulative sum along the last axis, as blocked triangular matmuls.

    XLA's CPU ``cumsum`` costs O(T^2) per row (a reduce-window), which dominated the estimators
    at T = 100. Here the last axis is cut into blocks of ``block`` steps: one ``[.., B] @ [B, B]``
    upper-triangular matmul per block (full float32/float64 precision, never TF32) plus a short
    cumulative sum of the block totals. Infinite entries (log 0 = -inf) are carried through
    exactly: they are replaced by +-1e30 for the matmul and restored afterwards.

    Args:
      x: ``[..., T]`` values.
      block: block length B.

    Returns:
      ``[..., T]`` with out[..., t] = sum_{k<=t} x[..., k] (half precision and integers computed
      in float, see :mod:`offrl_jax.core.dtypes`: 1e30 is not a float16).
    """
    x = as_float(x, "x")
    t = x.shape[-1]
    big = jnp.asarray(1e30, x.dtype)
    xf = jnp.clip(x, -big, big)
    b = min(block, t)
    nb = -(-t // b)
    pad = nb * b - t
    if pad:
        xf = jnp.concatenate([xf, jnp.zeros(xf.shape[:-1] + (pad,), xf.dtype)], axis=-1)
    xb = xf.reshape(xf.shape[:-1] + (nb, b))
    tri = jnp.triu(jnp.ones((b, b), xf.dtype))
    within = jnp.matmul(xb, tri, precision=jax.lax.Precision.HIGHEST)
    totals = within[..., -1]
    offsets = jnp.cumsum(totals, axis=-1) - totals
    out = (within + offsets[..., None]).reshape(xf.shape)[..., :t]
    out = jnp.where(out <= -1e29, -jnp.inf, out)
    return jnp.where(out >= 1e29, jnp.inf, out)


def cumulative_log_weights(
    log_ratios: Array,
    mask: Array,
    max_log_ratio: Optional[float] = None,
    max_log_weight: Optional[float] = None,
) -> Array:
    """Cumulative log importance weights log w_{0:t} = sum_{k<=t} log rho_k along the last axis.

    Padded steps add 0, so a finished trajectory keeps its final weight (w_{0:t} = w_{0:L-1} for
    t >= L), as the weighted per-decision normalisers require. Optional truncation, both in log
    space: per-step rho_k <- min(rho_k, exp(max_log_ratio)) before the sum, and cumulative
    w_{0:t} <- min(w_{0:t}, exp(max_log_weight)) after it (truncated importance sampling,
    "Truncated importance sampling", Ionides 2008). Truncation trades bias for variance.

    Args:
      log_ratios: ``[..., T]`` log rho_t (any leading shape, e.g. ``[T]`` or ``[N, T]``).
      mask: ``[..., T]`` 1 on real steps, 0 on padding.
      max_log_ratio: optional per-step bound on log rho_t.
      max_log_weight: optional bound on log w_{0:t}.

    Returns:
      ``[..., T]`` log w_{0:t} (``-inf`` where some earlier ratio is 0). Integer and half
      precision inputs are computed in float (:mod:`offrl_jax.core.dtypes`).
    """
    log_ratios = as_float(log_ratios, "log_ratios")
    lr = jnp.where(jnp.asarray(mask) > 0, log_ratios, jnp.zeros_like(log_ratios))
    lr = clip_log_ratios(lr, max_log_ratio)
    log_w = cumsum_last(lr)
    if max_log_weight is not None:
        log_w = jnp.minimum(log_w, jnp.asarray(max_log_weight, log_w.dtype))
    return log_w


def final_log_weight(
    log_ratios: Array,
    mask: Array,
    max_log_ratio: Optional[float] = None,
    max_log_weight: Optional[float] = None,
) -> Array:
    """log w_{0:T-1} = sum_t log rho_t along the last axis: the last column of
    :func:`cumulative_log_weights`, formed as a plain sum (no cumulative-sum work), with the same
    optional truncations (per step before the sum, cumulative after it).

    Args:
      log_ratios: ``[..., T]`` log rho_t.
      mask: ``[..., T]`` 1 on real steps, 0 on padding.
      max_log_ratio: optional per-step bound on log rho_t.
      max_log_weight: optional bound on log w_{0:T-1}.

    Returns:
      ``[...]`` log w_{0:T-1}.
    """
    log_ratios = as_float(log_ratios, "log_ratios")
    lr = jnp.where(jnp.asarray(mask) > 0, log_ratios, jnp.zeros_like(log_ratios))
    log_w = jnp.sum(clip_log_ratios(lr, max_log_ratio), axis=-1)
    if max_log_weight is not None:
        log_w = jnp.minimum(log_w, jnp.asarray(max_log_weight, log_w.dtype))
    return log_w


def log_discounts(gamma: Array, length: int, dtype: Any) -> Array:
    """``[length]`` log gamma^t = t log gamma for t = 0..length-1 (gamma = 0 gives 0, -inf, ...).

    Keeping the discount in log space lets gamma^t w_{0:t} be formed as one ``exp`` of a sum, so
    neither factor under- or overflows on its own.
    """
    t = jnp.arange(length, dtype=dtype)
    g = jnp.asarray(gamma, dtype)
    pos = g > 0
    log_g = jnp.log(jnp.where(pos, g, jnp.ones_like(g)))
    zero_case = jnp.where(t == 0, jnp.zeros_like(t), jnp.full_like(t, -jnp.inf))
    return jnp.where(pos, t * log_g, zero_case)


def normalized_weights(log_weights: Array, axis: int = 0) -> tuple[Array, Array]:
    """Self-normalised weights w_n / sum_j w_j from log weights, by a guarded softmax.

    Computed as exp(log w_n - max_j log w_j) / sum_j exp(log w_j - max_j log w_j), so weights of
    e^{+-1000} normalise exactly in float32. When every weight along ``axis`` is 0 (all log
    weights ``-inf``) the normaliser is 0/0: the normalised weights are defined as 0 there and the
    returned flag is True, instead of NaN.

    Args:
      log_weights: log weights, e.g. ``[N]`` or ``[N, T]`` with trajectories on ``axis``.
      axis: the trajectory axis to normalise over.

    Returns:
      ``(weights, zero_sum)``: weights of the input's shape, summing to 1 along ``axis`` (or all
      0), and a bool array of the input's shape without ``axis``, True where all weights are 0.
    """
    log_weights = as_float(log_weights, "log_weights")
    m = jnp.max(log_weights, axis=axis, keepdims=True)
    finite = jnp.isfinite(m)
    m_safe = jnp.where(finite, m, jnp.zeros_like(m))
    e = jnp.exp(log_weights - m_safe)
    s = jnp.sum(e, axis=axis, keepdims=True)
    ok = finite & (s > 0)
    w = jnp.where(ok, e / jnp.where(ok, s, jnp.ones_like(s)), jnp.zeros_like(e))
    return w, ~jnp.squeeze(ok, axis=axis)


def safe_ratio(num: Array, den: Array) -> Array:
    """num / den where den > 0, else 0 (the documented value of a 0/0 normaliser)."""
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, jnp.ones_like(den)), jnp.zeros_like(num))


def importance_weights(
    log_weights: Array,
    max_log_weight: Optional[float] = None,
    self_normalize: bool = False,
    axis: int = 0,
) -> Array:
    """Weights from log weights: truncated in log space, then divided by N or self-normalised.

    w_n <- min(w_n, exp(max_log_weight)); then w_n / N (ordinary importance sampling) or
    w_n / sum_j w_j (weighted, self-normalised importance sampling) along ``axis``, by the
    guarded softmax of :func:`normalized_weights` (0 where every weight is 0).

    Args:
      log_weights: log weights with trajectories on ``axis`` (e.g. ``[N]`` or ``[N, T]``).
      max_log_weight: optional bound on log w (truncated importance sampling, Ionides 2008).
      self_normalize: divide by the sum of the weights instead of by N.
      axis: the trajectory axis.

    Returns:
      weights of the input's shape.
    """
    log_weights = clip_log_ratios(as_float(log_weights, "log_weights"), max_log_weight)
    if self_normalize:
        return normalized_weights(log_weights, axis=axis)[0]
    return jnp.exp(log_weights) / log_weights.shape[axis]
