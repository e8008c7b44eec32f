"""Model terms of the doubly robust family: Q̂ at the logged actions and V̂ under the target.

Every estimator that uses a value model (DM, DR, WDR, MAGIC, per-decision policy gradients with
a critic) takes the same two ``[N, T]`` arrays,

    q_taken[n, t] = Q̂(s_t, a_t),      v_hat[n, t] = Σ_a π(a|s_t) Q̂(s_t, a),

0 on padding (a finished trajectory sits in an absorbing state with Q̂ = V̂ = 0). This module is
their one producer: from a Q̂ table evaluated along the trajectories (:func:`model_terms`), and
from a model fitted on the other folds of the data (:func:`cross_fit`), which keeps Q̂
independent of the trajectories it corrects, as the unbiasedness of DR assumes.

See "Doubly Robust Off-policy Value Evaluation for Reinforcement Learning", Jiang & Li 2016, and
"Double/debiased machine learning", Chernozhukov et al. 2018 (cross-fitting).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.core.validation import check_positive_int

Array = Any

__all__ = ["ModelTerms", "model_terms", "cross_fit", "fold_indices"]


class ModelTerms(NamedTuple):
    """Model inputs of DR-type estimators: ``q_taken`` and ``v_hat``, both ``[N, T]``."""

    q_taken: Array
    v_hat: Array


def model_terms(q_values: Array, target_probs: Array, actions: Array, mask: Array) -> ModelTerms:
    """Q̂ at the logged actions and V̂ = E_π Q̂, masked to 0 on padding.

    q_taken_t = Q̂(s_t, a_t),  v_hat_t = Σ_a π(a|s_t) Q̂(s_t, a). The logged action is selected
    by a select against the action index (no gather), which vectorises on every backend.

    Args:
      q_values: ``[N, T, A]`` Q̂(s_t, ·) along the trajectories.
      target_probs: ``[N, T, A]`` π(·|s_t).
      actions: ``[N, T]`` int logged actions.
      mask: ``[N, T]`` 1 on real steps, 0 on padding.

    Returns:
      :class:`ModelTerms` with two ``[N, T]`` arrays in Q̂'s dtype.
    """
    chex.assert_rank([q_values, target_probs], 3)
    chex.assert_equal_shape([q_values, target_probs])
    chex.assert_shape([actions, mask], q_values.shape[:2])
    q = jnp.asarray(q_values)
    taken = jnp.asarray(actions)[..., None] == jnp.arange(q.shape[-1]).reshape(1, 1, -1)
    real = jnp.asarray(mask) > 0
    q_taken = jnp.sum(jnp.where(taken, q, jnp.zeros_like(q)), axis=-1)
    v_hat = jnp.sum(jnp.asarray(target_probs, q.dtype) * q, axis=-1)
    zero = jnp.zeros_like(q_taken)
    return ModelTerms(jnp.where(real, q_taken, zero), jnp.where(real, v_hat, zero))


def fold_indices(num_rows: int, num_folds: int = 2) -> list:
    """Contiguous folds of ``range(num_rows)``: ``num_folds`` index arrays, sizes differing by ≤ 1."""
    check_positive_int(num_rows, "num_rows")
    check_positive_int(num_folds, "num_folds")
    if num_folds < 2 or num_folds > num_rows:
        raise ValueError(f"num_folds: expected 2 <= num_folds <= N = {num_rows}, found {num_folds}")
    return [np.asarray(f) for f in np.array_split(np.arange(num_rows), num_folds)]


def cross_fit(
    data: Any,
    fit_terms: Callable[[Any, Any, int], ModelTerms],
    num_folds: int = 2,
) -> ModelTerms:
    """Cross-fitted model terms: each fold's terms come from a model fitted on the other folds.

    ``fit_terms(train_data, apply_data, fold) -> ModelTerms`` fits a model on ``train_data`` and
    returns its ``[n_k, T]`` terms on ``apply_data``; ``fold`` (0..K-1) lets it fold a PRNG key.
    ``data`` is any pytree whose leaves have the trajectory axis first (e.g.
    :class:`~offrl_jax.data.Trajectories`). The folds are contiguous blocks of rows, so the
    result is in the input's row order.

    Args:
      data: pytree of ``[N, ...]`` arrays.
      fit_terms: as above (runs on the host; it may jit what it fits).
      num_folds: K ≥ 2.

    Returns:
      :class:`ModelTerms` ``[N, T]``.
    """
    n = jax.tree_util.tree_leaves(data)[0].shape[0]
    folds = fold_indices(n, num_folds)
    parts = []
    for k, idx in enumerate(folds):
        rest = np.concatenate([f for j, f in enumerate(folds) if j != k])
        train = jax.tree_util.tree_map(lambda x: x[rest], data)
        apply = jax.tree_util.tree_map(lambda x: x[idx], data)
        parts.append(fit_terms(train, apply, k))
    return ModelTerms(*(jnp.concatenate([getattr(p, f) for p in parts]) for f in ModelTerms._fields))
