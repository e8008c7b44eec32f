"""Linear value functions: features, LSTD, LSTDQ, the linear model route, LSPI, linear FQI.

Every solver takes one problem as row-aligned arrays (data, then ``gamma``, then ``ridge``, then
keyword-only options) and returns weights; ``jax.vmap`` it over policies, datasets or ridge
values and ``jax.jit`` the result once. Singular systems give NaN weights and ``ok=False``
(``return_info=True``) rather than an arbitrary vector.

Value-function solvers (one file each):

* :func:`lstd` (``lstd.py``): V(s) = φ(s)ᵀ w at the TD fixed point (Bradtke & Barto 1996);
* :func:`lstdq` (``lstd.py``): Q^π(s, a) = φ(s, a)ᵀ w off-policy (Lagoudakis & Parr 2003);
* :func:`linear_model` / :func:`linear_model_value` and :class:`LinearModel` (``model.py``):
  the least-squares linear model and its value, equal to LSTD (Parr et al. 2008);
* :func:`lspi`, :class:`LSPIResult`, :func:`greedy_actions` (``lspi.py``): least-squares
  policy iteration (Lagoudakis & Parr 2003);
* :func:`linear_fqi`, :class:`LinearFQIResult` (``fqi.py``): linear fitted Q iteration.

Systems and solves (``systems.py``): :func:`td_system` and :func:`streaming_td_system` accumulate
A = Φᵀ W (Φ − γ D Φ'), b = Φᵀ W r in row blocks (:class:`LinearSystem`); :func:`solve` is the
guarded, equilibrated solve returning a :class:`LinearSolution` (weights, ``ok``, condition).

Features (``features.py``): :class:`Features` maps (:func:`one_hot`, :func:`per_action`,
:func:`one_hot_state_action`, :func:`polynomial`, :func:`rbf_grid`, :func:`fourier`,
:func:`from_function`), applied with :func:`featurize` / :func:`all_action_features`;
:func:`expected_features` gives φ'_π(s') = Σ_a π(a|s') φ(s', a) for LSTDQ; :func:`bounds_from_data`
and :data:`GYMNAX_BOUNDS` give the boxes of continuous observations.

The "thinks vs does" distribution-shift experiments, which roll out data on tabular MDPs, live
in :mod:`offrl_jax.experiments.shift`.
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
from offrl_jax.linear.fqi import LinearFQIResult, linear_fqi
from offrl_jax.linear.lspi import LSPIResult, greedy_actions, lspi
from offrl_jax.linear.lstd import lstd, lstdq
from offrl_jax.linear.model import LinearModel, linear_model, linear_model_value
from offrl_jax.linear.systems import LinearSolution, LinearSystem, solve, streaming_td_system, td_system

__all__ = [
    "Features",
    "GYMNAX_BOUNDS",
    "LSPIResult",
    "LinearFQIResult",
    "LinearModel",
    "LinearSolution",
    "LinearSystem",
    "all_action_features",
    "bounds_from_data",
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
]
