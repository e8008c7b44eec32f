"""Tabular behaviour policies from counts, with additive smoothing (discrete observations).

    β̂(a|o) = (n(o, a) + α) / (n(o) + α A),

n(o, a) the number of logged steps with observation o and action a, α ≥ 0 the additive
(Lidstone; α = 1 Laplace) smoothing. α > 0 keeps every action's probability positive, so the
importance ratios π/β̂ stay finite; an observation never logged gets the uniform distribution.
With α → 0 this is the maximum-likelihood estimate, the "regression importance sampling" β̂ of
"Importance Sampling Policy Evaluation with an Estimated Behavior Policy", Hanna, Niekum & Stone
2019 (there fitted on the same data whose value is estimated).

Everything here is pure and jit/vmap-safe: counts are one ``segment_sum`` over the logged steps
(no Python loop); :func:`tabular_behavior` validates on the host first.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.core.validation import check_mask, is_concrete

Array = Any

__all__ = ["action_counts", "smoothed_policy", "tabular_behavior", "check_indices"]


def action_counts(observations: Array, actions: Array, mask: Array, num_observations: int, num_actions: int) -> Array:
    """``[O, A]`` counts n(o, a) over the real steps (pure; any leading shape, e.g. ``[N, T]``).

    Args:
      observations: ``[...]`` int observations in [0, O).
      actions: ``[...]`` int actions in [0, A).
      mask: ``[...]`` 1 on real steps, 0 on padding (or per-step weights).
      num_observations: O (static).
      num_actions: A (static).

    Returns:
      ``[O, A]`` float counts in the mask's dtype (float32 for integer masks).
    """
    w = jnp.asarray(mask)
    if not jnp.issubdtype(w.dtype, jnp.floating):
        w = w.astype(jnp.float32)
    idx = jnp.asarray(observations).astype(jnp.int32) * num_actions + jnp.asarray(actions).astype(jnp.int32)
    flat = jax.ops.segment_sum(w.reshape(-1), idx.reshape(-1), num_segments=num_observations * num_actions)
    return flat.reshape(num_observations, num_actions)


def smoothed_policy(counts: Array, smoothing: float = 1.0) -> Array:
    """β̂(a|o) = (n(o, a) + α) / (n(o) + α A); uniform where n(o) + α A = 0 (pure).

    Args:
      counts: ``[O, A]`` counts.
      smoothing: α ≥ 0.

    Returns:
      ``[O, A]`` probabilities (rows sum to 1).
    """
    c = jnp.asarray(counts) + jnp.asarray(smoothing, counts.dtype)
    total = jnp.sum(c, axis=-1, keepdims=True)
    uniform = jnp.full_like(c, 1.0 / c.shape[-1])
    return jnp.where(total > 0, c / jnp.where(total > 0, total, 1.0), uniform)


def check_indices(x: Array, name: str, size: int, mask: np.ndarray) -> np.ndarray:
    """Host check: integer indices in [0, size) on the real steps; returns them as numpy."""
    a = np.asarray(x)
    if a.shape != mask.shape:
        raise ValueError(f"{name}: expected shape {list(mask.shape)} (as mask [N, T]), found {list(a.shape)}")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise ValueError(f"{name}: expected integer indices in [0, {size}), found non-integer values")
    elif a.dtype.kind not in "iub":
        raise ValueError(f"{name}: expected integer indices in [0, {size}), found dtype {a.dtype}")
    real = a[mask > 0]
    if real.size and (real.min() < 0 or real.max() >= size):
        bad = real[(real < 0) | (real >= size)][0]
        raise ValueError(f"{name}: expected integer indices in [0, {size}), found {bad}")
    return a.astype(np.int32)


def tabular_behavior(
    observations: Array,
    actions: Array,
    mask: Array,
    num_observations: int,
    num_actions: int,
    *,
    smoothing: float = 1.0,
) -> Array:
    """The smoothed count estimate β̂ ``[O, A]`` from padded trajectories (dataset level).

    β̂(a|o) = (n(o, a) + α) / (n(o) + α A) with n counted over real steps (see the module
    docstring). Validates on the host when the inputs are concrete.

    Args:
      observations: ``[N, T]`` int observations in [0, O).
      actions: ``[N, T]`` int actions in [0, A).
      mask: ``[N, T]`` 1 on real steps, 0 on padding.
      num_observations: O.
      num_actions: A.
      smoothing: α ≥ 0 (default 1, Laplace).

    Returns:
      ``[O, A]`` β̂ (float32 unless the mask is float64).

    Raises:
      ValueError: naming the argument, for a bad mask, out-of-range indices, or α < 0.
    """
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float, np.floating)) or not (
        np.isfinite(smoothing) and smoothing >= 0
    ):
        raise ValueError(f"smoothing: expected a finite number >= 0, found {smoothing!r}")
    for name, v in (("num_observations", num_observations), ("num_actions", num_actions)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: expected a positive int, found {v!r}")
    if is_concrete(observations, actions, mask):
        m = check_mask(mask)
        check_indices(observations, "observations", num_observations, m)
        check_indices(actions, "actions", num_actions, m)
    counts = action_counts(observations, actions, mask, int(num_observations), int(num_actions))
    return smoothed_policy(counts, float(smoothing))
