"""The one config of fitted Q evaluation / iteration, and the host checks of data against it.

One frozen :class:`FittedQConfig` describes every fitted-Q run of the package: discrete actions
(``num_actions`` outputs; FQE with an expectation over a target table or function, FQI with a
max or double-Q) and continuous actions (``action_dim``; FQE with K sampled next actions).
Every field is static (:func:`~offrl_jax.core.config_field`) and checked on the host when the
config is built; :func:`validate_data` checks a dataset and a target policy against it.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from offrl_jax.core import config_field, is_concrete
from offrl_jax.core.dtypes import input_dtype
from offrl_jax.core.validation import (
    check_action_space,
    check_choice,
    check_finite,
    check_float_dtype,
    check_hidden_sizes,
    check_positive_float,
    check_positive_int,
)
from offrl_jax.data import Transitions

Array = Any
# Discrete actions: an [O, A] table or a function observations [B, ...] -> probabilities [B, A].
# Continuous actions: a function sample_actions(key, observations [B, D]) -> actions [B, d].
Policy = Any

__all__ = ["FittedQConfig", "LOOP_FIELDS", "check_loop_fields", "loop_fields", "validate_data"]


def _check_tau(value: Any, name: str) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0
    ):
        raise ValueError(f"{name}: expected a Polyak rate in (0, 1] or None, found {value!r}")


# The fields of the fitted-Q training loop and their checks: the one definition of them.
# FittedQConfig has every one; the offline configs declare those they use (CQL all of them, BCQ
# all but max_grad_norm and double_q, BC / IQL / TD3+BC the optimiser fields and dtype).
_LOOP_CHECKS = {
    "num_steps": lambda v, n: check_positive_int(v, n),
    "batch_size": lambda v, n: check_positive_int(v, n, allow_none=True),
    "learning_rate": lambda v, n: check_positive_float(v, n),
    "optimizer": lambda v, n: check_choice(v, n, ("adam", "sgd")),
    "max_grad_norm": lambda v, n: check_positive_float(v, n, allow_none=True),
    "loss": lambda v, n: check_choice(v, n, ("l2", "huber")),
    "huber_delta": lambda v, n: check_positive_float(v, n),
    "target_update_period": lambda v, n: check_positive_int(v, n),
    "tau": _check_tau,
    "dtype": check_float_dtype,
}
LOOP_FIELDS = (*_LOOP_CHECKS, "double_q")


def check_loop_fields(config: Any) -> None:
    """Host checks of the fitted-Q loop fields (:data:`LOOP_FIELDS`) that ``config`` declares.

    ``num_steps`` and ``target_update_period`` positive ints; ``batch_size`` a positive int or
    ``None``; ``learning_rate`` and ``huber_delta`` finite and > 0; ``max_grad_norm`` > 0 or
    ``None``; ``optimizer`` ``"adam"``/``"sgd"``; ``loss`` ``"l2"``/``"huber"``; ``tau`` in
    (0, 1] or ``None``; ``dtype`` ``"float32"``/``"float64"`` (float64 needs
    ``jax_enable_x64``).

    Raises:
      ValueError: naming the first bad field.
    """
    for name, check in _LOOP_CHECKS.items():  # double_q: any truth value
        if hasattr(config, name):
            check(getattr(config, name), name)


def loop_fields(config: Any) -> dict:
    """The :data:`LOOP_FIELDS` ``config`` declares, as keyword arguments of :class:`FittedQConfig`."""
    out = {name: getattr(config, name) for name in LOOP_FIELDS if hasattr(config, name)}
    for name in ("learning_rate", "huber_delta"):
        if name in out:
            out[name] = float(out[name])
    return out


@struct.dataclass
class FittedQConfig:
    """Static hyperparameters of fitted Q evaluation / iteration (frozen; hashable; validated).

    Exactly one of ``num_actions`` (discrete) and ``action_dim`` (continuous) is set. The TD
    target rule follows (:attr:`target_rule`): ``"expected"`` (FQE, discrete), ``"max"`` (FQI),
    ``"double_q"`` (FQI with ``double_q``) or ``"sampled"`` (FQE, continuous).

    Attributes:
      num_actions: A, the number of discrete actions (network outputs).
      action_dim: d, the continuous action dimension (the network reads ``[s; a]``).
      method: ``"fqe"`` (evaluate a given target policy) or ``"fqi"`` (greedy, Q*; discrete).
      gamma: discount γ in [0, 1]; γ = 1 only for data whose episodes all end (discount 0),
        e.g. finite-horizon data with the time step in the observation. Continuous: [0, 1).
      hidden_sizes: MLP widths; ``()`` is a linear (with one-hot inputs: tabular) Q.
      num_observations: if set, observations are ints in [0, O) fed one-hot (tabular input).
      features: ``"mlp"`` or, continuous only, ``"quadratic"`` (Q = xᵀWx + bᵀx + c, x = [s; a]).
      num_action_samples: K, next actions drawn from π per transition per step (continuous).
      num_steps: gradient steps of ``make_train`` (inner steps per iteration in
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

    Raises:
      ValueError: when built with a bad field, naming it.
    """

    num_actions: Optional[int] = config_field(None)
    action_dim: Optional[int] = config_field(None)
    method: str = config_field("fqe")
    gamma: float = config_field(0.99)
    hidden_sizes: Tuple[int, ...] = config_field((256, 256))
    num_observations: Optional[int] = config_field(None)
    features: str = config_field("mlp")
    num_action_samples: int = config_field(1)
    num_steps: int = config_field(1000)
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
        _check_actions(self)
        check_choice(self.method, "method", ("fqe", "fqi"))
        g = self.gamma
        ok = not isinstance(g, bool) and isinstance(g, (int, float, np.floating)) and 0.0 <= g <= 1.0
        if not ok or (self.continuous and g >= 1.0):
            span = "[0, 1) for continuous actions" if self.continuous else "[0, 1]"
            raise ValueError(f"gamma: expected a discount in {span}, found {g!r}")
        check_hidden_sizes(self.hidden_sizes)
        check_positive_int(self.num_observations, "num_observations", allow_none=True)
        check_choice(self.features, "features", ("mlp", "quadratic"))
        if self.features == "quadratic" and not self.continuous:
            raise ValueError("features: 'quadratic' needs continuous actions (action_dim)")
        check_positive_int(self.num_action_samples, "num_action_samples")
        check_loop_fields(self)
        if self.double_q and self.method != "fqi":
            raise ValueError("double_q: only applies to method='fqi' (FQE takes an expectation)")

    @property
    def continuous(self) -> bool:
        """True for continuous actions (``action_dim`` set)."""
        return self.action_dim is not None

    @property
    def target_rule(self) -> str:
        """``"expected"``, ``"max"``, ``"double_q"`` or ``"sampled"`` (see the class docstring)."""
        if self.continuous:
            return "sampled"
        if self.method == "fqe":
            return "expected"
        return "double_q" if self.double_q else "max"


def _check_actions(config: FittedQConfig) -> None:
    check_action_space(config.num_actions, config.action_dim)
    if config.continuous and config.method != "fqe":
        raise ValueError("method: continuous actions (action_dim) support 'fqe' only (FQI needs a max over actions)")
    if config.continuous and config.num_observations is not None:
        raise ValueError("num_observations: continuous-action FQE reads float observations [M, D]")


def _check_target_policy(config: FittedQConfig, target_policy: Policy) -> None:
    """Host checks of the target policy against the config (no data needed)."""
    if config.method == "fqi":
        if target_policy is not None:
            raise ValueError("target_policy: FQI is greedy and takes none; use method='fqe' to evaluate one")
        return
    if target_policy is None:
        what = "sample_actions(key, observations) function" if config.continuous else "[O, A] table or a function"
        raise ValueError(f"target_policy: FQE needs the evaluated policy (a {what})")
    if callable(target_policy):
        return
    if config.continuous:
        raise ValueError("target_policy: continuous FQE needs a function sample_actions(key, observations [B, D]) -> [B, d]")
    p = np.asarray(target_policy) if is_concrete(target_policy) else target_policy
    o = config.num_observations
    if p.ndim != 2 or p.shape[1] != config.num_actions or (o is not None and p.shape[0] != o):
        raise ValueError(f"target_policy: expected an [O, A] = [{o}, {config.num_actions}] table, found {list(p.shape)}")
    if o is None:
        raise ValueError("target_policy: a tabular [O, A] policy needs integer observations (num_observations)")
    if is_concrete(target_policy) and (np.any(p < 0) or not np.allclose(p.sum(-1), 1.0, atol=1e-5)):
        raise ValueError("target_policy: expected rows of probabilities summing to 1")


def _check_leading(data: Transitions) -> int:
    if not isinstance(data, Transitions):
        raise ValueError(f"data: expected offrl_jax.data.Transitions, found {type(data).__name__}")
    m = data.rewards.shape[0] if data.rewards.ndim == 1 else 0
    if m < 1:
        raise ValueError(f"data.rewards: expected M >= 1 transitions [M], found {data.rewards.shape}")
    for f in ("actions", "discounts", "next_observations", "observations"):
        if getattr(data, f).shape[:1] != (m,):
            raise ValueError(f"data.{f}: expected leading size M = {m}, found {getattr(data, f).shape}")
    return m


def _check_values(data: Transitions) -> None:
    """Real numeric fields; NaN/inf in any float field and discounts outside [0, 1] refused
    (concrete data only), so a run never trains to a NaN loss without a word."""
    for f in ("rewards", "discounts", "observations", "next_observations", "actions"):
        x = getattr(data, f)
        dt = input_dtype(x, f"data.{f}")
        if is_concrete(x) and dt.kind == "f":
            check_finite(x, f"data.{f}")
    if is_concrete(data.discounts):
        d = np.asarray(data.discounts)
        if np.any((d < 0) | (d > 1)):
            raise ValueError(f"data.discounts: expected values in [0, 1], found range [{d.min()}, {d.max()}]")


def _check_discrete(config: FittedQConfig, data: Transitions) -> None:
    if data.actions.ndim != 1 or not jnp.issubdtype(data.actions.dtype, jnp.integer):
        raise ValueError(
            f"data.actions: expected integer discrete actions [M], found {data.actions.shape} {data.actions.dtype}"
        )
    if is_concrete(data.actions):
        a = np.asarray(data.actions)
        if a.min() < 0 or a.max() >= config.num_actions:
            raise ValueError(
                f"num_actions: the network has {config.num_actions} outputs but data.actions range over "
                f"[{a.min()}, {a.max()}]"
            )
    if config.num_observations is None:
        if data.observations.ndim < 2:
            raise ValueError(
                f"data.observations: feature input needs [M, D] floats, found {data.observations.shape}; "
                "set num_observations for integer (tabular) observations"
            )
        return
    for f in ("observations", "next_observations"):
        o = getattr(data, f)
        if o.ndim != 1 or not jnp.issubdtype(o.dtype, jnp.integer):
            raise ValueError(f"data.{f}: one-hot input needs integer observations [M], found {o.shape} {o.dtype}")
        if is_concrete(o) and (np.asarray(o).min() < 0 or np.asarray(o).max() >= config.num_observations):
            raise ValueError(
                f"num_observations: {config.num_observations} but data.{f} range over "
                f"[{np.asarray(o).min()}, {np.asarray(o).max()}]"
            )


def _check_continuous(config: FittedQConfig, data: Transitions, sample_actions: Optional[Callable]) -> None:
    obs, act, m = data.observations, data.actions, data.rewards.shape[0]
    if obs.ndim != 2 or not jnp.issubdtype(obs.dtype, jnp.floating) or data.next_observations.shape != obs.shape:
        raise ValueError(
            f"data.observations: expected float [M, D] (and next_observations alike), found "
            f"{obs.shape} {obs.dtype} / {data.next_observations.shape}"
        )
    if act.shape != (m, config.action_dim) or not jnp.issubdtype(act.dtype, jnp.floating):
        raise ValueError(
            f"action_dim: the network takes actions [M, {config.action_dim}] (floats) but data.actions "
            f"is {act.shape} {act.dtype}"
        )
    if callable(sample_actions):
        out = jax.eval_shape(sample_actions, jax.random.key(0), jax.ShapeDtypeStruct((2,) + obs.shape[1:], obs.dtype))
        if getattr(out, "shape", None) != (2, config.action_dim):
            raise ValueError(
                f"target_policy: expected sample_actions to return actions [B, {config.action_dim}] for "
                f"observations [B, D], found {getattr(out, 'shape', out)} for B = 2"
            )


def validate_data(config: FittedQConfig, data: Transitions, target_policy: Policy = None) -> None:
    """Host checks of a dataset and a target policy against a config, before training.

    ``make_train(config, pi)(key, data)`` runs them itself (then its jitted program); inside a
    caller's own ``jax.jit`` only shapes are known, so call this first on the concrete data::

        fitted.validate_data(config, data, pi)
        result = jax.jit(jax.vmap(fitted.make_train(config, pi), in_axes=(0, None)))(keys, data)

    Raises:
      ValueError: naming the argument for data that are not :class:`~offrl_jax.data.Transitions`
        or are empty or ragged, ``batch_size`` larger than the dataset, discrete actions outside
        ``[0, num_actions)``, NaN or inf in any float field (rewards, discounts, observations,
        continuous actions), discounts outside [0, 1], observations that do not fit the network input (integer
        observations past ``num_observations``), continuous actions not ``[M, action_dim]``
        floats, a target policy missing (FQE) or given (FQI), a table of the wrong shape or not
        on the simplex, or a ``sample_actions`` of the wrong output shape. Value checks are
        skipped for traced arrays; shapes are always checked.
    """
    if not isinstance(config, FittedQConfig):
        raise ValueError(f"config: expected a FittedQConfig, found {type(config).__name__}")
    m = _check_leading(data)
    _check_values(data)
    if config.batch_size is not None and config.batch_size > m:
        raise ValueError(f"batch_size: {config.batch_size} is larger than the dataset (M = {m})")
    _check_target_policy(config, target_policy)
    if config.continuous:
        _check_continuous(config, data, target_policy)
    else:
        _check_discrete(config, data)
