"""Fitted Q evaluation and iteration as one jitted ``lax.scan``: the learner of the family.

The pieces (optax / PureJaxRL style):

* :class:`QTrainState`: flax ``TrainState`` plus ``target_params`` and the PRNG ``key``;
* :func:`make_update` → ``update(state, batch) -> (state, StepMetrics)``: TD targets from the
  target network (:func:`~offrl_jax.fitted.targets.td_targets`, the one dispatch over target
  rules), one optax step on the regression loss, then a target refresh (hard copy every K
  steps, or Polyak);
* :func:`make_learner` → :class:`~offrl_jax.core.Learner` ``(init, run, num_steps)``, ``run`` a
  ``lax.scan`` of updates with minibatches drawn inside jit from the key in the state;
* :func:`make_train` → ``train(key, data) -> core.TrainResult``.

The same loop serves discrete actions (FQE with a target table or function, FQI with max or
double-Q) and continuous actions (FQE with K sampled next actions); the config says which.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training import train_state

from offrl_jax.core import Learner, train_from_learner
from offrl_jax.core.sharding import shard_batch
from offrl_jax.data import Transitions
from offrl_jax.fitted.config import FittedQConfig, Policy, _check_target_policy, validate_data
from offrl_jax.fitted.networks import q_network
from offrl_jax.fitted.targets import policy_probs, regression_loss, td_targets
from offrl_jax.data import CheckedTrain  # the validated train(key, data) of make_train

Array = Any

__all__ = [
    "QTrainState",
    "StepMetrics",
    "FittedBatch",
    "init_state",
    "fitted_batch",
    "sample_batch",
    "regression_step",
    "refresh_target",
    "make_update",
    "make_learner",
    "make_train",
    "default_seeds_per_group",
]


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


@struct.dataclass
class FittedBatch:
    """The fields a fitted-Q step reads: the :class:`~offrl_jax.data.Transitions` fields (rewards
    and discounts in the network dtype) plus, for FQE with discrete actions, ``next_probs``
    ``[M, A]`` π(·|s'_m), computed once per dataset (the policy is fixed)."""

    observations: Array
    actions: Array
    rewards: Array
    next_observations: Array
    discounts: Array
    next_probs: Optional[Array] = None


@functools.lru_cache(maxsize=256)
def _optimizer(config: FittedQConfig) -> optax.GradientTransformation:
    """Optional global-norm clipping, then Adam or SGD (one object per config)."""
    opt = optax.adam(config.learning_rate) if config.optimizer == "adam" else optax.sgd(config.learning_rate)
    if config.max_grad_norm is not None:
        opt = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), opt)
    return opt


def init_state(key: Array, config: FittedQConfig, data: Transitions) -> QTrainState:
    """Network, optimizer and target (= online) parameters at step 0.

    Args:
      key: PRNG key; split into the init key and the run key stored in the state.
      config: the config.
      data: :class:`~offrl_jax.data.Transitions` giving the input shapes (first row read).

    Returns:
      A :class:`QTrainState` (``apply_fn(params, obs)`` discrete, ``(params, obs, act)``
      continuous).
    """
    k_init, k_run = jax.random.split(key)
    net = q_network(config)
    example = (data.observations[:1], data.actions[:1]) if config.continuous else (data.observations[:1],)
    params = net.init(k_init, *example)
    state = QTrainState.create(
        apply_fn=net.apply, params=params, tx=_optimizer(config), target_params=params, key=k_run
    )
    # A strongly typed step counter keeps the carry's types fixed across jitted chunks.
    return state.replace(step=jnp.zeros((), jnp.int32))


def fitted_batch(config: FittedQConfig, data: Transitions, target_policy: Policy = None) -> FittedBatch:
    """The :class:`FittedBatch` of a dataset (jit-able): rewards/discounts cast to the network
    dtype and, for the ``"expected"`` rule, π(·|s'_m) evaluated once for every row."""
    dtype = jnp.dtype(config.dtype)
    probs = None
    if config.target_rule == "expected":
        probs = policy_probs(data.next_observations, target_policy).astype(dtype)
    return FittedBatch(
        observations=data.observations,
        actions=data.actions,
        rewards=data.rewards.astype(dtype),
        next_observations=data.next_observations,
        discounts=data.discounts.astype(dtype),
        next_probs=probs,
    )


