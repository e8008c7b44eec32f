"""``OfflinePGTrainer``: a thin stateful wrapper over :mod:`offrl_jax.pg.train`.

It validates the data once on the host and hands the pure update loop
(:func:`~offrl_jax.pg.train.run_steps`, a ``lax.scan`` of ``chunk_size`` updates) to the generic
:class:`~offrl_jax.trainers.base.Trainer`, which jits it once and provides progress, the metrics
history, evaluation callbacks and Orbax checkpoints. All mathematics lives in :mod:`offrl_jax.pg`.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import jax
import optax

from offrl_jax.data import Trajectories
from offrl_jax.pg.estimators import validate_pg_data
from offrl_jax.pg.policies import PolicyFns
from offrl_jax.pg.train import PGBatch, PGState, make_learner, make_surrogate, pg_batch, run_steps
from offrl_jax.trainers.base import Trainer

Array = Any

__all__ = ["OfflinePGTrainer"]


class OfflinePGTrainer(Trainer):
    """Improves a policy from a fixed dataset with an importance-weighted policy gradient.

    Example::

        trainer = OfflinePGTrainer(policy, data, gamma=0.9, estimator="per_decision",
                                   optimizer=optax.adam(0.05), clip=10.0)
        trainer.fit(500)
        history = trainer.history          # {"estimate": [500], "grad_norm": [500], ...}
        table = trainer.policy.probs(trainer.params, jnp.arange(num_states))

    Args:
      policy: :class:`~offrl_jax.pg.policies.PolicyFns`.
      data: :class:`~offrl_jax.data.Trajectories` (with ``behavior_log_probs``) or a
        :class:`~offrl_jax.pg.train.PGBatch`.
      gamma: discount γ.
      estimator: one of :data:`~offrl_jax.pg.train.ESTIMATORS`.
      optimizer: an optax transformation; ``optax.adam(1e-2)`` by default.
      batch_size: trajectories per update (sampled inside jit), or ``None`` for full batch.
      seed: PRNG seed for initialisation and minibatches.
      chunk_size: updates per jitted call (metrics reach the host once per chunk).
      callbacks: ``trainer -> dict | None`` evaluations (e.g. the exact value of a tabular
        policy), run every ``eval_every`` steps; see :class:`~offrl_jax.trainers.base.Trainer`.
      eval_every: callback period in steps.
      progress: show a tqdm bar.
      q_hat, baseline, state_weights: optional ``[N, T]`` arrays attached to the batch.
      **options: estimator options (``clip``, ``self_normalize``, ``discount_states``).

    Raises:
      ValueError: on invalid data or options (checked on the host before tracing).
    """

    def __init__(
        self,
        policy: PolicyFns,
        data: Trajectories | PGBatch,
        gamma: float,
        estimator: str = "per_decision",
        optimizer: Optional[optax.GradientTransformation] = None,
        batch_size: Optional[int] = None,
        seed: int = 0,
        chunk_size: int = 100,
        callbacks: Sequence[Callable] = (),
        eval_every: Optional[int] = None,
        progress: bool = True,
        q_hat: Optional[Array] = None,
        baseline: Optional[Array] = None,
        state_weights: Optional[Array] = None,
        **options: Any,
    ):
        if isinstance(data, Trajectories):
            data = pg_batch(data, q_hat=q_hat, baseline=baseline, state_weights=state_weights)
        elif not isinstance(data, PGBatch):
            raise ValueError(f"data: expected Trajectories or PGBatch, found {type(data).__name__}")
        validate_pg_data(
            data.behavior_log_probs, data.rewards, data.mask, gamma, q_hat=data.q_hat,
            baseline=data.baseline, state_weights=data.state_weights, clip=options.get("clip"),
        )
        if estimator == "state_marginal" and data.state_weights is None:
            raise ValueError("state_weights: the state_marginal estimator needs [N, T] state weights ŵ(s_t)")
        if batch_size is not None and not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"batch_size: expected a positive int or None, found {batch_size}")
        self.policy = policy
        self.gamma = gamma
        self.estimator = estimator
        self.batch_size = batch_size
        self.optimizer = optimizer if optimizer is not None else optax.adam(1e-2)
        self.learner = make_learner(policy, self.optimizer, make_surrogate(estimator, gamma, **options))
        learner = self.learner

        def chunk_fn(state: PGState, batch: PGBatch, num_steps: int):
            return run_steps(learner, state, batch, num_steps, batch_size)

        super().__init__(
            chunk_fn,
            learner.init(jax.random.key(seed)),
            inputs=(data,),
            chunk_size=chunk_size,
            callbacks=callbacks,
            eval_every=eval_every,
            progress=progress,
        )

    @property
    def batch(self) -> PGBatch:
        """The dataset the trainer learns from."""
        return self.inputs[0]

    @property
    def params(self) -> Any:
        """The current policy parameters."""
        return self.state.params
