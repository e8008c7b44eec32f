"""Pure TD targets and regression losses for fitted Q evaluation and fitted Q iteration.

All functions work on a minibatch of B transitions ``(s_m, a_m, r_m, s'_m, d_m)`` with plain
names and shapes ``[B]`` / ``[B, A]``. ``discounts`` d_m is 0 where s'_m is a true terminal and
1 otherwise (a time-limit truncation keeps d_m = 1, so the bootstrap stays); gamma is applied
here. Targets are wrapped in ``stop_gradient``: they are regression labels, not functions of
the parameters being fitted.

:func:`td_targets` is the one place that picks the rule a config asks for: the expectation over
a target table or function (FQE), the max or double-Q (FQI), or K sampled next actions
(continuous FQE).

See "Batch Policy Learning under Constraints", Le, Voloshin & Yue 2019 (FQE) and "Tree-Based
Batch Mode Reinforcement Learning", Ernst, Geurts & Wehenkel 2005 (FQI).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import chex
import jax
import jax.numpy as jnp
import optax

from offrl_jax.core.dtypes import float_inputs
from offrl_jax.fitted.config import FittedQConfig

Array = Any

__all__ = [
    "td_targets",
    "policy_probs",
    "fqe_targets",
    "fqi_targets",
    "sampled_fqe_targets",
    "sampled_next_values",
    "l2_loss",
    "huber_loss",
    "regression_loss",
]


def policy_probs(observations: Array, target_policy: Array | Callable[[Array], Array]) -> Array:
    """π(·|o) for a batch of observations.

    Args:
      observations: ``[B]`` ints (tabular) or ``[B, ...]`` features.
      target_policy: a tabular policy ``[O, A]`` (rows on the simplex), indexed by integer
        observations, or a function ``observations [B, ...] -> probabilities [B, A]``.

    Returns:
      ``[B, A]`` action probabilities.
    """
    if callable(target_policy):
        return target_policy(observations)
    return jnp.asarray(target_policy)[observations]


def fqe_targets(
    rewards: Array, discounts: Array, next_q: Array, next_probs: Array, gamma: float
) -> Array:
    """FQE targets with the expectation over the evaluated policy's next action.

    y_m = r_m + γ d_m Σ_a' π(a'|s'_m) Q̄(s'_m, a')   (Le, Voloshin & Yue 2019; the paper writes
    Q̄(s', π(s')) for a deterministic π, which this equals when π is one-hot).

    Args:
      rewards: ``[B]`` r_m.
      discounts: ``[B]`` d_m, 0 at true terminals.
      next_q: ``[B, A]`` target-network values Q̄(s'_m, ·).
      next_probs: ``[B, A]`` π(·|s'_m).
      gamma: discount γ.

    Returns:
      ``[B]`` targets (gradient stopped).
    """
    rewards, discounts, next_q, next_probs = float_inputs(
        [rewards, discounts, next_q, next_probs], ["rewards", "discounts", "next_q", "next_probs"]
    )
    chex.assert_rank([rewards, discounts, next_q, next_probs], [1, 1, 2, 2])
    chex.assert_equal_shape([next_q, next_probs])
    v_next = jnp.sum(next_probs.astype(next_q.dtype) * next_q, axis=-1)
    return jax.lax.stop_gradient(rewards + gamma * discounts * v_next)


def fqi_targets(
    rewards: Array,
    discounts: Array,
    next_q_target: Array,
    gamma: float,
    next_q_online: Array | None = None,
) -> Array:
    """FQI (Q-learning) targets with a max over next actions, optionally double-Q.

    y_m = r_m + γ d_m max_a' Q̄(s'_m, a')  (Ernst, Geurts & Wehenkel 2005), or with double-Q
    ("Deep Reinforcement Learning with Double Q-learning", van Hasselt, Guez & Silver 2016)
    y_m = r_m + γ d_m Q̄(s'_m, argmax_a' Q(s'_m, a')), the online network choosing the action
    and the target network valuing it. Ties go to the lowest action index.

    Args:
      rewards: ``[B]``.
      discounts: ``[B]``.
      next_q_target: ``[B, A]`` Q̄(s'_m, ·) from the frozen/target parameters.
      gamma: discount γ.
      next_q_online: optional ``[B, A]`` Q(s'_m, ·) from the online parameters (double-Q).

    Returns:
      ``[B]`` targets (gradient stopped).
    """
    rewards, discounts, next_q_target, next_q_online = float_inputs(
        [rewards, discounts, next_q_target, next_q_online], ["rewards", "discounts", "next_q_target", "next_q_online"]
    )
    chex.assert_rank([rewards, discounts, next_q_target], [1, 1, 2])
    if next_q_online is None:
        v_next = jnp.max(next_q_target, axis=-1)
    else:
        chex.assert_equal_shape([next_q_target, next_q_online])
        a_star = jnp.argmax(next_q_online, axis=-1)
        v_next = jnp.take_along_axis(next_q_target, a_star[:, None], axis=-1)[:, 0]
    return jax.lax.stop_gradient(rewards + gamma * discounts * v_next)


def sampled_next_values(
    key: Array,
    q_fn: Callable[[Array, Array], Array],
    sample_actions: Callable[[Array, Array], Array],
    next_observations: Array,
    num_samples: int,
) -> Array:
    """Monte-Carlo next-state values for a continuous-action policy: ``[B, K]`` Q̄(s'_m, a'_k).

    a'_k ~ π(·|s'_m) for k = 1..K, drawn independently per sample.

    Args:
      key: PRNG key.
      q_fn: ``(obs [B, D], action [B, d]) -> [B]`` target Q-function Q̄.
      sample_actions: ``(key, obs [B, D]) -> action [B, d]``, one draw from π per row.
      next_observations: ``[B, D]`` s'_m.
      num_samples: K (static).

    Returns:
      ``[B, K]`` values Q̄(s'_m, a'_k).
    """
    keys = jax.random.split(key, num_samples)
    values = jax.vmap(lambda k: q_fn(next_observations, sample_actions(k, next_observations)))(keys)
    return values.T


def sampled_fqe_targets(
    rewards: Array, discounts: Array, next_values: Array, gamma: float
) -> Array:
    """FQE targets for a continuous-action policy from sampled next actions.

    y_m = r_m + γ d_m (1/K) Σ_k Q̄(s'_m, a'_k), a'_k ~ π(·|s'_m): an unbiased estimate of the
    expectation target of :func:`fqe_targets` (Le, Voloshin & Yue 2019).

    Args:
      rewards: ``[B]``.
      discounts: ``[B]``.
      next_values: ``[B, K]`` Q̄(s'_m, a'_k), e.g. from :func:`sampled_next_values`.
      gamma: discount γ.

    Returns:
      ``[B]`` targets (gradient stopped).
    """
    rewards, discounts, next_values = float_inputs(
        [rewards, discounts, next_values], ["rewards", "discounts", "next_values"]
    )
    chex.assert_rank([rewards, discounts, next_values], [1, 1, 2])
    return jax.lax.stop_gradient(rewards + gamma * discounts * jnp.mean(next_values, axis=-1))


def l2_loss(predictions: Array, targets: Array) -> Array:
    """Mean squared-error regression loss (1/B) Σ_m ½ (Q(s_m, a_m) − y_m)². Returns a scalar."""
    predictions, targets = float_inputs([predictions, targets], ["predictions", "targets"])
    chex.assert_equal_shape([predictions, targets])
    return jnp.mean(optax.l2_loss(predictions, targets))


def huber_loss(predictions: Array, targets: Array, delta: float = 1.0) -> Array:
    """Mean Huber loss: ½ x² for |x| ≤ δ, δ(|x| − ½δ) otherwise, x = Q(s_m, a_m) − y_m.

    See "Robust Estimation of a Location Parameter", Huber 1964. Returns a scalar.
    """
    predictions, targets = float_inputs([predictions, targets], ["predictions", "targets"])
    chex.assert_equal_shape([predictions, targets])
    return jnp.mean(optax.huber_loss(predictions, targets, delta=delta))


def regression_loss(predictions: Array, targets: Array, kind: str = "l2", delta: float = 1.0) -> Array:
    """Dispatches to :func:`l2_loss` (``kind="l2"``) or :func:`huber_loss` (``"huber"``)."""
    if kind == "l2":
        return l2_loss(predictions, targets)
    if kind == "huber":
        return huber_loss(predictions, targets, delta)
    raise ValueError(f"kind: expected 'l2' or 'huber', found {kind!r}")


def td_targets(
    config: FittedQConfig,
    apply_fn: Callable,
    target_params: Any,
    params: Any,
    batch: Any,
    target_policy: Any = None,
    key: Optional[Array] = None,
) -> Array:
    """``[B]`` TD targets of a minibatch under ``config.target_rule``, from the target network Q̄.

    * ``"expected"`` (FQE): y = r + γ d Σ_a' π(a'|s') Q̄(s', a') (:func:`fqe_targets`), with
      π(·|s') from ``batch.next_probs`` when present, else from ``target_policy``;
    * ``"max"`` / ``"double_q"`` (FQI): :func:`fqi_targets`, double-Q with the online ``params``
      choosing a';
    * ``"sampled"`` (continuous FQE): y = r + γ d (1/K) Σ_k Q̄(s', a'_k), a'_k drawn with
      ``key`` from ``target_policy(key, observations)`` (:func:`sampled_fqe_targets`).

    Args:
      config: the :class:`~offrl_jax.fitted.config.FittedQConfig`.
      apply_fn: the network's apply function; target_params, params: Q̄'s and Q's parameters.
      batch: a minibatch with the :class:`~offrl_jax.data.Transitions` fields (rewards and
        discounts ``[B]``), optionally ``next_probs`` ``[B, A]``.
      target_policy: the evaluated policy (FQE).
      key: PRNG key of the sampled rule.

    Returns:
      ``[B]`` targets (gradient stopped).
    """
    rule = config.target_rule
    if rule == "sampled":
        q_bar = functools.partial(apply_fn, target_params)
        values = sampled_next_values(key, q_bar, target_policy, batch.next_observations, config.num_action_samples)
        return sampled_fqe_targets(batch.rewards, batch.discounts, values.astype(batch.rewards.dtype), config.gamma)
    next_q = apply_fn(target_params, batch.next_observations)
    if rule == "expected":
        probs = getattr(batch, "next_probs", None)
        if probs is None:
            probs = policy_probs(batch.next_observations, target_policy)
        return fqe_targets(batch.rewards, batch.discounts, next_q, probs, config.gamma)
    online = apply_fn(params, batch.next_observations) if rule == "double_q" else None
    return fqi_targets(batch.rewards, batch.discounts, next_q, config.gamma, online)
