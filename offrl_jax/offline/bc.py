"""Behaviour cloning: maximum likelihood of the logged actions, the baseline of every table.

    L(θ) = −(1/B) Σ_m log π_θ(a_m | s_m)

with π_θ a softmax over ``num_actions`` logits (discrete) or a Gaussian N(μ_θ(s), diag σ²)
with a state-independent σ (continuous, ``action_dim``). With tabular input (``num_observations``,
``hidden_sizes=()``) and full coverage the minimiser is the empirical behaviour policy
π̂_β(a|s) = n(s, a)/n(s). See "A Framework for Behavioural Cloning", Bain & Sammut 1995, and
"ALVINN: An Autonomous Land Vehicle in a Neural Network", Pomerleau 1989.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
from flax import struct
from flax.training import train_state

from offrl_jax.core import Learner, config_field, train_from_learner
from offrl_jax.data import Transitions
from offrl_jax.offline.common import (
    GaussianPolicy,
    cast_rows,
    check_common,
    gaussian_log_prob,
    logits_network,
    new_states,
    scan_learner,
    validate_offline_data,
)
from offrl_jax.policies import categorical_log_prob

Array = Any

__all__ = ["BCConfig", "BCState", "BCMetrics", "make_update", "make_learner", "make_train",
           "action_probs", "act"]


@struct.dataclass
class BCConfig:
    """Behaviour-cloning hyperparameters (frozen; validated).

    Attributes:
      num_actions: A (discrete, softmax policy); or
      action_dim: d (continuous, Gaussian policy).
      num_observations: integer observations in [0, O), fed one-hot (discrete only).
      hidden_sizes: MLP widths (``()``: linear; tabular with one-hot input).
      max_action: continuous actions are clipped to [−a_max, a_max] by :func:`act`.
      num_steps, batch_size (``None``: full data), learning_rate, optimizer (``"adam"``/``"sgd"``),
      dtype (``"float32"``/``"float64"``).
    """

    num_actions: Optional[int] = config_field(None)
    action_dim: Optional[int] = config_field(None)
    num_observations: Optional[int] = config_field(None)
    hidden_sizes: Tuple[int, ...] = config_field((256, 256))
    max_action: float = config_field(1.0)
    num_steps: int = config_field(10_000)
    batch_size: Optional[int] = config_field(256)
    learning_rate: float = config_field(1e-3)
    optimizer: str = config_field("adam")
    dtype: str = config_field("float32")

    def __post_init__(self):
        check_common(self)
        if not isinstance(self.max_action, (int, float)) or not self.max_action > 0:
            raise ValueError(f"max_action: expected a positive number, found {self.max_action!r}")

    @property
    def continuous(self) -> bool:
        return self.action_dim is not None


class BCState(train_state.TrainState):
    """flax ``TrainState`` of the policy plus the run's PRNG ``key``."""

    key: Array = None


class BCMetrics(NamedTuple):
    """Per-step scalars: ``loss`` (the negative log-likelihood)."""

    loss: Array


def _network(config: BCConfig):
    if config.continuous:
        return GaussianPolicy(config.action_dim, tuple(config.hidden_sizes), jnp.dtype(config.dtype))
    return logits_network(config)


def log_prob(config: BCConfig, apply_fn: Callable, params: Any, observations: Array, actions: Array) -> Array:
    """``[B]`` log π_θ(a_m | s_m)."""
    if config.continuous:
        mean, log_std = apply_fn(params, observations)
        return gaussian_log_prob(mean, log_std, actions.astype(mean.dtype))
    return categorical_log_prob(apply_fn(params, observations), actions)


def make_update(config: BCConfig) -> Callable:
    """``update(state, batch) -> (state, BCMetrics)``: one optimiser step on the negative
    log-likelihood −(1/B) Σ_m log π_θ(a_m|s_m)."""

    def update(state: BCState, batch: Any):
        def loss_fn(params):
            return -jnp.mean(log_prob(config, state.apply_fn, params, batch.observations, batch.actions))

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads), BCMetrics(loss)

    return update


def make_learner(config: BCConfig) -> Learner:
    """The BC :class:`~offrl_jax.core.Learner`; ``init`` checks the data on the host when concrete."""

    def init(key: Array, data: Transitions) -> BCState:
        validate_offline_data(config, data)
        base, k_run = new_states(key, config, data, [(_network(config), False)])
        return BCState(step=base.step, apply_fn=base.apply_fn, params=base.params, tx=base.tx,
                       opt_state=base.opt_state, key=k_run)

    return scan_learner(init, make_update(config), config.num_steps, config.batch_size, cast_rows(config.dtype))


def make_train(config: BCConfig) -> Callable:
    """``train(key, data: Transitions) -> core.TrainResult(BCState, BCMetrics[num_steps])``:
    ``num_steps`` minibatch steps on L(θ) = −(1/B) Σ_m log π_θ(a_m|s_m) (see the module)."""
    return train_from_learner(make_learner(config))


def action_probs(state: BCState, observations: Array) -> Array:
    """``[B, A]`` π_θ(·|s) of a discrete BC policy."""
    return jax.nn.softmax(state.apply_fn(state.params, observations), axis=-1)


def act(config: BCConfig, state: BCState, observations: Array) -> Array:
    """Deterministic evaluation actions: the mode, argmax π_θ(·|s) (``[B]`` ints) or the clipped
    Gaussian mean (``[B, d]``)."""
    if config.continuous:
        mean, _ = state.apply_fn(state.params, observations)
        return jnp.clip(mean, -config.max_action, config.max_action)
    return jnp.argmax(state.apply_fn(state.params, observations), axis=-1)