def sample_batch(key: Array, data: Any, batch_size: Optional[int]) -> Any:
    """Uniform minibatch of ``batch_size`` rows drawn with replacement (``None``: all rows)."""
    if batch_size is None:
        return data
    idx = jax.random.randint(key, (batch_size,), 0, data.rewards.shape[0])
    return shard_batch(jax.tree_util.tree_map(lambda x: x[idx], data))


def _q_taken(config: FittedQConfig, apply_fn: Callable, params: Any, observations: Array, actions: Array) -> Array:
    """``[B]`` Q_θ(s_m, a_m); discrete actions by a one-hot contraction (vectorises under vmap)."""
    if config.continuous:
        return apply_fn(params, observations, actions)
    q = apply_fn(params, observations)
    return jnp.sum(q * jax.nn.one_hot(actions, q.shape[-1], dtype=q.dtype), axis=-1)


def regression_step(
    config: FittedQConfig, state: QTrainState, observations: Array, actions: Array, targets: Array
) -> Tuple[QTrainState, StepMetrics]:
    """One optax step on L(θ) = (1/B) Σ_m ℓ(Q_θ(s_m, a_m) − y_m), ℓ = ½x² or Huber.

    Args:
      config: the config.
      state: current :class:`QTrainState`.
      observations: ``[B, ...]``; actions: ``[B]`` ints or ``[B, d]`` floats; targets: ``[B]``
        (gradient stopped here).

    Returns:
      ``(state, StepMetrics)`` with ``step`` incremented (target parameters untouched).
    """
    targets = jax.lax.stop_gradient(targets)

    def loss_fn(params):
        q = _q_taken(config, state.apply_fn, params, observations, actions)
        return regression_loss(q, targets, config.loss, config.huber_delta), q

    (value, q), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    metrics = StepMetrics(value, jnp.mean(q), jnp.mean(targets), optax.tree.norm(grads))
    return state.apply_gradients(grads=grads), metrics


def refresh_target(config: FittedQConfig, state: QTrainState) -> QTrainState:
    """Polyak θ̄ ← τ θ + (1 − τ) θ̄ when ``tau`` is set, else a copy every K steps."""
    if config.tau is not None:
        target = optax.incremental_update(state.params, state.target_params, config.tau)
    else:
        target = optax.periodic_update(state.params, state.target_params, state.step, config.target_update_period)
    return state.replace(target_params=target)


def make_update(config: FittedQConfig, target_policy: Policy = None) -> Callable:
    """Builds ``update(state, batch) -> (state, StepMetrics)``: TD targets, one optax step, then
    the target refresh. The sampled rule splits ``state.key`` and draws next actions with the
    second half.

    Args:
      config: the :class:`~offrl_jax.fitted.config.FittedQConfig`.
      target_policy: FQE's evaluated policy (closed over; checked on the host here).

    Returns:
      The pure update function (``batch`` has the Transitions fields); callers jit it.
    """
    _check_target_policy(config, target_policy)

    def update(state: QTrainState, batch: Any):
        key = None
        if config.target_rule == "sampled":
            k_state, key = jax.random.split(state.key)
            state = state.replace(key=k_state)
        y = td_targets(config, state.apply_fn, state.target_params, state.params, batch, target_policy, key)
        state, metrics = regression_step(config, state, batch.observations, batch.actions, y)
        return refresh_target(config, state), metrics

    return update


