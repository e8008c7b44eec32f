"""Direct method, doubly robust (DR) and weighted doubly robust (WDR) estimators.

Model terms: ``q_taken[n, t] = Q-hat(s_t, a_t)`` and ``v_hat[n, t] = sum_a pi(a|s_t) Q-hat(s_t, a)``,
both ``[N, T]`` (0 on padding). DR is unbiased for any fixed Q-hat independent of the data only
with this V-hat. For a finite horizon, Q-hat must be horizon-aware (Q-hat_t estimates the
remaining T - t steps).

DR is the backward recursion of Jiang & Li, one trajectory at a time,

    V_DR(T) = 0,   V_DR(t) = V-hat(s_t) + rho_t (r_t + gamma V_DR(t+1) - Q-hat(s_t, a_t)),

run as ``lax.scan(..., reverse=True)``; the recursion is affine in V_DR(t+1), so
``method="associative"`` runs the same recursion as a ``lax.associative_scan`` over affine maps
(log-depth, for long horizons on accelerators), and ``method="weights"`` uses the unrolled form
(1/N) sum_n sum_t gamma^t [w_{0:t} (r_t - Q-hat_t) + w_{0:t-1} V-hat_t] with the weights in log
space (robust when partial products of ratios overflow). All three agree. The one-step (bandit)
DR of Dudik, Langford & Li 2011 is the T = 1 case.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Union

import chex
import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.core.blocking import map_rows, scan_rows
from offrl_jax.core.diagnostics import effective_sample_size
from offrl_jax.core.model_terms import ModelTerms  # noqa: F401  (still imported from here by fitted.horizon)
from offrl_jax.core.validation import is_concrete, validate_ope_inputs
from offrl_jax.core.weights import cumulative_log_weights, log_discounts, safe_ratio
from offrl_jax.ope._common import masked as _masked
from offrl_jax.ope.importance_sampling import WeightedEstimate

Array = Any

__all__ = [
    "direct_method",
    "direct_method_from_q",
    "doubly_robust_values",
    "doubly_robust_returns",
    "doubly_robust",
    "weighted_doubly_robust",
    "weighted_doubly_robust_with_info",
]

_METHODS = ("scan", "associative", "weights")


def direct_method(v_hat_initial: Array) -> Array:
    """Direct method (model-based) estimate: the mean of V-hat(s_0) over trajectories.

    J_DM = (1/N) sum_n V-hat(s^n_0), with V-hat(s) = sum_a pi(a|s) Q-hat(s, a). Its accuracy is
    entirely the model's: biased when Q-hat is wrong (see "Doubly Robust Off-policy Value
    Evaluation for Reinforcement Learning", Jiang & Li 2016, and "Data-Efficient Off-Policy
    Policy Evaluation for Reinforcement Learning", Thomas & Brunskill 2016, where it is g^(-1)).

    Args:
      v_hat_initial: ``[N]`` V-hat(s^n_0).

    Returns:
      scalar estimate of J(pi).

    Raises:
      ValueError: for an empty or non-finite ``v_hat_initial`` (checked when concrete).
    """
    if is_concrete(v_hat_initial):
        a = np.asarray(v_hat_initial)
        if a.ndim != 1 or a.shape[0] == 0:
            raise ValueError(f"v_hat_initial: expected a non-empty [N] array, found shape {list(a.shape)}")
        if not np.all(np.isfinite(a)):
            raise ValueError("v_hat_initial: expected finite values, found NaN or inf")
    chex.assert_rank(v_hat_initial, 1)
    return jnp.mean(v_hat_initial)


def direct_method_from_q(
    q_hat: Union[Array, Callable[[Array], Array]],
    target_probs: Array,
    initial_observations: Optional[Array] = None,
) -> Array:
    """Direct method from Q-hat at the initial states: (1/N) sum_n sum_a pi(a|s^n_0) Q-hat(s^n_0, a).

    See ``direct_method`` (Jiang & Li 2016; Thomas & Brunskill 2016).

    Args:
      q_hat: ``[N, A]`` Q-hat(s^n_0, a), or a callable mapping ``initial_observations`` to it.
      target_probs: ``[N, A]`` pi(a | s^n_0).
      initial_observations: ``[N, ...]`` s^n_0, needed when ``q_hat`` is a callable.

    Returns:
      scalar estimate of J(pi).
    """
    if callable(q_hat):
        if initial_observations is None:
            raise ValueError("initial_observations: required when q_hat is a callable")
        q_hat = q_hat(initial_observations)
    q_hat = jnp.asarray(q_hat)
    target_probs = jnp.asarray(target_probs)
    if q_hat.shape != target_probs.shape or q_hat.ndim != 2:
        raise ValueError(
            f"q_hat: expected shape [N, A] equal to target_probs {list(target_probs.shape)}, "
            f"found {list(q_hat.shape)}"
        )
    return direct_method(jnp.sum(target_probs * q_hat, axis=-1))


# ----------------------------------------------------------------------------------------------
# Per-trajectory core.
# ----------------------------------------------------------------------------------------------
def doubly_robust_values(
    rewards: Array,
    log_ratios: Array,
    mask: Array,
    gamma: Array,
    q_taken: Array,
    v_hat: Array,
    discounts: Optional[Array] = None,
    *,
    method: str = "scan",
) -> Array:
    """Per-step DR values V_DR(t) of one trajectory by the backward recursion (per-trajectory core).

    V_DR(T) = 0,  V_DR(t) = V-hat_t + rho_t (r_t + gamma d_t V_DR(t+1) - Q-hat_t),

    with d_t = ``discounts[t]`` (0 where s_{t+1} is terminal, default 1), so one array may hold
    several episodes back to back: each episode's first step gets that episode's V_DR. Padded
    steps (mask 0) are exact no-ops: V_DR(t) = V_DR(t+1). Jiang & Li index steps 1..H and write
    V_DR^{H+1-t}; the content is the same.

    See "Doubly Robust Off-policy Value Evaluation for Reinforcement Learning", Jiang & Li 2016.

    Args:
      rewards: ``[T]`` r_t.
      log_ratios: ``[T]`` log rho_t.
      mask: ``[T]`` 1 on real steps, 0 on padding.
      gamma: scalar discount.
      q_taken: ``[T]`` Q-hat(s_t, a_t).
      v_hat: ``[T]`` V-hat(s_t) = sum_a pi(a|s_t) Q-hat(s_t, a).
      discounts: optional ``[T]`` d_t in [0, 1].
      method: ``"scan"`` (reverse ``lax.scan``) or ``"associative"`` (``lax.associative_scan``
        over the affine maps V -> c_t + a_t V).

    Returns:
      ``[T]`` V_DR(t); ``V_DR(0)`` is the trajectory's DR estimate.
    """
    chex.assert_rank([rewards, log_ratios, mask, q_taken, v_hat], 1)
    chex.assert_equal_shape([rewards, log_ratios, mask, q_taken, v_hat])
    real = jnp.asarray(mask) > 0
    r = _masked(rewards, mask)
    dtype = r.dtype
    rho = jnp.exp(jnp.where(real, log_ratios, jnp.zeros_like(log_ratios))).astype(dtype)
    q, v = _masked(q_taken, mask), _masked(v_hat, mask)
    d = jnp.ones_like(r) if discounts is None else jnp.asarray(discounts, dtype)
    g = jnp.asarray(gamma, dtype)
    # V(t) = c_t + a_t V(t+1); padding: c = 0, a = 1 (freeze).
    c = jnp.where(real, v + rho * (r - q), jnp.zeros_like(r))
    a = jnp.where(real, g * d * rho, jnp.ones_like(r))
    if method == "scan":

        def step(v_next, ca):
            c_t, a_t = ca
            v_t = c_t + a_t * v_next
            return v_t, v_t

        _, values = jax.lax.scan(step, jnp.zeros((), dtype), (c, a), reverse=True)
        return values
    if method == "associative":

        def compose(later, earlier):
            # earlier o later: c_e + a_e (c_l + a_l V).
            c_l, a_l = later
            c_e, a_e = earlier
            return c_e + a_e * c_l, a_e * a_l

        values, _ = jax.lax.associative_scan(compose, (c, a), reverse=True)
        return values
    raise ValueError(f"method: expected 'scan' or 'associative', found {method!r}")


def doubly_robust_returns(
    rewards: Array,
    log_ratios: Array,
    mask: Array,
    gamma: Any,
    q_taken: Array,
    v_hat: Array,
    *,
    method: str = "scan",
    chunk_rows: Optional[int] = None,
) -> Array:
    """``[N]`` per-trajectory DR values V^n_DR(0) (dataset level, no reduction).

    Their mean is :func:`doubly_robust`; they are i.i.d. across trajectories (t-intervals,
    bootstrap). ``method``: ``"scan"``, ``"associative"`` or ``"weights"`` (unrolled form with
    log-space weights). Shapes: ``[N, T]`` inputs, ``[N]`` output. Rows are processed in blocks
    of ``chunk_rows`` (see :func:`~offrl_jax.core.blocking.map_rows`).
    """
    if method not in _METHODS:
        raise ValueError(f"method: expected one of {_METHODS}, found {method!r}")
    if method == "weights":
        rewards = jnp.asarray(rewards)
        log_disc = log_discounts(gamma, rewards.shape[-1], rewards.dtype)[None, :]

        def rows(r, lr, m, q, v):
            real = m > 0
            log_w = cumulative_log_weights(lr, m)
            log_w_prev = jnp.concatenate([jnp.zeros_like(log_w[:, :1]), log_w[:, :-1]], axis=1)
            # Zero factors contribute exactly 0 even where their weight overflows to inf.
            td, zero = r - q, jnp.zeros_like(r)
            terms = jnp.where(td == 0, zero, jnp.exp(log_w + log_disc) * td)
            terms = terms + jnp.where(v == 0, zero, jnp.exp(log_w_prev + log_disc) * v)
            return jnp.sum(jnp.where(real, terms, zero), axis=-1)

    else:
        core = lambda *x: doubly_robust_values(*x[:3], gamma, *x[3:], method=method)[0]
        rows = jax.vmap(core)
    return map_rows(rows, (rewards, log_ratios, mask, q_taken, v_hat), chunk_rows)


def _check(rewards, log_ratios, mask, gamma, q_taken, v_hat, validate):
    if validate and is_concrete(rewards, log_ratios, mask, gamma, q_taken, v_hat):
        validate_ope_inputs(rewards, log_ratios, mask, gamma, q_taken, v_hat)
    chex.assert_rank([rewards, log_ratios, mask, q_taken, v_hat], 2)
    chex.assert_equal_shape([rewards, log_ratios, mask, q_taken, v_hat])


def doubly_robust(
    rewards: Array,
    log_ratios: Array,
    mask: Array,
    gamma: Any,
    q_taken: Array,
    v_hat: Array,
    *,
    method: str = "scan",
    validate: bool = True,
    chunk_rows: Optional[int] = None,
) -> Array:
    """Doubly robust off-policy evaluation (dataset level).

    J_DR = (1/N) sum_n V^n_DR(0), with V_DR from the backward recursion
    V_DR(t) = V-hat(s_t) + rho_t (r_t + gamma V_DR(t+1) - Q-hat(s_t, a_t)), V_DR(T) = 0.
    Unbiased for any fixed Q-hat (with V-hat = E_pi Q-hat); Q-hat = V-hat = 0 gives per-decision
    IS exactly; T = 1 gives the bandit DR V-hat(x) + rho (r - r-hat(x, a)) of Dudik, Langford & Li
    2011.

    See "Doubly Robust Off-policy Value Evaluation for Reinforcement Learning", Jiang & Li 2016.

    Args:
      rewards: ``[N, T]`` r_t.
      log_ratios: ``[N, T]`` log rho_t.
      mask: ``[N, T]`` 1 on real steps, 0 on padding.
      gamma: discount in [0, 1].
      q_taken: ``[N, T]`` Q-hat(s_t, a_t).
      v_hat: ``[N, T]`` V-hat(s_t).
      method: ``"scan"`` (default), ``"associative"`` or ``"weights"``; all give the same value.
      validate: run the host checks when the inputs are concrete.
      chunk_rows: rows per block (default automatic, see
        :func:`~offrl_jax.core.blocking.map_rows`).

    Returns:
      scalar estimate of J(pi).
    """
    _check(rewards, log_ratios, mask, gamma, q_taken, v_hat, validate)
    returns = doubly_robust_returns(rewards, log_ratios, mask, gamma, q_taken, v_hat, method=method, chunk_rows=chunk_rows)
    return jnp.mean(returns)


def weighted_doubly_robust_with_info(
    rewards: Array,
    log_ratios: Array,
    mask: Array,
    gamma: Any,
    q_taken: Array,
    v_hat: Array,
    *,
    validate: bool = True,
    chunk_rows: Optional[int] = None,
) -> WeightedEstimate:
    """Weighted doubly robust with status (dataset level).

    With per-step normalised weights w-bar^n_t = w^n_{0:t} / sum_j w^j_{0:t} (a softmax of the
    log weights over n) and w-bar^n_{-1} = 1/N,

    J_WDR = sum_n sum_t gamma^t [w-bar^n_t (r^n_t - Q-hat^n_t) + w-bar^n_{t-1} V-hat^n_t].

    Finished trajectories keep their frozen weight in later normalisers. A step whose normaliser
    is 0 contributes 0 and sets ``zero_weight_sum``. Q-hat = V-hat = 0 gives weighted
    per-decision IS exactly. Biased, consistent.

    See "Data-Efficient Off-Policy Policy Evaluation for Reinforcement Learning", Thomas &
    Brunskill 2016 (their Eq. 1 with normalised weights).

    Args: as :func:`weighted_doubly_robust`.

    Returns:
      :class:`WeightedEstimate` (scalar estimate, bool flag, scalar ESS of the final weights).
    """
    _check(rewards, log_ratios, mask, gamma, q_taken, v_hat, validate)
    rewards = jnp.asarray(rewards)
    disc = jnp.exp(log_discounts(gamma, rewards.shape[-1], rewards.dtype))

    def rows(r, lr, m, q, v):
        log_w = cumulative_log_weights(lr, m)
        real = m > 0
        td = jnp.where(real, r - q, jnp.zeros_like(r))
        v = jnp.where(real, v, jnp.zeros_like(v))
        # w-bar_{t-1} multiplies V-hat_t: pair column t's weights with V-hat_{t+1}.
        v_next = jnp.concatenate([v[:, 1:], jnp.zeros_like(v[:, :1])], axis=1)
        return (log_w[:, -1], v[:, 0]), ((log_w, jnp.stack([td, v_next])),)

    (log_w_final, v_first), (sums,) = scan_rows(rows, (rewards, log_ratios, mask, q_taken, v_hat), chunk_rows)
    now = safe_ratio(sums.sums[0], sums.total)
    # w-bar_{-1} = 1/N: the first V-hat term is the plain mean of V-hat(s_0).
    prev = jnp.concatenate([jnp.mean(v_first)[None], safe_ratio(sums.sums[1], sums.total)[:-1]])
    ess = effective_sample_size(log_w_final)
    return WeightedEstimate(jnp.sum(disc * (now + prev)), jnp.any(sums.total <= 0), ess)


def weighted_doubly_robust(
    rewards: Array,
    log_ratios: Array,
    mask: Array,
    gamma: Any,
    q_taken: Array,
    v_hat: Array,
    *,
    validate: bool = True,
    chunk_rows: Optional[int] = None,
) -> Array:
    """Weighted doubly robust (dataset level).

    J_WDR = sum_n sum_t gamma^t [w-bar^n_t (r^n_t - Q-hat^n_t) + w-bar^n_{t-1} V-hat^n_t] with
    per-step self-normalised weights (w-bar_{-1} = 1/N); a 0/0 step contributes 0 (see
    :func:`weighted_doubly_robust_with_info` for the flag).

    See "Data-Efficient Off-Policy Policy Evaluation for Reinforcement Learning", Thomas &
    Brunskill 2016.

    Args:
      rewards: ``[N, T]`` r_t.
      log_ratios: ``[N, T]`` log rho_t.
      mask: ``[N, T]`` 1 on real steps, 0 on padding.
      gamma: discount in [0, 1].
      q_taken: ``[N, T]`` Q-hat(s_t, a_t).
      v_hat: ``[N, T]`` V-hat(s_t).
      validate: run the host checks when the inputs are concrete.
      chunk_rows: rows per block (default automatic, see
        :func:`~offrl_jax.core.blocking.map_rows`).

    Returns:
      scalar estimate of J(pi).
    """
    return weighted_doubly_robust_with_info(
        rewards, log_ratios, mask, gamma, q_taken, v_hat, validate=validate, chunk_rows=chunk_rows
    ).estimate
