"""Fitted Q evaluation and fitted Q iteration as one jitted ``lax.scan``, vmappable over seeds.

The pieces (PureJaxRL / optax style):

* :class:`FittedQConfig`: frozen, static hyperparameters (a pytree with no leaves, so it can be
  passed to ``jit``/``vmap`` like any argument); :func:`validate_config` checks it on the host.
* :class:`QTrainState`: flax ``TrainState`` plus ``target_params`` and the PRNG ``key``.
* :func:`make_update` → ``update(state, batch) -> (state, StepMetrics)``: one optax step on
  the TD regression loss, then a target refresh (hard copy every K steps, or Polyak).
* :func:`make_train` → ``train(key, dataset) -> TrainResult``: init + ``lax.scan`` over
  ``num_steps`` updates, minibatches drawn inside jit from the device-held dataset.
  ``jax.vmap(train)(keys, dataset)`` (or ``jax.vmap(train_fitted_q, in_axes=(0, None, None))``)
  trains many seeds in one program.

FQE regresses onto y = r + γ d Σ_a' π(a'|s') Q̄(s', a') ("Batch Policy Learning under
Constraints", Le, Voloshin & Yue 2019); FQI onto y = r + γ d max_a' Q̄(s', a') ("Tree-Based
Batch Mode Reinforcement Learning", Ernst, Geurts & Wehenkel 2005), with Q̄ the target network.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from flax.training import train_state

from offrl_jax.data import Transitions
from offrl_jax.fitted.networks import QNetwork
from offrl_jax.fitted.targets import fqe_targets, fqi_targets, policy_probs, regression_loss

Array = Any
Policy = Any  # [O, A] array or a function observations -> [B, A] probabilities

__all__ = [
    "FittedQConfig",
    "QTrainState",
    "StepMetrics",
    "TrainResult",
    "FittedBatch",
    "fitted_batch",
    "validate_config",
    "validate_dataset",
    "q_network",
    "make_optimizer",
    "init_state",
    "sample_batch",
    "td_targets",
    "regression_step",
    "q_regression_step",
    "refresh_target",
    "make_update",
    "make_run",
    "make_train",
    "make_train_seeds",
    "default_seeds_per_group",
    "train_fitted_q",
    "initial_value",
    "DRInputs",
    "dr_inputs",
]


def _static(default):
    return struct.field(pytree_node=False, default=default)


@struct.dataclass
class FittedQConfig:
    """Static hyperparameters of fitted Q evaluation / iteration (frozen; hashable).

    Attributes:
      num_actions: A, the number of discrete actions (network outputs).
      method: ``"fqe"`` (evaluate a given policy) or ``"fqi"`` (greedy, Q*).
      gamma: discount γ in [0, 1]; γ = 1 only for data whose episodes all end (discount 0),
        e.g. finite-horizon data with the time step in the observation.
      hidden_sizes: MLP widths; ``()`` is a linear (with one-hot inputs: tabular) Q.
      num_observations: if set, observations are ints in [0, O) fed one-hot (tabular input).
      num_steps: gradient steps of :func:`make_train` (inner steps per iteration in
        :func:`~offrl_jax.fitted.iteration.fitted_q_iteration`).
      batch_size: minibatch size (sampled uniformly with replacement); ``None`` = full dataset.
      learning_rate: optimizer step size.
      optimizer: ``"adam"`` or ``"sgd"``.
      max_grad_norm: optional global-norm gradient clipping.
      loss: ``"l2"`` (½ squared error) or ``"huber"``.
      huber_delta: δ of the Huber loss.
      target_update_period: K, copy the online parameters to the target every K steps.
      tau: if set, Polyak averaging θ̄ ← τ θ + (1 − τ) θ̄ every step instead of hard copies.
      double_q: FQI only: the online network picks argmax_a' and the target values it.
      dtype: ``"float32"`` (default) or ``"float64"`` (needs ``jax_enable_x64``).
    """

    num_actions: int = _static(None)
    method: str = _static("fqe")
    gamma: float = _static(0.99)
    hidden_sizes: Tuple[int, ...] = _static((256, 256))
    num_observations: Optional[int] = _static(None)
    num_steps: int = _static(1000)
    batch_size: Optional[int] = _static(256)
    learning_rate: float = _static(3e-4)
    optimizer: str = _static("adam")
    max_grad_norm: Optional[float] = _static(None)
    loss: str = _static("l2")
    huber_delta: float = _static(1.0)
    target_update_period: int = _static(100)
    tau: Optional[float] = _static(None)
    double_q: bool = _static(False)
    dtype: str = _static("float32")


class QTrainState(train_state.TrainState):
    """flax ``TrainState`` with the target-network parameters and the PRNG key of the run."""

    target_params: Any = None
    key: Array = None


class StepMetrics(NamedTuple):
    """Per-step diagnostics (scalars; stacked ``[num_steps]`` by the scan)."""

    loss: Array
    q_mean: Array
    target_mean: Array
    grad_norm: Array


class TrainResult(NamedTuple):
    """Final state and the stacked per-step metrics of :func:`make_train`'s ``train``."""

    state: QTrainState
    metrics: StepMetrics


