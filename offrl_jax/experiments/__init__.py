"""Experiments: what combines environments with algorithms.

Exact-truth comparisons ("how well it thinks it does" vs "how well it does"), cross-fitting on
suite problems, FQE on gymnax control tasks, result tables and labels. This is the only layer
(with the trainers and the CLI) that imports both :mod:`offrl_jax.envs` and the algorithm
families; the families themselves never import environments.
"""

from offrl_jax.experiments.control_fqe import FQEValue, controller_probs, fqe_value
from offrl_jax.experiments.demo import demo_table, format_table, run_demo
from offrl_jax.experiments.cross_fit import cross_fitted_fqe_terms, cross_fitted_model_terms
from offrl_jax.experiments.mis_table import mis_rows
from offrl_jax.experiments.shift import (
    ShiftCurves,
    ShiftReport,
    fitted_distribution_shift,
    linear_distribution_shift,
    linear_q_tables,
    tabular_q_table,
    thinks_vs_does,
)

__all__ = [
    "FQEValue",
    "ShiftCurves",
    "ShiftReport",
    "controller_probs",
    "cross_fitted_fqe_terms",
    "cross_fitted_model_terms",
    "demo_table",
    "format_table",
    "fitted_distribution_shift",
    "fqe_value",
    "linear_distribution_shift",
    "linear_q_tables",
    "mis_rows",
    "run_demo",
    "tabular_q_table",
    "thinks_vs_does",
]
