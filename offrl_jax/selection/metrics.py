"""Off-policy selection metrics: how well estimates of K policies' values rank and pick them.

Each function compares ``estimates[K]`` (what an estimator says about K candidate policies) with
``true_values[K]`` (their exact or Monte-Carlo values) for one task; callers ``vmap`` over
tasks, datasets or seeds. The sizes ``k`` are static Python ints. Concrete inputs are checked on
the host (``ValueError`` naming the argument); under ``jit``/``vmap`` only shapes are checked.

Definitions (all on one task):

* relative error |Ĵ_i − J_i| / |J_i| (per policy) and relative RMSE sqrt(mean_d (Ĵ_d − J)²) / |J|
  over datasets d ("Empirical Study of Off-Policy Policy Evaluation for Reinforcement
  Learning", Voloshin et al. 2019, report relative MSE = MSE / J²);
* MSE (1/K) Σ_i (Ĵ_i − J_i)², its root, and the normalised forms that first map both to
  (x − min_j J_j) / (max_j J_j − min_j J_j) ("Benchmarks for Deep Off-Policy Evaluation", Fu et
  al. 2021, normalise every task this way so that the best policy scores 1 and the worst 0);
* Spearman's rank correlation, the Pearson correlation of the ranks, ties given their average
  rank (as ``scipy.stats.spearmanr``); Fu et al. 2021;
* regret@k = (max_i J_i − max_{i ∈ top-k(Ĵ)} J_i) / (max_i J_i − min_i J_i): the normalised
  value lost by deploying the best (truly) of the k policies the estimates rank highest (Fu et
  al. 2021; ``normalize=False`` drops the denominator);
* precision@k = |top-k(Ĵ) ∩ top-k(J)| / k (Fu et al. 2021 report it as "precision@k" among
  their top-k statistics);
* SharpeRatio@k = max(best@k − J(π_b), 0) / std@k, best@k the largest and std@k the sample
  standard deviation (ddof 1) of the true values of top-k(Ĵ), J(π_b) the behaviour policy's value
  ("Towards Assessing and Benchmarking Risk-Return Tradeoff of Off-Policy Evaluation",
  Kiyohara et al. 2023; as in SCOPE-RL's ``OffPolicySelection``, the excess return is clipped
  at 0).

top-k(x) is the set of the k largest entries of x; ties are broken towards the lower index
(``jax.lax.top_k``).
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.core.dtypes import float_inputs
from offrl_jax.core.validation import is_concrete

Array = Any

__all__ = [
    "relative_error",
    "relative_rmse",
    "mean_squared_error",
    "root_mean_squared_error",
    "average_ranks",
    "spearman_rank_correlation",
    "top_k",
    "regret_at_k",
    "precision_at_k",
    "sharpe_ratio_at_k",
]


# ----------------------------------------------------------------------------------------------
# Host checks.
# ----------------------------------------------------------------------------------------------
def _check_pair(estimates, true_values, min_size: int = 1):
    """One float dtype for both; ``[K]`` arrays of equal shape, finite when concrete."""
    est, tru = float_inputs([estimates, true_values], ["estimates", "true_values"])
    for x, name in ((est, "estimates"), (tru, "true_values")):
        if x.ndim != 1:
            raise ValueError(f"{name}: expected one value per policy, shape [K], found {list(x.shape)}")
    if est.shape != tru.shape:
        raise ValueError(f"true_values: expected shape {list(est.shape)} like estimates, found {list(tru.shape)}")
    if est.shape[0] < min_size:
        raise ValueError(f"estimates: expected at least K = {min_size} policies, found K = {est.shape[0]}")
    for x, name in ((est, "estimates"), (tru, "true_values")):
        if is_concrete(x) and not np.all(np.isfinite(np.asarray(x))):
            idx = int(np.argwhere(~np.isfinite(np.asarray(x)))[0, 0])
            raise ValueError(f"{name}: expected finite values, found {np.asarray(x)[idx]} at index {idx}")
    return est, tru


def _check_k(k: Any, size: int, minimum: int = 1) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not minimum <= k <= size:
        raise ValueError(f"k: expected a Python int in [{minimum}, K = {size}], found {k!r}")
    return int(k)


def _safe_div(num: Array, den: Array) -> Array:
    """num / den, and NaN where den = 0 (undefined, as in NumPy; no division warning inside jit)."""
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), jnp.nan)


# ----------------------------------------------------------------------------------------------
# Accuracy.
# ----------------------------------------------------------------------------------------------
def relative_error(estimates: Array, true_values: Array) -> Array:
    """Per-policy relative error |Ĵ_i − J_i| / |J_i| (NaN where J_i = 0).

    See "Empirical Study of Off-Policy Policy Evaluation for Reinforcement Learning", Voloshin
    et al. 2019.

    Args:
      estimates: ``[K]`` Ĵ_i.
      true_values: ``[K]`` J_i.

    Returns:
      ``[K]`` relative errors.
    """
    est, tru = _check_pair(estimates, true_values)
    return _safe_div(jnp.abs(est - tru), jnp.abs(tru))


def relative_rmse(estimates: Array, true_value: Array) -> Array:
    """Relative RMSE of one estimator over D datasets: sqrt((1/D) Σ_d (Ĵ_d − J)²) / |J|.

    The square root of COBS's relative MSE (Voloshin et al. 2019); NaN when J = 0.

    Args:
      estimates: ``[D]`` estimates Ĵ_d of the same value on D independent datasets.
      true_value: scalar J.

    Returns:
      Scalar relative RMSE.
    """
    est, tru = float_inputs([estimates, true_value], ["estimates", "true_value"])
    if est.ndim != 1 or est.shape[0] < 1:
        raise ValueError(f"estimates: expected one estimate per dataset, shape [D], found {list(est.shape)}")
    if tru.ndim != 0:
        raise ValueError(f"true_value: expected a scalar, found shape {list(tru.shape)}")
    return _safe_div(jnp.sqrt(jnp.mean((est - tru) ** 2)), jnp.abs(tru))


def _minmax(est, tru):
    lo, hi = jnp.min(tru), jnp.max(tru)
    span = hi - lo
    return _safe_div(est - lo, span), _safe_div(tru - lo, span)


def mean_squared_error(estimates: Array, true_values: Array, *, normalize: bool = False) -> Array:
    """MSE over K policies, (1/K) Σ_i (Ĵ_i − J_i)².

    With ``normalize`` both are first mapped to (x − min_j J_j) / (max_j J_j − min_j J_j), the
    per-task normalisation of "Benchmarks for Deep Off-Policy Evaluation", Fu et al. 2021 (NaN
    when all J_i are equal).

    Args:
      estimates: ``[K]``; true_values: ``[K]``.
      normalize: min-max normalise by the true values first (static).

    Returns:
      Scalar MSE.
    """
    est, tru = _check_pair(estimates, true_values)
    if normalize:
        est, tru = _minmax(est, tru)
    return jnp.mean((est - tru) ** 2)


def root_mean_squared_error(estimates: Array, true_values: Array, *, normalize: bool = False) -> Array:
    """RMSE over K policies, sqrt((1/K) Σ_i (Ĵ_i − J_i)²) (min-max normalised with ``normalize``,
    as :func:`mean_squared_error`; Fu et al. 2021)."""
    return jnp.sqrt(mean_squared_error(estimates, true_values, normalize=normalize))


# ----------------------------------------------------------------------------------------------
# Ranking.
# ----------------------------------------------------------------------------------------------
def average_ranks(x: Array) -> Array:
    """1-based ranks of ``x[K]`` in increasing order, ties sharing their average rank.

    rank_i = #{j : x_j < x_i} + (#{j : x_j = x_i} + 1) / 2 (pairwise comparisons, O(K²), which
    keeps it one fused, vmappable expression for the K of model selection).
    """
    x = jnp.asarray(x)
    chex.assert_rank(x, 1)
    less = jnp.sum(x[None, :] < x[:, None], axis=-1)
    equal = jnp.sum(x[None, :] == x[:, None], axis=-1)
    dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.result_type(float)
    return less.astype(dtype) + (equal.astype(dtype) + 1.0) / 2.0


def spearman_rank_correlation(estimates: Array, true_values: Array) -> Array:
    """Spearman's rank correlation ρ = corr(rank(Ĵ), rank(J)), ties given average ranks.

    ρ = Σ_i (u_i − ū)(v_i − v̄) / sqrt(Σ_i (u_i − ū)² Σ_i (v_i − v̄)²), u = rank(Ĵ), v = rank(J)
    (:func:`average_ranks`); equals ``scipy.stats.spearmanr``. NaN when either input is constant.
    See "The proof and measurement of association between two things", Spearman 1904; used for
    policy selection by Fu et al. 2021.

    Args:
      estimates: ``[K]`` Ĵ_i, K ≥ 2.
      true_values: ``[K]`` J_i.

    Returns:
      Scalar ρ in [−1, 1].
    """
    est, tru = _check_pair(estimates, true_values, min_size=2)
    u, v = average_ranks(est), average_ranks(tru)
    u, v = u - jnp.mean(u), v - jnp.mean(v)
    return _safe_div(jnp.sum(u * v), jnp.sqrt(jnp.sum(u * u) * jnp.sum(v * v)))


def top_k(x: Array, k: int) -> Array:
    """``[k]`` indices of the k largest entries of ``x[K]`` (largest first; ties: lower index)."""
    return jax.lax.top_k(jnp.asarray(x), k)[1]


def regret_at_k(estimates: Array, true_values: Array, k: int = 1, *, normalize: bool = True) -> Array:
    """Normalised regret@k = (max_i J_i − max_{i ∈ top-k(Ĵ)} J_i) / (max_i J_i − min_i J_i).

    The value lost by deploying the truly best of the k policies the estimates rank highest, as a
    fraction of the spread of the candidates' values ("Benchmarks for Deep Off-Policy
    Evaluation", Fu et al. 2021, regret@k on min-max normalised returns). regret@1 =
    (max J − J[argmax Ĵ]) / (max J − min J). 0 when the spread is 0 (nothing to lose).
    ``normalize=False`` returns the unnormalised gap.

    Args:
      estimates: ``[K]`` Ĵ_i.
      true_values: ``[K]`` J_i.
      k: how many top-ranked policies are deployed (static, 1 ≤ k ≤ K).
      normalize: divide by max J − min J (static).

    Returns:
      Scalar regret in [0, 1] (normalised).
    """
    est, tru = _check_pair(estimates, true_values)
    k = _check_k(k, est.shape[0])
    gap = jnp.max(tru) - jnp.max(tru[top_k(est, k)])
    if not normalize:
        return gap
    span = jnp.max(tru) - jnp.min(tru)
    return jnp.where(span > 0, gap / jnp.where(span > 0, span, 1.0), 0.0)


def precision_at_k(estimates: Array, true_values: Array, k: int) -> Array:
    """precision@k = |top-k(Ĵ) ∩ top-k(J)| / k: the share of the k policies ranked highest by the
    estimates that are among the k truly best (Fu et al. 2021).

    Args:
      estimates: ``[K]``; true_values: ``[K]``.
      k: static int, 1 ≤ k ≤ K.

    Returns:
      Scalar in [0, 1].
    """
    est, tru = _check_pair(estimates, true_values)
    k = _check_k(k, est.shape[0])
    picked = top_k(est, k)
    best = top_k(tru, k)
    hits = jnp.sum(picked[:, None] == best[None, :])
    return hits.astype(est.dtype) / k


def sharpe_ratio_at_k(estimates: Array, true_values: Array, behavior_value: Array, k: int) -> Array:
    """SharpeRatio@k = max(best@k − J(π_b), 0) / std@k (Kiyohara et al. 2023, SCOPE-RL).

    best@k = max_{i ∈ top-k(Ĵ)} J_i and std@k the sample standard deviation (ddof 1) of
    {J_i : i ∈ top-k(Ĵ)}: the return a selection of k candidates gains over the behaviour policy
    per unit of risk taken by deploying them. NaN (or inf) when the k true values are equal. See
    "Towards Assessing and Benchmarking Risk-Return Tradeoff of Off-Policy Evaluation",
    Kiyohara, Kishimoto, Nakata, Yasui, Saito & Narita 2023.

    Args:
      estimates: ``[K]`` Ĵ_i.
      true_values: ``[K]`` J_i.
      behavior_value: scalar J(π_b).
      k: static int, 2 ≤ k ≤ K (the standard deviation needs two values).

    Returns:
      Scalar SharpeRatio@k ≥ 0.
    """
    est, tru = _check_pair(estimates, true_values, min_size=2)
    k = _check_k(k, est.shape[0], minimum=2)
    (base,) = float_inputs([behavior_value], ["behavior_value"], dtype=tru.dtype)
    if base.ndim != 0:
        raise ValueError(f"behavior_value: expected a scalar J(pi_b), found shape {list(base.shape)}")
    values = tru[top_k(est, k)]
    excess = jnp.maximum(jnp.max(values) - base, 0.0)
    std = jnp.std(values, ddof=1)
    return jnp.where(std > 0, excess / jnp.where(std > 0, std, 1.0), jnp.where(excess > 0, jnp.inf, jnp.nan))