def _positive_int(value, name: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive int, found {value!r}")


def _positive_float(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name}: expected a positive number, found {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a positive finite number, found {value!r}")


def validate_config(config: FittedQConfig) -> FittedQConfig:
    """Host-side checks of every field; raises ``ValueError`` naming the field. Returns it."""
    if not isinstance(config, FittedQConfig):
        raise ValueError(f"config: expected a FittedQConfig, found {type(config).__name__}")
    _positive_int(config.num_actions, "num_actions")
    if config.method not in ("fqe", "fqi"):
        raise ValueError(f"method: expected 'fqe' or 'fqi', found {config.method!r}")
    g = config.gamma
    if isinstance(g, bool) or not isinstance(g, (int, float, np.floating)) or not 0.0 <= g <= 1.0:
        raise ValueError(f"gamma: expected a discount in [0, 1], found {g!r}")
    hs = config.hidden_sizes
    if not isinstance(hs, tuple) or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hs):
        raise ValueError(f"hidden_sizes: expected a tuple of positive ints, found {hs!r}")
    _positive_int(config.num_observations, "num_observations", allow_none=True)
    _positive_int(config.num_steps, "num_steps")
    _positive_int(config.batch_size, "batch_size", allow_none=True)
    _positive_float(config.learning_rate, "learning_rate")
    if config.optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer: expected 'adam' or 'sgd', found {config.optimizer!r}")
    if config.max_grad_norm is not None:
        _positive_float(config.max_grad_norm, "max_grad_norm")
    if config.loss not in ("l2", "huber"):
        raise ValueError(f"loss: expected 'l2' or 'huber', found {config.loss!r}")
    _positive_float(config.huber_delta, "huber_delta")
    _positive_int(config.target_update_period, "target_update_period")
    if config.tau is not None and not (isinstance(config.tau, float) and 0.0 < config.tau <= 1.0):
        raise ValueError(f"tau: expected a float in (0, 1] or None, found {config.tau!r}")
    if config.double_q and config.method != "fqi":
        raise ValueError("double_q: only applies to method='fqi' (FQE takes an expectation)")
    if config.dtype not in ("float32", "float64"):
        raise ValueError(f"dtype: expected 'float32' or 'float64', found {config.dtype!r}")
    if config.dtype == "float64" and not jax.config.jax_enable_x64:
        raise ValueError("dtype: 'float64' needs jax_enable_x64 (JAX_ENABLE_X64=1)")
    return config


def _concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def validate_dataset(config: FittedQConfig, dataset: Transitions, policy: Policy = None) -> None:
    """Host-side checks of a dataset (and FQE policy) against a config.

    Raises ``ValueError`` naming the argument for: a non-:class:`Transitions` dataset, an empty
    dataset, ``batch_size`` larger than the dataset, actions outside ``[0, num_actions)``,
    observations that do not fit the network input, a missing/mismatched FQE ``policy``, a
    policy given to FQI. Value checks are skipped for traced arrays (shapes are still checked).
    """
    validate_config(config)
    if not isinstance(dataset, Transitions):
        raise ValueError(f"dataset: expected offrl_jax.data.Transitions, found {type(dataset).__name__}")
    m = dataset.rewards.shape[0] if dataset.rewards.ndim == 1 else -1
    if m < 1:
        raise ValueError(f"dataset: expected M >= 1 transitions with rewards [M], found {dataset.rewards.shape}")
    for f in ("actions", "discounts", "next_observations", "observations"):
        if getattr(dataset, f).shape[:1] != (m,):
            raise ValueError(f"dataset.{f}: expected leading size M = {m}, found {getattr(dataset, f).shape}")
    if dataset.actions.ndim != 1 or not jnp.issubdtype(dataset.actions.dtype, jnp.integer):
        raise ValueError(
            f"dataset.actions: expected integer discrete actions [M], found {dataset.actions.shape} "
            f"{dataset.actions.dtype}"
        )
    if config.batch_size is not None and config.batch_size > m:
        raise ValueError(f"batch_size: {config.batch_size} is larger than the dataset (M = {m})")
    if _concrete(dataset.actions):
        a = np.asarray(dataset.actions)
        if a.min() < 0 or a.max() >= config.num_actions:
            raise ValueError(
                f"num_actions: the network has {config.num_actions} outputs but dataset.actions "
                f"range over [{a.min()}, {a.max()}]"
            )
    if config.num_observations is not None:
        for f in ("observations", "next_observations"):
            o = getattr(dataset, f)
            if o.ndim != 1 or not jnp.issubdtype(o.dtype, jnp.integer):
                raise ValueError(f"dataset.{f}: one-hot input needs integer observations [M], found {o.shape} {o.dtype}")
            if _concrete(o) and (np.asarray(o).min() < 0 or np.asarray(o).max() >= config.num_observations):
                raise ValueError(
                    f"num_observations: {config.num_observations} but dataset.{f} range over "
                    f"[{np.asarray(o).min()}, {np.asarray(o).max()}]"
                )
    elif dataset.observations.ndim < 2:
        raise ValueError(
            f"dataset.observations: feature input needs [M, D] floats, found {dataset.observations.shape}; "
            "set num_observations for integer (tabular) observations"
        )
    if config.method == "fqi" and policy is not None:
        raise ValueError("policy: FQI is greedy and takes no policy; use method='fqe' to evaluate one")
    if config.method == "fqe":
        if policy is None:
            raise ValueError("policy: FQE needs the evaluated policy ([O, A] array or a function)")
        if not callable(policy):
            p = policy if not _concrete(policy) else np.asarray(policy)
            o = config.num_observations
            if p.ndim != 2 or p.shape[1] != config.num_actions or (o is not None and p.shape[0] != o):
                raise ValueError(
                    f"policy: expected an [O, A] = [{o}, {config.num_actions}] table, found {list(p.shape)}"
                )
            if _concrete(policy) and (np.any(p < 0) or not np.allclose(p.sum(-1), 1.0, atol=1e-5)):
                raise ValueError("policy: expected rows of probabilities summing to 1")
            if config.num_observations is None:
                raise ValueError("policy: a tabular [O, A] policy needs integer observations (num_observations)")


@functools.lru_cache(maxsize=256)
def q_network(config: FittedQConfig) -> QNetwork:
    """The :class:`~offrl_jax.fitted.networks.QNetwork` a config describes (one object per
    config, so train states of equal configs have equal static fields and share compilations)."""
    return QNetwork(
        num_actions=config.num_actions,
        hidden_sizes=tuple(config.hidden_sizes),
        num_observations=config.num_observations,
        dtype=jnp.dtype(config.dtype),
    )


@functools.lru_cache(maxsize=256)
def make_optimizer(config: FittedQConfig) -> optax.GradientTransformation:
    """optax chain: optional global-norm clipping, then Adam or SGD at ``learning_rate``
    (one object per config, cached for the same reason as :func:`q_network`)."""
    opt = optax.adam(config.learning_rate) if config.optimizer == "adam" else optax.sgd(config.learning_rate)
    if config.max_grad_norm is not None:
        opt = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), opt)
    return opt


