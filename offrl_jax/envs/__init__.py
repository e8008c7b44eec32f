"""Environments with exact ground truth (tabular MDPs) and JAX-native control tasks."""

from offrl_jax.envs import suite
from offrl_jax.envs.control import (
    MonteCarloValue,
    control_episode,
    control_returns,
    control_rollout,
    make_env,
    monte_carlo_value,
    validate_control_args,
)
from offrl_jax.envs.control_policies import (
    CONTROLLERS,
    ControlPolicy,
    Controller,
    ThresholdParams,
    controller,
    threshold_policy,
)
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
    "CONTROLLERS",
    "ControlPolicy",
    "Controller",
    "MonteCarloValue",
    "ThresholdParams",
    "control_episode",
    "control_returns",
    "control_rollout",
    "controller",
    "make_env",
    "monte_carlo_value",
    "threshold_policy",
    "validate_control_args",
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
