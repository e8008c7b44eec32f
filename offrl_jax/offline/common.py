"""What the offline RL learners share: config checks, networks, optimisers, the scan loop.

Every learner of :mod:`offrl_jax.offline` reads :class:`~offrl_jax.data.Transitions` (the layout
of :mod:`offrl_jax.fitted`, so FQI and these methods train on the same data) and runs the loop of
:func:`scan_learner`: each step splits the state's key, draws a uniform minibatch inside jit
(:func:`offrl_jax.fitted.loop.sample_batch`, the rows of the fitted loop) and applies one update.
Q-networks are :mod:`offrl_jax.fitted`'s; this module adds a state-value head, categorical
logits, a Gaussian policy and a deterministic tanh actor.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from offrl_jax.core import Learner
from offrl_jax.core.validation import check_action_space, check_hidden_sizes, check_positive_int
from offrl_jax.data import Transitions
from offrl_jax.fitted import FittedQConfig, QNetwork, validate_data
from offrl_jax.fitted.config import check_loop_fields
from offrl_jax.fitted.loop import sample_batch

Array = Any

__all__ = [
    "GaussianPolicy",
    "TanhActor",
    "check_common",
    "check_unit",
    "make_optimizer",
    "new_state",
    "new_states",
    "logits_network",
    "value_network",
    "take",
    "expectile_loss",
    "gaussian_log_prob",
    "scan_learner",
    "validate_offline_data",
    "select",
]


def check_common(config: Any, *, discrete_only: bool = False, continuous_only: bool = False) -> None:
    """Host checks of the fields every offline config has (ValueError naming the field): the
    action space, ``num_observations``, ``hidden_sizes``, ``gamma`` in [0, 1) and the training-loop
    fields it declares, checked by :func:`offrl_jax.fitted.check_loop_fields` (the Q-loop fields
    of CQL and BCQ are those of :class:`~offrl_jax.fitted.FittedQConfig`)."""
    na, ad = getattr(config, "num_actions", None), getattr(config, "action_dim", None)
    if discrete_only:
        check_positive_int(na, "num_actions")
    elif continuous_only:
        check_positive_int(ad, "action_dim")
    else:
        check_action_space(na, ad)
    nobs = getattr(config, "num_observations", None)
    check_positive_int(nobs, "num_observations", allow_none=True)
    if ad is not None and nobs is not None:
        raise ValueError("num_observations: continuous actions read float observations [M, D]")
    check_hidden_sizes(config.hidden_sizes)
    if hasattr(config, "gamma"):
        g = config.gamma
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not 0.0 <= g < 1.0:
            raise ValueError(f"gamma: expected a discount in [0, 1), found {g!r}")
    check_loop_fields(config)


def check_unit(value: Any, name: str, *, closed_low: bool = True, closed_high: bool = True) -> None:
    """``value`` a float in [0, 1] (ends open where asked); ValueError naming it."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if ok:
        v = float(value)
        ok = (v >= 0.0 if closed_low else v > 0.0) and (v <= 1.0 if closed_high else v < 1.0)
    if not ok:
        span = ("[" if closed_low else "(") + "0, 1" + ("]" if closed_high else ")")
        raise ValueError(f"{name}: expected a number in {span}, found {value!r}")


@functools.lru_cache(maxsize=256)
def make_optimizer(learning_rate: float, optimizer: str = "adam", max_grad_norm: Optional[float] = None):
    """Optional global-norm clipping, then Adam or SGD (one object per setting)."""
    opt = optax.adam(learning_rate) if optimizer == "adam" else optax.sgd(learning_rate)
    if max_grad_norm is not None:
        opt = optax.chain(optax.clip_by_global_norm(max_grad_norm), opt)
    return opt


def new_state(key: Array, module: nn.Module, example: Sequence[Array], tx) -> train_state.TrainState:
    """A flax ``TrainState`` of ``module`` initialised on ``example`` inputs (int32 step counter)."""
    params = module.init(key, *example)
    state = train_state.TrainState.create(apply_fn=module.apply, params=params, tx=tx)
    return state.replace(step=jnp.zeros((), jnp.int32))


def new_states(key: Array, config: Any, data: Transitions, modules: Sequence[tuple]) -> tuple:
    """One ``TrainState`` per network of a learner, all with the config's optimiser, and the run key.

    ``key`` is split into ``len(modules) + 1`` keys: network i is initialised with key i on the
    first row of ``data`` (its observations, and its actions too where the entry says so), and the
    last key is returned for the run.

    Args:
      key: PRNG key.
      config: an offline config (``learning_rate``, and ``optimizer`` if it has one: Adam otherwise).
      data: the training :class:`~offrl_jax.data.Transitions`.
      modules: ``(module, takes_action)`` pairs; ``takes_action`` networks read ``(s, a)``.

    Returns:
      ``(*states, run_key)``.
    """
    *keys, k_run = jax.random.split(key, len(modules) + 1)
    tx = make_optimizer(config.learning_rate, getattr(config, "optimizer", "adam"))
    obs, act = data.observations[:1], data.actions[:1]
    states = [new_state(k, module, (obs, act) if takes_action else (obs,), tx)
              for k, (module, takes_action) in zip(keys, modules)]
    return (*states, k_run)


def logits_network(config: Any, num_outputs: Optional[int] = None) -> QNetwork:
    """An MLP from observations to ``num_outputs`` (default A) values: logits or Q-values.

    With ``num_observations`` set it one-hot encodes integer observations, so ``hidden_sizes=()``
    is a table (the tabular case of :class:`~offrl_jax.fitted.QNetwork`)."""
    return QNetwork(
        num_actions=num_outputs or config.num_actions,
        hidden_sizes=tuple(config.hidden_sizes),
        num_observations=getattr(config, "num_observations", None),
        dtype=jnp.dtype(config.dtype),
    )


