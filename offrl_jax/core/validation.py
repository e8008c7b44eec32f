"""Host-side validation shared by every family (runs before tracing).

Value checks (NaN, probabilities out of range, zero behaviour probability where the target
acts, empty data) run once on the host, in a public entry point or a container constructor,
and raise ``ValueError`` naming the argument and what was expected. Under ``jit`` the checks
are skipped (:func:`is_concrete` is the one tracer test) and only shapes are checked.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import jax
import numpy as np

Array = Any

__all__ = [
    "is_concrete",
    "as_host",
    "check_finite",
    "check_log_probs",
    "check_mask",
    "check_leading",
    "check_same_shape",
    "validate_gamma",
    "validate_log_probs",
    "validate_ope_inputs",
    "check_positive_int",
    "check_positive_float",
    "check_choice",
    "check_float_dtype",
    "check_hidden_sizes",
    "check_action_space",
    "check_probability",
    "check_log_prob_pair",
    "check_key",
    "check_distribution_rows",
]


def as_host(x: Array, name: str) -> np.ndarray:
    if isinstance(x, jax.core.Tracer):
        raise ValueError(
            f"{name}: validation runs on concrete arrays before tracing; got a traced value. "
            "Build containers outside jit (the raw dataclass constructor skips validation)."
        )
    return np.asarray(x)


def check_finite(x: Array, name: str) -> np.ndarray:
    """Raises ``ValueError`` if ``x`` holds NaN or inf; returns it as a numpy array."""
    a = as_host(x, name)
    if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(
            f"{name}: expected finite values, found {a[tuple(bad)]} at index {tuple(bad.tolist())}"
        )
    return a


def check_log_probs(x: Array, name: str) -> np.ndarray:
    """Log-probabilities must be finite (or -inf only where noted) and <= 0."""
    a = as_host(x, name)
    if np.any(np.isnan(a)):
        idx = tuple(np.argwhere(np.isnan(a))[0].tolist())
        raise ValueError(f"{name}: expected log-probabilities in (-inf, 0], found NaN at {idx}")
    if np.any(a > 1e-6):
        idx = tuple(np.argwhere(a > 1e-6)[0].tolist())
        raise ValueError(
            f"{name}: expected log-probabilities in (-inf, 0] (probabilities in (0, 1]), "
            f"found {a[idx]} at {idx}"
        )
    return a


def check_mask(mask: Array, name: str = "mask", allow_empty_rows: bool = True) -> np.ndarray:
    """``mask`` must be ``[N, T]`` of 0/1 with each row a prefix of ones."""
    m = as_host(mask, name)
    if m.ndim != 2:
        raise ValueError(f"{name}: expected shape [N, T], found shape {m.shape}")
    if m.size == 0 or m.shape[0] == 0 or m.shape[1] == 0:
        raise ValueError(f"{name}: empty dataset (shape {m.shape}); expected N >= 1 and T >= 1")
    mf = m.astype(np.float64)
    if not np.all((mf == 0) | (mf == 1)):
        raise ValueError(f"{name}: expected values in {{0, 1}}, found {np.unique(mf)[:5]}")
    if np.any(np.diff(mf, axis=1) > 0):
        row = int(np.argwhere(np.diff(mf, axis=1) > 0)[0, 0])
        raise ValueError(
            f"{name}: expected a prefix of ones per row (1 on real steps, then 0 padding); "
            f"row {row} is {mf[row].astype(int).tolist()[:20]}"
        )
    if not np.any(mf):
        raise ValueError(f"{name}: empty dataset, no step has mask 1")
    if not allow_empty_rows and np.any(mf[:, 0] == 0):
        row = int(np.argwhere(mf[:, 0] == 0)[0, 0])
        raise ValueError(f"{name}: row {row} has no real step; expected every trajectory non-empty")
    return m


def check_leading(x: np.ndarray, name: str, shape: tuple, what: str) -> None:
    if tuple(x.shape[: len(shape)]) != tuple(shape):
        raise ValueError(
            f"{name}: expected leading shape {list(shape)} ({what}), found shape {list(x.shape)}"
        )


def is_concrete(*trees: Any) -> bool:
    """True when no leaf of ``trees`` is a tracer, so host-side checks can run.

    The one tracer check of the package: public entry points validate values on the host when
    their inputs are concrete and skip it (checking shapes only) under ``jit``/``vmap``.
    """
    return not any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(trees))




def check_same_shape(x: Array, name: str, shape: tuple) -> np.ndarray:
    a = as_host(x, name)
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {list(shape)} (same as mask [N, T]), found {list(a.shape)}")
    return a


def _check_no_nan(a: np.ndarray, name: str, real: np.ndarray, allow_neg_inf: bool = False) -> None:
    bad = np.isnan(a) | (np.isposinf(a)) | (np.isneginf(a) & (not allow_neg_inf))
    bad &= real
    if np.any(bad):
        idx = tuple(np.argwhere(bad)[0].tolist())
        raise ValueError(f"{name}: expected finite values on real steps, found {a[idx]} at index {idx}")


def validate_gamma(gamma: Any) -> float:
    """Raises ``ValueError`` unless ``gamma`` is a finite number in [0, 1]; returns it."""
    if isinstance(gamma, jax.core.Tracer):
        return gamma
    g = np.asarray(gamma)
    if g.ndim != 0 or not np.isfinite(g) or not (0.0 <= float(g) <= 1.0):
        raise ValueError(f"gamma: expected a discount in [0, 1], found {gamma!r}")
    return float(g)


def validate_log_probs(target_log_probs: Array, behavior_log_probs: Array, mask: Array) -> None:
    """Host checks for :func:`log_importance_ratios`.

    Raises:
      ValueError: naming the argument, if shapes differ from ``mask``, a log-probability is NaN
        or > 0, or a behaviour probability is 0 (log-prob ``-inf``) at a real step where the
        target policy puts mass (coverage violated: the ratio would be ``+inf``).
    """
    m = check_mask(mask, "mask")
    real = m > 0
    lt = check_same_shape(target_log_probs, "target_log_probs", m.shape)
    lb = check_same_shape(behavior_log_probs, "behavior_log_probs", m.shape)
    for name, a in (("target_log_probs", lt), ("behavior_log_probs", lb)):
        if np.any(np.isnan(a) & real):
            idx = tuple(np.argwhere(np.isnan(a) & real)[0].tolist())
            raise ValueError(f"{name}: expected log-probabilities in (-inf, 0], found NaN at {idx}")
        if np.any((a > 1e-6) & real):
            idx = tuple(np.argwhere((a > 1e-6) & real)[0].tolist())
            raise ValueError(f"{name}: expected log-probabilities in (-inf, 0], found {a[idx]} at {idx}")
    bad = real & np.isneginf(lb) & ~np.isneginf(lt)
    if np.any(bad):
        idx = tuple(np.argwhere(bad)[0].tolist())
        raise ValueError(
            f"behavior_log_probs: behaviour probability is 0 at step {idx} where the target policy "
            "puts mass (coverage violated; the importance ratio would be +inf)"
        )


def validate_ope_inputs(
    rewards: Array,
    log_ratios: Array,
    mask: Array,
    gamma: Any,
    q_taken: Optional[Array] = None,
    v_hat: Optional[Array] = None,
) -> None:
    """Host checks shared by the dataset-level estimators (run before tracing).

    Raises:
      ValueError: naming the argument, for an empty dataset or a mask that is not ``[N, T]`` 0/1
        with a prefix of ones; arrays whose shape differs from ``mask``; NaN or inf rewards or
        model values on real steps; NaN log ratios; ``+inf`` log ratios (behaviour probability 0
        where the target policy puts mass); ``gamma`` outside [0, 1].
    """
    m = check_mask(mask, "mask")
    real = m > 0
    validate_gamma(gamma)
    r = check_same_shape(rewards, "rewards", m.shape)
    _check_no_nan(r, "rewards", real)
    lr = check_same_shape(log_ratios, "log_ratios", m.shape)
    if np.any(np.isnan(lr) & real):
        idx = tuple(np.argwhere(np.isnan(lr) & real)[0].tolist())
        raise ValueError(f"log_ratios: expected log pi - log pi_beta, found NaN at index {idx}")
    if np.any(np.isposinf(lr) & real):
        idx = tuple(np.argwhere(np.isposinf(lr) & real)[0].tolist())
        raise ValueError(
            f"log_ratios: +inf at index {idx}: behaviour probability 0 where the target policy puts "
            "mass (coverage violated)"
        )
    for name, x in (("q_taken", q_taken), ("v_hat", v_hat)):
        if x is not None:
            a = check_same_shape(x, name, m.shape)
            _check_no_nan(a, name, real)


# ----------------------------------------------------------------------------------------------
# Config fields (frozen learner configs validate themselves with these).
# ----------------------------------------------------------------------------------------------
def check_positive_int(value: Any, name: str, allow_none: bool = False) -> None:
    """Raises ``ValueError`` unless ``value`` is a positive Python int (or ``None`` if allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive int{' or None' if allow_none else ''}, found {value!r}")


def check_positive_float(value: Any, name: str, allow_none: bool = False) -> None:
    """Raises ``ValueError`` unless ``value`` is a finite number > 0 (or ``None`` if allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not (
        np.isfinite(value) and value > 0
    ):
        raise ValueError(f"{name}: expected a finite number > 0{' or None' if allow_none else ''}, found {value!r}")


def check_probability(value: Any, name: str, low_open: bool = False, high_open: bool = False) -> None:
    """Raises ``ValueError`` unless ``value`` is a number in [0, 1] (ends optionally open)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    ok = ok and np.isfinite(value) and (value > 0 if low_open else value >= 0) and (value < 1 if high_open else value <= 1)
    if not ok:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"{name}: expected a number in {lo}0, 1{hi}, found {value!r}")


