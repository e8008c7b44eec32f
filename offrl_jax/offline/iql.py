"""Implicit Q-learning: in-sample value learning by expectile regression, then weighted cloning.

Three regressions per step (in this order, as in the paper's code):

    V:  L(ψ) = (1/B) Σ_m L₂^κ(Q̄(s_m, a_m) − V_ψ(s_m)),   L₂^κ(u) = |κ − 1(u < 0)| u²
    Q:  L(θ) = (1/B) Σ_m ½ (r_m + γ d_m V_ψ(s'_m) − Q_θ(s_m, a_m))²
    π:  L(φ) = −(1/B) Σ_m min(exp(β (Q̄(s_m, a_m) − V_ψ(s_m))), w_max) log π_φ(a_m | s_m)

with Q̄ a Polyak average of Q_θ (rate ``tau``) and V, the freshly updated ψ, used by the Q and π
steps. The expectile κ → 1 makes V approach max over actions *in the data's support*, so no
action outside the data is ever evaluated; κ = 0.5 is SARSA-style evaluation of the behaviour
policy. π is a softmax over actions (discrete) or a Gaussian (continuous). See "Offline
Reinforcement Learning with Implicit Q-Learning", Kostrikov, Nair & Levine 2022 (we use one
Q-network where the paper takes the minimum of two).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from offrl_jax.core import Learner, config_field, train_from_learner
from offrl_jax.data import Transitions
from offrl_jax.fitted import ContinuousQNetwork
from offrl_jax.offline.common import (
    GaussianPolicy,
    cast_rows,
    check_common,
    check_unit,
    expectile_loss,
    gaussian_log_prob,
    logits_network,
    new_states,
    scan_learner,
    take,
    validate_offline_data,
    value_network,
)
from offrl_jax.policies import categorical_log_prob

Array = Any

__all__ = ["IQLConfig", "IQLState", "IQLMetrics", "make_update", "make_learner", "make_train",
           "q_values", "action_probs", "act"]


@struct.dataclass
class IQLConfig:
    """IQL hyperparameters (frozen; validated).

    Attributes:
      num_actions (discrete) or action_dim (continuous); num_observations (discrete, one-hot).
      hidden_sizes: widths of the Q, V and policy MLPs.
      gamma: discount in [0, 1).
      expectile: κ in [0.5, 1).
      temperature: β ≥ 0 of the advantage weights (β = 0: behaviour cloning).
      max_weight: w_max, the clip of exp(β A).
      tau: Polyak rate of Q̄ in (0, 1].
      max_action: continuous actions are clipped to [−a_max, a_max] by :func:`act`.
      num_steps, batch_size, learning_rate, optimizer, dtype.
    """

    num_actions: Optional[int] = config_field(None)
    action_dim: Optional[int] = config_field(None)
    num_observations: Optional[int] = config_field(None)
    hidden_sizes: Tuple[int, ...] = config_field((256, 256))
    gamma: float = config_field(0.99)
    expectile: float = config_field(0.7)
    temperature: float = config_field(3.0)
    max_weight: float = config_field(100.0)
    tau: float = config_field(0.005)
    max_action: float = config_field(1.0)
    num_steps: int = config_field(10_000)
    batch_size: Optional[int] = config_field(256)
    learning_rate: float = config_field(3e-4)
    optimizer: str = config_field("adam")
    dtype: str = config_field("float32")

    def __post_init__(self):
        check_common(self)
        e = self.expectile
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not 0.5 <= e < 1.0:
            raise ValueError(f"expectile: expected a number in [0.5, 1), found {e!r}")
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)) or self.temperature < 0:
            raise ValueError(f"temperature: expected a number >= 0, found {self.temperature!r}")
        for name in ("max_weight", "max_action"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"{name}: expected a positive number, found {v!r}")
        check_unit(self.tau, "tau", closed_low=False)

    @property
    def continuous(self) -> bool:
        return self.action_dim is not None


class IQLState(struct.PyTreeNode):
    """Q, V and policy ``TrainState``s, the Polyak target ``q_target`` parameters, the PRNG ``key``
    and the ``step`` counter."""

    q: Any
    q_target: Any
    v: Any
    policy: Any
    key: Array
    step: Array


class IQLMetrics(NamedTuple):
    """Per-step scalars: ``loss`` (Q), ``v_loss``, ``policy_loss``, ``q_mean``, ``v_mean``, ``weight_mean``."""

    loss: Array
    v_loss: Array
    policy_loss: Array
    q_mean: Array
    v_mean: Array
    weight_mean: Array


def _q_sa(config: IQLConfig, apply_fn: Callable, params: Any, obs: Array, actions: Array) -> Array:
    if config.continuous:
        return apply_fn(params, obs, actions)
    return take(apply_fn(params, obs), actions)


def _log_prob(config: IQLConfig, apply_fn: Callable, params: Any, obs: Array, actions: Array) -> Array:
    if config.continuous:
        mean, log_std = apply_fn(params, obs)
        return gaussian_log_prob(mean, log_std, actions.astype(mean.dtype))
    return categorical_log_prob(apply_fn(params, obs), actions)


def make_update(config: IQLConfig) -> Callable:
    """``update(state, batch) -> (state, IQLMetrics)``: the V, Q and π steps, then Polyak Q̄
    (module docstring)."""

    def update(state: IQLState, batch: Any):
        obs, act_, nxt = batch.observations, batch.actions, batch.next_observations
        q_bar = jax.lax.stop_gradient(_q_sa(config, state.q.apply_fn, state.q_target, obs, act_))

        def v_loss(params):
            v = state.v.apply_fn(params, obs)
            return expectile_loss(q_bar - v, config.expectile), v

        (lv, v_old), gv = jax.value_and_grad(v_loss, has_aux=True)(state.v.params)
        v_state = state.v.apply_gradients(grads=gv)
        v_s = jax.lax.stop_gradient(v_state.apply_fn(v_state.params, obs))
        v_next = jax.lax.stop_gradient(v_state.apply_fn(v_state.params, nxt))
        y = batch.rewards + config.gamma * batch.discounts * v_next

        def q_loss(params):
            q = _q_sa(config, state.q.apply_fn, params, obs, act_)
            return 0.5 * jnp.mean((q - y) ** 2), q

        (lq, q), gq = jax.value_and_grad(q_loss, has_aux=True)(state.q.params)
        weights = jnp.minimum(jnp.exp(config.temperature * (q_bar - v_s)), config.max_weight)

        def pi_loss(params):
            return -jnp.mean(weights * _log_prob(config, state.policy.apply_fn, params, obs, act_))

        lp, gp = jax.value_and_grad(pi_loss)(state.policy.params)
        q_state = state.q.apply_gradients(grads=gq)
        target = optax.incremental_update(q_state.params, state.q_target, config.tau)
        new = state.replace(q=q_state, q_target=target, v=v_state,
                            policy=state.policy.apply_gradients(grads=gp), step=state.step + 1)
        return new, IQLMetrics(lq, lv, lp, jnp.mean(q), jnp.mean(v_old), jnp.mean(weights))

    return update


def _networks(config: IQLConfig):
    dtype = jnp.dtype(config.dtype)
    if config.continuous:
        return (ContinuousQNetwork(tuple(config.hidden_sizes), dtype=dtype), value_network(config),
                GaussianPolicy(config.action_dim, tuple(config.hidden_sizes), dtype))
    return logits_network(config), value_network(config), logits_network(config)


def make_learner(config: IQLConfig) -> Learner:
    """The IQL :class:`~offrl_jax.core.Learner`; ``init`` checks the data on the host when concrete."""
    update = make_update(config)

    def init(key: Array, data: Transitions) -> IQLState:
        validate_offline_data(config, data)
        q_net, v_net, pi_net = _networks(config)
        q, v, policy, k_run = new_states(key, config, data, [(q_net, config.continuous), (v_net, False),
                                                             (pi_net, False)])
        return IQLState(q=q, q_target=q.params, v=v, policy=policy, key=k_run, step=jnp.zeros((), jnp.int32))

    return scan_learner(init, update, config.num_steps, config.batch_size, cast_rows(config.dtype))


def make_train(config: IQLConfig) -> Callable:
    """``train(key, data: Transitions) -> core.TrainResult(IQLState, IQLMetrics[num_steps])``."""
    return train_from_learner(make_learner(config))


def q_values(state: IQLState, observations: Array) -> Array:
    """``[B, A]`` Q_θ(s, ·) (discrete)."""
    return state.q.apply_fn(state.q.params, observations)


def action_probs(state: IQLState, observations: Array) -> Array:
    """``[B, A]`` π_φ(·|s) (discrete)."""
    return jax.nn.softmax(state.policy.apply_fn(state.policy.params, observations), axis=-1)


def act(config: IQLConfig, state: IQLState, observations: Array) -> Array:
    """Deterministic evaluation actions: argmax π_φ(·|s) (``[B]``) or the clipped Gaussian mean."""
    out = state.policy.apply_fn(state.policy.params, observations)
    if config.continuous:
        return jnp.clip(out[0], -config.max_action, config.max_action)
    return jnp.argmax(out, axis=-1)