class _Squeeze(nn.Module):
    inner: nn.Module

    @nn.compact
    def __call__(self, obs: Array) -> Array:
        return self.inner(obs)[..., 0]


def value_network(config: Any) -> nn.Module:
    """State-value network V(s) ∈ R: the one-output :func:`logits_network`, squeezed."""
    return _Squeeze(logits_network(config, 1))


class GaussianPolicy(nn.Module):
    """π(a|s) = N(μ(s), diag σ²): an MLP mean and a state-independent log σ (clipped to [-5, 2]).

    Returns ``(mean [..., d], log_std [d])``."""

    action_dim: int
    hidden_sizes: Sequence[int] = (256, 256)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, obs: Array):
        x = jnp.asarray(obs, self.dtype)
        for width in self.hidden_sizes:
            x = nn.relu(nn.Dense(width, dtype=self.dtype, param_dtype=self.dtype)(x))
        mean = nn.Dense(self.action_dim, dtype=self.dtype, param_dtype=self.dtype)(x)
        log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,), self.dtype)
        return mean, jnp.clip(log_std, -5.0, 2.0)


class TanhActor(nn.Module):
    """Deterministic actor π(s) = a_max · tanh(MLP(s)) (TD3's actor)."""

    action_dim: int
    hidden_sizes: Sequence[int] = (256, 256)
    max_action: float = 1.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, obs: Array) -> Array:
        x = jnp.asarray(obs, self.dtype)
        for width in self.hidden_sizes:
            x = nn.relu(nn.Dense(width, dtype=self.dtype, param_dtype=self.dtype)(x))
        return self.max_action * jnp.tanh(nn.Dense(self.action_dim, dtype=self.dtype, param_dtype=self.dtype)(x))


def gaussian_log_prob(mean: Array, log_std: Array, actions: Array) -> Array:
    """``[B]`` log N(a; μ, diag σ²) = Σ_j [−½((a_j − μ_j)/σ_j)² − log σ_j − ½ log 2π]."""
    log_std = jnp.broadcast_to(log_std, mean.shape)
    z = (actions - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)


def take(values: Array, actions: Array) -> Array:
    """``[B]`` values[b, a_b] of ``[B, A]`` values, by a one-hot contraction (vectorises under vmap)."""
    return jnp.sum(values * jax.nn.one_hot(actions, values.shape[-1], dtype=values.dtype), axis=-1)


def expectile_loss(diff: Array, expectile: float) -> Array:
    """Mean asymmetric squared loss L₂^τ(u) = |τ − 1(u < 0)| u² of ``diff`` u (IQL's value loss)."""
    weight = jnp.where(diff < 0, 1.0 - expectile, expectile)
    return jnp.mean(weight * diff**2)


def select(pred: Array, on_true: Any, on_false: Any) -> Any:
    """Leafwise ``where(pred, on_true, on_false)`` over two pytrees of one structure."""
    return jax.tree_util.tree_map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def scan_learner(init: Callable, update: Callable, num_steps: int, batch_size: Optional[int],
                 prepare: Optional[Callable] = None) -> Learner:
    """A :class:`~offrl_jax.core.Learner` whose ``run`` is a ``lax.scan`` of ``update``.

    Each step: ``key, k_batch = split(state.key)``, a uniform minibatch of ``batch_size`` rows
    (with replacement; ``None`` = all) drawn with ``k_batch``, then ``update(state, batch)``, as
    in :func:`offrl_jax.fitted.make_learner` (so equal keys draw equal minibatches in both).
    ``prepare(data)`` maps the dataset once per ``run`` (e.g. casting rewards)."""

    def run(state: Any, data: Any, steps: int):
        rows = data if prepare is None else prepare(data)

        def body(state, _):
            key, k_batch = jax.random.split(state.key)
            return update(state.replace(key=key), sample_batch(k_batch, rows, batch_size))

        return jax.lax.scan(body, state, None, length=steps)

    return Learner(init, run, num_steps)


def _zero_actions(action_dim: int) -> Callable:
    return lambda key, obs: jnp.zeros((obs.shape[0], action_dim), obs.dtype)


def validate_offline_data(config: Any, data: Transitions) -> None:
    """Host checks of a dataset against an offline config (those of
    :func:`offrl_jax.fitted.validate_data`: a non-empty, non-ragged :class:`Transitions`,
    ``batch_size`` at most M, discrete actions in [0, A) and observations that fit the input,
    or continuous actions ``[M, action_dim]`` floats). Raises ``ValueError`` naming the argument."""
    continuous = getattr(config, "action_dim", None) is not None
    fields = dict(
        gamma=float(getattr(config, "gamma", 0.0)),
        hidden_sizes=tuple(config.hidden_sizes),
        batch_size=config.batch_size,
        learning_rate=float(config.learning_rate),
    )
    if continuous:
        fq = FittedQConfig(action_dim=config.action_dim, method="fqe", **fields)
        validate_data(fq, data, _zero_actions(config.action_dim))
    else:
        fq = FittedQConfig(num_actions=config.num_actions, num_observations=config.num_observations,
                           method="fqi", **fields)
        validate_data(fq, data, None)
    if continuous and np.ndim(getattr(data, "observations", np.zeros((1, 1)))) != 2:
        raise ValueError("data.observations: expected float [M, D]")


def cast_rows(dtype: Any) -> Callable[[Transitions], Transitions]:
    """``prepare`` for :func:`scan_learner`: rewards and discounts in the network dtype."""
    dtype = jnp.dtype(dtype)

    def prepare(data: Transitions) -> Transitions:
        return data.replace(rewards=data.rewards.astype(dtype), discounts=data.discounts.astype(dtype))

    return prepare
