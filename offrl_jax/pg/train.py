"""Offline policy-gradient learning from a fixed dataset, in the package's learner convention.

A frozen :class:`PGConfig` names the estimator and its hyperparameters; ``make_learner(config,
policy)`` returns a :class:`~offrl_jax.core.Learner` whose ``run`` ascends the surrogate of
:func:`make_surrogate` (optax minimises −S, so each step is θ ← θ + optimiser(∇Ĵ)) for
``num_steps`` steps in one ``lax.scan``, drawing trajectory minibatches inside jit from the key
in the state; and ``make_train(config, policy)(key, batch) -> TrainResult(state, metrics)`` is
the whole run, so ``jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, batch)`` trains many seeds
in one program. The dataset (a :class:`~offrl_jax.pg.batch.PGBatch`) goes in at call time.

See "Offline Reinforcement Learning: Tutorial, Review, and Perspectives on Open Problems",
Levine, Kumar, Tucker & Fu 2020, Sec. 3 (importance-sampled offline policy gradients).
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from offrl_jax.core.diagnostics import weight_diagnostics
from offrl_jax.core.dtypes import input_dtype
from offrl_jax.core.learner import Learner, TrainResult, config_field, train_from_learner
from offrl_jax.core.validation import (
    check_choice,
    check_finite,
    check_positive_float,
    check_positive_int,
    validate_gamma,
)
from offrl_jax.core.weights import log_importance_ratios
from offrl_jax.data import CheckedTrain
from offrl_jax.pg.batch import PGBatch, _validate_pg_data
from offrl_jax.pg.estimators import (
    first_order_surrogate,
    per_decision_surrogate,
    returns_to_go,
    state_marginal_surrogate,
    trajectory_surrogate,
)
from offrl_jax.policies import PolicyFns

Array = Any

__all__ = [
    "ESTIMATORS",
    "OPTIMIZERS",
    "PGConfig",
    "PGState",
    "PGMetrics",
    "make_surrogate",
    "make_learner",
    "make_train",
    "validate_data",
]

ESTIMATORS = ("trajectory", "trajectory_rtg", "per_decision", "first_order", "state_marginal")
OPTIMIZERS = {"adam": optax.adam, "adamw": optax.adamw, "sgd": optax.sgd, "rmsprop": optax.rmsprop}


@struct.dataclass
class PGConfig:
    """Hyperparameters of an offline policy-gradient run (frozen, static, validated on the host).

    Attributes:
      estimator: one of :data:`ESTIMATORS`: ``trajectory`` / ``trajectory_rtg``
        (:func:`~offrl_jax.pg.trajectory_surrogate`, full return / causal reward-to-go),
        ``per_decision`` (:func:`~offrl_jax.pg.per_decision_surrogate`, with ``batch.q_hat`` as
        critic if present), ``first_order`` (:func:`~offrl_jax.pg.first_order_surrogate` with
        ``batch.q_hat`` or the reward-to-go), ``state_marginal``
        (:func:`~offrl_jax.pg.state_marginal_surrogate` with ``batch.state_weights``).
      gamma: discount γ in [0, 1].
      learning_rate: step size of the named optimiser.
      optimizer: one of :data:`OPTIMIZERS` (``adam``, ``adamw``, ``sgd``, ``rmsprop``).
      num_steps: updates run by ``make_train``'s ``train``.
      batch_size: trajectories per update, drawn with replacement inside jit; ``None`` = all.
      max_log_weight: optional bound on the log importance weights (truncated IS).
      self_normalize: self-normalise the weights over trajectories.
      discount_states: weight step t by γ^t (``first_order`` and ``state_marginal`` only; the
        other estimators always discount).

    Raises:
      ValueError: naming the field, for a value out of range.
    """

    estimator: str = config_field("per_decision")
    gamma: float = config_field(0.99)
    learning_rate: float = config_field(1e-2)
    optimizer: str = config_field("adam")
    num_steps: int = config_field(100)
    batch_size: Optional[int] = config_field(None)
    max_log_weight: Optional[float] = config_field(None)
    self_normalize: bool = config_field(False)
    discount_states: bool = config_field(True)

    def __post_init__(self):
        check_choice(self.estimator, "estimator", ESTIMATORS)
        validate_gamma(self.gamma)
        check_positive_float(self.learning_rate, "learning_rate")
        check_choice(self.optimizer, "optimizer", tuple(OPTIMIZERS))
        check_positive_int(self.num_steps, "num_steps")
        check_positive_int(self.batch_size, "batch_size", allow_none=True)
        mlw = self.max_log_weight
        if mlw is not None and (
            isinstance(mlw, bool) or not isinstance(mlw, (int, float)) or not math.isfinite(mlw)
        ):
            raise ValueError(f"max_log_weight: expected a finite log weight bound or None, found {mlw!r}")
        check_choice(self.self_normalize, "self_normalize", (True, False))
        check_choice(self.discount_states, "discount_states", (True, False))
        if not self.discount_states and self.estimator not in ("first_order", "state_marginal"):
            raise ValueError(
                f"discount_states: only first_order and state_marginal accept False; "
                f"estimator {self.estimator!r} always discounts"
            )


def make_surrogate(config: PGConfig) -> Callable[[Array, PGBatch], Array]:
    """``surrogate(target_log_probs [N, T], batch) -> scalar`` of the config's estimator.

    ``jax.grad`` of the surrogate with respect to the policy parameters (through
    ``target_log_probs``) is the gradient estimate ∇Ĵ; its value is the matching off-policy
    value estimate. See :class:`PGConfig` for the estimator names.
    """
    opts = {"max_log_weight": config.max_log_weight, "self_normalize": config.self_normalize}
    gamma, name = config.gamma, config.estimator
    if name in ("first_order", "state_marginal"):
        opts["discount_states"] = config.discount_states

    def surrogate(target_log_probs: Array, batch: PGBatch) -> Array:
        args = (target_log_probs, batch.behavior_log_probs)
        if name in ("trajectory", "trajectory_rtg"):
            return trajectory_surrogate(
                *args, batch.rewards, batch.mask, gamma, baseline=batch.baseline,
                reward_to_go=name == "trajectory_rtg", **opts,
            )
        if name == "per_decision":
            return per_decision_surrogate(
                *args, batch.rewards, batch.mask, gamma, q_hat=batch.q_hat, baseline=batch.baseline, **opts
            )
        q_hat = batch.q_hat if batch.q_hat is not None else returns_to_go(batch.rewards, batch.mask, gamma)
        if name == "first_order":
            return first_order_surrogate(*args, q_hat, batch.mask, gamma, baseline=batch.baseline, **opts)
        if batch.state_weights is None:
            raise ValueError("state_weights: the state_marginal estimator needs [N, T] state weights ŵ(s_t)")
        return state_marginal_surrogate(
            *args, q_hat, batch.state_weights, batch.mask, gamma, baseline=batch.baseline, **opts
        )

    return surrogate


class PGState(struct.PyTreeNode):
    """Learner state: policy parameters, optimiser state, step count and the run's PRNG key."""

    params: Any
    opt_state: Any
    step: Array
    key: Array