def init_state(key: Array, config: FittedQConfig, example_observations: Array) -> QTrainState:
    """Initialises network, optimizer and target (= online) parameters.

    Args:
      key: PRNG key; split into the init key and the run key stored in the state.
      config: the config.
      example_observations: ``[B, ...]`` observations giving the input shape.

    Returns:
      A :class:`QTrainState` at step 0.
    """
    k_init, k_run = jax.random.split(key)
    net = q_network(config)
    params = net.init(k_init, example_observations)
    state = QTrainState.create(
        apply_fn=net.apply, params=params, tx=make_optimizer(config), target_params=params, key=k_run
    )
    # A strongly typed step counter keeps the carry's types fixed across jitted chunks.
    return state.replace(step=jnp.zeros((), jnp.int32))


@struct.dataclass
class FittedBatch:
    """The fields a fitted-Q step reads: ``[M]``/``[B]`` transitions plus, for FQE, π(·|s').

    Attributes:
      observations, actions, rewards, next_observations, discounts: as in
        :class:`~offrl_jax.data.Transitions` (rewards/discounts in the network dtype).
      next_probs: optional ``[M, A]`` π(·|s'_m) of the evaluated policy, computed once per
        dataset (the policy is fixed), so steps gather it instead of re-evaluating π.
    """

    observations: Array
    actions: Array
    rewards: Array
    next_observations: Array
    discounts: Array
    next_probs: Optional[Array] = None


