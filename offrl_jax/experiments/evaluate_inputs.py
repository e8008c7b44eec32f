"""The inputs of ``offrl-jax evaluate``: logs, target policy and behaviour propensities, checked.

Discrete actions (``actions`` ``[N, T]`` ints):

* target: π(·|s_t) ``[N, T, A]``, from an ``.npy``/``.npz`` file or ``module:function`` called
  with the observations ``[N, T, ...]``;
* behaviour: β(a_t|s_t) ``[N, T]`` or β(·|s_t) ``[N, T, A]`` probabilities.

Continuous actions (float ``actions`` ``[N, T, d]``; float ``[N, T]`` with non-integer values
counts as d = 1):

* target: log π(a_t|s_t) ``[N, T]``, the log-densities of the logged actions, from a file or
  ``module:function`` called with ``(observations [N, T, ...], actions [N, T, d])``;
* behaviour: log β(a_t|s_t) ``[N, T]`` log-densities.

Densities carry the units of the actions, so only their ratios π/β are meaningful to the
estimators; both are checked for finiteness (log π may be -inf: the target never takes that
action). Every check raises ``ValueError`` naming the field, on the host.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from typing import Any, Optional

import numpy as np

from offrl_jax.data import Trajectories

__all__ = [
    "Progress",
    "call_target",
    "check_probs",
    "continuous_actions",
    "load_data",
    "load_array",
    "load_target",
    "load_target_log_densities",
    "load_propensities",
    "load_log_densities",
    "optional_array",
    "discrete_actions",
    "taken",
    "user_function",
]


class Progress:
    """One line per stage on stderr with its elapsed time."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def __call__(self, what: str):
        self.what = what
        return self

    def __enter__(self):
        if not self.quiet:
            print(f"{self.what} ...", end="", file=sys.stderr, flush=True)
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        if not self.quiet:
            status = "done" if exc[0] is None else "failed"
            print(f" {status} ({time.perf_counter() - self.t0:.1f} s)", file=sys.stderr, flush=True)


def load_data(path: str, format: str = "auto", unknown_next: str = "keep") -> Trajectories:
    """The logs as :class:`Trajectories` (any format :func:`offrl_jax.formats.load_logs` reads)."""
    from offrl_jax.formats import load_logs

    return load_logs(path, format=format, unknown_next=unknown_next)


def load_array(path: str, name: str, keys: tuple) -> np.ndarray:
    """One array from an ``.npy`` file or an ``.npz`` (the first of ``keys`` present, or its only array)."""
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"{name}: cannot read {path} as .npy/.npz ({e})") from None
    if isinstance(z, np.ndarray):
        return z
    with z:
        for k in keys:
            if k in z.files:
                return z[k]
        if len(z.files) == 1:
            return z[z.files[0]]
        raise ValueError(f"{name}: {path} holds {z.files}; expected one array or one named {keys}")


def optional_array(path: str, key: str) -> Optional[np.ndarray]:
    """``key`` of an ``.npz`` file, or None (an ``.npy`` or an archive without it)."""
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if isinstance(z, np.ndarray):
        return None
    with z:
        return z[key] if key in z.files else None


def continuous_actions(traj: Trajectories) -> bool:
    """True for float action vectors ``[N, T, d]`` (or float ``[N, T]`` with non-integer values)."""
    a = np.asarray(traj.actions)
    if a.dtype.kind != "f":
        return False
    if a.ndim == 3:
        return True
    return a.ndim == 2 and bool(np.any(a[np.asarray(traj.mask) > 0] != np.round(a[np.asarray(traj.mask) > 0])))


