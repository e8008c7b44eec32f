"""Parametric behaviour policies fitted by maximum likelihood: a softmax classifier and a
diagonal Gaussian, under the learner convention of the package.

* discrete actions (``num_actions = A``): β_θ(a|s) = softmax(f_θ(s))_a, f_θ an MLP, or with
  ``hidden_sizes=()`` the linear-softmax (multinomial logistic regression) model
  f_θ(s) = W s + b, the like-for-like of scikit-learn's ``LogisticRegression``;
* continuous actions (``action_dim = d``): β_θ(a|s) = Π_i N(a_i; μ_θ(s)_i, σ_θ(s)_i²), a
  state-dependent diagonal Gaussian (log σ squashed into [``min_log_std``, ``max_log_std``]),
  giving log-densities.

Training maximises the mean log-likelihood of the logged actions,
L(θ) = (1/M) Σ_m log β_θ(a_m|s_m) − (λ/2) ‖W‖² (λ = ``weight_decay``, kernels only), with
Adam on minibatches drawn inside ``jit``. Every ``eval_every`` steps the mean log-likelihood
on held-out rows is computed; the carry keeps the best parameters by held-out log-likelihood,
and training stops (the remaining chunks are skipped by ``lax.cond``; under ``vmap`` they are
computed and discarded) after ``patience`` evaluations without improvement or once the
held-out log-likelihood reaches ``target_log_likelihood``. Vector observations are
standardised with the training rows' mean and standard deviation; integer observations
(``num_observations`` set) are one-hot encoded.

See "Importance Sampling Policy Evaluation with an Estimated Behavior Policy", Hanna, Niekum &
Stone 2019 (estimated β in importance sampling), and "Early stopping - but when?", Prechelt
1998 (stopping on a held-out criterion).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from offrl_jax.core.sharding import shard_batch
from offrl_jax.core.learner import Learner, config_field, train_from_learner
from offrl_jax.core.validation import (
    check_action_space,
    check_float_dtype,
    check_hidden_sizes,
    check_positive_float,
    check_positive_int,
)

Array = Any

__all__ = [
    "BehaviorConfig",
    "BehaviorData",
    "BehaviorModel",
    "BehaviorState",
    "BehaviorMetrics",
    "behavior_data",
    "make_learner",
    "make_train",
    "fitted_model",
    "log_likelihood",
    "action_probs",
    "gaussian_moments",
]


@struct.dataclass
class BehaviorConfig:
    """Static hyperparameters of a fitted behaviour policy (frozen, hashable, validated).

    Exactly one of ``num_actions`` (softmax classifier) and ``action_dim`` (Gaussian) is set.

    Attributes:
      num_actions: A, discrete actions.
      action_dim: d, continuous actions (diagonal Gaussian).
      hidden_sizes: MLP widths; ``()`` is the linear model (linear softmax / linear Gaussian).
      num_observations: if set, observations are ints in [0, O), one-hot encoded.
      num_steps: gradient steps of ``train`` (a multiple of ``eval_every``).
      batch_size: minibatch size (uniform with replacement over training rows); ``None`` uses
        every training row each step.
      learning_rate: Adam step size.
      weight_decay: λ ≥ 0, the L2 penalty (λ/2)‖W‖² on the kernels.
      eval_every: steps between held-out evaluations (one evaluation ends each chunk).
      patience: evaluations without improvement before stopping; ``None`` never stops early.
      min_delta: the improvement in held-out log-likelihood that counts.
      target_log_likelihood: optional; stop once the held-out mean log-likelihood reaches it.
      min_log_std, max_log_std: range of log σ of the Gaussian.
      dtype: ``"float32"`` or ``"float64"`` (needs ``jax_enable_x64``).

    Raises:
      ValueError: naming the field.
    """

    num_actions: Optional[int] = config_field(None)
    action_dim: Optional[int] = config_field(None)
    hidden_sizes: Tuple[int, ...] = config_field((64, 64))
    num_observations: Optional[int] = config_field(None)
    num_steps: int = config_field(2000)
    batch_size: Optional[int] = config_field(512)
    learning_rate: float = config_field(1e-2)
    weight_decay: float = config_field(0.0)
    eval_every: int = config_field(50)
    patience: Optional[int] = config_field(5)
    min_delta: float = config_field(1e-4)
    target_log_likelihood: Optional[float] = config_field(None)
    min_log_std: float = config_field(-5.0)
    max_log_std: float = config_field(2.0)
    dtype: str = config_field("float32")

    def __post_init__(self):
        check_action_space(self.num_actions, self.action_dim)
        if self.num_actions is not None and self.num_actions < 2:
            raise ValueError(f"num_actions: expected at least 2 actions, found {self.num_actions}")
        check_hidden_sizes(self.hidden_sizes)
        check_positive_int(self.num_observations, "num_observations", allow_none=True)
        for name in ("num_steps", "eval_every"):
            check_positive_int(getattr(self, name), name)
        if self.num_steps % self.eval_every:
            raise ValueError(
                f"num_steps: expected a multiple of eval_every = {self.eval_every}, found {self.num_steps}"
            )
        check_positive_int(self.batch_size, "batch_size", allow_none=True)
        check_positive_int(self.patience, "patience", allow_none=True)
        check_positive_float(self.learning_rate, "learning_rate")
        for name in ("weight_decay", "min_delta"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (np.isfinite(v) and v >= 0):
                raise ValueError(f"{name}: expected a finite number >= 0, found {v!r}")
        t = self.target_log_likelihood
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not np.isfinite(t)):
            raise ValueError(f"target_log_likelihood: expected a finite number or None, found {t!r}")
        if not (isinstance(self.min_log_std, (int, float)) and isinstance(self.max_log_std, (int, float))
                and self.min_log_std < self.max_log_std):
            raise ValueError(
                f"min_log_std: expected min_log_std < max_log_std, found {self.min_log_std!r}, {self.max_log_std!r}"
            )
        check_float_dtype(self.dtype, "dtype")

    @property
    def continuous(self) -> bool:
        """True for the Gaussian (``action_dim`` set)."""
        return self.action_dim is not None

    @property
    def num_outputs(self) -> int:
        return 2 * self.action_dim if self.continuous else self.num_actions


@struct.dataclass
class BehaviorData:
    """Flat logged steps and the training / held-out split (padded index arrays, fixed shapes).

    Attributes:
      observations: ``[M, D]`` float feature vectors, or ``[M]`` ints with ``num_observations``.
      actions: ``[M]`` int actions or ``[M, d]`` float actions.
      train_idx: ``[P]`` int32 rows to train on; entries from ``num_train`` on are padding.
      num_train: int32 scalar, the number of real entries of ``train_idx`` (≥ 1).
      valid_idx: ``[Q]`` int32 held-out rows (padding where ``valid_weight`` is 0).
      valid_weight: ``[Q]`` 1 on real held-out rows, 0 on padding (all 0: no held-out set,
        no early stopping, the last parameters are kept).
    """

    observations: Array
    actions: Array
    train_idx: Array
    num_train: Array
    valid_idx: Array
    valid_weight: Array


class BehaviorModel(NamedTuple):
    """A fitted behaviour policy: network parameters and the observation standardisation."""

    params: Any
    obs_mean: Array
    obs_scale: Array


class BehaviorState(NamedTuple):
    """Training state: current and best parameters, optimiser state, stopping status, key."""

    params: Any
    opt_state: Any
    best_params: Any
    best_log_likelihood: Array
    bad_evals: Array
    stopped: Array
    step: Array
    obs_mean: Array
    obs_scale: Array
    key: Array


class BehaviorMetrics(NamedTuple):
    """Per-evaluation metrics ``[num_steps // eval_every]`` (NaN after stopping)."""

    train_nll: Array
    heldout_log_likelihood: Array
    stopped: Array


def behavior_data(
    observations: Array, actions: Array, train_rows: Array, valid_rows: Array,
    train_size: Optional[int] = None, valid_size: Optional[int] = None,
) -> BehaviorData:
    """Builds :class:`BehaviorData` on the host, padding the index arrays to fixed sizes.

    Padding to the same ``train_size``/``valid_size`` lets several fits (cross-fitting folds)
    share one compiled program.

    Args:
      observations: ``[M, ...]``; actions: ``[M]`` or ``[M, d]``.
      train_rows: int rows to train on (non-empty); valid_rows: int held-out rows (may be empty).
      train_size, valid_size: padded lengths (default: the rows' own lengths, at least 1).
    """
    train_rows = np.asarray(train_rows, np.int32).reshape(-1)
    valid_rows = np.asarray(valid_rows, np.int32).reshape(-1)
    if train_rows.size == 0:
        raise ValueError("train_rows: expected at least one training row, found none")
    p = train_rows.size if train_size is None else int(train_size)
    q = max(valid_rows.size, 1) if valid_size is None else int(valid_size)
    if p < train_rows.size or q < valid_rows.size:
        raise ValueError(f"train_size/valid_size: smaller than the rows given ({train_rows.size}, {valid_rows.size})")
    tr = np.zeros(p, np.int32)
    tr[: train_rows.size] = train_rows
    va = np.zeros(q, np.int32)
    va[: valid_rows.size] = valid_rows
    vw = np.zeros(q, np.float32)
    vw[: valid_rows.size] = 1.0
    return BehaviorData(jnp.asarray(observations), jnp.asarray(actions), jnp.asarray(tr),
                        jnp.asarray(train_rows.size, jnp.int32), jnp.asarray(va), jnp.asarray(vw))


class _MLP(nn.Module):
    num_outputs: int
    hidden_sizes: Tuple[int, ...]

    @nn.compact
    def __call__(self, x):
        for width in self.hidden_sizes:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.num_outputs, kernel_init=nn.initializers.variance_scaling(0.1, "fan_in", "normal"))(x)


