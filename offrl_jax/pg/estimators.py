"""Offline policy-gradient estimators as surrogate objectives.

Every estimator here is a scalar *surrogate objective* ``S(theta)`` whose ``jax.grad`` is the
gradient estimate ∇Ĵ(θ) of the policy value. The estimate is written as a weighted sum of score
terms g_t = ∇_θ log π_θ(a_t|s_t),

    ∇Ĵ = Σ_n Σ_t A^n_t g^n_t,

where the per-step coefficients A^n_t (importance weights times returns or Q̂ values) are data:
they are computed from ``stop_gradient(target_log_probs)``, so truncation and self-normalisation
change the estimate exactly as written and never leak into the gradient. The surrogate is
``value + Σ A · (log π − stop_gradient(log π))``: its value is the matching off-policy value
estimate (IS, PDIS, WIS, WPDIS, ...), its gradient is the estimator. To ascend with optax, minimise
``-surrogate``.

Conventions (see the project API): dataset-level functions take padded ``[N, T]`` arrays plus a
``mask`` that is a prefix of ones, then γ, then keyword-only options.
``target_log_probs[n, t] = log π_θ(a_t|s_t)`` is the only differentiable input;
``behavior_log_probs`` are logged data. Importance weights come from :mod:`offrl_jax.core` in log
space, w_{0:t} = exp(Σ_{k≤t} (log π − log π_β)), truncated by ``max_log_weight`` (a bound on
log w) and self-normalised over trajectories by ``self_normalize``. After a trajectory ends it
sits in an absorbing state (ratio 1, reward 0), so its final weight stays in per-step
self-normalisers. Step t is discounted by γ^t.

Host-side checks of the logged data run in :func:`offrl_jax.pg.pg_batch`; the surrogates
themselves are jit- and vmap-safe and only check shapes at trace time.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import chex
import jax
import jax.numpy as jnp

from offrl_jax.core.dtypes import as_float, float_inputs
from offrl_jax.core.weights import (
    cumsum_last,
    cumulative_log_weights,
    importance_weights,
    log_importance_ratios,
)

Array = Any

__all__ = [
    "returns_to_go",
    "trajectory_surrogate",
    "per_decision_surrogate",
    "first_order_surrogate",
    "state_marginal_surrogate",
]

_sg = jax.lax.stop_gradient


# ----------------------------------------------------------------------------------------------
# Shared helpers (jit-able). Weights come from offrl_jax.core, on stop-gradient inputs.
# ----------------------------------------------------------------------------------------------
def _floats(**arrays: Optional[Array]):
    """The dtype policy (:mod:`offrl_jax.core.dtypes`): one float dtype for the named inputs
    (integers and lists converted, half precision computed in float32); ``None`` stays."""
    return float_inputs(list(arrays.values()), list(arrays))


def _check_shapes(mask: Array, **arrays: Optional[Array]) -> None:
    chex.assert_rank(mask, 2)
    for name, x in arrays.items():
        if x is not None:
            chex.assert_shape(x, mask.shape, custom_message=f"{name}: expected [N, T] as mask")


def _check_max_log_weight(max_log_weight: Optional[float]) -> None:
    """A Python bound must be a finite number (checked at trace time; traced bounds pass)."""
    if isinstance(max_log_weight, (int, float)) and not math.isfinite(max_log_weight):
        raise ValueError(f"max_log_weight: expected a finite log weight bound or None, found {max_log_weight}")


def _discounts(gamma: Array, num_steps: int, dtype: Any) -> Array:
    """``[T]`` γ^t for t = 0..T-1 in ``dtype``."""
    return jnp.asarray(gamma, dtype) ** jnp.arange(num_steps, dtype=dtype)


def _log_ratios(target_log_probs: Array, behavior_log_probs: Array, mask: Array) -> Array:
    """``[N, T]`` log ρ_t from :func:`offrl_jax.core.log_importance_ratios` on stop-gradient
    inputs: importance weights are data, gradients flow only through the score terms."""
    return log_importance_ratios(_sg(target_log_probs), _sg(behavior_log_probs), mask)


def _surrogate(value: Array, coef: Array, target_log_probs: Array, mask: Array) -> Array:
    """value + Σ stop_gradient(coef) · (log π − stop_gradient(log π)) over real, finite steps."""
    ok = (mask > 0) & jnp.isfinite(_sg(target_log_probs))
    lp = jnp.where(ok, target_log_probs, 0.0)
    coef = jnp.where(ok, _sg(coef), 0.0)
    return _sg(value) + jnp.sum(coef * (lp - _sg(lp)))


def _reverse_cumsum(x: Array) -> Array:
    """``[N, T]`` Σ_{t' ≥ t} x[:, t'] (core's blocked cumulative sum, reversed in time)."""
    return jnp.flip(cumsum_last(jnp.flip(x, axis=1)), axis=1)


def _baseline(baseline: Optional[Array], like: Array) -> Array:
    if baseline is None:
        return jnp.zeros_like(like)
    return jnp.broadcast_to(jnp.asarray(baseline, like.dtype), like.shape)


def returns_to_go(rewards: Array, mask: Array, gamma: float) -> Array:
    """Discounted reward-to-go Q̂_t = Σ_{t' ≥ t} γ^{t'-t} r_{t'} per step (reverse ``lax.scan``).

    The Monte-Carlo estimate of Q^{π_β}(s_t, a_t) used by the first-order approximation
    (Q̂ "from the reward-to-go"; see the CS285 offline-RL lecture notes).

    Args:
      rewards: ``[N, T]`` r_t (padding ignored).
      mask: ``[N, T]`` 1 on real steps, 0 on padding.
      gamma: discount γ.

    Returns:
      ``[N, T]`` reward-to-go, 0 on padding.
    """
    rewards, mask = as_float(rewards, "rewards"), jnp.asarray(mask)
    _check_shapes(mask, rewards=rewards)
    r = jnp.where(mask > 0, rewards, 0.0)
    g = jnp.asarray(gamma, r.dtype)

    def step(acc, r_t):
        acc = r_t + g * acc
        return acc, acc

    _, out = jax.lax.scan(step, jnp.zeros(r.shape[0], r.dtype), r.T, reverse=True)
    return out.T * mask


# ----------------------------------------------------------------------------------------------
# Estimators.
# ----------------------------------------------------------------------------------------------
def trajectory_surrogate(
    target_log_probs: Array,
    behavior_log_probs: Array,
    rewards: Array,
    mask: Array,
    gamma: float,
    *,
    baseline: Optional[Array] = None,
    reward_to_go: bool = False,
    max_log_weight: Optional[float] = None,
    self_normalize: bool = False,
) -> Array:
    """Trajectory-wise importance-weighted REINFORCE, as a surrogate objective.

    With w_n = ∏_t π_θ(a_t|s_t)/π_β(a_t|s_t) and G_n = Σ_t γ^t r_t,

        ∇Ĵ = (1/N) Σ_n w_n Σ_t g^n_t (G_n − b^n_t)                         (reward_to_go=False)
        ∇Ĵ = (1/N) Σ_n w_n Σ_t g^n_t (Σ_{t'≥t} γ^{t'} r^n_{t'} − γ^t b^n_t)  (reward_to_go=True)

    With b = 0 the first form is ∇ of the trajectory-IS value (1/N) Σ_n w_n(θ) G_n, because
    ∇w = w Σ_t g_t (Williams 1992 REINFORCE with importance weights; see "Eligibility Traces for
    Off-Policy Policy Evaluation", Precup, Sutton & Singh 2000, for the IS value). Both forms are
    unbiased for ∇J(π_θ) when b_t depends only on the history up to s_t; the second drops the
    past rewards (causality). ``max_log_weight`` replaces w_n by min(w_n, exp(max_log_weight))
    (truncated IS, Ionides 2008); ``self_normalize`` replaces w_n/N by w_n/Σ_j w_j (consistent,
    biased). The surrogate's value is the (truncated / weighted) IS estimate Σ_n ω_n G_n.

    Args:
      target_log_probs: ``[N, T]`` log π_θ(a_t|s_t), differentiable in θ.
      behavior_log_probs: ``[N, T]`` log π_β(a_t|s_t) (data; 0 on padding).
      rewards: ``[N, T]`` r_t.
      mask: ``[N, T]`` 1 on real steps, 0 on padding.
      gamma: discount γ.
      baseline: optional ``[N, T]`` (or scalar) b_t: an estimate of G (first form) or of the
        return from t, e.g. V̂(s_t) (second form).
      reward_to_go: use the causal reward-to-go form.
      max_log_weight: optional bound on each log trajectory weight log w_n.
      self_normalize: normalise the weights over trajectories.

    Returns:
      Scalar surrogate S with ``jax.grad(S) = ∇Ĵ``.
    """
    target_log_probs, behavior_log_probs, rewards, baseline = _floats(
        target_log_probs=target_log_probs, behavior_log_probs=behavior_log_probs, rewards=rewards, baseline=baseline
    )
    mask = jnp.asarray(mask)
    _check_shapes(mask, target_log_probs=target_log_probs, behavior_log_probs=behavior_log_probs, rewards=rewards)
    _check_max_log_weight(max_log_weight)
    dtype = rewards.dtype
    disc = _discounts(gamma, mask.shape[1], dtype)
    r = jnp.where(mask > 0, rewards, 0.0) * disc[None, :]
    log_w = cumulative_log_weights(_log_ratios(target_log_probs, behavior_log_probs, mask), mask)[:, -1]
    omega = importance_weights(log_w, max_log_weight, self_normalize).astype(dtype)
    b = _baseline(baseline, rewards)
    g = jnp.sum(r, axis=1)
    if reward_to_go:
        ret = _reverse_cumsum(r) - disc[None, :] * b
    else:
        ret = g[:, None] - b
    coef = omega[:, None] * ret * mask
    return _surrogate(jnp.sum(omega * g), coef, target_log_probs, mask)


def per_decision_surrogate(
    target_log_probs: Array,
    behavior_log_probs: Array,
    rewards: Array,
    mask: Array,
    gamma: float,
    *,
    q_hat: Optional[Array] = None,
    baseline: Optional[Array] = None,
    max_log_weight: Optional[float] = None,
    self_normalize: bool = False,
) -> Array:
    """Per-decision (causal) importance-weighted policy gradient, as a surrogate objective.

    With w_{0:t} = ∏_{k≤t} ρ_k = w_{0:t−1} ρ_t (past product for the state distribution, ratio
    ρ_t for the action),

        ∇Ĵ = (1/N) Σ_n Σ_t g^n_t [ Σ_{t'≥t} γ^{t'} w^n_{0:t'} r^n_{t'} − γ^t w^n_{0:t} b^n_t ]

    i.e. the reward at t' is weighted by the future-ratio product w_{t:t'} on top of w_{0:t−1}.
    With b = 0 this is ∇ of the PDIS value (1/N) Σ_n Σ_t γ^t w_{0:t}(θ) r_t (Precup, Sutton &
    Singh 2000). Given a fitted critic Q̂ (``q_hat``) the bracket becomes
    γ^t w_{0:t} (Q̂(s_t, a_t) − b_t), the importance-weighted actor-critic form; it is unbiased when
    Q̂ = Q^{π_θ} (time-indexed for finite horizons). A baseline b_t that depends only on the
    history up to s_t (e.g. V̂(s_t) = Σ_a π(a|s_t) Q̂(s_t, a)) keeps either form unbiased.
    ``max_log_weight`` bounds every log w_{0:t}; ``self_normalize`` divides w^n_{0:t} by
    Σ_j w^j_{0:t} at each step (finished trajectories keep their frozen weight, as in WPDIS).
    The surrogate's value is the PDIS (or truncated / WPDIS) estimate of J.

    Args:
      target_log_probs: ``[N, T]`` log π_θ(a_t|s_t), differentiable in θ.
      behavior_log_probs: ``[N, T]`` log π_β(a_t|s_t) (data).
      rewards: ``[N, T]`` r_t.
      mask: ``[N, T]`` 1 on real steps, 0 on padding.
      gamma: discount γ.
      q_hat: optional ``[N, T]`` Q̂(s_t, a_t) of the target policy (data, e.g. from FQE/LSTDQ).
      baseline: optional ``[N, T]`` (or scalar) b_t.
      max_log_weight: optional bound on each cumulative log weight log w_{0:t}.
      self_normalize: per-step self-normalised weights.

    Returns:
      Scalar surrogate S with ``jax.grad(S) = ∇Ĵ``.
    """
    target_log_probs, behavior_log_probs, rewards, q_hat, baseline = _floats(
        target_log_probs=target_log_probs, behavior_log_probs=behavior_log_probs, rewards=rewards, q_hat=q_hat,
        baseline=baseline,
    )
    mask = jnp.asarray(mask)
    _check_shapes(
        mask, target_log_probs=target_log_probs, behavior_log_probs=behavior_log_probs, rewards=rewards, q_hat=q_hat
    )
    _check_max_log_weight(max_log_weight)
    dtype = rewards.dtype
    disc = _discounts(gamma, mask.shape[1], dtype)
    log_w = cumulative_log_weights(_log_ratios(target_log_probs, behavior_log_probs, mask), mask)
    omega = importance_weights(log_w, max_log_weight, self_normalize).astype(dtype)
    r = jnp.where(mask > 0, rewards, 0.0)
    weighted = disc[None, :] * omega * r
    b = _baseline(baseline, rewards)
    if q_hat is None:
        coef = _reverse_cumsum(weighted) - disc[None, :] * omega * b
    else:
        coef = disc[None, :] * omega * (jnp.asarray(q_hat, dtype) - b)
    return _surrogate(jnp.sum(weighted), coef * mask, target_log_probs, mask)


def state_marginal_surrogate(
    target_log_probs: Array,
    behavior_log_probs: Array,
    q_hat: Array,
    state_weights: Array,
    mask: Array,
    gamma: float,
    *,
    baseline: Optional[Array] = None,
    discount_states: bool = True,
    max_log_weight: Optional[float] = None,
    self_normalize: bool = False,
) -> Array:
    """Policy gradient with a marginal state-distribution correction, as a surrogate objective.

    The past product w_{0:t−1} is replaced by a state ratio ŵ(s_t) ≈ d^{π_θ}(s_t)/d^{π_β}(s_t):

        ∇Ĵ = (1/N) Σ_n Σ_t γ^t ŵ^n_t ρ^n_t g^n_t (Q̂(s^n_t, a^n_t) − b^n_t).

    Since E_β[w_{0:t−1} | s_t] = d^π_t(s_t)/d^β_t(s_t), this is unbiased when ŵ_t is the exact
    time-indexed ratio of state marginals and Q̂ = Q^{π_θ}. With a stationary discounted ratio it
    is the estimator of "Off-Policy Policy Gradient with State Distribution Correction" (Liu,
    Swaminathan, Agarwal & Brunskill 2019), ∇J = (1−γ)^{-1} E_{d^{π_β}}[ŵ(s) ρ(a|s) Q̂(s,a)
    ∇log π(a|s)], written per step (our γ^t weighting stands for their d^{π_β} expectation).
    ``discount_states=False`` drops γ^t. ``max_log_weight`` bounds log(ŵ_t ρ_t);
    ``self_normalize`` divides by Σ_j ŵ^j_t ρ^j_t at each step (padded steps keep ratio 1 and
    their given ŵ, the absorbing state's weight). The surrogate's value is Σ ω (Q̂ − b).

    Args:
      target_log_probs: ``[N, T]`` log π_θ(a_t|s_t), differentiable in θ.
      behavior_log_probs: ``[N, T]`` log π_β(a_t|s_t) (data).
      q_hat: ``[N, T]`` Q̂(s_t, a_t) (data).
      state_weights: ``[N, T]`` ŵ(s_t) ≥ 0 (data), e.g. from marginalised importance sampling.
      mask: ``[N, T]`` 1 on real steps, 0 on padding.
      gamma: discount γ.
      baseline: optional ``[N, T]`` (or scalar) b_t, a function of s_t.
      discount_states: weight step t by γ^t.
      max_log_weight: optional bound on each per-step log weight log(ŵ_t ρ_t).
      self_normalize: per-step self-normalised weights.

    Returns:
      Scalar surrogate S with ``jax.grad(S) = ∇Ĵ``.
    """
    target_log_probs, behavior_log_probs, q_hat, state_weights, baseline = _floats(
        target_log_probs=target_log_probs, behavior_log_probs=behavior_log_probs, q_hat=q_hat,
        state_weights=state_weights, baseline=baseline,
    )
    mask = jnp.asarray(mask)
    _check_shapes(
        mask,
        target_log_probs=target_log_probs,
        behavior_log_probs=behavior_log_probs,
        q_hat=q_hat,
        state_weights=state_weights,
    )
    _check_max_log_weight(max_log_weight)
    dtype = q_hat.dtype
    sw = _sg(jnp.asarray(state_weights, dtype))
    log_sw = jnp.where(sw > 0, jnp.log(jnp.where(sw > 0, sw, 1.0)), -jnp.inf)
    log_w = log_sw + _log_ratios(target_log_probs, behavior_log_probs, mask)
    omega = importance_weights(log_w, max_log_weight, self_normalize).astype(dtype)
    if discount_states:
        omega = omega * _discounts(gamma, mask.shape[1], dtype)[None, :]
    coef = omega * (q_hat - _baseline(baseline, q_hat)) * mask
    return _surrogate(jnp.sum(coef), coef, target_log_probs, mask)


def first_order_surrogate(
    target_log_probs: Array,
    behavior_log_probs: Array,
    q_hat: Array,
    mask: Array,
    gamma: float,
    *,
    baseline: Optional[Array] = None,
    discount_states: bool = True,
    max_log_weight: Optional[float] = None,
    self_normalize: bool = False,
) -> Array:
    """First-order approximation: drop the past product, keep only the action ratio.

        ∇Ĵ ≈ (1/N) Σ_n Σ_t γ^t ρ^n_t g^n_t (Q̂(s^n_t, a^n_t) − b^n_t)

    This is :func:`state_marginal_surrogate` with ŵ ≡ 1: states are drawn from d^{π_β} instead of
    d^{π_θ}, so it is biased unless the state distributions agree; the error is small when π_θ
    stays close to π_β (CS285 offline-RL lecture; Levine, Kumar, Tucker & Fu 2020 tutorial,
    "Offline Reinforcement Learning: Tutorial, Review, and Perspectives on Open Problems").
    Q̂ may be :func:`returns_to_go` (the behaviour policy's Monte-Carlo Q) or a fitted critic.
    ``discount_states=False`` drops the γ^t state factor as the lecture does.

    Args:
      target_log_probs: ``[N, T]`` log π_θ(a_t|s_t), differentiable in θ.
      behavior_log_probs: ``[N, T]`` log π_β(a_t|s_t) (data).
      q_hat: ``[N, T]`` Q̂(s_t, a_t) (data).
      mask: ``[N, T]`` 1 on real steps, 0 on padding.
      gamma: discount γ.
      baseline: optional ``[N, T]`` (or scalar) b_t, a function of s_t.
      discount_states: weight step t by γ^t.
      max_log_weight: optional bound on each log ratio log ρ_t.
      self_normalize: per-step self-normalised ratios.

    Returns:
      Scalar surrogate S with ``jax.grad(S) = ∇Ĵ``.
    """
    q_hat = as_float(q_hat, "q_hat")
    return state_marginal_surrogate(
        target_log_probs,
        behavior_log_probs,
        q_hat,
        jnp.ones_like(q_hat),
        mask,
        gamma,
        baseline=baseline,
        discount_states=discount_states,
        max_log_weight=max_log_weight,
        self_normalize=self_normalize,
    )
