"""Behaviour-policy estimation: propensities for logs that carry none.

Every importance-sampling estimator needs β(a_t|s_t) at the logged actions. This family
estimates it from the logged (observation, action) pairs:

* :mod:`.tabular`: smoothed counts β̂(a|o) = (n(o, a) + α) / (n(o) + α A), discrete observations;
* :mod:`.models`: a softmax classifier (MLP, or linear softmax) and a state-dependent diagonal
  Gaussian for continuous actions, trained with optax under the learner convention
  (``BehaviorConfig``, ``make_learner``, ``make_train``), early stopped on held-out
  log-likelihood inside ``jit``;
* :mod:`.estimate`: K-fold cross-fitting by trajectory (:func:`estimate_behavior`) and
  :func:`with_behavior_log_probs`, a :class:`~offrl_jax.data.Trajectories` with the estimates
  filled in;
* :mod:`.diagnostics`: held-out log-likelihood, calibration, the smallest propensity and the
  target's mass off the estimated support.

See "Importance Sampling Policy Evaluation with an Estimated Behavior Policy", Hanna, Niekum &
Stone 2019.
"""

from offrl_jax.behavior.diagnostics import (
    DEFAULT_SUPPORT_THRESHOLD,
    BehaviorDiagnostics,
    behavior_diagnostics,
    expected_calibration_error,
    gaussian_calibration_error,
    target_mass_off_support,
)
from offrl_jax.behavior.estimate import (
    MODELS,
    BehaviorEstimate,
    cross_fitted_tabular,
    estimate_behavior,
    fit_behavior,
    with_behavior_log_probs,
    with_estimated_behavior,
)
from offrl_jax.behavior.models import (
    BehaviorConfig,
    BehaviorData,
    BehaviorMetrics,
    BehaviorModel,
    BehaviorState,
    action_probs,
    behavior_data,
    fitted_model,
    gaussian_moments,
    log_likelihood,
    make_learner,
    make_train,
)
from offrl_jax.behavior.tabular import action_counts, smoothed_policy, tabular_behavior

__all__ = [
    "BehaviorConfig",
    "BehaviorData",
    "BehaviorDiagnostics",
    "BehaviorEstimate",
    "BehaviorMetrics",
    "BehaviorModel",
    "BehaviorState",
    "DEFAULT_SUPPORT_THRESHOLD",
    "MODELS",
    "action_counts",
    "action_probs",
    "behavior_data",
    "behavior_diagnostics",
    "cross_fitted_tabular",
    "estimate_behavior",
    "expected_calibration_error",
    "fit_behavior",
    "fitted_model",
    "gaussian_calibration_error",
    "gaussian_moments",
    "log_likelihood",
    "make_learner",
    "make_train",
    "smoothed_policy",
    "tabular_behavior",
    "target_mass_off_support",
    "with_behavior_log_probs",
    "with_estimated_behavior",
]