def _network(config: BehaviorConfig) -> _MLP:
    return _MLP(config.num_outputs, tuple(config.hidden_sizes))


def _features(config: BehaviorConfig, observations: Array, mean: Array, scale: Array) -> Array:
    dtype = jnp.dtype(config.dtype)
    if config.num_observations is not None:
        return jax.nn.one_hot(jnp.asarray(observations).astype(jnp.int32), config.num_observations, dtype=dtype)
    x = jnp.asarray(observations, dtype)
    shape = (1,) * (x.ndim - jnp.ndim(mean)) + jnp.shape(mean)
    return (x - jnp.reshape(mean, shape)) / jnp.reshape(scale, shape)


def gaussian_moments(config: BehaviorConfig, outputs: Array) -> tuple:
    """(μ ``[..., d]``, log σ ``[..., d]``) from the network outputs ``[..., 2d]``."""
    mu, raw = outputs[..., : config.action_dim], outputs[..., config.action_dim:]
    lo, hi = config.min_log_std, config.max_log_std
    return mu, lo + 0.5 * (hi - lo) * (jnp.tanh(raw) + 1.0)


def _log_lik(config: BehaviorConfig, params, mean, scale, observations, actions) -> Array:
    out = _network(config).apply(params, _features(config, observations, mean, scale))
    if config.continuous:
        mu, log_std = gaussian_moments(config, out)
        z = (jnp.asarray(actions, out.dtype) - mu) * jnp.exp(-log_std)
        return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2.0 * jnp.pi), axis=-1)
    logp = jax.nn.log_softmax(out, axis=-1)
    a = jnp.asarray(actions).astype(jnp.int32)
    return jnp.sum(jnp.where(jax.nn.one_hot(a, config.num_actions, dtype=bool), logp, 0.0), axis=-1)


