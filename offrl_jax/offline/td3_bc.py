"""TD3+BC: TD3 with a behaviour-cloning term in the actor loss, for continuous actions.

Critics (twin Q_θ1, Q_θ2, targets Q̄, actor target π̄), every step:

    ã'_m = clip(π̄(s'_m) + clip(ε_m, −c, c), −a_max, a_max),   ε_m ~ N(0, σ² I)
    y_m  = r_m + γ d_m min_i Q̄_i(s'_m, ã'_m),   L(θ) = Σ_i (1/B) Σ_m (Q_θi(s_m, a_m) − y_m)²

Actor, every ``policy_delay`` steps (then the Polyak refresh of all targets at rate ``tau``):

    λ = α / ((1/B) Σ_m |Q_θ1(s_m, π(s_m))|)   (no gradient through λ)
    L(φ) = −λ (1/B) Σ_m Q_θ1(s_m, π_φ(s_m)) + (1/B) Σ_m ‖π_φ(s_m) − a_m‖²

See "A Minimalist Approach to Offline Reinforcement Learning", Fujimoto & Gu 2021, on
"Addressing Function Approximation Error in Actor-Critic Methods", Fujimoto, van Hoof & Meger
2018 (TD3). The paper also normalises observations by the dataset's mean and std; do that when
building the data. Our squared error sums over action dimensions (the paper averages).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from offrl_jax.core import Learner, config_field, train_from_learner
from offrl_jax.data import Transitions
from offrl_jax.fitted import ContinuousQNetwork
from offrl_jax.offline.common import (
    TanhActor,
    cast_rows,
    check_common,
    check_unit,
    new_states,
    scan_learner,
    select,
    validate_offline_data,
)

Array = Any

__all__ = ["TD3BCConfig", "TD3BCState", "TD3BCMetrics", "TwinQNetwork", "make_update", "make_learner",
           "make_train", "act"]


@struct.dataclass
class TD3BCConfig:
    """TD3+BC hyperparameters (frozen; validated); defaults are the paper's.

    Attributes:
      action_dim: d. hidden_sizes: critic and actor widths. gamma: discount in [0, 1).
      alpha: α > 0, the weight of the Q term (λ = α / mean |Q|).
      policy_noise: σ of the target smoothing noise (in action units). noise_clip: c.
      policy_delay: actor and target updates every this many critic steps.
      tau: Polyak rate in (0, 1]. max_action: a_max, actions in [−a_max, a_max].
      num_steps, batch_size, learning_rate, dtype.
    """

    action_dim: int = config_field(None)
    hidden_sizes: Tuple[int, ...] = config_field((256, 256))
    gamma: float = config_field(0.99)
    alpha: float = config_field(2.5)
    policy_noise: float = config_field(0.2)
    noise_clip: float = config_field(0.5)
    policy_delay: int = config_field(2)
    tau: float = config_field(0.005)
    max_action: float = config_field(1.0)
    num_steps: int = config_field(10_000)
    batch_size: int = config_field(256)
    learning_rate: float = config_field(3e-4)
    dtype: str = config_field("float32")

    def __post_init__(self):
        check_common(self, continuous_only=True)
        for name in ("alpha", "max_action"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"{name}: expected a positive number, found {v!r}")
        for name in ("policy_noise", "noise_clip"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"{name}: expected a number >= 0, found {v!r}")
        if isinstance(self.policy_delay, bool) or not isinstance(self.policy_delay, int) or self.policy_delay < 1:
            raise ValueError(f"policy_delay: expected a positive int, found {self.policy_delay!r}")
        check_unit(self.tau, "tau", closed_low=False)


class TwinQNetwork(nn.Module):
    """Two independent :class:`~offrl_jax.fitted.ContinuousQNetwork` critics; returns ``[2, ...]``."""

    hidden_sizes: Sequence[int] = (256, 256)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, obs: Array, action: Array) -> Array:
        return jnp.stack([ContinuousQNetwork(tuple(self.hidden_sizes), dtype=self.dtype)(obs, action)
                          for _ in range(2)])


class TD3BCState(struct.PyTreeNode):
    """Critic and actor ``TrainState``s, their Polyak targets, the PRNG ``key`` and ``step``."""

    critic: Any
    critic_target: Any
    actor: Any
    actor_target: Any
    key: Array
    step: Array


class TD3BCMetrics(NamedTuple):
    """Per-step scalars: ``loss`` (critic), ``actor_loss`` (last computed), ``q_mean``, ``bc_mse``."""

    loss: Array
    actor_loss: Array
    q_mean: Array
    bc_mse: Array


def make_update(config: TD3BCConfig) -> Callable:
    """``update(state, batch) -> (state, TD3BCMetrics)``: the critic step, then (every
    ``policy_delay`` steps) the actor step and the target refresh (module docstring). The actor
    step is computed every step and kept only when due (a select, so it vmaps)."""

    def update(state: TD3BCState, batch: Any):
        key, k_noise = jax.random.split(state.key)
        obs, act_, nxt = batch.observations, batch.actions, batch.next_observations
        critic, actor = state.critic, state.actor
        next_a = actor.apply_fn(state.actor_target, nxt)
        noise = jnp.clip(config.policy_noise * jax.random.normal(k_noise, next_a.shape, next_a.dtype),
                         -config.noise_clip, config.noise_clip)
        next_a = jnp.clip(next_a + noise, -config.max_action, config.max_action)
        next_q = jnp.min(critic.apply_fn(state.critic_target, nxt, next_a), axis=0)
        y = jax.lax.stop_gradient(batch.rewards + config.gamma * batch.discounts * next_q)

        def critic_loss(params):
            q = critic.apply_fn(params, obs, act_)
            return jnp.sum(jnp.mean((q - y[None]) ** 2, axis=-1)), q

        (lc, q), gc = jax.value_and_grad(critic_loss, has_aux=True)(critic.params)
        critic = critic.apply_gradients(grads=gc)

        def actor_loss(params):
            pi = actor.apply_fn(params, obs)
            q1 = critic.apply_fn(critic.params, obs, pi)[0]
            lam = jax.lax.stop_gradient(config.alpha / jnp.mean(jnp.abs(q1)))
            mse = jnp.mean(jnp.sum((pi - act_) ** 2, axis=-1))
            return -lam * jnp.mean(q1) + mse, mse

        (la, mse), ga = jax.value_and_grad(actor_loss, has_aux=True)(actor.params)
        due = (state.step + 1) % config.policy_delay == 0
        actor = select(due, actor.apply_gradients(grads=ga), actor)
        critic_target = select(due, optax.incremental_update(critic.params, state.critic_target, config.tau),
                               state.critic_target)
        actor_target = select(due, optax.incremental_update(actor.params, state.actor_target, config.tau),
                              state.actor_target)
        new = state.replace(critic=critic, critic_target=critic_target, actor=actor, actor_target=actor_target,
                            key=key, step=state.step + 1)
        return new, TD3BCMetrics(lc, la, jnp.mean(q), mse)

    return update


def make_learner(config: TD3BCConfig) -> Learner:
    """The TD3+BC :class:`~offrl_jax.core.Learner`; ``init`` checks the data on the host when concrete."""

    def init(key: Array, data: Transitions) -> TD3BCState:
        validate_offline_data(config, data)
        dtype = jnp.dtype(config.dtype)
        critic_net = TwinQNetwork(tuple(config.hidden_sizes), dtype)
        actor_net = TanhActor(config.action_dim, tuple(config.hidden_sizes), float(config.max_action), dtype)
        critic, actor, k_run = new_states(key, config, data, [(critic_net, True), (actor_net, False)])
        return TD3BCState(critic=critic, critic_target=critic.params, actor=actor, actor_target=actor.params,
                          key=k_run, step=jnp.zeros((), jnp.int32))

    return scan_learner(init, make_update(config), config.num_steps, config.batch_size, cast_rows(config.dtype))


def make_train(config: TD3BCConfig) -> Callable:
    """``train(key, data: Transitions) -> core.TrainResult(TD3BCState, TD3BCMetrics[num_steps])``."""
    return train_from_learner(make_learner(config))


def act(state: TD3BCState, observations: Array) -> Array:
    """``[B, d]`` deterministic actions π_φ(s) ∈ [−a_max, a_max]."""
    return state.actor.apply_fn(state.actor.params, observations)
