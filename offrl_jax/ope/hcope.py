"""High-confidence off-policy evaluation (HCOPE): a finite-sample lower bound on J(pi).

With returns normalised to R~ = (G - g_min)/(g_max - g_min) in [0, 1], the importance-weighted
X_n = w_n R~_n >= 0 has E X = J~(pi). The trajectories are split at random into D_pre and
D_post; a truncation constant c is chosen on D_pre only, and Thm 1 of Thomas et al. (an
empirical-Bernstein bound for the truncated Y = min(X, c)) is applied to D_post:

    LB = Y-bar - 7 c ln(2/delta) / (3 (n_post - 1)) - sqrt(2 ln(2/delta) s_Y^2 / n_post).

Truncation only lowers the mean, so any c independent of D_post keeps the 1 - delta guarantee;
choosing c on the same data as the bound voids it.

See "High Confidence Off-Policy Evaluation", Thomas, Theocharous & Ghavamzadeh 2015 (AAAI), and
"Empirical Bernstein bounds and sample variance penalization", Maurer & Pontil 2009.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.core.dtypes import float_inputs
from offrl_jax.core.validation import is_concrete
from offrl_jax.ope._common import check_confidence, check_prng_key, check_range, check_samples

Array = Any

__all__ = ["HCOPEResult", "hcope_split", "hcope_threshold", "hcope_lower_bound"]


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


def hcope_split(key: Array, num_items: int, split: float = 0.05):
    """Random disjoint split of trajectory indices into D_pre (floor(split n)) and D_post (the rest).

    Returns:
      ``(pre_indices [n_pre], post_indices [n - n_pre])`` int arrays.
    """
    n_pre = int(math.floor(split * num_items))
    check_prng_key(key)
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
    check_prng_key(key)
    check_confidence(confidence)
    check_samples(returns, "returns")
    check_range(returns, g_min, g_max, "returns", range_names="g_min, g_max")
    lw, returns = float_inputs([log_weights, returns], ["log_weights", "returns"])
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
    dtype = lw.dtype
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
