"""Discrete batch-constrained Q-learning: the greedy step restricted to actions the data takes.

A behaviour model π̂_β (softmax logits, trained by maximum likelihood on the logged actions as in
:mod:`offrl_jax.offline.bc`) defines the allowed actions

    𝒜_τ(s) = { a : π̂_β(a|s) / max_a' π̂_β(a'|s) > τ },

and the Q-network is regressed on double-Q targets whose greedy step stays inside 𝒜_τ:

    a*_m = argmax_{a ∈ 𝒜_τ(s'_m)} Q_θ(s'_m, a),   y_m = r_m + γ d_m Q̄(s'_m, a*_m),
    L(θ) = (1/B) Σ_m ℓ(Q_θ(s_m, a_m) − y_m),   L(φ) = −(1/B) Σ_m log π̂_φ(a_m | s_m).

The policy is π(s) = argmax_{a ∈ 𝒜_τ(s)} Q_θ(s, a). τ = 0 allows every action and gives double-Q
FQI; τ = 1 keeps only the behaviour model's mode (behaviour cloning of the mode). See
"Benchmarking Batch Deep Reinforcement Learning Algorithms", Fujimoto, Conti, Ghavamzadeh &
Pineau 2019 (discrete BCQ), after "Off-Policy Deep Reinforcement Learning without
Exploration", Fujimoto, Meger & Precup 2019. We use separate Q and behaviour networks (the paper
shares a torso) and no logit penalty.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
from flax import struct

from offrl_jax.core import Learner, config_field, train_from_learner
from offrl_jax.data import Transitions
from offrl_jax.fitted import FittedQConfig, QTrainState, init_state, regression_loss
from offrl_jax.fitted.config import loop_fields
from offrl_jax.fitted.loop import fitted_batch, refresh_target
from offrl_jax.offline.common import (
    check_common,
    check_unit,
    logits_network,
    make_optimizer,
    new_state,
    scan_learner,
    take,
    validate_offline_data,
)
from offrl_jax.policies import categorical_log_prob

Array = Any
_FITTED_FIELDS = ("step", "apply_fn", "params", "tx", "opt_state", "target_params", "key")

__all__ = ["BCQConfig", "BCQState", "BCQMetrics", "allowed_actions", "make_update", "make_learner",
           "make_train", "q_values", "act"]


@struct.dataclass
class BCQConfig:
    """Discrete BCQ hyperparameters (frozen; validated).

    Attributes:
      num_actions, num_observations, hidden_sizes, gamma: as in :class:`~offrl_jax.offline.cql.CQLConfig`
        (the behaviour network has the same widths).
      threshold: τ in [0, 1], the relative-probability cut of the allowed actions.
      num_steps, batch_size, learning_rate, optimizer, loss, huber_delta, target_update_period,
      tau, dtype: as in :class:`~offrl_jax.fitted.FittedQConfig`.
    """

    num_actions: int = config_field(None)
    num_observations: Optional[int] = config_field(None)
    hidden_sizes: Tuple[int, ...] = config_field((256, 256))
    gamma: float = config_field(0.99)
    threshold: float = config_field(0.3)
    num_steps: int = config_field(10_000)
    batch_size: Optional[int] = config_field(256)
    learning_rate: float = config_field(3e-4)
    optimizer: str = config_field("adam")
    loss: str = config_field("l2")
    huber_delta: float = config_field(1.0)
    target_update_period: int = config_field(100)
    tau: Optional[float] = config_field(None)
    dtype: str = config_field("float32")

    def __post_init__(self):
        check_common(self, discrete_only=True)
        check_unit(self.threshold, "threshold")

    @property
    def fitted(self) -> FittedQConfig:
        """The double-Q FQI config of the Q-network (its targets are replaced here)."""
        return _fitted(self)


@functools.lru_cache(maxsize=256)
def _fitted(config: BCQConfig) -> FittedQConfig:
    return FittedQConfig(num_actions=config.num_actions, num_observations=config.num_observations, method="fqi",
                         double_q=True, gamma=float(config.gamma), hidden_sizes=tuple(config.hidden_sizes),
                         **loop_fields(config))


class BCQState(QTrainState):
    """The fitted-Q state plus the behaviour model's ``behavior`` TrainState."""

    behavior: Any = None