def make_learner(config: FittedQConfig, target_policy: Policy = None) -> Learner:
    """The fitted-Q :class:`~offrl_jax.core.Learner` ``(init, run, config.num_steps)``.

    ``init(key, data)`` checks the data against the config (values too when they are
    concrete; see :func:`~offrl_jax.fitted.config.validate_data`) and builds the
    :class:`QTrainState`; ``run(state, data, num_steps)`` is a ``lax.scan`` of
    :func:`make_update`'s step, each drawing its minibatch inside jit from ``state.key``
    (running 2n steps equals n then n more).

    Args:
      config: the :class:`~offrl_jax.fitted.config.FittedQConfig`.
      target_policy: FQE's evaluated policy: an ``[O, A]`` table or a function ``observations
        [B, ...] -> [B, A]`` (discrete), ``sample_actions(key, observations [B, D]) -> [B, d]``
        (continuous); ``None`` for FQI. Checked on the host now.
    """
    update = make_update(config, target_policy)

    def init(key: Array, data: Transitions) -> QTrainState:
        validate_data(config, data, target_policy)
        return init_state(key, config, data)

    def run(state: QTrainState, data: Transitions, num_steps: int):
        rows = fitted_batch(config, data, target_policy)

        def body(state, _):
            key, k_batch = jax.random.split(state.key)
            return update(state.replace(key=key), sample_batch(k_batch, rows, config.batch_size))

        return jax.lax.scan(body, state, None, length=num_steps)

    return Learner(init, run, config.num_steps)


def make_train(config: FittedQConfig, target_policy: Policy = None) -> Callable:
    """``train(key, data: Transitions) -> core.TrainResult(state, StepMetrics[num_steps])``.

    ``config.num_steps`` minibatch steps on L(θ) = (1/B) Σ_m ℓ(Q_θ(s_m, a_m) − y_m), the target
    network Q̄ refreshed every ``target_update_period`` steps (or by Polyak ``tau``), with

        FQE:  y_m = r_m + γ d_m Σ_a' π(a'|s'_m) Q̄(s'_m, a')
              (continuous actions: (1/K) Σ_k Q̄(s'_m, a'_k), a'_k ~ π(·|s'_m))
        FQI:  y_m = r_m + γ d_m max_a' Q̄(s'_m, a')   (double-Q: Q̄(s'_m, argmax_a' Q_θ(s'_m, a')))

    d_m = 0 at true terminals. See "Batch Policy Learning under Constraints", Le, Voloshin & Yue
    2019 (FQE); "Tree-Based Batch Mode Reinforcement Learning", Ernst, Geurts & Wehenkel 2005 and
    "Neural Fitted Q Iteration", Riedmiller 2005 (FQI); our FQI refreshes a target network
    during one run rather than solving each regression to convergence (that classical form is
    :func:`~offrl_jax.fitted.iteration.fitted_q_iteration`).

    ``train`` is a :class:`~offrl_jax.data.CheckedTrain`: ``train(key, data)`` runs
    :func:`~offrl_jax.fitted.config.validate_data` on the concrete data (``ValueError`` naming
    the field: actions or observations out of range, NaN/inf values, ...) and then one cached
    jitted program, and ``train.seeds(default_seeds_per_group(S, config))(keys, data)`` trains
    S seeds in one program, validated the same way. Under a caller's own ``jax.jit`` only
    shapes are checked, so validate first::

        fitted.validate_data(config, data, pi)           # or train.validate(data)
        result = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, data)

    Args:
      config: the :class:`~offrl_jax.fitted.config.FittedQConfig` (validated when built).
      target_policy: see :func:`make_learner`.
    """
    train = train_from_learner(make_learner(config, target_policy))
    return CheckedTrain(train, functools.partial(validate_data, config, target_policy=target_policy))


def default_seeds_per_group(num_seeds: int, config: Optional[FittedQConfig] = None) -> int:
    """Seeds per vmapped group for ``core.make_train_seeds`` with a fitted-Q ``train``.

    On accelerators all seeds form one vmapped group. On CPU (measured on 2 cores,
    ``benchmarks/fitted_speed.py``): networks with a layer of 128 or more units run one seed per
    group (16 seeds of a 2x256 MLP side by side: 1.48x the single-seed seed-steps/s, against
    0.51-0.76x as one vmap), smaller ones 4 per group (2x64: 1.34x, against 0.75-0.90x).
    """
    if jax.default_backend() != "cpu":
        return max(1, num_seeds)
    wide = config is not None and max(tuple(config.hidden_sizes) or (0,)) >= 128
    return 1 if wide else max(1, min(4, num_seeds))
