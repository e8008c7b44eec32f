"""Offline policy-gradient learning from a fixed dataset: pure ``init``/``update`` and ``make_train``.

A learner is built from a :class:`~offrl_jax.pg.policies.PolicyFns`, an optax optimiser and a
surrogate (see :func:`make_surrogate`). ``update`` ascends the surrogate on a batch of
trajectories (optax minimises ``-surrogate``); ``make_train(...)(key)`` runs ``num_steps``
updates as one ``lax.scan``, sampling trajectory minibatches inside jit, so
``jax.jit(jax.vmap(train))(keys)`` trains many seeds in one program.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax
from flax import struct

from offrl_jax.data import Trajectories
from offrl_jax.pg.estimators import (
    first_order_surrogate,
    per_decision_surrogate,
    returns_to_go,
    state_marginal_surrogate,
    trajectory_surrogate,
    weight_diagnostics,
)
from offrl_jax.pg.policies import PolicyFns

Array = Any

__all__ = [
    "ESTIMATORS",
    "PGBatch",
    "PGState",
    "PGMetrics",
    "Learner",
    "make_surrogate",
    "make_learner",
    "make_train",
    "pg_batch",
    "run_steps",
]

ESTIMATORS = ("trajectory", "trajectory_rtg", "per_decision", "first_order", "state_marginal")


@struct.dataclass
class PGBatch:
    """Logged trajectories for policy-gradient learning, all ``[N, T]`` (padded, with ``mask``).

    Attributes:
      observations: ``[N, T, ...]`` inputs of the policy.
      actions: ``[N, T]`` logged integer actions.
      rewards: ``[N, T]`` r_t.
      mask: ``[N, T]`` 1 on real steps, 0 on padding.
      behavior_log_probs: ``[N, T]`` log π_β(a_t|s_t).
      q_hat: optional ``[N, T]`` fitted Q̂(s_t, a_t) (else the reward-to-go is used where a Q̂
        is needed).
      baseline: optional ``[N, T]`` b_t.
      state_weights: optional ``[N, T]`` ŵ(s_t) for the state-marginal estimator.
    """

    observations: Array
    actions: Array
    rewards: Array
    mask: Array
    behavior_log_probs: Array
    q_hat: Optional[Array] = None
    baseline: Optional[Array] = None
    state_weights: Optional[Array] = None


def pg_batch(data: Trajectories, **extras: Optional[Array]) -> PGBatch:
    """Builds a :class:`PGBatch` from validated :class:`~offrl_jax.data.Trajectories`.

    Args:
      data: trajectories with ``behavior_log_probs``.
      **extras: optional ``q_hat``, ``baseline``, ``state_weights`` arrays ``[N, T]``.

    Raises:
      ValueError: if ``behavior_log_probs`` is missing or an extra is unknown.
    """
    if data.behavior_log_probs is None:
        raise ValueError("data.behavior_log_probs: required for importance weights; found None")
    unknown = set(extras) - {"q_hat", "baseline", "state_weights"}
    if unknown:
        raise ValueError(f"extras: unknown fields {sorted(unknown)}; expected q_hat, baseline, state_weights")
    return PGBatch(
        observations=data.observations,
        actions=data.actions,
        rewards=data.rewards,
        mask=data.mask,
        behavior_log_probs=data.behavior_log_probs,
        **{k: None if v is None else jnp.asarray(v, data.rewards.dtype) for k, v in extras.items()},
    )


def make_surrogate(estimator: str, gamma: float, **options: Any) -> Callable[[Array, PGBatch], Array]:
    """Returns ``surrogate(log_probs, batch) -> scalar`` for one of :data:`ESTIMATORS`.

    * ``trajectory`` / ``trajectory_rtg``: :func:`~offrl_jax.pg.estimators.trajectory_surrogate`
      (full return / causal reward-to-go).
    * ``per_decision``: :func:`~offrl_jax.pg.estimators.per_decision_surrogate` (uses
      ``batch.q_hat`` as the critic if present).
    * ``first_order``: :func:`~offrl_jax.pg.estimators.first_order_surrogate` with
      ``batch.q_hat`` or the reward-to-go.
    * ``state_marginal``: :func:`~offrl_jax.pg.estimators.state_marginal_surrogate` with
      ``batch.state_weights``.

    Args:
      estimator: the estimator name.
      gamma: discount γ.
      **options: keyword options of the estimator (``clip``, ``self_normalize``,
        ``discount_states``).

    Raises:
      ValueError: for an unknown estimator name.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator: expected one of {ESTIMATORS}, found {estimator!r}")
    allowed = {"clip", "self_normalize"} | (
        {"discount_states"} if estimator in ("first_order", "state_marginal") else set()
    )
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(f"options: {sorted(unknown)} not accepted by {estimator!r}; expected some of {sorted(allowed)}")
    clip = options.get("clip")
    if clip is not None and not clip > 0:
        raise ValueError(f"clip: expected a positive weight bound or None, found {clip}")
    if not 0.0 <= float(gamma) <= 1.0:
        raise ValueError(f"gamma: expected a discount in [0, 1], found {gamma}")

    def surrogate(log_probs: Array, batch: PGBatch) -> Array:
        args = (log_probs, batch.behavior_log_probs)
        if estimator in ("trajectory", "trajectory_rtg"):
            return trajectory_surrogate(
                *args, batch.rewards, batch.mask, gamma, baseline=batch.baseline,
                reward_to_go=estimator == "trajectory_rtg", **options,
            )
        if estimator == "per_decision":
            return per_decision_surrogate(
                *args, batch.rewards, batch.mask, gamma, q_hat=batch.q_hat, baseline=batch.baseline, **options
            )
        q_hat = batch.q_hat if batch.q_hat is not None else returns_to_go(batch.rewards, batch.mask, gamma)
        if estimator == "first_order":
            return first_order_surrogate(*args, q_hat, batch.mask, gamma, baseline=batch.baseline, **options)
        if batch.state_weights is None:
            raise ValueError("batch.state_weights: the state_marginal estimator needs state weights ŵ(s_t)")
        return state_marginal_surrogate(
            *args, q_hat, batch.state_weights, batch.mask, gamma, baseline=batch.baseline, **options
        )

    return surrogate


