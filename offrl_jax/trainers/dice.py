"""Thin trainer for the DICE estimators (progress, metrics, checkpoints); the math is in
:mod:`offrl_jax.mis.dice`."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax

from offrl_jax.mis.dice import (
    DiceConfig,
    DiceData,
    DiceEstimate,
    DiceLearner,
    dice_estimate,
    make_dice_learner,
    validate_dice_config,
)
from offrl_jax.trainers.base import Callback, Trainer

Array = Any

__all__ = ["DiceTrainer", "dice_chunk"]


def dice_chunk(state, data: DiceData, *, num_steps: int, config: DiceConfig, weight_net: nn.Module, critic_net: nn.Module):
    """``num_steps`` DICE updates under ``lax.scan``: ``(state, data) -> (state, DiceMetrics[num_steps])``."""
    learner = make_dice_learner(config, weight_net, critic_net)
    return jax.lax.scan(lambda s, _: learner.update(s, data), state, None, length=num_steps)


class DiceTrainer(Trainer):
    """Trains DualDICE / GenDICE / GradientDICE on a fixed dataset in jitted chunks.

    Deterministic given ``seed``; :meth:`save` / :meth:`restore` (Orbax) resume bit-for-bit.
    Per-step metrics (``loss``, ``weight_mean``, batch ``estimate``) are in :attr:`history`.

    Args:
      config: :class:`~offrl_jax.mis.dice.DiceConfig`.
      weight_net: flax module for the weights (zeta / tau), ``obs -> [A]``.
      critic_net: flax module for the critic (nu / f), ``obs -> [A]``.
      data: :class:`~offrl_jax.mis.dice.DiceData`.
      seed: PRNG seed of the initialisation and minibatch sampling.
      chunk_size: steps per jitted call.
      callbacks: ``trainer -> dict | None``, run every ``eval_every`` steps.
      eval_every: callback period in steps (``None``: after each :meth:`fit`).
      progress: show a tqdm progress bar.
    """

    def __init__(
        self,
        config: DiceConfig,
        weight_net: nn.Module,
        critic_net: nn.Module,
        data: DiceData,
        seed: int = 0,
        chunk_size: int = 1000,
        callbacks: Sequence[Callback] = (),
        eval_every: Optional[int] = None,
        progress: bool = True,
    ):
        validate_dice_config(config)
        if not isinstance(data, DiceData):
            raise ValueError(f"data: expected a DiceData (see DiceData.create), found {type(data).__name__}")
        self.config = config
        self.data = data
        self.learner: DiceLearner = make_dice_learner(config, weight_net, critic_net)
        state = jax.jit(self.learner.init)(jax.random.key(seed), data)
        super().__init__(
            dice_chunk,
            state,
            inputs=(data,),
            chunk_size=chunk_size,
            callbacks=callbacks,
            eval_every=eval_every,
            progress=progress,
            static={"config": config, "weight_net": weight_net, "critic_net": critic_net},
        )
        self._estimate = jax.jit(lambda wp, d: dice_estimate(self.learner, wp, d, config.gamma))

    def estimate(self, data: Optional[DiceData] = None) -> DiceEstimate:
        """MIS estimates of J with the current weights on ``data`` (default: the training data)."""
        return self._estimate(self.state.weight_params, self.data if data is None else data)

    def weights(self, observations: Array, actions: Array) -> Array:
        """Learned w(s, a) at ``observations`` ``[B, ...]`` and int ``actions`` ``[B]``."""
        return self.learner.weights(self.state.weight_params, observations, actions)