class PGMetrics(NamedTuple):
    """Per-update metrics, each ``[num_steps]`` after ``run``.

    Attributes:
      estimate: the surrogate's value Ĵ (the matching off-policy value estimate) before the update.
      loss: −estimate, the minimised objective.
      grad_norm: global L2 norm of the gradient estimate ∇Ĵ.
      ess: effective sample size of the minibatch's trajectory weights
        (:func:`offrl_jax.core.weight_diagnostics`).
      min_ess_per_step: smallest per-step ESS of the per-decision weights w_{0:t}.
      num_nonfinite: count of NaN/+inf log-ratios plus 1 for a non-finite gradient (0 when
        healthy); a non-finite gradient skips the update.
    """

    estimate: Array
    loss: Array
    grad_norm: Array
    ess: Array
    min_ess_per_step: Array
    num_nonfinite: Array


def _diagnostics(target_log_probs: Array, behavior_log_probs: Array, mask: Array):
    """Core weight diagnostics of a batch and the count of NaN/+inf log ratios (set to 0 there)."""
    lr = log_importance_ratios(target_log_probs, behavior_log_probs, mask, validate=False)
    bad = (mask > 0) & (jnp.isnan(lr) | (lr == jnp.inf))
    diag = weight_diagnostics(jnp.where(bad, 0.0, lr), mask, validate=False)
    return diag, jnp.sum(bad)


