"""Cross-fitted model terms (Q̂ at the logged actions, V̂) for DR-type estimators on tabular data.

Both functions fit a Q̂ on the other fold of the trajectories and evaluate it on this one
(:func:`offrl_jax.core.cross_fit`, two contiguous folds), so the Q̂ that corrects a trajectory
never saw it: DR stays unbiased (Jiang & Li 2016 assume an independent Q̂; "Double/debiased
machine learning", Chernozhukov et al. 2018). The terms themselves come from
:func:`offrl_jax.core.model_terms`.

* :func:`cross_fitted_fqe_terms`: horizon-aware tabular FQE ("Batch Policy Learning under
  Constraints", Le, Voloshin & Yue 2019): the step folded into the observation, x = o T + t, the
  last step terminal (:func:`offrl_jax.fitted.time_aware_transitions` with the index encoding),
  so stationary FQE on x estimates the time-indexed Q_t for any γ in [0, 1];
* :func:`cross_fitted_model_terms`: the exact Q^π of the certainty-equivalence model
  (:func:`offrl_jax.envs.empirical.estimate_mdp`).
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp

from offrl_jax.core import ModelTerms, cross_fit
from offrl_jax.data import Trajectories
from offrl_jax.envs.empirical import estimate_mdp, model_q_hat
from offrl_jax.fitted import (
    FittedQConfig,
    make_train,
    q_model_terms,
    time_augmented_policy,
    time_aware_transitions,
    validate_data,
    with_time,
)

Array = Any

__all__ = ["cross_fitted_fqe_terms", "cross_fitted_model_terms"]


def cross_fitted_fqe_terms(
    key: Array,
    traj: Trajectories,
    num_observations: int,
    num_actions: int,
    policy: Array,
    gamma: float,
    num_steps: Optional[int] = None,
    learning_rate: float = 0.1,
) -> ModelTerms:
    """FQE Q̂ of a stationary tabular policy as cross-fitted ``(q_taken, v_hat)`` ``[N, T]``.

    Tabular (one-hot, no hidden layer) horizon-aware FQE with Adam and full-batch steps, trained
    on one fold of the trajectories and evaluated on the other. The target network is refreshed
    every 50 steps; the default ``num_steps`` = 50 (2T + 20) gives every step of the horizon
    several refreshes to propagate.

    Args:
      key: PRNG key (folded with the fold index).
      traj: tabular :class:`~offrl_jax.data.Trajectories` ``[N, T]``, N >= 2.
      num_observations, num_actions: O and A.
      policy: ``[O, A]`` evaluated (target) policy.
      gamma: discount in [0, 1].
      num_steps: gradient steps per fold.
      learning_rate: Adam step size.

    Returns:
      :class:`~offrl_jax.core.ModelTerms` ``[N, T]`` in the rewards' dtype, 0 on padding.
    """
    t = traj.rewards.shape[1]
    time_aware_transitions(traj, t, encoding="index", num_observations=num_observations)  # checks traj
    pi = time_augmented_policy(policy, t)
    cfg = FittedQConfig(
        num_actions=int(num_actions), method="fqe", gamma=float(gamma), hidden_sizes=(),
        num_observations=int(num_observations) * t, num_steps=50 * (2 * t + 20) if num_steps is None else num_steps,
        batch_size=None, learning_rate=float(learning_rate), optimizer="adam", target_update_period=50,
    )
    train = jax.jit(make_train(cfg, pi))
    dtype = jnp.asarray(traj.rewards).dtype

    def fit_terms(fit: Trajectories, apply: Trajectories, fold: int) -> ModelTerms:
        data = time_aware_transitions(fit, t, encoding="index", num_observations=num_observations)
        validate_data(cfg, data, pi)
        state = train(jax.random.fold_in(key, fold), data).state
        x = with_time(apply.observations, jnp.arange(t), t, encoding="index")
        terms = q_model_terms(state.apply_fn, state.params, x, apply.actions, apply.mask, pi)
        return ModelTerms(*(a.astype(dtype) for a in terms))

    return cross_fit(traj, fit_terms, num_folds=2)


def cross_fitted_model_terms(
    data: Trajectories, num_observations: int, num_actions: int, policy: Array, gamma: float, horizon: int
) -> ModelTerms:
    """Q̂ terms from the certainty-equivalence model, cross-fitted over two folds.

    The maximum-likelihood tabular model estimated on one fold of the trajectories gives
    ``q_taken``/``v_hat`` (its exact Q^π, time-indexed with a finite ``horizon``) for the other.

    Args:
      data: tabular :class:`~offrl_jax.data.Trajectories` ``[N, T]``, N >= 2.
      num_observations, num_actions: O and A.
      policy: ``[O, A]`` evaluated (target) policy.
      gamma: discount of the model.
      horizon: finite horizon of the model (or ``None``).

    Returns:
      :class:`~offrl_jax.core.ModelTerms` ``[N, T]``.
    """

    def fit_terms(fit: Trajectories, apply: Trajectories, fold: int) -> ModelTerms:
        model = estimate_mdp(fit, num_observations, num_actions, gamma, horizon)
        return model_q_hat(model, policy, apply)

    return cross_fit(data, fit_terms, num_folds=2)
