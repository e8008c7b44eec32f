"""Offline policy gradient with importance weights: surrogate estimators, policies, learners.

Every estimator is a surrogate objective whose ``jax.grad`` is the gradient estimate, so it
composes with optax (minimise ``-surrogate``). Importance weights, their truncation
(``max_log_weight``), self-normalisation (``self_normalize``) and diagnostics come from
:mod:`offrl_jax.core`.

* :func:`trajectory_surrogate`: trajectory-wise importance-weighted REINFORCE;
* :func:`per_decision_surrogate`: per-decision (causal) weights, optionally with a critic Q̂;
* :func:`first_order_surrogate`: the first-order approximation (action ratio only);
* :func:`state_marginal_surrogate`: state-distribution correction with ratios ŵ(s)
  (estimated from tabular data by :func:`tabular_state_weights`);
* :func:`returns_to_go`: the Monte-Carlo Q̂ of the behaviour policy.

Learning follows the package's learner convention: a frozen :class:`PGConfig`,
``make_learner(config, policy) -> core.Learner`` and ``make_train(config, policy) ->
train(key, batch) -> core.TrainResult``, with the data a :class:`PGBatch` built (and checked)
by :func:`pg_batch` and checked against the policy by :func:`validate_data`. The policy is a :class:`offrl_jax.policies.PolicyFns`
(:func:`offrl_jax.policies.tabular_softmax`, :func:`offrl_jax.policies.mlp_categorical`).
``offrl_jax.trainers.OfflinePGTrainer`` adds progress, history and checkpoints.
"""

from offrl_jax.pg.batch import PGBatch, pg_batch
from offrl_jax.pg.estimators import (
    first_order_surrogate,
    per_decision_surrogate,
    returns_to_go,
    state_marginal_surrogate,
    trajectory_surrogate,
)
from offrl_jax.pg.marginal import StateWeights, tabular_state_weights
from offrl_jax.pg.train import (
    ESTIMATORS,
    OPTIMIZERS,
    PGConfig,
    PGMetrics,
    PGState,
    make_learner,
    make_surrogate,
    make_train,
    validate_data,
)

__all__ = [
    "ESTIMATORS",
    "OPTIMIZERS",
    "PGBatch",
    "PGConfig",
    "PGMetrics",
    "PGState",
    "StateWeights",
    "first_order_surrogate",
    "make_learner",
    "make_surrogate",
    "make_train",
    "per_decision_surrogate",
    "pg_batch",
    "returns_to_go",
    "state_marginal_surrogate",
    "tabular_state_weights",
    "trajectory_surrogate",
    "validate_data",
]