def fitted_batch(config: FittedQConfig, dataset: Transitions, policy: Policy = None) -> FittedBatch:
    """Builds the :class:`FittedBatch` of a dataset (jit-able): casts rewards/discounts to the
    network dtype and, for FQE, evaluates π(·|s'_m) once for every row."""
    dtype = jnp.dtype(config.dtype)
    probs = None
    if config.method == "fqe":
        probs = policy_probs(policy, dataset.next_observations).astype(dtype)
    return FittedBatch(
        observations=dataset.observations,
        actions=dataset.actions,
        rewards=dataset.rewards.astype(dtype),
        next_observations=dataset.next_observations,
        discounts=dataset.discounts.astype(dtype),
        next_probs=probs,
    )


def sample_batch(key: Array, dataset: Transitions, batch_size: Optional[int]) -> Transitions:
    """Uniform minibatch of ``batch_size`` rows drawn with replacement (``None``: all rows)."""
    if batch_size is None:
        return dataset
    idx = jax.random.randint(key, (batch_size,), 0, dataset.rewards.shape[0])
    return jax.tree_util.tree_map(lambda x: x[idx], dataset)


def td_targets(
    config: FittedQConfig, apply_fn: Callable, target_params: Any, params: Any, batch: Transitions, policy: Policy = None
) -> Array:
    """``[B]`` TD targets of ``batch`` from the target parameters (FQE expectation or FQI max).

    FQE: y = r + γ d Σ_a' π(a'|s') Q̄(s', a'); FQI: y = r + γ d max_a' Q̄(s', a') (or double-Q
    with the online ``params`` choosing a'). See :mod:`offrl_jax.fitted.targets`. ``batch`` is a
    :class:`~offrl_jax.data.Transitions` or a :class:`FittedBatch`; FQE uses its ``next_probs``
    when present, else evaluates ``policy`` at s'.
    """
    next_q = apply_fn(target_params, batch.next_observations)
    if config.method == "fqe":
        probs = getattr(batch, "next_probs", None)
        if probs is None:
            probs = policy_probs(policy, batch.next_observations)
        return fqe_targets(batch.rewards, batch.discounts, next_q, probs, config.gamma)
    online = apply_fn(params, batch.next_observations) if config.double_q else None
    return fqi_targets(batch.rewards, batch.discounts, next_q, config.gamma, online)


def regression_step(
    config: FittedQConfig, state: QTrainState, observations: Array, actions: Array, targets: Array
) -> Tuple[QTrainState, StepMetrics]:
    """One optax step on the regression loss L(θ) = (1/B) Σ_m ℓ(Q_θ(s_m, a_m) − y_m).

    ℓ is ½x² (``loss="l2"``) or Huber. The targets are constants (gradient stopped).

    Args:
      config: the config.
      state: current :class:`QTrainState`.
      observations: ``[B, ...]``; actions: ``[B]`` ints; targets: ``[B]``.

    Returns:
      ``(state, StepMetrics)`` with the state's ``step`` incremented (targets untouched).
    """
    def q_taken(params):
        q = state.apply_fn(params, observations)
        # A one-hot contraction rather than a gather: it vectorises, also when vmapped over seeds.
        return jnp.sum(q * jax.nn.one_hot(actions, q.shape[-1], dtype=q.dtype), axis=-1)

    return q_regression_step(state, q_taken, targets, config.loss, config.huber_delta)


def q_regression_step(
    state: QTrainState, q_fn: Callable[[Any], Array], targets: Array, loss: str = "l2", huber_delta: float = 1.0
) -> Tuple[QTrainState, StepMetrics]:
    """One optax step on L(θ) = (1/B) Σ_m ℓ(q_fn(θ)_m − y_m), shared by discrete and continuous FQE.

    Args:
      state: current :class:`QTrainState`.
      q_fn: ``params -> [B]`` predictions Q_θ(s_m, a_m) of the minibatch.
      targets: ``[B]`` y_m (gradient stopped here).
      loss: ``"l2"`` or ``"huber"``; huber_delta: δ of the Huber loss.

    Returns:
      ``(state, StepMetrics)`` with the state's ``step`` incremented (targets untouched).
    """
    targets = jax.lax.stop_gradient(targets)

    def loss_fn(params):
        q = q_fn(params)
        return regression_loss(q, targets, loss, huber_delta), q

    (value, q), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    metrics = StepMetrics(value, jnp.mean(q), jnp.mean(targets), optax.tree.norm(grads))
    return state.apply_gradients(grads=grads), metrics