class BCQMetrics(NamedTuple):
    """Per-step scalars: ``loss`` (TD), ``bc_loss`` (behaviour NLL), ``allowed`` (mean |𝒜_τ(s')|), ``q_mean``."""

    loss: Array
    bc_loss: Array
    allowed: Array
    q_mean: Array


def allowed_actions(behavior_logits: Array, threshold: float) -> Array:
    """``[B, A]`` bool 1[π̂(a|s)/max_a' π̂(a'|s) > τ], computed as log π̂(a) − max log π̂ > log τ."""
    log_p = jax.nn.log_softmax(behavior_logits, axis=-1)
    rel = log_p - jnp.max(log_p, axis=-1, keepdims=True)
    return rel > jnp.log(jnp.asarray(threshold, rel.dtype)) if threshold > 0 else jnp.ones(rel.shape, bool)


def _masked_argmax(q: Array, allowed: Array) -> Array:
    return jnp.argmax(jnp.where(allowed, q, -jnp.inf), axis=-1)


def make_update(config: BCQConfig) -> Callable:
    """``update(state, batch) -> (state, BCQMetrics)``: restricted double-Q targets, one step on
    the Q loss and one on the behaviour NLL, then the target refresh (module docstring)."""
    fq = config.fitted

    def update(state: BCQState, batch: Any):
        beh = state.behavior
        allowed = allowed_actions(beh.apply_fn(beh.params, batch.next_observations), config.threshold)
        a_star = _masked_argmax(state.apply_fn(state.params, batch.next_observations), allowed)
        next_q = take(state.apply_fn(state.target_params, batch.next_observations), a_star)
        y = jax.lax.stop_gradient(batch.rewards + config.gamma * batch.discounts * next_q)

        def q_loss(params):
            q = take(state.apply_fn(params, batch.observations), batch.actions)
            return regression_loss(q, y, fq.loss, fq.huber_delta), q

        def bc_loss(params):
            return -jnp.mean(categorical_log_prob(beh.apply_fn(params, batch.observations), batch.actions))

        (loss, q), grads = jax.value_and_grad(q_loss, has_aux=True)(state.params)
        nll, bc_grads = jax.value_and_grad(bc_loss)(beh.params)
        state = state.apply_gradients(grads=grads).replace(behavior=beh.apply_gradients(grads=bc_grads))
        state = refresh_target(fq, state)
        return state, BCQMetrics(loss, nll, jnp.mean(jnp.sum(allowed, -1).astype(q.dtype)), jnp.mean(q))

    return update


def make_learner(config: BCQConfig) -> Learner:
    """The BCQ :class:`~offrl_jax.core.Learner`: the Q-network as :func:`offrl_jax.fitted.init_state`
    builds it from ``key`` (τ = 0 reproduces double-Q FQI exactly), the behaviour network from
    ``fold_in(key, 1)``."""
    fq = config.fitted

    def init(key: Array, data: Transitions) -> BCQState:
        validate_offline_data(config, data)
        base = init_state(key, fq, data)
        beh = new_state(jax.random.fold_in(key, 1), logits_network(config), (data.observations[:1],),
                        make_optimizer(config.learning_rate, config.optimizer))
        fields = {k: getattr(base, k) for k in _FITTED_FIELDS}
        return BCQState(**fields, behavior=beh)

    return scan_learner(init, make_update(config), config.num_steps, config.batch_size,
                        lambda data: fitted_batch(fq, data))


def make_train(config: BCQConfig) -> Callable:
    """``train(key, data: Transitions) -> core.TrainResult(BCQState, BCQMetrics[num_steps])``."""
    return train_from_learner(make_learner(config))


def q_values(state: BCQState, observations: Array) -> Array:
    """``[B, A]`` Q_θ(s, ·)."""
    return state.apply_fn(state.params, observations)


def act(config: BCQConfig, state: BCQState, observations: Array) -> Array:
    """``[B]`` π(s) = argmax_{a ∈ 𝒜_τ(s)} Q_θ(s, a)."""
    beh = state.behavior
    allowed = allowed_actions(beh.apply_fn(beh.params, observations), config.threshold)
    return _masked_argmax(q_values(state, observations), allowed)

