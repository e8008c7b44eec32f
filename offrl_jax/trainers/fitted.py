"""Thin stateful trainers for fitted Q evaluation and fitted Q iteration.

They hold a :class:`~offrl_jax.fitted.train.QTrainState`, the dataset and the config, and call
the pure functions of :mod:`offrl_jax.fitted.train` in jitted chunks (see
:class:`~offrl_jax.trainers.base.Trainer` for progress, metrics, callbacks and checkpoints).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp

from offrl_jax.data import Transitions
from offrl_jax.fitted.targets import policy_probs
from offrl_jax.fitted.train import (
    FittedQConfig,
    Policy,
    init_state,
    initial_value,
    make_run,
    validate_dataset,
)
from offrl_jax.trainers.base import Callback, Trainer

Array = Any

__all__ = ["FittedQTrainer", "FQETrainer", "FQITrainer"]


_init = jax.jit(init_state, static_argnums=1)


def _chunk(state, dataset, table, num_steps, config, policy_fn):
    policy = policy_fn if policy_fn is not None else table
    return make_run(config, policy)(state, dataset, num_steps)


class FittedQTrainer(Trainer):
    """Trains a Q-network with :func:`~offrl_jax.fitted.train.make_run` in jitted chunks.

    Args:
      dataset: :class:`~offrl_jax.data.Transitions` (validated on the host against ``config``).
      config: :class:`~offrl_jax.fitted.train.FittedQConfig` (``num_steps`` is not used:
        ``fit(steps)`` says how many).
      policy: FQE's evaluated policy (``[O, A]`` or a function), ``None`` for FQI.
      seed: int seed; the run is deterministic given it.
      chunk_size, callbacks, eval_every, progress: see :class:`~offrl_jax.trainers.base.Trainer`.
    """

    def __init__(
        self,
        dataset: Transitions,
        config: FittedQConfig,
        policy: Policy = None,
        seed: int = 0,
        chunk_size: int = 1000,
        callbacks: Sequence[Callback] = (),
        eval_every: Optional[int] = None,
        progress: bool = True,
    ):
        validate_dataset(config, dataset, policy)
        self.config = config
        self.policy = policy
        state = _init(jax.random.key(seed), config, dataset.observations[:1])
        # Tables travel as inputs, functions and the config as static arguments, so trainers
        # with the same config share one compilation.
        table = None if policy is None or callable(policy) else jnp.asarray(policy)
        static = {"config": config, "policy_fn": policy if callable(policy) else None}
        super().__init__(
            _chunk, state, (dataset, table), chunk_size, callbacks, eval_every, progress, static
        )

    def q_values(self, observations: Array) -> Array:
        """``[B, A]`` Q̂(o, ·) of the current parameters."""
        return self.state.apply_fn(self.state.params, observations)


class FQETrainer(FittedQTrainer):
    """Fitted Q evaluation of ``policy`` (Le, Voloshin & Yue 2019). ``config.method`` must be
    ``"fqe"``."""

    def __init__(self, dataset: Transitions, config: FittedQConfig, policy: Policy, **kwargs):
        if config.method != "fqe":
            raise ValueError(f"config.method: FQETrainer expects 'fqe', found {config.method!r}")
        super().__init__(dataset, config, policy, **kwargs)

    def estimate(self, initial_observations: Array) -> Array:
        """Ĵ(π) = mean_n Σ_a π(a|s_0^n) Q̂(s_0^n, a) over ``[N, ...]`` initial observations."""
        probs = policy_probs(self.policy, initial_observations)
        return initial_value(self.state.apply_fn, self.state.params, initial_observations, probs)


class FQITrainer(FittedQTrainer):
    """Fitted Q iteration towards Q* (Ernst, Geurts & Wehenkel 2005; DQN-style targets).
    ``config.method`` must be ``"fqi"``."""

    def __init__(self, dataset: Transitions, config: FittedQConfig, **kwargs):
        if config.method != "fqi":
            raise ValueError(f"config.method: FQITrainer expects 'fqi', found {config.method!r}")
        super().__init__(dataset, config, None, **kwargs)

    def greedy_actions(self, observations: Array) -> Array:
        """``[B]`` argmax_a Q̂(o, a) (ties to the lowest index)."""
        return jnp.argmax(self.q_values(observations), axis=-1)
