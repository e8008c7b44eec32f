"""Shared host helpers of the format converters: fields, flags, rewards, vectorised padding.

Every helper works on numpy arrays on the host and raises ``ValueError`` naming the field.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from offrl_jax.data import Trajectories

Array = Any

UNKNOWN_NEXT = ("drop", "keep", "error")


def _field(data: Any, name: str, *aliases: str, required: bool = True, where: str = "") -> Optional[np.ndarray]:
    """``data[name]`` (or an alias, or an attribute of that name) as a numpy array."""
    for key in (name, *aliases):
        if isinstance(data, Mapping):
            if key in data and data[key] is not None:
                return np.asarray(data[key])
        elif getattr(data, key, None) is not None:
            return np.asarray(getattr(data, key))
    if required:
        raise ValueError(f"{where}{name}: required field is missing")
    return None


def _flags(x: Optional[np.ndarray], name: str, m: int) -> np.ndarray:
    if x is None:
        return np.zeros(m, bool)
    x = np.asarray(x)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.shape != (m,):
        raise ValueError(f"{name}: expected shape [{m}] (as rewards), found {list(x.shape)}")
    if x.dtype != bool:
        if x.dtype.kind not in "biuf" or not np.all((x == 0) | (x == 1)):
            bad = x[(x != 0) & (x != 1)][:1] if x.dtype.kind in "biuf" else x[:1]
            raise ValueError(f"{name}: expected 0/1 (or bool) flags, found {bad.tolist()}")
        x = x != 0
    return x


def _rewards(x: np.ndarray, name: str = "rewards") -> np.ndarray:
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 1:
        raise ValueError(f"{name}: expected shape [M] (or [M, 1]), found {list(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: empty dataset (M = 0); expected at least one step")
    if x.dtype.kind != "f":
        if x.dtype.kind not in "biu":
            raise ValueError(f"{name}: expected a real numeric array, found dtype {x.dtype}")
        x = x.astype(np.float32)
    return x


def _leading(x: np.ndarray, name: str, m: int) -> None:
    if x.ndim == 0 or x.shape[0] != m:
        raise ValueError(f"{name}: expected leading length {m} (as rewards), found shape {list(x.shape)}")


def _pad(x: np.ndarray, row: np.ndarray, col: np.ndarray, n: int, t: int) -> np.ndarray:
    out = np.zeros((n, t) + x.shape[1:], dtype=x.dtype)
    out[row, col] = x
    return out


def _from_rows(
    rows: Mapping[str, np.ndarray],
    terminals: np.ndarray,
    ends: np.ndarray,
    max_length: Optional[int],
) -> Trajectories:
    """Pads flat rows into :class:`Trajectories`; ``ends`` flags the last row of each episode."""
    m = terminals.shape[0]
    ends = ends.copy()
    ends[-1] = True
    last = np.flatnonzero(ends)
    starts = np.concatenate([[0], last[:-1] + 1])
    lengths = last - starts + 1
    n, t = len(lengths), int(lengths.max())
    if max_length is not None:
        if max_length < t:
            raise ValueError(f"max_length: {max_length} is shorter than the longest episode ({t})")
        t = max_length
    row = np.repeat(np.arange(n), lengths)
    col = np.arange(m) - np.repeat(starts, lengths)
    out = {k: _pad(v, row, col, n, t) for k, v in rows.items() if v is not None}
    out["discounts"] = _pad((~terminals).astype(out["rewards"].dtype), row, col, n, t)
    out["mask"] = _pad(np.ones(m, out["rewards"].dtype), row, col, n, t)
    return Trajectories.create(**out)


def _log_probs_from_probs(p: np.ndarray, name: str) -> np.ndarray:
    p = np.asarray(p)
    if p.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected probabilities, found dtype {p.dtype}")
    bad = ~((p > 0) & (p <= 1 + 1e-6))
    if np.any(bad):
        idx = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(f"{name}: expected probabilities in (0, 1], found {p.ravel()[idx]} at index {idx}")
    return np.log(np.minimum(p, 1.0)).astype(p.dtype if p.dtype.kind == "f" else np.float32)


def _real_rows(traj: Trajectories) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Host masks of a container: real steps, last real step of each row, and lengths."""
    mask = np.asarray(traj.mask) > 0
    lengths = mask.sum(axis=1)
    last = np.zeros_like(mask)
    ok = lengths > 0
    last[np.flatnonzero(ok), lengths[ok] - 1] = True
    return mask, last, lengths


def _check_traj(traj: Any, name: str = "traj") -> Trajectories:
    if not isinstance(traj, Trajectories):
        raise ValueError(f"{name}: expected Trajectories, found {type(traj).__name__}")
    return traj