def refresh_target(config: FittedQConfig, state: QTrainState) -> QTrainState:
    """Target refresh: Polyak θ̄ ← τ θ + (1 − τ) θ̄ when ``tau`` is set, else a copy every K steps."""
    if config.tau is not None:
        target = optax.incremental_update(state.params, state.target_params, config.tau)
    else:
        target = optax.periodic_update(
            state.params, state.target_params, state.step, config.target_update_period
        )
    return state.replace(target_params=target)


def make_update(config: FittedQConfig, policy: Policy = None) -> Callable:
    """Builds ``update(state, batch) -> (state, StepMetrics)``: TD targets, one optax step,
    then the target refresh (hard copy when ``step % K == 0``, or Polyak with ``tau``).

    Args:
      config: validated on the host here.
      policy: FQE's evaluated policy, ``[O, A]`` or a function of observations (closed over).

    Returns:
      The pure update function; callers jit it.
    """
    validate_config(config)

    def update(state: QTrainState, batch: Transitions):
        y = td_targets(config, state.apply_fn, state.target_params, state.params, batch, policy)
        state, metrics = regression_step(config, state, batch.observations, batch.actions, y)
        return refresh_target(config, state), metrics

    return update


def make_run(config: FittedQConfig, policy: Policy = None) -> Callable:
    """Builds ``run(state, dataset, num_steps) -> (state, StepMetrics[num_steps])``.

    A ``lax.scan`` of :func:`make_update`'s step; each step splits ``state.key`` and draws its
    minibatch inside jit. FQE's π(·|s') is evaluated once per call for the whole dataset
    (:func:`fitted_batch`). ``num_steps`` is static. Running 2 × n steps equals n then n more.
    """
    update = make_update(config, policy)

    def run(state: QTrainState, dataset: Transitions, num_steps: int):
        data = fitted_batch(config, dataset, policy)

        def body(state, _):
            key, k_batch = jax.random.split(state.key)
            batch = sample_batch(k_batch, data, config.batch_size)
            return update(state.replace(key=key), batch)

        return jax.lax.scan(body, state, None, length=num_steps)

    return run


def make_train(config: FittedQConfig, policy: Policy = None) -> Callable:
    """Builds ``train(key, dataset) -> TrainResult`` running ``config.num_steps`` updates.

    The config is validated on the host now; the dataset when ``train`` is called with concrete
    arrays (see :func:`validate_dataset`). ``jax.jit(jax.vmap(train, in_axes=(0, None)))``
    trains one network per key in a single program.
    """
    validate_config(config)
    run = make_run(config, policy)

    def train(key: Array, dataset: Transitions) -> TrainResult:
        validate_dataset(config, dataset, policy)
        state = init_state(key, config, dataset.observations[:1])
        state, metrics = run(state, dataset, config.num_steps)
        return TrainResult(state, metrics)

    return train


def default_seeds_per_group(num_seeds: int, config: Optional[FittedQConfig] = None) -> int:
    """Seeds per vmapped group in :func:`make_train_seeds`.

    On accelerators all seeds form one vmapped group. On CPU (measured on 2 cores,
    ``benchmarks/fitted_speed.py``): networks with a layer of 128 or more units run one seed per
    group (16 seeds of a 2x256 MLP side by side: 1.48x the single-seed seed-steps/s, against
    0.51-0.76x as one vmap), smaller ones 4 per group (2x64: 1.34x, against 0.75-0.90x).
    """
    if jax.default_backend() != "cpu":
        return max(1, num_seeds)
    wide = config is not None and max(tuple(config.hidden_sizes) or (0,)) >= 128
    return 1 if wide else max(1, min(4, num_seeds))


