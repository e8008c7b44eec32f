"""Offline policy gradient with importance weights: surrogate estimators, policies, learners.

Every estimator is a surrogate objective whose ``jax.grad`` is the gradient estimate, so it
composes with optax (minimise ``-surrogate``):

* :func:`trajectory_surrogate`: trajectory-wise importance-weighted REINFORCE;
* :func:`per_decision_surrogate`: per-decision (causal) weights, optionally with a critic Q̂;
* :func:`first_order_surrogate`: the first-order approximation (action ratio only);
* :func:`state_marginal_surrogate`: state-distribution correction with ratios ŵ(s)
  (estimated from tabular data by :func:`tabular_state_weights`).
"""

from offrl_jax.pg.estimators import (
    WeightDiagnostics,
    first_order_surrogate,
    per_decision_surrogate,
    returns_to_go,
    state_marginal_surrogate,
    trajectory_surrogate,
    validate_pg_data,
    weight_diagnostics,
)
from offrl_jax.pg.marginal import StateWeights, tabular_state_weights
from offrl_jax.pg.policies import CategoricalMLP, PolicyFns, categorical_log_prob, mlp_categorical, tabular_softmax
from offrl_jax.pg.train import (
    ESTIMATORS,
    Learner,
    PGBatch,
    PGMetrics,
    PGState,
    make_learner,
    make_surrogate,
    make_train,
    pg_batch,
    run_steps,
)

__all__ = [
    "ESTIMATORS",
    "CategoricalMLP",
    "Learner",
    "PGBatch",
    "PGMetrics",
    "PGState",
    "PolicyFns",
    "StateWeights",
    "WeightDiagnostics",
    "categorical_log_prob",
    "first_order_surrogate",
    "make_learner",
    "make_surrogate",
    "make_train",
    "mlp_categorical",
    "per_decision_surrogate",
    "pg_batch",
    "returns_to_go",
    "run_steps",
    "state_marginal_surrogate",
    "tabular_softmax",
    "tabular_state_weights",
    "trajectory_surrogate",
    "validate_pg_data",
    "weight_diagnostics",
]
