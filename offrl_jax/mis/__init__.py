"""Marginalised importance sampling: density ratios w = d^pi / d^D and the estimates they give.

* :mod:`.tabular`: the discounted (and average-reward) Bellman-flow solve from counts,
  :func:`tabular_ratios` / :func:`tabular_average_ratios`, and :func:`tabular_mis` on a dataset;
* :mod:`.time_indexed`: finite-horizon per-step ratios, :func:`tabular_time_ratios` /
  :func:`tabular_time_mis`;
* :mod:`.dice`: DualDICE, GenDICE and GradientDICE as minimax Lagrangians and a learner
  (``make_learner`` / ``make_train`` over :class:`DiceData`, checked by :func:`validate_data`);
* :mod:`.estimators`: value estimates from ratios, :func:`mis_estimate`,
  :func:`mis_average_reward`, :func:`mis_finite_horizon`, and :func:`ratios_at`.

The exact ratios of a tabular MDP (the ground truth) are in :mod:`offrl_jax.envs.ratios`;
labelled summary rows in :mod:`offrl_jax.experiments.mis_table`.
"""

from offrl_jax.mis.dice import (
    DiceConfig,
    DiceEstimate,
    DiceMetrics,
    DiceNetwork,
    DiceState,
    dice_estimate,
    dice_weights,
    dualdice_lagrangian,
    gendice_lagrangian,
    gradientdice_lagrangian,
    make_learner,
    make_train,
    validate_data,
)
from offrl_jax.mis.dice_data import DiceData, dice_data_from_trajectories
from offrl_jax.mis.estimators import mis_average_reward, mis_estimate, mis_finite_horizon, ratios_at
from offrl_jax.mis.tabular import (
    FlowCounts,
    TabularMISResult,
    TabularRatios,
    flow_counts,
    tabular_average_ratios,
    tabular_mis,
    tabular_ratios,
)
from offrl_jax.mis.time_indexed import TimeIndexedMISResult, TimeIndexedRatios, tabular_time_mis, tabular_time_ratios

__all__ = [
    "DiceConfig",
    "DiceData",
    "DiceEstimate",
    "DiceMetrics",
    "DiceNetwork",
    "DiceState",
    "FlowCounts",
    "TabularMISResult",
    "TabularRatios",
    "TimeIndexedMISResult",
    "TimeIndexedRatios",
    "dice_data_from_trajectories",
    "dice_estimate",
    "dice_weights",
    "dualdice_lagrangian",
    "flow_counts",
    "gendice_lagrangian",
    "gradientdice_lagrangian",
    "make_learner",
    "make_train",
    "mis_average_reward",
    "mis_estimate",
    "mis_finite_horizon",
    "ratios_at",
    "tabular_average_ratios",
    "tabular_mis",
    "tabular_ratios",
    "tabular_time_mis",
    "tabular_time_ratios",
    "validate_data",
]
