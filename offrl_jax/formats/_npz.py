"""Reading log files: ``.npz`` archives, pickles and (with the optional ``h5py``) HDF5 files,
and telling the layout from the fields they hold."""

from __future__ import annotations

import os
import pickle
import zipfile
from types import SimpleNamespace
from typing import Any, Mapping

import numpy as np

__all__ = ["read_arrays", "detect_format", "unflatten_episodes", "d3rlpy_h5_episodes"]


def _read_npz(path: str) -> dict:
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("holds a single array, not an .npz archive of named arrays")
        with z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"{path}: cannot read an .npz archive ({e})") from None


def _read_pickle(path: str) -> Any:
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except Exception as e:  # any unpickling failure is a bad file
        raise ValueError(f"{path}: cannot read a pickle ({type(e).__name__}: {e})") from None


def _read_h5(path: str) -> dict:
    try:
        import h5py  # optional: only for d3rlpy's and Minari's HDF5 files
    except ImportError:
        raise ValueError(f"{path}: reading HDF5 files needs the optional package h5py (pip install h5py)") from None
    out = {}
    try:
        with h5py.File(path, "r") as f:
            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    out[name] = obj[()]
            f.visititems(visit)
    except OSError as e:
        raise ValueError(f"{path}: cannot read an HDF5 file ({e})") from None
    return out


def unflatten_episodes(arrays: Mapping[str, Any]) -> list[dict]:
    """``episode_{i}/field`` keys (Minari's HDF5 layout, or the same names in an npz) -> list."""
    eps: dict[int, dict] = {}
    for key, v in arrays.items():
        head, _, field = key.partition("/")
        if head.startswith("episode_") and field and "/" not in field:
            eps.setdefault(int(head[len("episode_"):]), {})[field] = v
    return [eps[i] for i in sorted(eps)]


def d3rlpy_h5_episodes(arrays: Mapping[str, Any]) -> SimpleNamespace:
    """d3rlpy's dump (``observations_{i}``, ``actions_{i}``, ``rewards_{i}``, ``terminated_{i}``)."""
    n = int(np.asarray(arrays["num_episodes"]))
    eps = []
    for i in range(n):
        for k in ("observations", "actions", "rewards", "terminated"):
            if f"{k}_{i}" not in arrays:
                raise ValueError(f"{k}_{i}: missing from the d3rlpy file (tuple observations are not supported)")
        eps.append(SimpleNamespace(**{k: arrays[f"{k}_{i}"] for k in ("observations", "actions", "rewards", "terminated")}))
    return SimpleNamespace(episodes=eps)


def detect_format(arrays: Mapping[str, Any]) -> str:
    """The layout (``npz``, ``d3rlpy``, ``minari``, ``scope_rl``, ``obp``) from the field names."""
    keys = set(arrays)
    if "__kind__" in keys:
        return "npz"
    if {"num_episodes", "columns"} <= keys or any(k.startswith("episode_") for k in keys):
        return "d3rlpy" if "num_episodes" in keys else "minari"
    if {"state", "step_per_trajectory"} <= keys:
        return "scope_rl"
    if {"context", "pscore"} <= keys or {"n_rounds", "context"} <= keys:
        return "obp"
    if {"observations", "rewards"} <= keys and ({"terminals"} & keys or {"timeouts"} & keys):
        return "d3rlpy"
    raise ValueError(
        f"format: cannot tell the format from the fields {sorted(keys)[:12]}; expected our npz "
        "(save_npz), d3rlpy arrays (observations, actions, rewards, terminals, timeouts), Minari "
        "episodes (episode_<i>/...), a SCOPE-RL dict (state, action, reward, step_per_trajectory) "
        "or OBP feedback (context, action, reward, pscore); or pass format="
    )


def read_arrays(path: str) -> Mapping[str, Any]:
    """The named arrays of a file, by extension: ``.pkl``/``.pickle`` (a pickled dict; unpickling
    can run code), ``.h5``/``.hdf5`` (needs ``h5py``), anything else an ``.npz`` archive."""
    ext = os.path.splitext(path)[1].lower()
    if ext in (".pkl", ".pickle"):
        arrays = _read_pickle(path)
        if not isinstance(arrays, Mapping):
            raise ValueError(f"{path}: expected a pickled dict, found {type(arrays).__name__}")
        return arrays
    if ext in (".h5", ".hdf5"):
        return _read_h5(path)
    return _read_npz(path)
