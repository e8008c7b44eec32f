"""Thin stateful trainers (progress, metrics, callbacks, checkpoints); no math here."""

from offrl_jax.trainers.base import Trainer
from offrl_jax.trainers.dice import DiceTrainer
from offrl_jax.trainers.fitted import FittedQTrainer, FQETrainer, FQITrainer
from offrl_jax.trainers.pg import OfflinePGTrainer

__all__ = ["DiceTrainer", "FQETrainer", "FQITrainer", "FittedQTrainer", "OfflinePGTrainer", "Trainer"]
