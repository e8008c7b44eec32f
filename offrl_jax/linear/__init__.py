"""Linear fitted value functions: features, LSTD, LSTDQ, the linear model route, LSPI, linear FQI.

Array-level entry points (see API.md): :func:`lstd`, :func:`lstdq`, :func:`linear_model_value`
and :func:`lspi`, plus :func:`linear_fqi`, the feature maps of :mod:`.features`, the chunked
accumulators and guarded solves of :mod:`.solvers`, and the "thinks vs does" distribution-shift
report of :mod:`.shift`. Every solver handles one problem; ``jax.vmap`` it over policies,
datasets or ridge values and ``jax.jit`` the result once.
"""

from offrl_jax.linear.features import (
    GYMNAX_BOUNDS,
    Features,
    all_action_features,
    bounds_from_data,
    expected_features,
    featurize,
    fourier,
    from_function,
    one_hot,
    one_hot_state_action,
    per_action,
    polynomial,
    rbf_grid,
)
from offrl_jax.linear.fqi import FQIResult, linear_fqi
from offrl_jax.linear.lspi import LSPIResult, greedy_actions, lspi
from offrl_jax.linear.shift import ShiftCurves, ShiftReport, distribution_shift, thinks_vs_does
from offrl_jax.linear.solvers import (
    LinearModel,
    LinearSolution,
    LinearSystem,
    linear_model,
    linear_model_value,
    lstd,
    lstdq,
    solve,
    streaming_td_system,
    td_system,
    validate_td_inputs,
)

__all__ = [
    "FQIResult",
    "Features",
    "GYMNAX_BOUNDS",
    "LSPIResult",
    "LinearModel",
    "LinearSolution",
    "LinearSystem",
    "ShiftCurves",
    "ShiftReport",
    "all_action_features",
    "bounds_from_data",
    "distribution_shift",
    "expected_features",
    "featurize",
    "fourier",
    "from_function",
    "greedy_actions",
    "linear_fqi",
    "linear_model",
    "linear_model_value",
    "lspi",
    "lstd",
    "lstdq",
    "one_hot",
    "one_hot_state_action",
    "per_action",
    "polynomial",
    "rbf_grid",
    "solve",
    "streaming_td_system",
    "td_system",
    "thinks_vs_does",
]