class PGState(struct.PyTreeNode):
    """Learner state: policy parameters, optimiser state, step count and PRNG key data."""

    params: Any
    opt_state: Any
    step: Array
    key: Array


class PGMetrics(NamedTuple):
    """Per-update metrics (stacked over steps by :func:`make_train`).

    Attributes:
      estimate: the surrogate's value (the matching off-policy value estimate) before the update.
      grad_norm: global L2 norm of the gradient estimate.
      ess: effective sample size of the trajectory weights of the batch.
      min_ess_per_step: smallest per-step ESS of the per-decision weights.
      num_nonfinite: count of NaN/+inf log-ratios or non-finite gradients (0 when healthy).
    """

    estimate: Array
    grad_norm: Array
    ess: Array
    min_ess_per_step: Array
    num_nonfinite: Array


class Learner(NamedTuple):
    """``init(key) -> PGState`` and ``update(state, batch) -> (state, PGMetrics)``."""

    init: Callable[[Array], PGState]
    update: Callable[[PGState, PGBatch], tuple]


def make_learner(
    policy: PolicyFns,
    optimizer: optax.GradientTransformation,
    surrogate: Callable[[Array, PGBatch], Array],
) -> Learner:
    """Pure policy-gradient learner: one optimiser step up the surrogate per ``update``.

    The update applies ``optimizer`` to −∇Ĵ (optax minimises), where ∇Ĵ = ``jax.grad`` of
    ``surrogate(policy.log_prob(params, obs, actions), batch)``. A non-finite gradient skips the
    step (parameters unchanged) and is counted in ``num_nonfinite``.

    Args:
      policy: the policy functions.
      optimizer: an optax transformation (e.g. ``optax.adam(1e-2)``).
      surrogate: ``(log_probs [N, T], batch) -> scalar``, e.g. from :func:`make_surrogate`.

    Returns:
      :class:`Learner`.
    """

    def init(key: Array) -> PGState:
        k_params, k_state = jax.random.split(key)
        params = policy.init(k_params)
        return PGState(params, optimizer.init(params), jnp.asarray(0, jnp.int32), jax.random.key_data(k_state))

    def objective(params: Any, batch: PGBatch) -> Array:
        return surrogate(policy.log_prob(params, batch.observations, batch.actions), batch)

    def update(state: PGState, batch: PGBatch):
        value, grads = jax.value_and_grad(objective)(state.params, batch)
        finite = jnp.all(jnp.asarray([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
        neg = jax.tree.map(lambda g: jnp.where(finite, -g, 0.0), grads)
        updates, opt_state = optimizer.update(neg, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        params = jax.tree.map(lambda new, old: jnp.where(finite, new, old), params, state.params)
        opt_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), opt_state, state.opt_state)
        diag = weight_diagnostics(
            policy.log_prob(state.params, batch.observations, batch.actions), batch.behavior_log_probs, batch.mask
        )
        metrics = PGMetrics(
            estimate=value,
            grad_norm=optax.tree.norm(grads),
            ess=diag.ess,
            min_ess_per_step=jnp.min(diag.ess_per_step),
            num_nonfinite=diag.num_nonfinite + jnp.where(finite, 0, 1),
        )
        return state.replace(params=params, opt_state=opt_state, step=state.step + 1), metrics

    return Learner(init, update)


def _sample(key: Array, batch: PGBatch, batch_size: Optional[int]) -> PGBatch:
    if batch_size is None:
        return batch
    idx = jax.random.randint(key, (batch_size,), 0, batch.mask.shape[0])
    return jax.tree.map(lambda x: x[idx], batch)


def run_steps(learner: Learner, state: PGState, batch: PGBatch, num_steps: int, batch_size: Optional[int] = None):
    """``num_steps`` updates as one ``lax.scan`` (minibatches of trajectories drawn inside).

    Args:
      learner: from :func:`make_learner`.
      state: the current :class:`PGState` (its key drives minibatch sampling).
      batch: the whole dataset.
      num_steps: number of updates (static).
      batch_size: trajectories per update, sampled with replacement; ``None`` uses all.

    Returns:
      ``(state, PGMetrics)`` with metrics stacked ``[num_steps]``.
    """

    def body(s: PGState, _):
        key, sub = jax.random.split(jax.random.wrap_key_data(s.key))
        s = s.replace(key=jax.random.key_data(key))
        return learner.update(s, _sample(sub, batch, batch_size))

    return jax.lax.scan(body, state, None, length=num_steps)


def make_train(
    policy: PolicyFns,
    optimizer: optax.GradientTransformation,
    surrogate: Callable[[Array, PGBatch], Array],
    batch: PGBatch,
    num_steps: int,
    batch_size: Optional[int] = None,
) -> Callable[[Array], tuple]:
    """A whole training run as a pure function ``train(key) -> (PGState, PGMetrics)``.

    Args:
      policy: the policy functions.
      optimizer: an optax transformation.
      surrogate: ``(log_probs, batch) -> scalar``.
      batch: the fixed dataset.
      num_steps: number of updates (static).
      batch_size: trajectories per update, or ``None`` for full-batch updates.

    Returns:
      ``train(key)``; ``jax.jit(jax.vmap(train))(keys)`` trains many seeds at once.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps: expected a positive number of updates, found {num_steps}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int or None, found {batch_size}")
    learner = make_learner(policy, optimizer, surrogate)

    def train(key: Array):
        return run_steps(learner, learner.init(key), batch, num_steps, batch_size)

    return train

