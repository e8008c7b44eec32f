"""Offline RL learners (BC, CQL, BCQ, IQL, TD3+BC) in the one :class:`~offrl_jax.trainers.base.Trainer`.

:class:`OfflineTrainer` picks the learner from the config's type, checks the data on the host and
adds read-only conveniences (evaluation actions, Q-values); loop, history, progress and
checkpoints are the generic trainer's, exactly as for FQE.
"""

from __future__ import annotations

import functools
from typing import Any

from offrl_jax.data import Transitions
from offrl_jax.offline import bc, bcq, cql, iql, td3_bc
from offrl_jax.offline.common import validate_offline_data
from offrl_jax.trainers.base import Trainer

Array = Any

__all__ = ["OfflineTrainer"]

_MODULES = {
    bc.BCConfig: bc,
    cql.CQLConfig: cql,
    bcq.BCQConfig: bcq,
    iql.IQLConfig: iql,
    td3_bc.TD3BCConfig: td3_bc,
}


@functools.lru_cache(maxsize=64)
def _learner(config: Any):
    """One learner per config, so trainers of equal configs share their compiled programs."""
    return _MODULES[type(config)].make_learner(config)


class OfflineTrainer(Trainer):
    """Trains any :mod:`offrl_jax.offline` method in jitted chunks.

    Args:
      data: :class:`~offrl_jax.data.Transitions` (validated on the host against ``config``).
      config: a ``BCConfig``, ``CQLConfig``, ``BCQConfig``, ``IQLConfig`` or ``TD3BCConfig``
        (``num_steps`` is not used: ``fit(steps)`` says how many).
      **kwargs: ``seed``, ``chunk_size``, ``callbacks``, ``eval_every``, ``progress``, ``state`` of
        :class:`~offrl_jax.trainers.base.Trainer`.
    """

    def __init__(self, data: Transitions, config: Any, **kwargs: Any):
        module = _MODULES.get(type(config))
        if module is None:
            names = ", ".join(c.__name__ for c in _MODULES)
            raise ValueError(f"config: expected one of {names}, found {type(config).__name__}")
        validate_offline_data(config, data)
        self.module = module
        super().__init__(_learner(config), data, config=config, **kwargs)

    def act(self, observations: Array) -> Array:
        """The learned policy's evaluation actions (greedy / mode / mean) at ``observations``."""
        if self.module in (cql, td3_bc):
            return self.module.act(self.state, observations)
        return self.module.act(self.config, self.state, observations)

    def q_values(self, observations: Array) -> Array:
        """``[B, A]`` Q̂(s, ·) of the discrete Q-learners (CQL, BCQ, IQL)."""
        if self.module not in (cql, bcq, iql) or getattr(self.config, "action_dim", None) is not None:
            raise ValueError(f"config: {type(self.config).__name__} has no discrete Q-network to read")
        return self.module.q_values(self.state, observations)