def log_likelihood(config: BehaviorConfig, model: BehaviorModel, observations: Array, actions: Array) -> Array:
    """log β̂(a|s) at given observations ``[..., (obs)]`` and actions ``[...]``/``[..., d]``."""
    return _log_lik(config, model.params, model.obs_mean, model.obs_scale, observations, actions)


def action_probs(config: BehaviorConfig, model: BehaviorModel, observations: Array) -> Array:
    """β̂(·|s) ``[..., A]`` of the softmax classifier (discrete actions only)."""
    if config.continuous:
        raise ValueError("config: action_probs needs discrete actions (num_actions); the Gaussian has densities")
    out = _network(config).apply(model.params, _features(config, observations, model.obs_mean, model.obs_scale))
    return jax.nn.softmax(out, axis=-1)


def fitted_model(state: BehaviorState) -> BehaviorModel:
    """The best parameters by held-out log-likelihood, with the standardisation."""
    return BehaviorModel(state.best_params, state.obs_mean, state.obs_scale)


def _standardisation(config: BehaviorConfig, data: BehaviorData):
    dtype = jnp.dtype(config.dtype)
    if config.num_observations is not None:
        return jnp.zeros((), dtype), jnp.ones((), dtype)
    x = jnp.asarray(data.observations, dtype)
    w = (jnp.arange(data.train_idx.shape[0]) < data.num_train).astype(dtype)[:, None]
    xt = x[data.train_idx]
    mean = jnp.sum(w * xt, 0) / jnp.sum(w)
    var = jnp.sum(w * (xt - mean[None, :]) ** 2, 0) / jnp.sum(w)
    return mean, jnp.where(var > 1e-12, jnp.sqrt(var), 1.0)


