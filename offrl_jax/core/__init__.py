"""The shared core every family imports and that imports no family.

* :mod:`.weights`: importance ratios and cumulative weights in log space, truncation,
  self-normalisation;
* :mod:`.diagnostics`: effective sample size and the weight diagnostics;
* :mod:`.blocking`: row-blocked dataset-level reductions (online-softmax column sums);
* :mod:`.model_terms`: Q̂ at the logged actions and V̂ (the DR family's inputs), cross-fitting;
* :mod:`.dtypes`: the one dtype policy of the public entry points (ints, lists and half
  precision in, one float dtype out);
* :mod:`.validation`: host-side checks that run before tracing, and the one tracer test;
* :mod:`.learner`: the ``make_train(config, ...) -> train(key, data) -> TrainResult``
  convention of every trained method;
* :mod:`.sharding`: datasets split along rows over devices and processes (padding, placement,
  sharded calls, data-parallel minibatches, seed sweeps over devices).
"""

from offrl_jax.core.blocking import ColumnSoftmaxSums, map_rows, row_chunk_size, scan_rows
from offrl_jax.core.diagnostics import (
    WeightDiagnostics,
    effective_sample_size,
    max_weight_share,
    per_timestep_ess,
    weight_diagnostics,
)
from offrl_jax.core.dtypes import as_float, float_dtype, float_inputs
from offrl_jax.core.learner import Learner, TrainResult, config_field, make_train_seeds, train_from_learner
from offrl_jax.core.model_terms import ModelTerms, cross_fit, fold_indices, model_terms
from offrl_jax.core.validation import is_concrete, validate_gamma, validate_log_probs, validate_ope_inputs
from offrl_jax.core.weights import (
    clip_log_ratios,
    cumulative_log_weights,
    importance_weights,
    log_discounts,
    log_importance_ratios,
    normalized_weights,
)

__all__ = [
    "as_float",
    "float_dtype",
    "float_inputs",
    "ColumnSoftmaxSums",
    "Learner",
    "ModelTerms",
    "TrainResult",
    "WeightDiagnostics",
    "clip_log_ratios",
    "config_field",
    "cross_fit",
    "cumulative_log_weights",
    "effective_sample_size",
    "fold_indices",
    "importance_weights",
    "is_concrete",
    "log_discounts",
    "log_importance_ratios",
    "make_train_seeds",
    "map_rows",
    "max_weight_share",
    "model_terms",
    "normalized_weights",
    "per_timestep_ess",
    "row_chunk_size",
    "scan_rows",
    "train_from_learner",
    "validate_gamma",
    "validate_log_probs",
    "validate_ope_inputs",
    "weight_diagnostics",
]
