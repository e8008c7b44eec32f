"""Conservative Q-learning for discrete actions: fitted Q iteration plus a log-sum-exp penalty.

The loss of one minibatch (CQL(H), discrete form):

    L(θ) = (1/B) Σ_m ℓ(Q_θ(s_m, a_m) − y_m)
           + α (1/B) Σ_m [ log Σ_a exp Q_θ(s_m, a) − Q_θ(s_m, a_m) ],
    y_m  = r_m + γ d_m max_a' Q̄(s'_m, a')        (the FQI target of :mod:`offrl_jax.fitted`)

The penalty pushes Q down on actions the data does not take and up on those it does, so the
learned Q lower-bounds the value of the policy it induces away from the data. With α fixed the
penalty weight is ``alpha``; with ``target_action_gap`` τ set, α is tuned by the Lagrangian form
max_{α ≥ 0} α (gap − τ) (gradient steps on log α), raising α while the gap exceeds τ. α = 0 is
exactly the FQI loop of :func:`offrl_jax.fitted.make_train` (same init, same minibatches).
See "Conservative Q-Learning for Offline Reinforcement Learning", Kumar, Zhou, Tucker & Levine
2020 (the CQL(H) regulariser; our α multiplies the penalty only, as in their discrete Atari version).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from offrl_jax.core import Learner, config_field, train_from_learner
from offrl_jax.data import Transitions
from offrl_jax.fitted import FittedQConfig, QTrainState, init_state, regression_loss
from offrl_jax.fitted.config import loop_fields
from offrl_jax.fitted.loop import fitted_batch, refresh_target
from offrl_jax.fitted.targets import td_targets
from offrl_jax.offline.common import check_common, scan_learner, take, validate_offline_data

Array = Any
_FITTED_FIELDS = ("step", "apply_fn", "params", "tx", "opt_state", "target_params", "key")

__all__ = ["CQLConfig", "CQLState", "CQLMetrics", "make_update", "make_learner", "make_train",
           "q_values", "act"]


@struct.dataclass
class CQLConfig:
    """Discrete CQL hyperparameters (frozen; validated). The Q-network and TD part are those of
    :class:`~offrl_jax.fitted.FittedQConfig` with ``method="fqi"`` (:attr:`fitted`).

    Attributes:
      num_actions: A. num_observations: integer observations fed one-hot (tabular input).
      hidden_sizes: Q-network widths (``()`` with one-hot input: a table).
      gamma: discount in [0, 1).
      alpha: penalty weight α ≥ 0 (the initial α when tuned).
      target_action_gap: τ > 0 turns on the Lagrangian tuning of α; ``None`` keeps α fixed.
      alpha_learning_rate: Adam step size on log α.
      num_steps, batch_size, learning_rate, optimizer, max_grad_norm, loss (``"l2"``/``"huber"``),
      huber_delta, target_update_period, tau (Polyak), double_q, dtype: as in ``FittedQConfig``.
    """

    num_actions: int = config_field(None)
    num_observations: Optional[int] = config_field(None)
    hidden_sizes: Tuple[int, ...] = config_field((256, 256))
    gamma: float = config_field(0.99)
    alpha: float = config_field(1.0)
    target_action_gap: Optional[float] = config_field(None)
    alpha_learning_rate: float = config_field(3e-4)
    num_steps: int = config_field(10_000)
    batch_size: Optional[int] = config_field(256)
    learning_rate: float = config_field(3e-4)
    optimizer: str = config_field("adam")
    max_grad_norm: Optional[float] = config_field(None)
    loss: str = config_field("l2")
    huber_delta: float = config_field(1.0)
    target_update_period: int = config_field(100)
    tau: Optional[float] = config_field(None)
    double_q: bool = config_field(False)
    dtype: str = config_field("float32")

    def __post_init__(self):
        check_common(self, discrete_only=True)
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or self.alpha < 0:
            raise ValueError(f"alpha: expected a penalty weight >= 0, found {self.alpha!r}")
        gap = self.target_action_gap
        if gap is not None and (isinstance(gap, bool) or not isinstance(gap, (int, float)) or gap <= 0):
            raise ValueError(f"target_action_gap: expected a positive number or None, found {gap!r}")
        if gap is not None and self.alpha <= 0:
            raise ValueError("alpha: the Lagrangian form tunes log α and needs an initial alpha > 0")
        if not isinstance(self.alpha_learning_rate, (int, float)) or self.alpha_learning_rate <= 0:
            raise ValueError(f"alpha_learning_rate: expected a positive number, found {self.alpha_learning_rate!r}")

    @property
    def lagrangian(self) -> bool:
        """True when α is tuned (``target_action_gap`` set)."""
        return self.target_action_gap is not None

    @property
    def fitted(self) -> FittedQConfig:
        """The FQI config of the Q-network and TD targets."""
        return _fitted(self)


@functools.lru_cache(maxsize=256)
def _fitted(config: CQLConfig) -> FittedQConfig:
    return FittedQConfig(num_actions=config.num_actions, num_observations=config.num_observations, method="fqi",
                         gamma=float(config.gamma), hidden_sizes=tuple(config.hidden_sizes), **loop_fields(config))


class CQLState(QTrainState):
    """The fitted-Q state plus ``log_alpha`` and its optimiser state."""

    log_alpha: Array = None
    alpha_opt_state: Any = None


class CQLMetrics(NamedTuple):
    """Per-step scalars: total ``loss``, ``td_loss``, the ``gap`` E[logsumexp Q − Q(s, a)], ``alpha``, ``q_mean``."""

    loss: Array
    td_loss: Array
    gap: Array
    alpha: Array
    q_mean: Array


def _alpha_optimizer(config: CQLConfig):
    return optax.adam(config.alpha_learning_rate)


def make_update(config: CQLConfig) -> Callable:
    """``update(state, batch) -> (state, CQLMetrics)``: FQI targets from Q̄, one optimiser step on
    the CQL loss (module docstring), a step on log α when tuned, then the target refresh."""
    fq = config.fitted
    alpha_tx = _alpha_optimizer(config)

    def update(state: CQLState, batch: Any):
        y = td_targets(fq, state.apply_fn, state.target_params, state.params, batch)
        alpha = jax.lax.stop_gradient(jnp.exp(state.log_alpha))

        def loss_fn(params):
            q_all = state.apply_fn(params, batch.observations)
            q = take(q_all, batch.actions)
            td = regression_loss(q, y, fq.loss, fq.huber_delta)
            gap = jnp.mean(jax.nn.logsumexp(q_all, axis=-1) - q)
            return td + alpha * gap, (td, gap, q)

        (loss, (td, gap, q)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        state = state.apply_gradients(grads=grads)
        if config.lagrangian:
            # d/d(log α) of −α (gap − τ): ascent on the Lagrangian in α.
            g = -alpha * (jax.lax.stop_gradient(gap) - config.target_action_gap)
            upd, opt = alpha_tx.update(g, state.alpha_opt_state)
            state = state.replace(log_alpha=optax.apply_updates(state.log_alpha, upd), alpha_opt_state=opt)
        state = refresh_target(fq, state)
        return state, CQLMetrics(loss, td, gap, alpha, jnp.mean(q))

    return update


def make_learner(config: CQLConfig) -> Learner:
    """The CQL :class:`~offrl_jax.core.Learner`. ``init`` is
    :func:`offrl_jax.fitted.init_state` (so α = 0 reproduces FQI exactly) plus log α."""
    fq = config.fitted

    def init(key: Array, data: Transitions) -> CQLState:
        validate_offline_data(config, data)
        base = init_state(key, fq, data)
        dtype = jnp.dtype(config.dtype)
        log_alpha = jnp.log(jnp.asarray(config.alpha, dtype)) if config.alpha > 0 else jnp.asarray(-jnp.inf, dtype)
        fields = {k: getattr(base, k) for k in _FITTED_FIELDS}
        return CQLState(**fields, log_alpha=log_alpha, alpha_opt_state=_alpha_optimizer(config).init(log_alpha))

    return scan_learner(init, make_update(config), config.num_steps, config.batch_size,
                        lambda data: fitted_batch(fq, data))


def make_train(config: CQLConfig) -> Callable:
    """``train(key, data: Transitions) -> core.TrainResult(CQLState, CQLMetrics[num_steps])``:
    ``num_steps`` minibatch steps on the CQL loss (see the module docstring)."""
    return train_from_learner(make_learner(config))


def q_values(state: CQLState, observations: Array) -> Array:
    """``[B, A]`` Q_θ(s, ·)."""
    return state.apply_fn(state.params, observations)


def act(state: CQLState, observations: Array) -> Array:
    """``[B]`` greedy actions argmax_a Q_θ(s, a) (ties to the lowest index)."""
    return jnp.argmax(q_values(state, observations), axis=-1)