def user_function(spec: str, name: str = "target"):
    """The function ``module:function`` names (the current folder importable)."""
    module, colon, fn = spec.partition(":")
    if not colon or not module or not fn:
        raise ValueError(f"{name}: expected module:function, found {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return getattr(importlib.import_module(module), fn)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"{name}: cannot import {spec!r} ({e})") from None


def _is_function(spec: str) -> bool:
    if os.path.isfile(spec):
        return False
    if ":" in spec and not spec.endswith((".npy", ".npz")):
        return True
    raise ValueError(f"target: expected an .npy/.npz file or module:function, found {spec!r} (no such file)")


def call_target(spec: str, *args: Any, what: str = "observations") -> Any:
    """Calls the user's ``module:function`` on host arrays; its failure becomes one line."""
    func = user_function(spec)
    try:
        return func(*(np.asarray(a) for a in args))
    except Exception as e:  # the user's function failed: say where, in one line
        raise ValueError(f"target: {spec}({what}) raised {type(e).__name__}: {e}") from None


def load_target(spec: str, traj: Trajectories) -> np.ndarray:
    """π(·|s_t) ``[N, T, A]`` from an ``.npy``/``.npz`` file or a ``module:function``."""
    if _is_function(spec):
        probs = call_target(spec, traj.observations)
    else:
        probs = load_array(spec, "target", ("target_probs", "probs", "evaluation_policy_action_dist"))
    return check_probs(probs, "target", np.asarray(traj.mask))


def load_target_log_densities(spec: str, traj: Trajectories) -> np.ndarray:
    """log π(a_t|s_t) ``[N, T]`` of the logged continuous actions, from a file or
    ``module:function(observations, actions)``; 0 on padding."""
    mask = np.asarray(traj.mask)
    if _is_function(spec):
        lp = call_target(spec, traj.observations, traj.actions, what="observations, actions")
    else:
        lp = load_array(spec, "target", ("target_log_probs", "log_probs", "target_log_densities"))
    return _check_log_densities(lp, "target", mask, allow_neg_inf=True)


def _check_log_densities(x: Any, name: str, mask: np.ndarray, allow_neg_inf: bool) -> np.ndarray:
    try:
        lp = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected log-densities of the logged actions [N, T]") from None
    if lp.shape != mask.shape:
        raise ValueError(
            f"{name}: expected log-densities of the logged actions, shape [N, T] = {list(mask.shape)} "
            f"(continuous actions), found {list(lp.shape)}"
        )
    real = lp[mask > 0]
    ok = np.isfinite(real) | (allow_neg_inf & np.isneginf(real))
    if not np.all(ok):
        expected = "finite values or -inf" if allow_neg_inf else "finite values (a logged action has positive density)"
        raise ValueError(f"{name}: expected log-densities with {expected} on real steps, found {real[~ok][0]}")
    return np.where(mask > 0, lp, 0.0)


def load_log_densities(path: str, traj: Trajectories) -> np.ndarray:
    """log β(a_t|s_t) ``[N, T]`` of the logged continuous actions from a file (finite)."""
    lp = load_array(path, "propensities", ("behavior_log_probs", "log_probs", "behavior_log_densities"))
    return _check_log_densities(lp, "propensities", np.asarray(traj.mask), allow_neg_inf=False)


def check_probs(probs: Any, name: str, mask: np.ndarray, num_actions: Optional[int] = None) -> np.ndarray:
    """Per-step action probabilities ``[N, T, A]``: shape, range and sums checked on real steps."""
    try:
        p = np.asarray(probs, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected an array of probabilities [N, T, A]") from None
    if p.ndim != 3 or p.shape[:2] != mask.shape:
        raise ValueError(f"{name}: expected shape [N, T, A] with [N, T] = {list(mask.shape)} (as the logs), found {list(p.shape)}")
    if num_actions is not None and p.shape[2] != num_actions:
        raise ValueError(f"{name}: expected A = {num_actions} actions, found {p.shape[2]}")
    real = p[mask > 0]
    if not np.all(np.isfinite(real)) or np.any(real < 0) or np.any(real > 1 + 1e-6):
        raise ValueError(f"{name}: expected probabilities in [0, 1] on real steps")
    sums = real.sum(-1)
    if np.any(np.abs(sums - 1) > 1e-3):
        raise ValueError(f"{name}: expected each step's probabilities to sum to 1, found a sum of {sums[np.argmax(np.abs(sums - 1))]:.4g}")
    return p


def taken(probs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """``probs[n, t, actions[n, t]]`` ``[N, T]``."""
    return np.take_along_axis(probs, actions[..., None].astype(np.int64), -1)[..., 0]


def load_propensities(path: str, traj: Trajectories, num_actions: int) -> tuple:
    """(log β(a_t|s_t) ``[N, T]``, β(·|s_t) ``[N, T, A]`` or None) from a file (discrete actions)."""
    mask = np.asarray(traj.mask)
    p = load_array(path, "propensities", ("propensities", "pscore", "behavior_probs"))
    if p.ndim == 3:
        full = check_probs(p, "propensities", mask, num_actions)
        p = taken(full, np.asarray(traj.actions))
    else:
        full = None
        if p.shape != mask.shape:
            raise ValueError(f"propensities: expected shape [N, T] = {list(mask.shape)} or [N, T, A], found {list(p.shape)}")
    real = p[mask > 0]
    if not np.all(np.isfinite(real)) or np.any(real <= 0) or np.any(real > 1 + 1e-6):
        bad = real[~(np.isfinite(real) & (real > 0) & (real <= 1 + 1e-6))][0]
        raise ValueError(f"propensities: expected probabilities in (0, 1] at the logged actions, found {bad}")
    return np.where(mask > 0, np.log(np.where(mask > 0, p, 1.0)), 0.0), full


def discrete_actions(traj: Trajectories, num_actions: int) -> np.ndarray:
    """The logged actions as int32 ``[N, T]`` in ``[0, num_actions)``."""
    a = np.asarray(traj.actions)
    mask = np.asarray(traj.mask)
    if a.shape != mask.shape:
        raise ValueError(f"actions: expected discrete actions [N, T] = {list(mask.shape)}, found shape {list(a.shape)}")
    real = a[mask > 0]
    if a.dtype.kind == "f" and np.any(real != np.round(real)):
        raise ValueError("actions: expected integer (discrete) actions")
    if real.size and (real.min() < 0 or real.max() >= num_actions):
        raise ValueError(f"actions: expected actions in [0, {num_actions}) (the target's A), found {int(real.max())}")
    return a.astype(np.int32)
