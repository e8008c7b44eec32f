"""Environments with exact ground truth (tabular MDPs) and JAX-native control tasks."""

from offrl_jax.envs.rollout import rollout
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
