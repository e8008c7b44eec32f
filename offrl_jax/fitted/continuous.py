"""Fitted Q evaluation of a continuous-action policy as one jitted ``lax.scan``, vmappable over seeds.

FQE regresses Q_θ(s, a) onto sampled-action targets ("Batch Policy Learning under Constraints",
Le, Voloshin & Yue 2019, with the expectation over π's next action replaced by K draws):

    y_m = r_m + γ d_m (1/K) Σ_k Q̄(s'_m, a'_k),   a'_k ~ π(·|s'_m) drawn afresh every step,

an unbiased estimate of the expectation target r + γ d E_{a'~π} Q̄(s', a') (so the regression's
minimiser is unchanged; the extra variance only adds noise to the gradient). Q̄ is the target
network, refreshed by hard copies every ``target_update_period`` steps or by Polyak ``tau``.

The pieces mirror :mod:`offrl_jax.fitted.train` (and reuse its optimizer, train state, metrics,
minibatch sampler and target refresh): :class:`ContinuousFQEConfig`;
:func:`make_continuous_update` → ``update(state, batch) -> (state, StepMetrics)``;
:func:`make_continuous_train` → ``train(key, dataset) -> TrainResult`` (init + ``lax.scan``
over ``num_steps``, minibatches drawn inside jit), so ``jax.jit(jax.vmap(train, in_axes=(0,
None)))(keys, dataset)`` trains a network per seed in one program; and
:func:`continuous_initial_value`, the estimate Ĵ = (1/N) Σ_n (1/K) Σ_k Q̂(s_0^n, a_k).

``sample_actions(key, observations [B, D]) -> actions [B, d]`` is the evaluated policy (one draw
per row), e.g. :meth:`offrl_jax.envs.lqr.LinearGaussianPolicy.sample_actions`. Datasets are
:class:`~offrl_jax.data.Transitions` with float ``actions [M, d]``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from offrl_jax.data import Transitions
from offrl_jax.fitted.networks import ContinuousQNetwork
from offrl_jax.fitted.targets import sampled_fqe_targets, sampled_next_values
from offrl_jax.fitted.train import (
    FittedQConfig,
    QTrainState,
    StepMetrics,
    TrainResult,
    make_optimizer,
    q_regression_step,
    refresh_target,
    sample_batch,
    validate_config,
)

Array = Any
SampleActions = Callable[[Array, Array], Array]

__all__ = [
    "ContinuousFQEConfig",
    "QuadraticQNetwork",
    "continuous_q_network",
    "validate_continuous_config",
    "validate_continuous_dataset",
    "init_continuous_state",
    "continuous_regression_step",
    "make_continuous_update",
    "make_continuous_run",
    "make_continuous_train",
    "continuous_initial_value",
]


def _static(default):
    return struct.field(pytree_node=False, default=default)


@struct.dataclass
class ContinuousFQEConfig:
    """Static hyperparameters of continuous-action FQE (frozen; hashable; no array leaves).

    Attributes:
      action_dim: d, the action dimension the network takes.
      gamma: discount γ in [0, 1).
      features: ``"mlp"`` (:class:`~offrl_jax.fitted.networks.ContinuousQNetwork`) or
        ``"quadratic"`` (:class:`QuadraticQNetwork`, linear in its parameters).
      hidden_sizes: MLP widths (ignored by ``"quadratic"``).
      num_action_samples: K, next actions drawn from π per transition per step.
      num_steps: gradient steps of :func:`make_continuous_train`.
      batch_size: minibatch size (uniform, with replacement); ``None`` = full dataset.
      learning_rate, optimizer, max_grad_norm: as in
        :class:`~offrl_jax.fitted.train.FittedQConfig`.
      loss: ``"l2"`` or ``"huber"``; huber_delta: δ.
      target_update_period: copy the online parameters to the target every this many steps.
      tau: if set, Polyak averaging θ̄ ← τ θ + (1 − τ) θ̄ every step instead.
      dtype: ``"float32"`` (default) or ``"float64"`` (needs ``jax_enable_x64``).
    """

    action_dim: int = _static(None)
    gamma: float = _static(0.99)
    features: str = _static("mlp")
    hidden_sizes: Tuple[int, ...] = _static((256, 256))
    num_action_samples: int = _static(1)
    num_steps: int = _static(1000)
    batch_size: Optional[int] = _static(256)
    learning_rate: float = _static(3e-4)
    optimizer: str = _static("adam")
    max_grad_norm: Optional[float] = _static(None)
    loss: str = _static("l2")
    huber_delta: float = _static(1.0)
    target_update_period: int = _static(100)
    tau: Optional[float] = _static(None)
    dtype: str = _static("float32")


def _is_positive_int(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= 1


@functools.lru_cache(maxsize=256)
def _fitted_config(config: ContinuousFQEConfig) -> FittedQConfig:
    """The shared fields as a :class:`FittedQConfig` (for its validation, optimizer, refresh)."""
    return FittedQConfig(
        num_actions=config.action_dim,
        method="fqe",
        gamma=config.gamma,
        hidden_sizes=config.hidden_sizes,
        num_steps=config.num_steps,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        optimizer=config.optimizer,
        max_grad_norm=config.max_grad_norm,
        loss=config.loss,
        huber_delta=config.huber_delta,
        target_update_period=config.target_update_period,
        tau=config.tau,
        dtype=config.dtype,
    )


def validate_continuous_config(config: ContinuousFQEConfig) -> ContinuousFQEConfig:
    """Host-side checks of every field; raises ``ValueError`` naming the field. Returns it."""
    if not isinstance(config, ContinuousFQEConfig):
        raise ValueError(f"config: expected a ContinuousFQEConfig, found {type(config).__name__}")
    if not _is_positive_int(config.action_dim):
        raise ValueError(f"action_dim: expected a positive int, found {config.action_dim!r}")
    if not _is_positive_int(config.num_action_samples):
        raise ValueError(f"num_action_samples: expected a positive int K >= 1, found {config.num_action_samples!r}")
    g = config.gamma
    if isinstance(g, bool) or not isinstance(g, (int, float, np.floating)) or not 0.0 <= g < 1.0:
        raise ValueError(f"gamma: expected a discount in [0, 1), found {g!r}")
    if config.features not in ("mlp", "quadratic"):
        raise ValueError(f"features: expected 'mlp' or 'quadratic', found {config.features!r}")
    validate_config(_fitted_config(config))
    return config


class QuadraticQNetwork(nn.Module):
    """Quadratic Q-function, linear in its parameters: Q(s, a) = xᵀ W x + bᵀ x + c, x = [s; a].

    Only the symmetric part of W matters; W, b, c start at 0. This class holds the exact Q^π of
    a linear-Gaussian policy on a linear-quadratic system (see :mod:`offrl_jax.envs.lqr`), so FQE
    with it is linear FQE on quadratic features ("Adaptive Linear Quadratic Control Using Policy
    Iteration", Bradtke, Ydstie & Barto 1994, fit Q = [s; a]ᵀ H [s; a] the same way), with
    W[:n, :n] = P_ss, W[:n, n:] = P_sa (if W is symmetric), W[n:, n:] = P_aa, c the constant.

    Attributes:
      dtype: dtype of parameters and computation.
    """

    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, obs: Array, action: Array) -> Array:
        """Args: obs ``[..., D]``, action ``[..., d]``. Returns ``[...]``."""
        x = jnp.concatenate([jnp.asarray(obs, self.dtype), jnp.asarray(action, self.dtype)], -1)
        size = x.shape[-1]
        w = self.param("w", nn.initializers.zeros, (size, size), self.dtype)
        b = self.param("b", nn.initializers.zeros, (size,), self.dtype)
        c = self.param("c", nn.initializers.zeros, (), self.dtype)
        return jnp.sum((x @ w) * x, axis=-1) + x @ b + c


@functools.lru_cache(maxsize=256)
def continuous_q_network(config: ContinuousFQEConfig) -> nn.Module:
    """The network a config describes (one object per config, so equal configs share compiles)."""
    dtype = jnp.dtype(config.dtype)
    if config.features == "quadratic":
        return QuadraticQNetwork(dtype=dtype)
    return ContinuousQNetwork(hidden_sizes=tuple(config.hidden_sizes), dtype=dtype)


def validate_continuous_dataset(
    config: ContinuousFQEConfig, dataset: Transitions, sample_actions: Optional[SampleActions] = None
) -> None:
    """Host-side checks of a dataset (and the policy's action shape) against a config.

    Raises ``ValueError`` naming the argument for: a non-:class:`~offrl_jax.data.Transitions`
    dataset, no rows, mismatched leading sizes, observations that are not ``[M, D]`` floats,
    actions that are not ``[M, action_dim]`` floats, ``batch_size`` larger than the dataset, or
    a ``sample_actions`` whose output (checked abstractly with ``jax.eval_shape``) is not
    ``[B, action_dim]``. Works on traced datasets too (only shapes and dtypes are read).
    """
    validate_continuous_config(config)
    if not isinstance(dataset, Transitions):
        raise ValueError(f"dataset: expected offrl_jax.data.Transitions, found {type(dataset).__name__}")
    m = dataset.rewards.shape[0] if dataset.rewards.ndim == 1 else 0
    if m < 1:
        raise ValueError(f"dataset.rewards: expected M >= 1 transitions [M], found {dataset.rewards.shape}")
    for f in ("observations", "actions", "next_observations", "discounts"):
        if getattr(dataset, f).shape[:1] != (m,):
            raise ValueError(f"dataset.{f}: expected leading size M = {m}, found {getattr(dataset, f).shape}")
    obs = dataset.observations
    if obs.ndim != 2 or not jnp.issubdtype(obs.dtype, jnp.floating) or dataset.next_observations.shape != obs.shape:
        raise ValueError(
            f"dataset.observations: expected float [M, D] (and next_observations alike), found "
            f"{obs.shape} {obs.dtype} / {dataset.next_observations.shape}"
        )
    act = dataset.actions
    if act.shape != (m, config.action_dim) or not jnp.issubdtype(act.dtype, jnp.floating):
        raise ValueError(
            f"action_dim: the network takes actions [M, {config.action_dim}] (floats) but dataset.actions "
            f"is {act.shape} {act.dtype}"
        )
    if config.batch_size is not None and config.batch_size > m:
        raise ValueError(f"batch_size: {config.batch_size} is larger than the dataset (M = {m})")
    if sample_actions is not None:
        out = jax.eval_shape(sample_actions, jax.random.key(0), jax.ShapeDtypeStruct((2,) + obs.shape[1:], obs.dtype))
        if getattr(out, "shape", None) != (2, config.action_dim):
            raise ValueError(
                f"sample_actions: expected actions [B, {config.action_dim}] for observations [B, D], "
                f"found {getattr(out, 'shape', out)} for B = 2"
            )


def init_continuous_state(
    key: Array, config: ContinuousFQEConfig, example_observations: Array, example_actions: Array
) -> QTrainState:
    """Initialises the network, optimizer and target (= online) parameters.

    Args:
      key: PRNG key; split into the init key and the run key stored in the state.
      config: the config.
      example_observations: ``[B, D]``; example_actions: ``[B, d]`` (give the input shapes).

    Returns:
      A :class:`~offrl_jax.fitted.train.QTrainState` at step 0 (``apply_fn(params, obs, act)``).
    """
    k_init, k_run = jax.random.split(key)
    net = continuous_q_network(config)
    params = net.init(k_init, example_observations, example_actions)
    tx = make_optimizer(_fitted_config(config))
    fresh = QTrainState.create(apply_fn=net.apply, params=params, tx=tx, target_params=params, key=k_run)
    return fresh.replace(step=jnp.zeros((), jnp.int32))


def continuous_regression_step(
    config: ContinuousFQEConfig, state: QTrainState, observations: Array, actions: Array, targets: Array
) -> Tuple[QTrainState, StepMetrics]:
    """One optax step on L(θ) = (1/B) Σ_m ℓ(Q_θ(s_m, a_m) − y_m), ℓ = ½x² or Huber.

    Args:
      config: the config.
      state: current train state (``apply_fn(params, obs, act) -> [B]``).
      observations: ``[B, D]``; actions: ``[B, d]`` floats; targets: ``[B]`` (gradient stopped).

    Returns:
      ``(state, StepMetrics)`` with ``step`` incremented (target parameters untouched).
    """
    q_fn = lambda params: state.apply_fn(params, observations, actions)  # noqa: E731
    return q_regression_step(state, q_fn, targets, config.loss, config.huber_delta)


def make_continuous_update(config: ContinuousFQEConfig, sample_actions: SampleActions) -> Callable:
    """Builds ``update(state, batch) -> (state, StepMetrics)`` for continuous-action FQE.

    The step splits ``state.key``, draws K next actions a'_k ~ π(·|s'_m) per row
    (:func:`~offrl_jax.fitted.targets.sampled_next_values` on the target network), forms
    y = r + γ d (1/K) Σ_k Q̄(s', a'_k) (:func:`~offrl_jax.fitted.targets.sampled_fqe_targets`),
    takes one optax step and refreshes the target (hard copy every K steps or Polyak ``tau``).

    Args:
      config: validated on the host here.
      sample_actions: ``(key, observations [B, D]) -> [B, d]``, the evaluated policy (closed over).

    Returns:
      The pure update function (``batch`` has the :class:`~offrl_jax.data.Transitions` fields);
      callers jit it.
    """
    validate_continuous_config(config)
    fitted = _fitted_config(config)

    def update(state: QTrainState, batch: Transitions):
        key, k_next = jax.random.split(state.key)
        q_bar = functools.partial(state.apply_fn, state.target_params)
        next_values = sampled_next_values(
            k_next, q_bar, sample_actions, batch.next_observations, config.num_action_samples
        )
        y = sampled_fqe_targets(batch.rewards, batch.discounts, next_values.astype(batch.rewards.dtype), config.gamma)
        state, metrics = continuous_regression_step(config, state.replace(key=key), batch.observations, batch.actions, y)
        return refresh_target(fitted, state), metrics

    return update


def make_continuous_run(config: ContinuousFQEConfig, sample_actions: SampleActions) -> Callable:
    """Builds ``run(state, dataset, num_steps) -> (state, StepMetrics[num_steps])``.

    A ``lax.scan`` of :func:`make_continuous_update`'s step, each drawing its minibatch inside
    jit from the device-held dataset (rewards/discounts cast to the network dtype once).
    ``num_steps`` is static. Running 2 × n steps equals n then n more.
    """
    update = make_continuous_update(config, sample_actions)
    dtype = jnp.dtype(config.dtype)

    def run(state: QTrainState, dataset: Transitions, num_steps: int):
        data = Transitions(
            observations=dataset.observations,
            actions=dataset.actions,
            rewards=dataset.rewards.astype(dtype),
            next_observations=dataset.next_observations,
            discounts=dataset.discounts.astype(dtype),
        )

        def step(carry: QTrainState, _):
            k_batch, k_rest = jax.random.split(carry.key)
            minibatch = sample_batch(k_batch, data, config.batch_size)
            return update(carry.replace(key=k_rest), minibatch)

        return jax.lax.scan(step, state, None, length=num_steps)

    return run


def make_continuous_train(config: ContinuousFQEConfig, sample_actions: SampleActions) -> Callable:
    """Builds ``train(key, dataset) -> TrainResult`` running ``config.num_steps`` FQE updates.

    The config is validated on the host now, the dataset's shapes (and the policy's action
    shape) when ``train`` is called or traced. ``jax.jit(jax.vmap(train, in_axes=(0, None)))``
    trains one network per key in a single program.

    Args:
      config: the :class:`ContinuousFQEConfig`.
      sample_actions: ``(key, observations [B, D]) -> [B, d]``, the evaluated policy π.

    Returns:
      ``train(key, dataset)``; ``dataset`` is :class:`~offrl_jax.data.Transitions` with float
      ``actions [M, d]``; the result's metrics have leading ``[num_steps]``.
    """
    validate_continuous_config(config)
    run = make_continuous_run(config, sample_actions)

    def train(key: Array, dataset: Transitions) -> TrainResult:
        validate_continuous_dataset(config, dataset, sample_actions)
        state = init_continuous_state(key, config, dataset.observations[:1], dataset.actions[:1])
        state, metrics = run(state, dataset, config.num_steps)
        return TrainResult(state, metrics)

    return train


def continuous_initial_value(
    apply_fn: Callable,
    params: Any,
    key: Array,
    observations: Array,
    sample_actions: SampleActions,
    num_samples: int,
) -> Array:
    """FQE's direct-method estimate Ĵ = (1/N) Σ_n (1/K) Σ_k Q̂(s_0^n, a_k), a_k ~ π(·|s_0^n).

    An unbiased Monte-Carlo estimate of (1/N) Σ_n E_{a~π} Q̂(s_0^n, a) (Le, Voloshin & Yue 2019).

    Args:
      apply_fn: ``(params, obs [N, D], act [N, d]) -> [N]``; params: its parameters.
      key: PRNG key.
      observations: ``[N, D]`` initial observations s_0^n.
      sample_actions: ``(key, obs [N, D]) -> [N, d]``, the evaluated policy.
      num_samples: K (static).

    Returns:
      Scalar estimate.
    """
    values = sampled_next_values(key, functools.partial(apply_fn, params), sample_actions, observations, num_samples)
    return jnp.mean(values)
