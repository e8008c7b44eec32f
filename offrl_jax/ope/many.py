"""Many policies at once: every OPE estimator for K candidate policies on one dataset, one call.

Off-policy *selection* scores K candidates (checkpoints, hyperparameters) on the same log. The
data (``rewards``, ``mask``) are shared; what changes with the policy is its log importance
ratios and, for the model-based estimators, its model terms. So the K-policy inputs are

* ``log_ratios`` ``[K, N, T]``: log π_k(a_t|s_t) − log π_β(a_t|s_t) at the logged actions
  (from ``[K, N, T]`` target log-probabilities with :func:`policy_log_ratios`, from ``[K, O, A]``
  probability tables with :func:`tabular_log_probs`, or from a stacked pytree of policy
  parameters with :func:`stacked_log_probs`);
* ``q_taken``, ``v_hat`` ``[K, N, T]``: Q̂_k(s_t, a_t) and Σ_a π_k(a|s_t) Q̂_k(s_t, a) (from
  ``[K, N, T, A]`` Q̂ values with :func:`policy_model_terms`).

:func:`evaluate_policies` runs any subset of IS, PDIS, WIS, WPDIS, DM, DR, WDR and MAGIC as one
``jax.vmap`` over the policy axis of the dataset-level estimators (each estimator's equation
and paper are in its own function's docstring), so one compiled program evaluates all K
policies; entry k equals the single-policy call on ``log_ratios[k]`` (and the same MAGIC key).
Tabular MIS and FQE for K policies are :mod:`offrl_jax.mis.many` and
:mod:`offrl_jax.fitted.many`.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.core.dtypes import float_inputs
from offrl_jax.core.model_terms import ModelTerms, model_terms
from offrl_jax.core.validation import is_concrete, validate_log_probs, validate_ope_inputs
from offrl_jax.core.weights import log_importance_ratios
from offrl_jax.ope.doubly_robust import doubly_robust, weighted_doubly_robust
from offrl_jax.ope.importance_sampling import (
    per_decision_is,
    trajectory_is,
    weighted_is,
    weighted_per_decision_is,
)
from offrl_jax.ope.magic import magic

Array = Any

__all__ = [
    "MANY_ESTIMATORS",
    "MODEL_ESTIMATORS",
    "evaluate_policies",
    "policy_log_ratios",
    "policy_model_terms",
    "stacked_log_probs",
    "tabular_log_probs",
]

MANY_ESTIMATORS = ("is", "pdis", "wis", "wpdis", "dm", "dr", "wdr", "magic")
MODEL_ESTIMATORS = ("dm", "dr", "wdr", "magic")


def _safe_log(p: Array) -> Array:
    return jnp.where(p > 0, jnp.log(jnp.where(p > 0, p, 1.0)), -jnp.inf)


def tabular_log_probs(policies: Array, observations: Array, actions: Array, mask: Array) -> Array:
    """``[K, N, T]`` log π_k(a_t|o_t) of K tabular policies at the logged actions (0 on padding).

    Args:
      policies: ``[K, O, A]`` probabilities π_k(a|o).
      observations: ``[N, T]`` int observations o_t.
      actions: ``[N, T]`` int actions a_t.
      mask: ``[N, T]`` 1 on real steps, 0 on padding.

    Returns:
      ``[K, N, T]`` log-probabilities (``-inf`` where π_k(a_t|o_t) = 0 on a real step).
    """
    (pi,) = float_inputs([policies], ["policies"])
    if pi.ndim != 3:
        raise ValueError(f"policies: expected [K, O, A] probability tables, found shape {list(pi.shape)}")
    obs, act = jnp.asarray(observations), jnp.asarray(actions)
    chex.assert_equal_shape([obs, act, mask])
    taken = pi[:, obs, act]
    real = jnp.asarray(mask) > 0
    return jnp.where(real[None], _safe_log(taken), 0.0)


def stacked_log_probs(
    log_prob: Callable[[Any, Array, Array], Array], params: Any, observations: Array, actions: Array, mask: Array
) -> Array:
    """``[K, N, T]`` log π_k(a_t|s_t) of K policies given as one stacked pytree of parameters.

    ``log_prob(params_k, observation, action) -> scalar`` acts on one step (e.g.
    :class:`~offrl_jax.envs.ControlPolicy`'s ``log_prob``); ``params`` has a leading policy axis
    K on every leaf. Vmapped over K, N and T (no Python loop).

    Args:
      log_prob: per-step log-probability function.
      params: pytree of ``[K, ...]`` parameters.
      observations: ``[N, T, ...]``; actions: ``[N, T, ...]``; mask: ``[N, T]``.

    Returns:
      ``[K, N, T]`` log-probabilities, 0 on padding.
    """
    per_step = jax.vmap(jax.vmap(log_prob, (None, 0, 0)), (None, 0, 0))
    lp = jax.vmap(per_step, (0, None, None))(params, observations, actions)
    return jnp.where(jnp.asarray(mask)[None] > 0, lp, 0.0)


def policy_log_ratios(target_log_probs: Array, behavior_log_probs: Array, mask: Array) -> Array:
    """``[K, N, T]`` log ratios log π_k − log π_β (0 on padding), host-checked when concrete.

    Args:
      target_log_probs: ``[K, N, T]`` log π_k(a_t|s_t).
      behavior_log_probs: ``[N, T]`` log π_β(a_t|s_t).
      mask: ``[N, T]``.

    Returns:
      ``[K, N, T]`` (:func:`~offrl_jax.core.log_importance_ratios` for each k).

    Raises:
      ValueError: naming the argument, for shapes or values :func:`~offrl_jax.core.validate_log_probs`
        rejects (policy k is reported by its index).
    """
    lt, lb = float_inputs([target_log_probs, behavior_log_probs], ["target_log_probs", "behavior_log_probs"])
    if lt.ndim != 3:
        raise ValueError(f"target_log_probs: expected [K, N, T], found shape {list(lt.shape)}")
    if is_concrete(lt, lb, mask):
        for k in range(lt.shape[0]):
            try:
                validate_log_probs(lt[k], lb, mask)
            except ValueError as exc:
                raise ValueError(f"{exc} (policy k = {k})") from None
    return jax.vmap(log_importance_ratios, (0, None, None))(lt, lb, mask)


def policy_model_terms(q_values: Array, target_probs: Array, actions: Array, mask: Array) -> ModelTerms:
    """K policies' model terms: :func:`~offrl_jax.core.model_terms` vmapped over the policy axis.

    Args:
      q_values: ``[K, N, T, A]`` Q̂_k(s_t, ·).
      target_probs: ``[K, N, T, A]`` π_k(·|s_t).
      actions: ``[N, T]`` logged actions; mask: ``[N, T]``.

    Returns:
      :class:`~offrl_jax.core.ModelTerms` of two ``[K, N, T]`` arrays.
    """
    chex.assert_rank([q_values, target_probs], 4)
    return jax.vmap(model_terms, (0, 0, None, None))(q_values, target_probs, actions, mask)


def _names(estimators: Optional[Sequence[str]], have_model: bool) -> tuple:
    if estimators is None:
        return tuple(n for n in MANY_ESTIMATORS if have_model or n not in MODEL_ESTIMATORS)
    names = tuple(estimators)
    if not names:
        raise ValueError("estimators: expected at least one estimator name")
    for n in names:
        if n not in MANY_ESTIMATORS:
            raise ValueError(f"estimators: unknown name {n!r}; expected names from {MANY_ESTIMATORS}")
        if n in MODEL_ESTIMATORS and not have_model:
            raise ValueError(f"q_taken: estimator {n!r} needs model terms; pass q_taken and v_hat [K, N, T]")
    return names


def _validate(rewards, log_ratios, mask, gamma, q_taken, v_hat) -> None:
    """Host checks of the K-policy inputs (each policy's slice as the single-policy estimators check it)."""
    lr = np.asarray(log_ratios)
    if lr.ndim != 3:
        raise ValueError(f"log_ratios: expected [K, N, T] (one [N, T] slice per policy), found shape {list(lr.shape)}")
    for name, x in (("q_taken", q_taken), ("v_hat", v_hat)):
        if x is not None and np.shape(x) != lr.shape:
            raise ValueError(f"{name}: expected shape {list(lr.shape)} like log_ratios, found {list(np.shape(x))}")
    for k in range(lr.shape[0]):
        try:
            validate_ope_inputs(
                rewards, lr[k], mask, gamma,
                None if q_taken is None else np.asarray(q_taken)[k], None if v_hat is None else np.asarray(v_hat)[k],
            )
        except ValueError as exc:
            raise ValueError(f"{exc} (policy k = {k})") from None


def evaluate_policies(
    rewards: Array,
    log_ratios: Array,
    mask: Array,
    gamma: Any,
    q_taken: Optional[Array] = None,
    v_hat: Optional[Array] = None,
    *,
    estimators: Optional[Sequence[str]] = None,
    key: Optional[Array] = None,
    num_resamples: int = 200,
    validate: bool = True,
) -> dict:
    """K policies' estimates from one dataset: every requested estimator, vmapped over policies.

    For each policy k and estimator e, the entry ``[k]`` is e(rewards, log_ratios[k], mask,
    gamma, q_taken[k], v_hat[k]), the dataset-level estimator of :mod:`offrl_jax.ope`:
    ``"is"`` :func:`~offrl_jax.ope.trajectory_is`, ``"pdis"`` :func:`~offrl_jax.ope.per_decision_is`,
    ``"wis"`` :func:`~offrl_jax.ope.weighted_is`, ``"wpdis"``
    :func:`~offrl_jax.ope.weighted_per_decision_is` (Precup, Sutton & Singh 2000); ``"dm"`` the
    direct method (1/N) Σ_n V̂_k(s^n_0), ``"dr"`` :func:`~offrl_jax.ope.doubly_robust` (Jiang & Li
    2016), ``"wdr"`` :func:`~offrl_jax.ope.weighted_doubly_robust` and ``"magic"``
    :func:`~offrl_jax.ope.magic` (Thomas & Brunskill 2016; every policy uses the same ``key``).
    All of them run as one ``jax.vmap`` over k; jit the call (``estimators`` and
    ``num_resamples`` static) to compile it once.

    Args:
      rewards: ``[N, T]`` r_t (shared by all policies).
      log_ratios: ``[K, N, T]`` log π_k − log π_β at the logged actions (0 on padding).
      mask: ``[N, T]`` 1 on real steps, 0 on padding.
      gamma: discount in [0, 1].
      q_taken: optional ``[K, N, T]`` Q̂_k(s_t, a_t) (needed by dm, dr, wdr, magic).
      v_hat: optional ``[K, N, T]`` V̂_k(s_t) = Σ_a π_k(a|s_t) Q̂_k(s_t, a).
      estimators: names from :data:`MANY_ESTIMATORS` (default: all that the inputs allow).
      key: PRNG key of MAGIC's bootstrap (default ``jax.random.key(0)``).
      num_resamples: MAGIC's bootstrap size (static).
      validate: host checks of every policy's slice when the inputs are concrete.

    Returns:
      ``{name: [K] estimates}`` for the requested names.

    Raises:
      ValueError: naming the argument (and the policy index), on bad input or unknown names.
    """
    names = _names(estimators, q_taken is not None and v_hat is not None)
    if validate and is_concrete(rewards, log_ratios, mask, gamma, q_taken, v_hat):
        _validate(rewards, log_ratios, mask, gamma, q_taken, v_hat)
    rewards, mask, log_ratios, q_taken, v_hat = float_inputs(
        [rewards, mask, log_ratios, q_taken, v_hat], ["rewards", "mask", "log_ratios", "q_taken", "v_hat"]
    )
    chex.assert_rank(log_ratios, 3)
    key = jax.random.key(0) if key is None else key
    gamma = jnp.asarray(gamma, rewards.dtype)
    have_model = q_taken is not None and v_hat is not None

    def one(lr, q, v):
        d = (rewards, lr, mask, gamma)
        out = {}
        for n in names:
            if n == "is":
                out[n] = trajectory_is(*d, validate=False)
            elif n == "pdis":
                out[n] = per_decision_is(*d, validate=False)
            elif n == "wis":
                out[n] = weighted_is(*d, validate=False)
            elif n == "wpdis":
                out[n] = weighted_per_decision_is(*d, validate=False)
            elif n == "dm":
                out[n] = jnp.mean(v[:, 0])
            elif n == "dr":
                out[n] = doubly_robust(*d, q, v, validate=False)
            elif n == "wdr":
                out[n] = weighted_doubly_robust(*d, q, v, validate=False)
            else:
                out[n] = magic(key, *d, q, v, num_resamples=num_resamples).estimate
        return out

    if have_model:
        return jax.vmap(one)(log_ratios, q_taken, v_hat)
    return jax.vmap(lambda lr: one(lr, None, None))(log_ratios)