def make_learner(config: BehaviorConfig) -> Learner:
    """The behaviour-policy learner: ``init(key, data)`` and ``run(state, data, num_steps)``.

    ``run`` performs ``num_steps // eval_every`` chunks of ``eval_every`` Adam steps, each
    followed by a held-out evaluation (see the module docstring); its metrics are
    :class:`BehaviorMetrics` with one entry per evaluation.
    """
    if not isinstance(config, BehaviorConfig):
        raise ValueError(f"config: expected a BehaviorConfig, found {type(config).__name__}")
    net = _network(config)
    opt = optax.adam(config.learning_rate)
    dtype = jnp.dtype(config.dtype)

    def loss_fn(params, mean, scale, obs, act, w):
        ll = _log_lik(config, params, mean, scale, obs, act)
        nll = -jnp.sum(w * ll) / jnp.maximum(jnp.sum(w), 1.0)
        if config.weight_decay > 0:
            kernels = [p for path, p in jax.tree_util.tree_leaves_with_path(params) if "kernel" in str(path[-1])]
            nll = nll + 0.5 * config.weight_decay * sum(jnp.sum(k**2) for k in kernels)
        return nll

    def init(key: Array, data: BehaviorData) -> BehaviorState:
        k_init, k_run = jax.random.split(key)
        mean, scale = _standardisation(config, data)
        example = _features(config, data.observations[:1], mean, scale)
        params = net.init(k_init, example)
        return BehaviorState(params, opt.init(params), params, jnp.asarray(-jnp.inf, dtype), jnp.zeros((), jnp.int32),
                             jnp.zeros((), bool), jnp.zeros((), jnp.int32), mean, scale, k_run)

    def sgd_step(state: BehaviorState, data: BehaviorData):
        key, k = jax.random.split(state.key)
        if config.batch_size is None:
            idx = data.train_idx
            w = (jnp.arange(idx.shape[0]) < data.num_train).astype(dtype)
        else:
            idx = data.train_idx[jax.random.randint(k, (config.batch_size,), 0, data.num_train)]
            w = jnp.ones((config.batch_size,), dtype)
        # Under a sharded mesh the minibatch is split over the devices (data-parallel training).
        obs, act, w = shard_batch((data.observations[idx], data.actions[idx], w))
        nll, grads = jax.value_and_grad(loss_fn)(state.params, state.obs_mean, state.obs_scale, obs, act, w)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return state._replace(params=params, opt_state=opt_state, key=key, step=state.step + 1), nll

    def chunk(state: BehaviorState, data: BehaviorData):
        state, nlls = jax.lax.scan(lambda s, _: sgd_step(s, data), state, None, length=config.eval_every)
        vw = data.valid_weight.astype(dtype)
        has_valid = jnp.sum(vw) > 0
        ll_rows = _log_lik(config, state.params, state.obs_mean, state.obs_scale,
                           data.observations[data.valid_idx], data.actions[data.valid_idx])
        ll = jnp.sum(jnp.where(vw > 0, ll_rows, 0.0)) / jnp.maximum(jnp.sum(vw), 1.0)
        better = (~has_valid) | (ll > state.best_log_likelihood + config.min_delta)
        best_params = jax.tree_util.tree_map(lambda n, o: jnp.where(better, n, o), state.params, state.best_params)
        best_ll = jnp.where(better & has_valid, ll, state.best_log_likelihood)
        bad = jnp.where(better, 0, state.bad_evals + 1)
        stop = jnp.zeros((), bool)
        if config.patience is not None:
            stop = stop | (has_valid & (bad >= config.patience))
        if config.target_log_likelihood is not None:
            stop = stop | (has_valid & (ll >= config.target_log_likelihood))
        new = state._replace(best_params=best_params, best_log_likelihood=best_ll, bad_evals=bad, stopped=stop)
        return new, BehaviorMetrics(jnp.mean(nlls), jnp.where(has_valid, ll, jnp.nan), stop)

    def skip(state: BehaviorState, data: BehaviorData):
        del data
        nan = jnp.asarray(jnp.nan, dtype)
        return state, BehaviorMetrics(nan, nan, jnp.ones((), bool))

    def run(state: BehaviorState, data: BehaviorData, num_steps: int):
        if num_steps % config.eval_every:
            raise ValueError(f"num_steps: expected a multiple of eval_every = {config.eval_every}, found {num_steps}")

        def body(s, _):
            return jax.lax.cond(s.stopped, skip, chunk, s, data)

        return jax.lax.scan(body, state, None, length=num_steps // config.eval_every)

    return Learner(init, run, config.num_steps)


def make_train(config: BehaviorConfig):
    """``train(key, data: BehaviorData) -> TrainResult(BehaviorState, BehaviorMetrics)``.

    Jit it once; ``jax.jit(jax.vmap(train, in_axes=(0, None)))`` fits several seeds in one
    program. :func:`fitted_model` of the final state is the fitted β̂.
    """
    return train_from_learner(make_learner(config))

