"""Shared helpers of the :mod:`offrl_jax.ope` modules (private): interval argument checks.

The interval functions (:mod:`.intervals`, :mod:`.bootstrap`, :mod:`.hcope`) check concrete
arguments on the host and raise ``ValueError`` naming the argument; for traced arguments the
checks are skipped (:func:`~offrl_jax.core.validation.is_concrete`).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from offrl_jax.core.dtypes import float_inputs
from offrl_jax.core.validation import check_key, is_concrete

Array = Any

SIDES = ("two-sided", "lower", "upper")


def masked(x: Array, mask: Array) -> Array:
    """``x`` on real steps (``mask > 0``), 0 on padding."""
    x = jnp.asarray(x)
    return jnp.where(jnp.asarray(mask) > 0, x, jnp.zeros_like(x))


def check_confidence(confidence: Any) -> None:
    if not is_concrete(confidence):
        return
    c = np.asarray(confidence, dtype=np.float64)
    if c.shape != () or not np.isfinite(c) or not 0.0 < float(c) < 1.0:
        raise ValueError(f"confidence: expected a scalar in (0, 1), found {confidence}")


def check_side(side: str) -> None:
    if side not in SIDES:
        raise ValueError(f"side: expected one of {SIDES}, found {side!r}")


def check_samples(samples: Array, name: str = "samples", min_size: int = 2) -> None:
    """Raises ``ValueError`` unless ``samples`` is a finite ``[n]`` array with n >= ``min_size``."""
    if not is_concrete(samples):
        return
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"{name}: expected shape [n] (one statistic per trajectory), found {list(x.shape)}")
    if x.shape[0] < min_size:
        raise ValueError(f"{name}: expected at least n = {min_size} samples, found n = {x.shape[0]}")
    if x.dtype.kind not in "fiub":
        raise ValueError(f"{name}: expected a real dtype, found {x.dtype}")
    if not np.all(np.isfinite(x)):
        idx = int(np.argwhere(~np.isfinite(x))[0, 0])
        raise ValueError(f"{name}: expected finite values, found {x[idx]} at index {idx}")


def check_range(
    samples: Array, a: Any, b: Any, name: str = "samples", tol: float = 1e-6, range_names: str = "a, b"
) -> None:
    if not is_concrete(samples, a, b):
        return
    a_, b_ = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a_.shape != () or b_.shape != () or not (np.isfinite(a_) and np.isfinite(b_)):
        raise ValueError(f"{range_names}: expected finite scalars, found {a}, {b}")
    if not a_ < b_:
        raise ValueError(f"{range_names}: expected {range_names.replace(', ', ' < ')}, found {a}, {b}")
    x = np.asarray(samples, np.float64)
    slack = tol * (b_ - a_)
    if np.any(x < a_ - slack) or np.any(x > b_ + slack):
        idx = int(np.argwhere((x < a_ - slack) | (x > b_ + slack))[0, 0])
        raise ValueError(f"{name}: expected values in [{range_names}] = [{a}, {b}], found {x[idx]} at index {idx}")


def as_float(x: Array, name: str = "samples") -> Array:
    """One numeric input under the dtype policy (:mod:`offrl_jax.core.dtypes`)."""
    return float_inputs([x], [name])[0]


def ope_arrays(rewards: Array, log_ratios: Array, mask: Array, *model: Array) -> tuple:
    """``(rewards, log_ratios, mask, *model)`` under the dtype policy of :mod:`offrl_jax.core.dtypes`.

    The float inputs (rewards, log ratios and the model terms ``q_taken``, ``v_hat``) become JAX
    arrays of one float dtype (integers and lists converted, half precision computed in float32,
    mixed dtypes promoted); ``mask`` becomes an array of its own dtype (it is only compared with
    0). ``ValueError`` names the argument for non-numeric input.
    """
    names = ["rewards", "log_ratios", "q_taken", "v_hat"][: 2 + len(model)]
    floats = float_inputs([rewards, log_ratios, *model], names)
    if isinstance(mask, (list, tuple)) or not hasattr(mask, "dtype"):
        mask = float_inputs([mask], ["mask"])[0]
    return (floats[0], floats[1], jnp.asarray(mask), *floats[2:])


def check_shapes(*named: tuple, mask: Array) -> None:
    """``mask`` must be ``[N, T]`` and every ``(name, array)`` of its shape (static shapes only);
    ``ValueError`` naming the first argument that is not."""
    if jnp.ndim(mask) != 2:
        raise ValueError(f"mask: expected shape [N, T] (padded trajectories), found {list(jnp.shape(mask))}")
    for name, x in named:
        if tuple(jnp.shape(x)) != tuple(jnp.shape(mask)):
            raise ValueError(f"{name}: expected shape {list(jnp.shape(mask))} (as mask, [N, T]), found {list(jnp.shape(x))}")


def check_prng_key(key: Array) -> None:
    check_key(key, "key")


def tail_mass(confidence: Array, side: str, dtype) -> Array:
    """delta / 2 (two-sided) or delta (one-sided), delta = 1 - confidence."""
    delta = 1.0 - jnp.asarray(confidence, dtype)
    return delta / 2 if side == "two-sided" else delta


def one_side(lo, hi, side, lo_trivial, hi_trivial) -> tuple:
    """``(lower, upper)`` of ``side``: the open end of a one-sided interval is its trivial bound."""
    lower = lo if side in ("two-sided", "lower") else jnp.full_like(lo, lo_trivial)
    upper = hi if side in ("two-sided", "upper") else jnp.full_like(hi, hi_trivial)
    return lower, upper
