"""Environments with exact ground truth (tabular MDPs) and JAX-native control tasks."""

from offrl_jax.envs import suite
from offrl_jax.envs.empirical import estimate_mdp, model_q_hat
from offrl_jax.envs.rollout import rollout
from offrl_jax.envs.suite import PROBLEMS, Problem, make_problem, problem_value
from offrl_jax.envs.tabular import (
    TabularMDP,
    ValueIterationInfo,
    ValueIterationResult,
    check_policy,
    occupancy,
    policy_value,
    q_values,
    state_distributions,
    state_policy,
    state_values,
    value_iteration,
)

__all__ = [
    "PROBLEMS",
    "Problem",
    "estimate_mdp",
    "make_problem",
    "model_q_hat",
    "problem_value",
    "suite",
    "TabularMDP",
    "ValueIterationInfo",
    "ValueIterationResult",
    "check_policy",
    "occupancy",
    "policy_value",
    "q_values",
    "rollout",
    "state_distributions",
    "state_policy",
    "state_values",
    "value_iteration",
]
