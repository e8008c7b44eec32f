"""Fitted Q evaluation / iteration in the one :class:`~offrl_jax.trainers.base.Trainer`.

The classes only build the learner (:func:`~offrl_jax.fitted.make_learner`) after checking the
data on the host, and add read-only conveniences (Q-values, the FQE estimate, greedy actions);
the loop, history and checkpoints are the generic trainer's.
"""

from __future__ import annotations

from typing import Any, Optional

import jax.numpy as jnp

from offrl_jax.data import Transitions
from offrl_jax.fitted import FittedQConfig, initial_value, make_learner, validate_data
from offrl_jax.trainers.base import Trainer

Array = Any

__all__ = ["FittedQTrainer", "FQETrainer", "FQITrainer"]


class FittedQTrainer(Trainer):
    """Trains a Q-network with the fitted-Q learner in jitted chunks.

    Args:
      data: :class:`~offrl_jax.data.Transitions` (validated on the host against ``config``).
      config: :class:`~offrl_jax.fitted.FittedQConfig` (``num_steps`` is not used:
        ``fit(steps)`` says how many).
      target_policy: FQE's evaluated policy (see :func:`~offrl_jax.fitted.make_learner`),
        ``None`` for FQI.
      **kwargs: ``seed``, ``chunk_size``, ``callbacks``, ``eval_every``, ``progress`` of
        :class:`~offrl_jax.trainers.base.Trainer`.
    """

    def __init__(self, data: Transitions, config: FittedQConfig, target_policy: Any = None, **kwargs: Any):
        validate_data(config, data, target_policy)
        self.target_policy = target_policy
        super().__init__(make_learner(config, target_policy), data, config=config, **kwargs)

    def q_values(self, observations: Array, actions: Optional[Array] = None) -> Array:
        """Q̂ of the current parameters: ``[B, A]`` (discrete) or ``[B]`` at ``actions`` (continuous)."""
        args = (observations,) if actions is None else (observations, actions)
        return self.state.apply_fn(self.state.params, *args)


class FQETrainer(FittedQTrainer):
    """Fitted Q evaluation of ``target_policy`` (Le, Voloshin & Yue 2019). ``config.method``
    must be ``"fqe"``."""

    def __init__(self, data: Transitions, config: FittedQConfig, target_policy: Any, **kwargs: Any):
        if config.method != "fqe":
            raise ValueError(f"config.method: FQETrainer expects 'fqe', found {config.method!r}")
        super().__init__(data, config, target_policy, **kwargs)

    def estimate(self, initial_observations: Array, key: Optional[Array] = None, num_samples: int = 16) -> Array:
        """Ĵ(π) = mean_n E_{a~π} Q̂(s_0^n, a) over ``[N, ...]`` initial observations; continuous
        actions average ``num_samples`` draws made with ``key`` (see
        :func:`~offrl_jax.fitted.initial_value`)."""
        if self.config.continuous and key is None:
            raise ValueError("key: continuous-action FQE estimates by sampling actions; pass a PRNG key")
        return initial_value(
            self.state.apply_fn, self.state.params, initial_observations, self.target_policy,
            key=key if self.config.continuous else None, num_samples=num_samples,
        )


class FQITrainer(FittedQTrainer):
    """Fitted Q iteration towards Q* (Ernst, Geurts & Wehenkel 2005; DQN-style targets).
    ``config.method`` must be ``"fqi"``."""

    def __init__(self, data: Transitions, config: FittedQConfig, **kwargs: Any):
        if config.method != "fqi":
            raise ValueError(f"config.method: FQITrainer expects 'fqi', found {config.method!r}")
        super().__init__(data, config, None, **kwargs)

    def greedy_actions(self, observations: Array) -> Array:
        """``[B]`` argmax_a Q̂(o, a) (ties to the lowest index)."""
        return jnp.argmax(self.q_values(observations), axis=-1)
