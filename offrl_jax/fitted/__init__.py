"""Fitted Q evaluation and fitted Q iteration: one config, one jitted loop, Q-networks, TD targets.

* :class:`FittedQConfig` (discrete or continuous actions, FQE or FQI) and
  :func:`validate_data`;
* :func:`make_learner` / :func:`make_train`: the learner convention of the package
  (``train(key, data) -> core.TrainResult``), :func:`make_update` its single step,
  :func:`init_state` its state, :func:`default_seeds_per_group` the CPU seed grouping for
  ``core.make_train_seeds``;
* :func:`fitted_q_iteration`: the classical outer/inner form (Ernst et al. 2005);
* :func:`initial_value`, :func:`q_model_terms`: the direct-method estimate and DR inputs of a
  fitted Q̂;
* TD targets and losses (:mod:`.targets`), Q-networks (:mod:`.networks`), time features for
  finite-horizon / time-limited data (:mod:`.time_features`).
"""

from offrl_jax.fitted.config import FittedQConfig, validate_data
from offrl_jax.fitted.estimates import initial_value, q_model_terms
from offrl_jax.fitted.iteration import FQIResult, fitted_q_iteration
from offrl_jax.fitted.loop import (
    QTrainState,
    StepMetrics,
    default_seeds_per_group,
    init_state,
    make_learner,
    make_train,
    make_update,
)
from offrl_jax.fitted.networks import ContinuousQNetwork, QNetwork, QuadraticQNetwork, mlp_flops, q_network
from offrl_jax.fitted.targets import (
    fqe_targets,
    fqi_targets,
    huber_loss,
    l2_loss,
    policy_probs,
    regression_loss,
    sampled_fqe_targets,
    sampled_next_values,
)
from offrl_jax.fitted.time_features import time_augmented_policy, time_aware_transitions, with_time

__all__ = [
    "ContinuousQNetwork",
    "FQIResult",
    "FittedQConfig",
    "QNetwork",
    "QTrainState",
    "QuadraticQNetwork",
    "StepMetrics",
    "default_seeds_per_group",
    "fitted_q_iteration",
    "fqe_targets",
    "fqi_targets",
    "huber_loss",
    "init_state",
    "initial_value",
    "l2_loss",
    "make_learner",
    "make_train",
    "make_update",
    "mlp_flops",
    "policy_probs",
    "q_model_terms",
    "q_network",
    "regression_loss",
    "sampled_fqe_targets",
    "sampled_next_values",
    "time_augmented_policy",
    "time_aware_transitions",
    "validate_data",
    "with_time",
]
