"""The DICE trainer: the generic :class:`~offrl_jax.trainers.Trainer` over
:func:`offrl_jax.mis.make_learner`, plus read-only conveniences (estimate, weights).
The math is in :mod:`offrl_jax.mis.dice`."""

from __future__ import annotations

from functools import partial
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax

from offrl_jax.mis.dice import DiceConfig, DiceEstimate, dice_estimate, dice_weights, make_learner, validate_data
from offrl_jax.mis.dice_data import DiceData
from offrl_jax.trainers.base import Callback, Trainer

Array = Any

__all__ = ["DiceTrainer"]


class DiceTrainer(Trainer):
    """Trains DualDICE / GenDICE / GradientDICE on a fixed dataset in jitted chunks.

    A :class:`~offrl_jax.trainers.Trainer` over ``make_learner(config, weight_net, critic_net)``:
    deterministic given ``seed``; :meth:`save` / :meth:`restore` (Orbax) resume bit for bit.
    Per-step metrics (``loss``, ``weight_mean``, batch ``estimate``) are in :attr:`history`.
    ``config.num_steps`` is not used: ``fit(steps)`` says how many.

    Args:
      config: :class:`~offrl_jax.mis.DiceConfig`.
      weight_net: flax module for the weights (zeta / tau), ``obs -> [A]``.
      critic_net: flax module for the critic (nu / f), ``obs -> [A]``.
      data: :class:`~offrl_jax.mis.DiceData`.
      seed, chunk_size, callbacks, eval_every, progress: see
        :class:`~offrl_jax.trainers.Trainer`.
    """

    def __init__(
        self,
        config: DiceConfig,
        weight_net: nn.Module,
        critic_net: nn.Module,
        data: DiceData,
        *,
        seed: int = 0,
        chunk_size: int = 1000,
        callbacks: Sequence[Callback] = (),
        eval_every: Optional[int] = None,
        progress: bool = True,
    ):
        if not isinstance(data, DiceData):
            raise ValueError(f"data: expected a DiceData (see DiceData.create), found {type(data).__name__}")
        validate_data(config, data, weight_net, critic_net)  # the host checks make_train's train runs
        super().__init__(
            make_learner(config, weight_net, critic_net),
            data,
            seed=seed,
            config=config,
            chunk_size=chunk_size,
            callbacks=callbacks,
            eval_every=eval_every,
            progress=progress,
        )
        self.weight_net = weight_net
        self._estimate = jax.jit(partial(dice_estimate, config, weight_net))

    def estimate(self, data: Optional[DiceData] = None) -> DiceEstimate:
        """MIS estimates of J with the current weights on ``data`` (default: the training data)."""
        return self._estimate(self.state.weight_params, self.data if data is None else data)

    def weights(self, observations: Array, actions: Array) -> Array:
        """Learned w(s, a) at ``observations`` ``[B, ...]`` and int ``actions`` ``[B]``."""
        return dice_weights(self.config, self.weight_net, self.state.weight_params, observations, actions)