def _sample(key: Array, batch: PGBatch, batch_size: Optional[int]) -> PGBatch:
    if batch_size is None:
        return batch
    idx = jax.random.randint(key, (batch_size,), 0, batch.mask.shape[0])
    return jax.tree.map(lambda x: x[idx], batch)


def make_learner(
    config: PGConfig, policy: PolicyFns, optimizer: Optional[optax.GradientTransformation] = None
) -> Learner:
    """The offline policy-gradient :class:`~offrl_jax.core.Learner` of ``config``.

    ``init(key, batch)`` draws the policy parameters; ``run(state, batch, num_steps)`` takes
    ``num_steps`` optimiser steps on −S, S = ``make_surrogate(config)(policy.log_prob(θ, o, a),
    minibatch)``, as one ``lax.scan``. A non-finite gradient skips the step (parameters and
    optimiser state unchanged) and is counted in ``num_nonfinite``.

    Args:
      config: :class:`PGConfig`.
      policy: :class:`~offrl_jax.policies.PolicyFns` (``init``, ``log_prob``, ...).
      optimizer: optional optax transformation replacing the config's named optimiser (it is
        not recorded in checkpoints; prefer the config's name and learning rate).

    Returns:
      :class:`~offrl_jax.core.Learner` with ``num_steps = config.num_steps``.
    """
    tx = optimizer if optimizer is not None else OPTIMIZERS[config.optimizer](config.learning_rate)
    surrogate = make_surrogate(config)

    def init(key: Array, data: PGBatch) -> PGState:
        del data
        k_params, k_run = jax.random.split(key)
        params = policy.init(k_params)
        return PGState(params, tx.init(params), jnp.asarray(0, jnp.int32), k_run)

    def objective(params: Any, batch: PGBatch):
        log_probs = policy.log_prob(params, batch.observations, batch.actions)
        return surrogate(log_probs, batch), jax.lax.stop_gradient(log_probs)

    def update(state: PGState, batch: PGBatch):
        (value, log_probs), grads = jax.value_and_grad(objective, has_aux=True)(state.params, batch)
        finite = jnp.all(jnp.asarray([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
        neg = jax.tree.map(lambda g: jnp.where(finite, -g, 0.0), grads)
        updates, opt_state = tx.update(neg, state.opt_state, state.params)
        keep = lambda new, old: jnp.where(finite, new, old)  # noqa: E731
        params = jax.tree.map(keep, optax.apply_updates(state.params, updates), state.params)
        opt_state = jax.tree.map(keep, opt_state, state.opt_state)
        diag, num_bad = _diagnostics(log_probs, batch.behavior_log_probs, batch.mask)
        metrics = PGMetrics(
            estimate=value,
            loss=-value,
            grad_norm=optax.tree.norm(grads),
            ess=diag.ess,
            min_ess_per_step=jnp.min(diag.per_step_ess),
            num_nonfinite=num_bad + jnp.where(finite, 0, 1),
        )
        return state.replace(params=params, opt_state=opt_state, step=state.step + 1), metrics

    def run(state: PGState, data: PGBatch, num_steps: int):
        def body(s: PGState, _):
            key, sub = jax.random.split(s.key)
            return update(s.replace(key=key), _sample(sub, data, config.batch_size))

        return jax.lax.scan(body, state, None, length=num_steps)

    return Learner(init, run, config.num_steps)


def _num_actions(policy: PolicyFns, observations: Array) -> int:
    if getattr(policy, "num_actions", None) is not None:
        return int(policy.num_actions)
    params = jax.eval_shape(policy.init, jax.random.key(0))
    obs = jax.ShapeDtypeStruct((1,) + tuple(observations.shape[2:]), observations.dtype)
    return int(jax.eval_shape(policy.logits, params, obs).shape[-1])


def _check_indices(x: Array, name: str, size: int) -> None:
    a = np.asarray(x)
    if a.dtype.kind not in "biuf" or (a.dtype.kind == "f" and not np.all(a == np.round(a))):
        raise ValueError(f"{name}: expected integer indices, found dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= size):
        raise ValueError(f"{name}: expected indices in [0, {size}), found range [{a.min()}, {a.max()}]")


def validate_data(config: PGConfig, data: PGBatch, policy: PolicyFns) -> None:
    """Host checks of a policy-gradient dataset against the config and the policy, before training.

    What ``make_train``'s ``train`` runs on concrete data (padding steps are not checked).

    Raises:
      ValueError: naming the field, for data that are not a :class:`~offrl_jax.pg.PGBatch`
        (build one with :func:`~offrl_jax.pg.pg_batch`), the checks of ``pg_batch`` (mask,
        shapes, NaN/inf in rewards, log-probabilities or extras, behaviour log-probabilities
        > 0 or -inf on real steps), non-numeric fields, NaN/inf float observations, actions
        outside ``[0, A)`` of the policy, integer observations outside ``[0, O)`` of a tabular
        policy, or a ``state_marginal`` estimator without ``state_weights``.
    """
    if not isinstance(config, PGConfig):
        raise ValueError(f"config: expected a PGConfig, found {type(config).__name__}")
    if not isinstance(data, PGBatch):
        raise ValueError(f"data: expected a PGBatch (see pg.pg_batch), found {type(data).__name__}")
    for f in ("observations", "actions", "rewards", "mask", "behavior_log_probs", "q_hat", "baseline", "state_weights"):
        if getattr(data, f) is not None:
            input_dtype(getattr(data, f), f"data.{f}")
    _validate_pg_data(
        data.behavior_log_probs, data.rewards, data.mask,
        q_hat=data.q_hat, baseline=data.baseline, state_weights=data.state_weights,
    )
    if config.estimator == "state_marginal" and data.state_weights is None:
        raise ValueError("data.state_weights: the state_marginal estimator needs [N, T] state weights ŵ(s_t)")
    real = np.asarray(data.mask) > 0
    obs = np.asarray(data.observations)
    if obs.shape[:2] != real.shape:
        raise ValueError(f"data.observations: expected leading shape {list(real.shape)} (as mask), found {list(obs.shape)}")
    if np.asarray(data.actions).shape != real.shape:
        raise ValueError(f"data.actions: expected shape {list(real.shape)} (as mask), found {list(np.shape(data.actions))}")
    if obs.dtype.kind == "f":
        check_finite(obs[real], "data.observations")
    if getattr(policy, "num_observations", None) is not None:
        _check_indices(obs[real], "data.observations", int(policy.num_observations))
    _check_indices(np.asarray(data.actions)[real], "data.actions", _num_actions(policy, data.observations))


def make_train(
    config: PGConfig, policy: PolicyFns, optimizer: Optional[optax.GradientTransformation] = None
) -> Callable[[Array, PGBatch], TrainResult]:
    """A whole run ``train(key, batch) -> TrainResult(PGState, PGMetrics [num_steps])``.

    ``core.train_from_learner(make_learner(config, policy, optimizer))`` as a
    :class:`~offrl_jax.data.CheckedTrain`: ``train(key, batch)`` runs :func:`validate_data` on
    concrete data, then one cached jitted program; ``train.seeds(g)(keys, batch)`` trains many
    seeds in one program, validated the same way. Inside a caller's own ``jax.jit``, e.g.
    ``jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, batch)``, only shapes are checked: call
    ``validate_data(config, batch, policy)`` first.
    """
    train = train_from_learner(make_learner(config, policy, optimizer))
    return CheckedTrain(train, lambda data: validate_data(config, data, policy))