def check_choice(value: Any, name: str, choices: Sequence[Any]) -> None:
    """Raises ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in tuple(choices):
        raise ValueError(f"{name}: expected one of {tuple(choices)}, found {value!r}")


def check_hidden_sizes(value: Any, name: str = "hidden_sizes") -> None:
    """Raises ``ValueError`` unless ``value`` is a tuple of positive Python ints (``()`` allowed)."""
    if not isinstance(value, tuple) or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in value):
        raise ValueError(f"{name}: expected a tuple of positive ints, found {value!r}")


def check_action_space(num_actions: Any, action_dim: Any) -> None:
    """Raises ``ValueError`` unless exactly one of ``num_actions`` (discrete actions) and
    ``action_dim`` (continuous) is set, as a positive int."""
    if (num_actions is None) == (action_dim is None):
        raise ValueError(
            "num_actions: set exactly one of num_actions (discrete actions) and action_dim (continuous), "
            f"found num_actions={num_actions!r}, action_dim={action_dim!r}"
        )
    check_positive_int(num_actions, "num_actions", allow_none=True)
    check_positive_int(action_dim, "action_dim", allow_none=True)


def check_float_dtype(value: Any, name: str = "dtype") -> None:
    """Raises ``ValueError`` unless ``value`` is ``"float32"`` or ``"float64"``; ``"float64"`` also
    needs ``jax_enable_x64`` (``JAX_ENABLE_X64=1``), which the package never turns on itself."""
    check_choice(value, name, ("float32", "float64"))
    if value == "float64" and not jax.config.jax_enable_x64:
        raise ValueError(f"{name}: 'float64' needs jax_enable_x64 (JAX_ENABLE_X64=1)")


# ----------------------------------------------------------------------------------------------
# Log-probabilities, policies and PRNG keys.
# ----------------------------------------------------------------------------------------------
def check_log_prob_pair(target_log_probs: Array, behavior_log_probs: Array, mask: Array) -> None:
    """Host checks of :func:`~offrl_jax.core.weights.log_importance_ratios` (any common shape).

    Raises:
      ValueError: naming the argument, if a shape differs from ``mask``'s, a log-probability on a
        real step is NaN, ``+inf`` or > 0, or the behaviour log-probability is ``-inf`` where the
        target's is not (coverage violated: the ratio would be ``+inf``).
    """
    m = as_host(mask, "mask")
    real = m > 0
    arrays = []
    for name, x in (("target_log_probs", target_log_probs), ("behavior_log_probs", behavior_log_probs)):
        a = as_host(x, name)
        if a.shape != m.shape:
            raise ValueError(f"{name}: expected shape {list(m.shape)} (as mask), found {list(a.shape)}")
        if a.dtype.kind not in "biuf" and a.dtype != np.dtype("bfloat16"):
            raise ValueError(f"{name}: expected real log-probabilities, found dtype {a.dtype}")
        a = a.astype(np.float64)
        bad = (np.isnan(a) | (a > 1e-6)) & real
        if np.any(bad):
            idx = tuple(np.argwhere(bad)[0].tolist())
            raise ValueError(f"{name}: expected log-probabilities in [-inf, 0], found {a[idx]} at index {idx}")
        arrays.append(a)
    lt, lb = arrays
    bad = real & np.isneginf(lb) & ~np.isneginf(lt)
    if np.any(bad):
        idx = tuple(np.argwhere(bad)[0].tolist())
        raise ValueError(
            f"behavior_log_probs: behaviour probability is 0 at index {idx} where the target policy "
            "puts mass (coverage violated; the importance ratio would be +inf)"
        )


def check_distribution_rows(probs: Array, name: str, atol: float = 1e-4) -> np.ndarray:
    """Raises ``ValueError`` unless the last axis of ``probs`` holds probability distributions.

    Entries must be finite and >= 0 and every row must sum to 1 within ``atol``.
    """
    p = as_host(probs, name)
    if p.ndim < 1 or p.shape[-1] == 0:
        raise ValueError(f"{name}: expected probabilities [..., A] with A >= 1, found shape {list(p.shape)}")
    if p.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected real probabilities, found dtype {p.dtype}")
    p = p.astype(np.float64)
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        idx = tuple(np.argwhere(~np.isfinite(p) | (p < 0))[0].tolist())
        raise ValueError(f"{name}: expected probabilities >= 0, found {p[idx]} at index {idx}")
    sums = p.sum(axis=-1)
    if np.any(np.abs(sums - 1.0) > atol):
        idx = tuple(np.argwhere(np.abs(sums - 1.0) > atol)[0].tolist())
        raise ValueError(f"{name}: expected each row to sum to 1, row {idx} sums to {sums[idx]:.6g}")
    return p


def check_key(key: Any, name: str = "key") -> None:
    """Raises ``ValueError`` unless ``key`` is a JAX PRNG key.

    Accepted: a typed key of shape ``()`` (``jax.random.key``) or a raw ``uint32`` key of shape
    ``[2]`` (``jax.random.PRNGKey``). Only dtype and shape are read, so it works on tracers.
    """
    dtype = getattr(key, "dtype", None)
    shape = tuple(getattr(key, "shape", ()))
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if shape != ():
            raise ValueError(f"{name}: expected one PRNG key (shape ()), found a key array of shape {list(shape)}")
        return
    if dtype is not None and np.dtype(dtype) == np.uint32 and shape == (2,):
        return
    found = f"{type(key).__name__}" + (f" of dtype {dtype} and shape {list(shape)}" if dtype is not None else "")
    raise ValueError(f"{name}: expected a PRNG key (jax.random.key(seed) or jax.random.PRNGKey(seed)), found {found}")
