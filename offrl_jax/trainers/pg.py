"""``OfflinePGTrainer``: the generic :class:`~offrl_jax.trainers.base.Trainer` over
:func:`offrl_jax.pg.make_learner`, plus read-only conveniences. No math or loop lives here.

It is exactly ``Trainer(pg.make_learner(config, policy), batch, config=config, ...)`` after the
data are checked on the host; progress, history, evaluation callbacks and Orbax checkpoints come
from :class:`~offrl_jax.trainers.base.Trainer`.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import optax

from offrl_jax.data import Trajectories
from offrl_jax.pg import PGBatch, PGConfig, make_learner, pg_batch
from offrl_jax.policies import PolicyFns
from offrl_jax.trainers.base import Callback, Trainer

Array = Any

__all__ = ["OfflinePGTrainer"]


class OfflinePGTrainer(Trainer):
    """Improves a policy from a fixed dataset with an importance-weighted policy gradient.

    Example::

        config = pg.PGConfig(estimator="per_decision", gamma=0.9, learning_rate=0.05,
                             max_log_weight=jnp.log(10.0).item())
        trainer = OfflinePGTrainer(data, policy, config)
        trainer.fit(500)
        history = trainer.history          # {"estimate": [500], "ess": [500], ...}
        table = trainer.policy.probs(trainer.params, jnp.arange(num_states))

    Args:
      data: :class:`~offrl_jax.data.Trajectories` (with ``behavior_log_probs``) or a
        :class:`~offrl_jax.pg.PGBatch`, checked on the host by :func:`~offrl_jax.pg.pg_batch`.
      policy: :class:`~offrl_jax.policies.PolicyFns`.
      config: :class:`~offrl_jax.pg.PGConfig` (``num_steps`` is not used: ``fit(steps)`` says
        how many); recorded in checkpoints.
      optimizer: optional optax transformation replacing the config's named optimiser.
      seed, chunk_size, callbacks, eval_every, progress: see
        :class:`~offrl_jax.trainers.base.Trainer`.

    Raises:
      ValueError: on invalid data (checked on the host before tracing).
    """

    def __init__(
        self,
        data: Trajectories | PGBatch,
        policy: PolicyFns,
        config: PGConfig,
        *,
        optimizer: Optional[optax.GradientTransformation] = None,
        seed: int = 0,
        chunk_size: int = 100,
        callbacks: Sequence[Callback] = (),
        eval_every: Optional[int] = None,
        progress: bool = True,
    ):
        if not isinstance(config, PGConfig):
            raise ValueError(f"config: expected a PGConfig, found {type(config).__name__}")
        data = pg_batch(data)
        if config.estimator == "state_marginal" and data.state_weights is None:
            raise ValueError("state_weights: the state_marginal estimator needs [N, T] state weights ŵ(s_t)")
        self.policy = policy
        super().__init__(
            make_learner(config, policy, optimizer),
            data,
            seed=seed,
            config=config,
            chunk_size=chunk_size,
            callbacks=callbacks,
            eval_every=eval_every,
            progress=progress,
        )

    @property
    def batch(self) -> PGBatch:
        """The dataset the trainer learns from."""
        return self.data

    @property
    def params(self) -> Any:
        """The current policy parameters."""
        return self.state.params
