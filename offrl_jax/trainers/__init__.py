"""Thin stateful trainers (progress, metrics, callbacks, checkpoints); no math here."""

from offrl_jax.trainers.base import Trainer
from offrl_jax.trainers.dice import DiceTrainer
from offrl_jax.trainers.fitted import FittedQTrainer, FQETrainer, FQITrainer
from offrl_jax.trainers.pg import OfflinePGTrainer
from offrl_jax.trainers.offline import OfflineTrainer

__all__ = ["DiceTrainer", "FQETrainer", "FQITrainer", "FittedQTrainer", "OfflinePGTrainer", "Trainer"]
__all__ += ["OfflineTrainer"]
