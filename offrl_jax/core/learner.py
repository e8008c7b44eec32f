"""The learner convention every trained method of the package follows.

A learner is a pair of pure functions (optax's ``init``/``update`` shape, PureJaxRL's
``make_train``), built by a family's ``make_learner(config, ...)`` from a frozen, validated
config:

* ``init(key, data) -> state``: parameters, optimiser state and the run's PRNG key;
* ``run(state, data, num_steps) -> (state, metrics)``: ``num_steps`` updates as one
  ``lax.scan`` (minibatches drawn inside jit from ``state``'s key); ``metrics`` is a NamedTuple
  of ``[num_steps]`` arrays. Running 2n steps equals n then n more.

and the whole run is ``make_train(config, ...) -> train(key, data) -> TrainResult(state,
metrics)``, the same for every learner, so ``jax.jit(jax.vmap(train, (0, None)))(keys, data)``
trains many seeds in one program and :func:`make_train_seeds` lays vmapped groups side by side.
One :class:`~offrl_jax.trainers.Trainer` wraps any :class:`Learner` (progress, history,
metrics export, checkpoints).

Configs are ``flax.struct`` dataclasses whose fields are all static (:func:`config_field`):
frozen, hashable, with no array leaves, validated on the host when built.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
from flax import struct

from offrl_jax.core.validation import check_positive_int, is_concrete

Array = Any

__all__ = ["TrainResult", "Learner", "CheckedTrain", "config_field", "train_from_learner", "make_train_seeds"]


class TrainResult(NamedTuple):
    """What ``train(key, data)`` returns: the final state and per-step metrics ``[num_steps]``."""

    state: Any
    metrics: Any


class Learner(NamedTuple):
    """A learner's pure functions (see the module docstring).

    Attributes:
      init: ``(key, data) -> state``.
      run: ``(state, data, num_steps) -> (state, metrics)``, ``num_steps`` a static int.
      num_steps: the number of steps ``train`` runs (the config's).
    """

    init: Callable[[Array, Any], Any]
    run: Callable[[Any, Any, int], tuple]
    num_steps: int


def config_field(default: Any = None) -> Any:
    """A static (non-pytree) field of a learner config: part of the hash, never traced."""
    return struct.field(pytree_node=False, default=default)


def train_from_learner(learner: Learner) -> Callable[[Array, Any], TrainResult]:
    """``train(key, data) = TrainResult(*run(init(key, data), data, num_steps))``."""

    def train(key: Array, data: Any) -> TrainResult:
        state = learner.init(key, data)
        return TrainResult(*learner.run(state, data, learner.num_steps))

    return train


def make_train_seeds(
    train: Callable[[Array, Any], TrainResult], seeds_per_group: Optional[int] = None
) -> Callable[[Array, Any], TrainResult]:
    """``train_seeds(keys [S], data) -> TrainResult`` with a leading seed axis, for any learner.

    Each seed is an independent run of ``train`` (equal, seed by seed, to
    ``jax.vmap(train, in_axes=(0, None))``). The seeds are vmapped in groups of
    ``seeds_per_group`` and the groups laid side by side in one program, which XLA runs
    concurrently; on CPU that can beat one vmap over every seed (wide networks: one seed per
    group). ``None`` is one vmapped group. Callers ``jax.jit`` the result; ``keys`` has a static
    leading size.
    """
    check_positive_int(seeds_per_group, "seeds_per_group", allow_none=True)
    vtrain = jax.vmap(train, in_axes=(0, None))

    def train_seeds(keys: Array, data: Any) -> TrainResult:
        num = keys.shape[0]
        group = num if seeds_per_group is None else min(int(seeds_per_group), num)
        parts = [vtrain(keys[i : i + group], data) for i in range(0, num, group)]
        if len(parts) == 1:
            return parts[0]
        return jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *parts)

    return train_seeds


class CheckedTrain:
    """``train(key, data)`` of a learner that validates concrete data on the host, then runs
    one cached jitted program: what every family's ``make_train`` returns.

    * ``train(key, data)``: ``validate(data)`` (``ValueError`` naming the field, before any
      tracing), then the jitted whole run (compiled once per data shape). The same data object
      is checked once (JAX arrays are immutable).
    * ``train.seeds(seeds_per_group)(keys, data)``: many seeds in one jitted program
      (:func:`make_train_seeds`), the data validated the same way.
    * Under a caller's own ``jax.jit`` / ``jax.vmap`` the data are traced and cannot be checked
      there (only shapes are): call ``train.validate(data)`` first. The pure, unjitted run is
      ``train.unchecked``.

    Args:
      train: the pure ``train(key, data) -> TrainResult``.
      validate: ``validate(data) -> None`` raising ``ValueError`` on bad data.
    """

    def __init__(self, train, validate):
        self.unchecked = train
        self.validate = validate
        self._program = jax.jit(train)
        self._checked: tuple = ()
        self.__name__ = getattr(train, "__name__", "train")
        self.__doc__ = getattr(train, "__doc__", None) or CheckedTrain.__doc__

    def _check(self, data: Any) -> None:
        if not is_concrete(data):
            return
        leaves = tuple(jax.tree_util.tree_leaves(data))
        if len(leaves) == len(self._checked) and all(a is b for a, b in zip(leaves, self._checked)):
            return
        self.validate(data)
        self._checked = leaves

    def __call__(self, key: Array, data: Any):
        self._check(data)
        return self._program(key, data)

    def seeds(self, seeds_per_group: Optional[int] = None):
        """``train_seeds(keys [S], data)``: one jitted program over the seeds, data validated."""
        program = jax.jit(make_train_seeds(self.unchecked, seeds_per_group))

        def train_seeds(keys: Array, data: Any):
            self._check(data)
            return program(keys, data)

        return train_seeds
