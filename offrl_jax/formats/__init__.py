"""The data formats of other offline-RL libraries, read and written without importing them.

Converters between :class:`~offrl_jax.data.Trajectories` and the array layouts of

* **d3rlpy** ``MDPDataset``: flat rows ``observations [M, ...]``, ``actions [M, ...]``,
  ``rewards [M]`` (or ``[M, 1]``), ``terminals [M]``, ``timeouts [M]``; an episode ends after a
  row flagged terminal (true termination) or time-out (a cut by a time limit);
* **Minari** episodes: ``observations [L + 1, ...]``, ``actions [L, ...]``, ``rewards [L]``,
  ``terminations [L]``, ``truncations [L]`` per episode;
* **SCOPE-RL**'s logged dataset dict (flat rows of ``n_trajectories`` fixed-length trajectories
  of ``step_per_trajectory`` steps: ``state``, ``action``, ``reward``, ``done``, ``terminal``,
  ``pscore``) and its OPE input dict (``evaluation_policy_action_dist`` and
  ``state_action_value_prediction``, ``[size, A]``);
* **OBP** bandit feedback (``context``, ``action``, ``reward``, ``pscore``): trajectories of one
  step, T = 1;

one module per library (:mod:`.d3rlpy`, :mod:`.minari`, :mod:`.scope_rl`, :mod:`.obp`; their
names are re-exported here), and :func:`load_logs` / :func:`save_logs` for files (``.npz`` of
those arrays, and d3rlpy's and Minari's HDF5 files when ``h5py`` is installed; it is not a
dependency).

Termination and time-out stay apart: ``discounts`` is 0 only after a true termination; a
time-out ends the trajectory (``mask`` drops to 0) with ``discounts = 1``. Variable lengths are
padded, with ``mask`` 0 on padding. Where a format does not record the observation after a
time-out (d3rlpy), ``unknown_next`` says what to do with that last step: ``"drop"`` it (as d3rlpy
does when it forms transitions), ``"keep"`` it with its own observation standing in for s' (the
importance-sampling estimators never read s'; a fitted Q̂ would bootstrap from the stand-in), or
``"error"``.

Every reader validates on the host and raises ``ValueError`` naming the field (missing field,
mismatched lengths, bad flags or probabilities) before anything is traced.
"""

from __future__ import annotations

import os

import numpy as np

from offrl_jax.core.files import atomic_write
from offrl_jax.data import Trajectories
from offrl_jax.formats._common import _check_traj
from offrl_jax.formats._npz import d3rlpy_h5_episodes, detect_format, read_arrays, unflatten_episodes
from offrl_jax.formats.d3rlpy import from_d3rlpy, to_d3rlpy
from offrl_jax.formats.minari import from_minari, to_minari
from offrl_jax.formats.obp import from_obp, to_obp
from offrl_jax.formats.scope_rl import from_scope_rl, from_scope_rl_input_dict, to_scope_rl, to_scope_rl_input_dict

__all__ = [
    "from_d3rlpy",
    "to_d3rlpy",
    "from_minari",
    "to_minari",
    "from_scope_rl",
    "to_scope_rl",
    "from_scope_rl_input_dict",
    "to_scope_rl_input_dict",
    "from_obp",
    "to_obp",
    "load_logs",
    "save_logs",
    "FORMATS",
]

FORMATS = ("npz", "d3rlpy", "minari", "scope_rl", "obp")


def load_logs(path: str | os.PathLike, *, format: str = "auto", unknown_next: str = "drop") -> Trajectories:
    """Reads logged trajectories from a file, in our layout or a peer library's.

    Files: ``.npz`` (our :func:`~offrl_jax.data.save_npz` layout; d3rlpy arrays ``observations``,
    ``actions``, ``rewards``, ``terminals``, ``timeouts``; Minari episodes as
    ``episode_<i>/observations`` ... keys; a SCOPE-RL logged dataset dict; OBP bandit feedback),
    ``.pkl``/``.pickle`` (a SCOPE-RL or OBP dict, or a dict of d3rlpy arrays; unpickling can run
    code, so load only trusted files) and ``.h5``/``.hdf5`` (d3rlpy's ``dump`` and Minari's
    ``main_data.hdf5``; needs ``h5py``, which is optional).

    Args:
      path: the file.
      format: ``"auto"`` (from the fields) or one of ``npz``, ``d3rlpy``, ``minari``,
        ``scope_rl``, ``obp``.
      unknown_next: for d3rlpy data, the last step of an episode cut by a time-out, whose s' is
        not recorded: ``"drop"``, ``"keep"`` or ``"error"`` (see :func:`from_d3rlpy`).

    Returns:
      :class:`~offrl_jax.data.Trajectories`, validated.

    Raises:
      ValueError: naming the file or the field: missing file, unreadable file, unknown format,
        missing fields, mismatched lengths, bad flags or probabilities.
    """
    if format not in ("auto",) + FORMATS:
        raise ValueError(f"format: expected 'auto' or one of {FORMATS}, found {format!r}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    arrays = read_arrays(path)
    kind = detect_format(arrays) if format == "auto" else format
    if kind == "npz":
        if str(arrays.get("__kind__", "Trajectories")) != "Trajectories":
            raise ValueError(f"{path}: holds {arrays['__kind__']}; expected Trajectories")
        return Trajectories.create(**{k: v for k, v in arrays.items() if k != "__kind__"})
    if kind == "d3rlpy":
        if "num_episodes" in arrays:
            return from_d3rlpy(d3rlpy_h5_episodes(arrays), unknown_next=unknown_next)
        return from_d3rlpy(arrays, unknown_next=unknown_next)
    if kind == "minari":
        eps = unflatten_episodes(arrays)
        if not eps:
            raise ValueError(f"{path}: no 'episode_<i>/<field>' entries (Minari layout)")
        return from_minari(eps)
    scalars = {k: (v.item() if isinstance(v, np.ndarray) and v.ndim == 0 else v) for k, v in arrays.items()}
    if kind == "scope_rl":
        return from_scope_rl(scalars)
    return from_obp(scalars)


def save_logs(path: str | os.PathLike, traj: Trajectories, *, format: str = "npz") -> None:
    """Writes ``traj`` as an ``.npz`` in our layout or a peer's (``d3rlpy``, ``minari``,
    ``scope_rl``, ``obp``), atomically; :func:`load_logs` reads each back."""
    if format not in FORMATS:
        raise ValueError(f"format: expected one of {FORMATS}, found {format!r}")
    traj = _check_traj(traj)
    if format == "npz":
        arrays = {k: np.asarray(getattr(traj, k)) for k in traj.__dataclass_fields__ if getattr(traj, k) is not None}
        arrays["__kind__"] = np.array("Trajectories")
    elif format == "d3rlpy":
        arrays = to_d3rlpy(traj)
    elif format == "minari":
        arrays = {f"episode_{i}/{k}": v for i, ep in enumerate(to_minari(traj)) for k, v in ep.items()}
    elif format == "scope_rl":
        arrays = {k: np.asarray(v) for k, v in to_scope_rl(traj).items() if v is not None and k != "info"}
    else:
        arrays = {k: np.asarray(v) for k, v in to_obp(traj).items() if v is not None}

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)
