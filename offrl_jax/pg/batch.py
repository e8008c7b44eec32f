"""The logged data of offline policy-gradient learning: :class:`PGBatch` and its host checks.

A :class:`PGBatch` holds padded ``[N, T]`` trajectories with the behaviour log-probabilities
the importance weights need, plus optional per-step critic values Q̂, baselines b_t and state
ratios ŵ(s_t). :func:`pg_batch` builds one from :class:`~offrl_jax.data.Trajectories` and checks
the values once on the host (the raw constructor skips the checks, for use inside ``jit``).
"""

from __future__ import annotations

from typing import Any, Optional

import jax.numpy as jnp
import numpy as np
from flax import struct

from offrl_jax.core.validation import check_finite, check_log_probs, check_mask, is_concrete
from offrl_jax.data import Trajectories

Array = Any

__all__ = ["PGBatch", "pg_batch"]


@struct.dataclass
class PGBatch:
    """Logged trajectories for policy-gradient learning, all ``[N, T]`` (padded, with ``mask``).

    Attributes:
      observations: ``[N, T, ...]`` inputs of the policy.
      actions: ``[N, T]`` logged integer actions.
      rewards: ``[N, T]`` r_t.
      mask: ``[N, T]`` 1 on real steps, 0 on padding.
      behavior_log_probs: ``[N, T]`` log π_β(a_t|s_t).
      q_hat: optional ``[N, T]`` fitted Q̂(s_t, a_t) (else the reward-to-go is used where a Q̂
        is needed).
      baseline: optional ``[N, T]`` b_t.
      state_weights: optional ``[N, T]`` ŵ(s_t) for the state-marginal estimator.
    """

    observations: Array
    actions: Array
    rewards: Array
    mask: Array
    behavior_log_probs: Array
    q_hat: Optional[Array] = None
    baseline: Optional[Array] = None
    state_weights: Optional[Array] = None


def pg_batch(
    data: Trajectories | PGBatch,
    *,
    q_hat: Optional[Array] = None,
    baseline: Optional[Array] = None,
    state_weights: Optional[Array] = None,
) -> PGBatch:
    """Builds a :class:`PGBatch` from :class:`~offrl_jax.data.Trajectories`, checked on the host.

    Given a :class:`PGBatch`, checks it (extras given here replace the batch's).

    Args:
      data: trajectories with ``behavior_log_probs``, or a :class:`PGBatch`.
      q_hat: optional ``[N, T]`` Q̂(s_t, a_t).
      baseline: optional ``[N, T]`` (or scalar) b_t.
      state_weights: optional ``[N, T]`` ŵ(s_t) ≥ 0.

    Raises:
      ValueError: naming the argument, if ``behavior_log_probs`` is missing, the mask is not a
        non-empty ``[N, T]`` prefix of ones, rewards or extras are not finite or not ``[N, T]``,
        a behaviour log-probability is > 0 or not finite on a real step, or a state weight is
        negative (checked when the inputs are concrete).
    """
    if not isinstance(data, (Trajectories, PGBatch)):
        raise ValueError(f"data: expected Trajectories or PGBatch, found {type(data).__name__}")
    if data.behavior_log_probs is None:
        raise ValueError("data.behavior_log_probs: required for importance weights; found None")
    extras = {"q_hat": q_hat, "baseline": baseline, "state_weights": state_weights}
    if isinstance(data, PGBatch):
        extras = {k: getattr(data, k) if v is None else v for k, v in extras.items()}
    if is_concrete(data, extras):
        _validate_pg_data(data.behavior_log_probs, data.rewards, data.mask, **extras)
    return PGBatch(
        observations=data.observations,
        actions=data.actions,
        rewards=data.rewards,
        mask=data.mask,
        behavior_log_probs=data.behavior_log_probs,
        **{k: None if v is None else jnp.asarray(v, data.rewards.dtype) for k, v in extras.items()},
    )


def _validate_pg_data(
    behavior_log_probs: Array,
    rewards: Array,
    mask: Array,
    *,
    q_hat: Optional[Array] = None,
    baseline: Optional[Array] = None,
    state_weights: Optional[Array] = None,
    behavior_policy: Optional[Array] = None,
) -> None:
    """Host-side checks of the logged data of the surrogates (run once, outside jit).

    Args:
      behavior_log_probs: ``[N, T]`` log π_β(a_t|s_t): finite and ≤ 0 on real steps.
      rewards: ``[N, T]`` finite.
      mask: ``[N, T]`` 0/1 prefix of ones per row, not empty.
      q_hat, baseline, state_weights: optional ``[N, T]`` finite (state weights ≥ 0).
      behavior_policy: optional ``[O, A]`` table; a softmax target acts everywhere, so every entry
        must be positive (coverage).

    Raises:
      ValueError: naming the argument and what was expected.
    """
    m = check_mask(mask, "mask")
    shape = m.shape
    real = m > 0
    for name, x in (("behavior_log_probs", behavior_log_probs), ("rewards", rewards)):
        if np.shape(x) != shape:
            raise ValueError(f"{name}: expected shape {list(shape)} (as mask [N, T]), found {list(np.shape(x))}")
    check_finite(rewards, "rewards")
    blp = check_log_probs(behavior_log_probs, "behavior_log_probs")
    if not np.all(np.isfinite(blp[real])):
        idx = tuple(np.argwhere(real & ~np.isfinite(blp))[0].tolist())
        raise ValueError(
            f"behavior_log_probs: zero behaviour probability at logged step {idx}; expected "
            "finite log-probabilities on real steps"
        )
    for name, x in (("q_hat", q_hat), ("baseline", baseline), ("state_weights", state_weights)):
        if x is None:
            continue
        a = np.asarray(x)
        if name == "baseline" and a.ndim == 0:
            check_finite(a, name)
            continue
        if a.shape != shape:
            raise ValueError(f"{name}: expected shape {list(shape)} (as mask [N, T]), found {list(a.shape)}")
        check_finite(a, name)
        if name == "state_weights" and np.any(a < 0):
            raise ValueError("state_weights: expected non-negative density ratios")
    if behavior_policy is not None:
        p = check_finite(behavior_policy, "behavior_policy")
        if p.ndim != 2 or np.any(p < 0) or np.any(p > 1 + 1e-6):
            raise ValueError("behavior_policy: expected an [O, A] table of probabilities in [0, 1]")
        if np.any(p == 0):
            o, a = np.argwhere(p == 0)[0]
            raise ValueError(
                f"behavior_policy: zero behaviour probability at (obs, action) = ({o}, {a}) where "
                "the softmax target acts; expected π_β(a|o) > 0 everywhere (coverage)"
            )