def make_train_seeds(config: FittedQConfig, policy: Policy = None, seeds_per_group: Optional[int] = None) -> Callable:
    """Builds ``train_seeds(keys [S], dataset) -> TrainResult`` with a leading seed axis.

    Each seed is an independent run of :func:`make_train`'s ``train`` (equal, seed by seed, to
    ``jax.vmap(train, in_axes=(0, None))``). The seeds are vmapped in groups of
    ``seeds_per_group`` and the groups are laid side by side in one program, which XLA runs
    concurrently: on CPU that is faster than one vmap over all seeds (see
    :func:`default_seeds_per_group` for the figures); on accelerators the default is a single
    vmapped group.

    Args:
      config: the config (validated now).
      policy: FQE's evaluated policy.
      seeds_per_group: seeds per vmapped group (default :func:`default_seeds_per_group`).

    Returns:
      The function; callers ``jax.jit`` it. ``keys`` must have a static leading size S.
    """
    train = jax.vmap(make_train(config, policy), in_axes=(0, None))
    if seeds_per_group is not None and (isinstance(seeds_per_group, bool) or int(seeds_per_group) < 1):
        raise ValueError(f"seeds_per_group: expected a positive int or None, found {seeds_per_group!r}")

    def train_seeds(keys: Array, dataset: Transitions) -> TrainResult:
        num = keys.shape[0]
        group = default_seeds_per_group(num, config) if seeds_per_group is None else min(int(seeds_per_group), num)
        parts = [train(keys[i : i + group], dataset) for i in range(0, num, group)]
        if len(parts) == 1:
            return parts[0]
        return jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *parts)

    return train_seeds


def train_fitted_q(key: Array, dataset: Transitions, config: FittedQConfig, policy: Policy = None) -> TrainResult:
    """``make_train(config, policy)(key, dataset)``: FQE/FQI training in one call.

    ``jax.vmap(train_fitted_q, in_axes=(0, None, None))(keys, dataset, config)`` trains a seed
    per key (the config has no array leaves). For FQE bind the policy first, e.g.
    ``functools.partial(train_fitted_q, policy=pi)``.

    Args:
      key: PRNG key.
      dataset: :class:`~offrl_jax.data.Transitions` with int ``actions`` ``[M]``.
      config: :class:`FittedQConfig`.
      policy: FQE only: ``[O, A]`` table or function ``observations -> [B, A]`` probabilities.

    Returns:
      :class:`TrainResult` (final state, ``StepMetrics`` with leading ``[num_steps]``).
    """
    return make_train(config, policy)(key, dataset)


def initial_value(
    apply_fn: Callable, params: Any, observations: Array, probs: Array
) -> Array:
    """Direct-method value estimate Ĵ = (1/N) Σ_n Σ_a π(a|s_0^n) Q̂(s_0^n, a).

    See Le, Voloshin & Yue 2019 (FQE's estimate).

    Args:
      apply_fn: the network's apply function; params: its parameters.
      observations: ``[N, ...]`` initial observations s_0^n.
      probs: ``[N, A]`` π(·|s_0^n) (one-hot for a greedy policy).

    Returns:
      Scalar estimate.
    """
    q = apply_fn(params, observations)
    return jnp.mean(jnp.sum(probs.astype(q.dtype) * q, axis=-1))


class DRInputs(NamedTuple):
    """Q̂ arrays in the layout of the doubly robust estimators (see ``offrl_jax.ope``)."""

    q_taken: Array
    v_hat: Array


def dr_inputs(
    apply_fn: Callable, params: Any, observations: Array, actions: Array, probs: Array, mask: Array
) -> DRInputs:
    """Q̂ of a fitted network as the ``q_taken``/``v_hat`` arrays of DR / WDR.

    q_taken[n, t] = Q̂(s_t, a_t) and v_hat[n, t] = Σ_a π(a|s_t) Q̂(s_t, a), both 0 on padding
    (the absorbing state after an episode ends has Q̂ = V̂ = 0). See "Doubly Robust Off-policy
    Value Evaluation for Reinforcement Learning", Jiang & Li 2016.

    Args:
      apply_fn: the network's apply function; params: its parameters.
      observations: ``[N, T, ...]`` (or ``[N, T]`` ints for tabular input).
      actions: ``[N, T]`` ints.
      probs: ``[N, T, A]`` π(·|s_t) of the evaluated policy.
      mask: ``[N, T]`` 1 on real steps.

    Returns:
      :class:`DRInputs` ``(q_taken [N, T], v_hat [N, T])``.
    """
    q = apply_fn(params, observations)
    q_taken = jnp.take_along_axis(q, actions[..., None].astype(jnp.int32), axis=-1)[..., 0]
    v_hat = jnp.sum(probs.astype(q.dtype) * q, axis=-1)
    real = mask > 0
    return DRInputs(jnp.where(real, q_taken, 0.0), jnp.where(real, v_hat, 0.0))
