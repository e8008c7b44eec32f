"""Off-policy evaluation: arrays in, estimates out.

* :mod:`.importance_sampling`: IS, per-decision IS and their self-normalised forms (Precup,
  Sutton & Singh 2000);
* :mod:`.doubly_robust`: direct method, doubly robust (Jiang & Li 2016) and weighted DR
  (Thomas & Brunskill 2016);
* :mod:`.magic`: MAGIC, the blend of j-step returns (Thomas & Brunskill 2016);
* :mod:`.intervals`: Student-t, Hoeffding and empirical Bernstein intervals;
  :mod:`.bootstrap`: percentile and BCa bootstrap; :mod:`.hcope`: the high-confidence lower
  bound of Thomas, Theocharous & Ghavamzadeh 2015;
* :mod:`.many`: every estimator for K candidate policies on one dataset, one vmapped call;
* :mod:`.from_distributions`: every estimator from target action distributions ``[N, T, A]``,
  logged actions, propensities and a Q̂ table, in one fused pass;
* :mod:`.evaluate`: one call that runs a set of estimators on
  :class:`~offrl_jax.data.Trajectories` and returns a table.

Importance weights, their diagnostics (effective sample size, ...) and the model terms come
from :mod:`offrl_jax.core`; the names a researcher needs here (``log_importance_ratios``,
``ModelTerms``, ``model_terms``) are re-exported.
"""

from offrl_jax.core.model_terms import ModelTerms, model_terms
from offrl_jax.core.weights import log_importance_ratios
from offrl_jax.ope.bootstrap import BootstrapInterval, bootstrap_interval
from offrl_jax.ope.doubly_robust import (
    direct_method,
    direct_method_from_q,
    doubly_robust,
    doubly_robust_returns,
    doubly_robust_values,
    weighted_doubly_robust,
    weighted_doubly_robust_with_info,
)
from offrl_jax.ope.evaluate import ESTIMATORS, EvaluationRow, EvaluationTable, evaluate
from offrl_jax.ope.from_distributions import (
    DistributionEstimates,
    DistributionTerms,
    direct_method_from_distributions,
    distribution_terms,
    doubly_robust_from_distributions,
    estimate_all_from_distributions,
    magic_from_distributions,
    per_decision_is_from_distributions,
    trajectory_is_from_distributions,
    weighted_doubly_robust_from_distributions,
    weighted_is_from_distributions,
    weighted_per_decision_is_from_distributions,
)
from offrl_jax.ope.hcope import HCOPEResult, hcope_lower_bound
from offrl_jax.ope.importance_sampling import (
    WeightedEstimate,
    per_decision_is,
    per_decision_is_return,
    per_decision_is_returns,
    trajectory_is,
    trajectory_is_return,
    trajectory_is_returns,
    weighted_is,
    weighted_is_with_info,
    weighted_per_decision_is,
    weighted_per_decision_is_with_info,
)
from offrl_jax.ope.intervals import (
    ConfidenceInterval,
    empirical_bernstein_bound,
    hoeffding_bound,
    student_t_interval,
)
from offrl_jax.ope.magic import JStepReturns, MagicResult, j_step_returns, magic
from offrl_jax.ope.many import (
    MANY_ESTIMATORS,
    evaluate_policies,
    policy_log_ratios,
    policy_model_terms,
    stacked_log_probs,
    tabular_log_probs,
)

__all__ = [
    "MANY_ESTIMATORS",
    "evaluate_policies",
    "policy_log_ratios",
    "policy_model_terms",
    "stacked_log_probs",
    "tabular_log_probs",
    "DistributionEstimates",
    "DistributionTerms",
    "direct_method_from_distributions",
    "distribution_terms",
    "doubly_robust_from_distributions",
    "estimate_all_from_distributions",
    "magic_from_distributions",
    "per_decision_is_from_distributions",
    "trajectory_is_from_distributions",
    "weighted_doubly_robust_from_distributions",
    "weighted_is_from_distributions",
    "weighted_per_decision_is_from_distributions",
    "BootstrapInterval",
    "ConfidenceInterval",
    "ESTIMATORS",
    "EvaluationRow",
    "EvaluationTable",
    "HCOPEResult",
    "JStepReturns",
    "MagicResult",
    "ModelTerms",
    "WeightedEstimate",
    "bootstrap_interval",
    "direct_method",
    "direct_method_from_q",
    "doubly_robust",
    "doubly_robust_returns",
    "doubly_robust_values",
    "empirical_bernstein_bound",
    "evaluate",
    "hcope_lower_bound",
    "hoeffding_bound",
    "j_step_returns",
    "log_importance_ratios",
    "magic",
    "model_terms",
    "per_decision_is",
    "per_decision_is_return",
    "per_decision_is_returns",
    "student_t_interval",
    "trajectory_is",
    "trajectory_is_return",
    "trajectory_is_returns",
    "weighted_doubly_robust",
    "weighted_doubly_robust_with_info",
    "weighted_is",
    "weighted_is_with_info",
    "weighted_per_decision_is",
    "weighted_per_decision_is_with_info",
]
