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

and :func:`load_logs` / :func:`save_logs` for files (``.npz`` of those arrays, and d3rlpy's and
Minari's HDF5 files when ``h5py`` is installed; it is not a dependency).

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
import pickle
import zipfile
from types import SimpleNamespace
from typing import Any, Iterable, Mapping, Optional

import numpy as np

from offrl_jax.core.files import atomic_write
from offrl_jax.data import Trajectories

Array = Any

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
_UNKNOWN_NEXT = ("drop", "keep", "error")


# ----------------------------------------------------------------------------------------------
# Helpers: host arrays, flags, vectorised padding.
# ----------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------
# d3rlpy.
# ----------------------------------------------------------------------------------------------
def from_d3rlpy(
    dataset: Any,
    *,
    unknown_next: str = "drop",
    max_length: Optional[int] = None,
) -> Trajectories:
    """d3rlpy ``MDPDataset`` (or its arrays) -> :class:`Trajectories`.

    ``dataset`` is a d3rlpy ``ReplayBuffer``/``MDPDataset`` (read through its ``episodes``, each
    with ``observations [L, ...]``, ``actions``, ``rewards [L, 1]`` and ``terminated``; d3rlpy is
    not imported) or a mapping of flat arrays ``observations [M, ...]``, ``actions [M, ...]``,
    ``rewards [M]`` or ``[M, 1]``, ``terminals [M]``, optional ``timeouts [M]`` (the arguments of
    ``MDPDataset(...)``), optional ``next_observations [M, ...]`` and ``behavior_log_probs [M]``.

    An episode ends after a row flagged terminal (``discounts`` 0 there) or time-out, and at the
    end of the arrays. Within an episode s' is the next row's observation. After a time-out (or
    at the end of the arrays without a terminal flag) s' is not recorded: ``unknown_next``
    chooses ``"drop"`` (drop that last step, as d3rlpy does when it forms transitions; the
    episode then ends by time-out one step earlier), ``"keep"`` (keep it with s' = s, a
    stand-in no importance-sampling estimator reads) or ``"error"``.

    Raises:
      ValueError: naming the field: missing, mismatched lengths, non-0/1 flags, NaN.
    """
    if unknown_next not in _UNKNOWN_NEXT:
        raise ValueError(f"unknown_next: expected one of {_UNKNOWN_NEXT}, found {unknown_next!r}")
    if not isinstance(dataset, Mapping) and hasattr(dataset, "episodes"):
        eps = list(dataset.episodes)
        if not eps:
            raise ValueError("dataset.episodes: empty dataset; expected at least one episode")
        lens = [int(np.shape(e.rewards)[0]) for e in eps]
        term = np.zeros(sum(lens), bool)
        tout = np.zeros(sum(lens), bool)
        ends = np.cumsum(lens) - 1
        flag = np.array([bool(e.terminated) for e in eps])
        term[ends[flag]] = True
        tout[ends[~flag]] = True
        dataset = {
            "observations": np.concatenate([np.asarray(e.observations) for e in eps]),
            "actions": np.concatenate([np.asarray(e.actions) for e in eps]),
            "rewards": np.concatenate([np.asarray(e.rewards).reshape(-1) for e in eps]),
            "terminals": term,
            "timeouts": tout,
        }
    rewards = _rewards(_field(dataset, "rewards", "reward"))
    m = rewards.shape[0]
    obs = _field(dataset, "observations", "observation")
    actions = _field(dataset, "actions", "action")
    _leading(obs, "observations", m)
    _leading(actions, "actions", m)
    if actions.ndim == 2 and actions.shape[1] == 1 and actions.dtype.kind in "iu":
        actions = actions[:, 0]
    term = _flags(_field(dataset, "terminals", "terminal", required=False), "terminals", m)
    tout = _flags(_field(dataset, "timeouts", "timeout", required=False), "timeouts", m) & ~term
    blp = _field(dataset, "behavior_log_probs", "log_probs", required=False)
    if blp is not None:
        _leading(blp, "behavior_log_probs", m)
    nxt = _field(dataset, "next_observations", "next_observation", required=False)
    ends = term | tout
    ends[-1] = True
    if nxt is not None:
        _leading(nxt, "next_observations", m)
    else:
        nxt = np.concatenate([obs[1:], obs[-1:]], axis=0)
        nxt[ends] = obs[ends]
        cut = ends & ~term
        if np.any(cut) and unknown_next == "error":
            raise ValueError(
                f"next_observations: missing, and {int(cut.sum())} episode(s) end without termination "
                f"(time-out or end of data, first at row {int(np.flatnonzero(cut)[0])}); pass "
                "unknown_next='drop' or 'keep'"
            )
        if np.any(cut) and unknown_next == "drop":
            keep = ~cut
            if not np.any(keep):
                raise ValueError("rewards: no step left after dropping the last step of each timed-out episode")
            # The row before a dropped one now ends its episode by the same time-out.
            prev = np.flatnonzero(cut) - 1
            prev = prev[(prev >= 0) & ~ends[np.maximum(prev, 0)]]
            ends = ends.copy()
            ends[prev] = True
            obs, actions, rewards, nxt, term, ends = (x[keep] for x in (obs, actions, rewards, nxt, term, ends))
            blp = None if blp is None else blp[keep]
    rows = {
        "observations": obs,
        "actions": actions,
        "rewards": rewards,
        "next_observations": nxt,
        "behavior_log_probs": blp,
    }
    return _from_rows(rows, term, ends, max_length)


def to_d3rlpy(traj: Trajectories) -> dict:
    """:class:`Trajectories` -> the arguments of d3rlpy's ``MDPDataset(...)``.

    Returns a dict of flat arrays over real steps: ``observations``, ``actions``, ``rewards``
    ``[M]``, ``terminals`` ``[M]`` (1 where ``discounts`` is 0) and ``timeouts`` ``[M]`` (1 on the
    last real step of a trajectory that does not end by termination), plus ``next_observations``
    (d3rlpy does not take it; :func:`from_d3rlpy` reads it back). Use
    ``d3rlpy.dataset.MDPDataset(**{k: v for k, v in out.items() if k != "next_observations"})``.
    """
    traj = _check_traj(traj)
    real, last, _ = _real_rows(traj)
    term = (np.asarray(traj.discounts) == 0) & real
    out = {
        "observations": np.asarray(traj.observations)[real],
        "actions": np.asarray(traj.actions)[real],
        "rewards": np.asarray(traj.rewards)[real],
        "terminals": term[real].astype(np.float32),
        "timeouts": (last & ~term)[real].astype(np.float32),
        "next_observations": np.asarray(traj.next_observations)[real],
    }
    return out


# ----------------------------------------------------------------------------------------------
# Minari.
# ----------------------------------------------------------------------------------------------
def from_minari(episodes: Iterable[Any], *, max_length: Optional[int] = None) -> Trajectories:
    """Minari episodes -> :class:`Trajectories`.

    Each episode (a ``minari.EpisodeData`` or a mapping; minari is not imported) has
    ``observations [L + 1, ...]``, ``actions [L, ...]``, ``rewards [L]``, ``terminations [L]``
    and ``truncations [L]``. s_t' = observations[t + 1] is always recorded, so a truncated
    episode keeps its last step with ``discounts = 1``; ``discounts`` is 0 after a termination.
    Optional per-episode ``behavior_log_probs [L]``.

    Raises:
      ValueError: naming the episode and field: missing, wrong lengths, non-0/1 flags.
    """
    cols: dict[str, list] = {k: [] for k in ("observations", "next_observations", "actions", "rewards", "blp")}
    term, ends = [], []
    for i, ep in enumerate(episodes):
        where = f"episodes[{i}]."
        r = _rewards(_field(ep, "rewards", where=where), f"{where}rewards")
        length = r.shape[0]
        obs = _field(ep, "observations", where=where)
        if obs.dtype == object:
            raise ValueError(f"{where}observations: expected an array (dict observation spaces are not supported)")
        if obs.shape[:1] != (length + 1,):
            raise ValueError(
                f"{where}observations: expected leading length {length + 1} (L + 1 with L = {length} "
                f"rewards), found shape {list(obs.shape)}"
            )
        a = _field(ep, "actions", where=where)
        _leading(a, f"{where}actions", length)
        t_flag = _flags(_field(ep, "terminations", "terminals", required=False, where=where), f"{where}terminations", length)
        _flags(_field(ep, "truncations", "timeouts", required=False, where=where), f"{where}truncations", length)
        blp = _field(ep, "behavior_log_probs", required=False, where=where)
        if blp is not None:
            _leading(blp, f"{where}behavior_log_probs", length)
        cols["observations"].append(obs[:-1])
        cols["next_observations"].append(obs[1:])
        cols["actions"].append(a)
        cols["rewards"].append(r)
        cols["blp"].append(blp)
        term.append(t_flag)
        e = np.zeros(length, bool)
        e[-1] = True
        ends.append(e)
    if not term:
        raise ValueError("episodes: empty dataset; expected at least one episode")
    have = [b is not None for b in cols["blp"]]
    if any(have) and not all(have):
        raise ValueError(f"episodes[{have.index(not have[0])}].behavior_log_probs: given for some episodes only")
    rows = {k: np.concatenate(v) for k, v in cols.items() if k != "blp"}
    rows["behavior_log_probs"] = np.concatenate(cols["blp"]) if all(have) else None
    return _from_rows(rows, np.concatenate(term), np.concatenate(ends), max_length)


def to_minari(traj: Trajectories) -> list[dict]:
    """:class:`Trajectories` -> a list of Minari episode dicts (the ``buffer`` argument of
    ``minari.create_dataset_from_buffers``): ``observations [L + 1, ...]`` (the real steps'
    observations and the last next observation), ``actions``, ``rewards``, ``terminations``
    (``discounts`` 0) and ``truncations`` (the last step when it is not a termination)."""
    traj = _check_traj(traj)
    real, last, lengths = _real_rows(traj)
    obs, nxt = np.asarray(traj.observations), np.asarray(traj.next_observations)
    act, rew, disc = np.asarray(traj.actions), np.asarray(traj.rewards), np.asarray(traj.discounts)
    out = []
    for i, length in enumerate(lengths.tolist()):
        if length == 0:
            continue
        term = disc[i, :length] == 0
        out.append(
            {
                "observations": np.concatenate([obs[i, :length], nxt[i, length - 1 : length]], axis=0),
                "actions": act[i, :length],
                "rewards": rew[i, :length],
                "terminations": term,
                "truncations": last[i, :length] & ~term,
            }
        )
    return out


# ----------------------------------------------------------------------------------------------
# SCOPE-RL.
# ----------------------------------------------------------------------------------------------
def from_scope_rl(logged_dataset: Mapping[str, Any]) -> Trajectories:
    """SCOPE-RL logged dataset dict -> :class:`Trajectories` ``[n_trajectories, step_per_trajectory]``.

    Keys: ``state [size, d]``, ``action [size]`` (or ``[size, d_a]`` for continuous actions),
    ``reward [size]``, ``terminal [size]`` (``discounts`` 0 there), ``pscore [size]``
    (behaviour probabilities of the logged actions; read as ``behavior_log_probs`` for discrete
    actions), ``n_trajectories`` and ``step_per_trajectory`` (size = their product). SCOPE-RL's
    trajectories all have ``step_per_trajectory`` steps (``mask`` is all ones) and its
    estimators read them that way. s' is the next row's state within a trajectory; at a
    trajectory's last step, which SCOPE-RL flags terminal, the state itself stands in.
    """
    if not isinstance(logged_dataset, Mapping):
        raise ValueError(f"logged_dataset: expected a dict, found {type(logged_dataset).__name__}")
    r = _rewards(_field(logged_dataset, "reward"), "reward")
    size = r.shape[0]
    n = int(logged_dataset.get("n_trajectories", 0) or 0)
    t = int(logged_dataset.get("step_per_trajectory", 0) or 0)
    if n <= 0 or t <= 0:
        raise ValueError("step_per_trajectory: n_trajectories and step_per_trajectory are required (positive)")
    if n * t != size:
        raise ValueError(
            f"reward: expected n_trajectories * step_per_trajectory = {n} * {t} = {n * t} rows, found {size}"
        )
    s = _field(logged_dataset, "state")
    a = _field(logged_dataset, "action")
    _leading(s, "state", size)
    _leading(a, "action", size)
    discrete = logged_dataset.get("action_type", "discrete") == "discrete"
    if discrete:
        if a.ndim != 1 or not np.all(np.mod(a, 1) == 0):
            raise ValueError(f"action: expected integer action indices [size] for action_type 'discrete', found shape {list(a.shape)}")
        a = a.astype(np.int32)
    term = _flags(_field(logged_dataset, "terminal", required=False), "terminal", size)
    p = _field(logged_dataset, "pscore", required=False)
    fields = {}
    if p is not None and discrete:
        if p.shape != (size,):
            raise ValueError(f"pscore: expected shape [{size}], found {list(p.shape)}")
        fields["behavior_log_probs"] = _log_probs_from_probs(p, "pscore").reshape(n, t)
    s3 = s.reshape((n, t) + s.shape[1:])
    nxt = np.concatenate([s3[:, 1:], s3[:, -1:]], axis=1)
    return Trajectories.create(
        observations=s3,
        next_observations=nxt,
        actions=a.reshape((n, t) + a.shape[1:]),
        rewards=r.reshape(n, t),
        discounts=(~term).reshape(n, t).astype(r.dtype),
        mask=np.ones((n, t), r.dtype),
        **fields,
    )


def to_scope_rl(
    traj: Trajectories,
    *,
    n_actions: Optional[int] = None,
    behavior_policy: str = "behavior",
    dataset_id: int = 0,
) -> dict:
    """:class:`Trajectories` (all rows full length) -> a SCOPE-RL logged dataset dict.

    ``pscore`` is exp(``behavior_log_probs``) (required: SCOPE-RL's estimators need it);
    ``done``/``terminal`` are 1 where ``discounts`` is 0 and on each trajectory's last step, as
    SCOPE-RL records them. ``n_actions`` (discrete actions) defaults to max action + 1.

    Raises:
      ValueError: if trajectories have different lengths (SCOPE-RL needs one length) or
        ``behavior_log_probs`` is missing.
    """
    traj = _check_traj(traj)
    mask = np.asarray(traj.mask)
    if not np.all(mask > 0):
        raise ValueError("traj.mask: SCOPE-RL needs every trajectory to have the same length (no padding)")
    if traj.behavior_log_probs is None:
        raise ValueError("traj.behavior_log_probs: required for SCOPE-RL's pscore")
    n, t = mask.shape
    act = np.asarray(traj.actions)
    discrete = act.ndim == 2 and act.dtype.kind in "iu"
    obs = np.asarray(traj.observations).reshape(n * t, -1)
    done = (np.asarray(traj.discounts) == 0).copy()
    done[:, -1] = True
    if discrete and n_actions is None:
        n_actions = int(act.max()) + 1
    return {
        "size": n * t,
        "n_trajectories": n,
        "step_per_trajectory": t,
        "action_type": "discrete" if discrete else "continuous",
        "n_actions": n_actions if discrete else None,
        "action_dim": None if discrete else int(np.prod(act.shape[2:])),
        "action_meaning": None,
        "action_keys": None,
        "state_dim": obs.shape[1],
        "state_keys": None,
        "state": obs,
        "action": act.reshape((n * t,) + act.shape[2:]),
        "reward": np.asarray(traj.rewards).reshape(-1),
        "done": done.reshape(-1).astype(np.float64),
        "terminal": done.reshape(-1).astype(np.float64),
        "info": {},
        "pscore": np.exp(np.asarray(traj.behavior_log_probs)).reshape(-1),
        "behavior_policy": behavior_policy,
        "dataset_id": dataset_id,
    }


def to_scope_rl_input_dict(
    target_probs: Array,
    q_values: Optional[Array] = None,
    *,
    gamma: float,
    target_policy: str = "target",
    behavior_policy: str = "behavior",
    dataset_id: int = 0,
) -> dict:
    """Target action distributions ``[N, T, A]`` (and Q̂ ``[N, T, A]``) -> SCOPE-RL's OPE
    input dict ``{target_policy: {...}}`` for ``OffPolicyEvaluation.estimate_policy_value``.

    ``state_action_value_prediction`` is Q̂ ``[N*T, A]`` and ``initial_state_value_prediction``
    is V̂(s_0) = Σ_a π(a|s_0) Q̂(s_0, a) ``[N]``; both None without Q̂.
    """
    p = np.asarray(target_probs)
    if p.ndim != 3:
        raise ValueError(f"target_probs: expected shape [N, T, A], found {list(p.shape)}")
    n, t, a = p.shape
    entry = {
        "evaluation_policy_action_dist": p.reshape(n * t, a),
        "evaluation_policy_action": None,
        "state_action_value_prediction": None,
        "initial_state_value_prediction": None,
        "state_action_marginal_importance_weight": None,
        "state_marginal_importance_weight": None,
        "on_policy_policy_value": None,
        "gamma": float(gamma),
        "behavior_policy": behavior_policy,
        "evaluation_policy": target_policy,
        "dataset_id": dataset_id,
    }
    if q_values is not None:
        q = np.asarray(q_values)
        if q.shape != p.shape:
            raise ValueError(f"q_values: expected shape {list(p.shape)} (as target_probs), found {list(q.shape)}")
        entry["state_action_value_prediction"] = q.reshape(n * t, a)
        entry["initial_state_value_prediction"] = np.sum(p[:, 0] * q[:, 0], axis=-1)
    return {target_policy: entry}


def from_scope_rl_input_dict(
    input_dict: Mapping[str, Any], step_per_trajectory: int, *, target_policy: Optional[str] = None
) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """SCOPE-RL OPE input dict -> ``(target_probs [N, T, A], q_values [N, T, A] or None)``.

    ``target_policy`` picks the entry (default: the only one); T = ``step_per_trajectory``.
    """
    if not isinstance(input_dict, Mapping) or not input_dict:
        raise ValueError("input_dict: expected a non-empty dict {policy name: inputs}")
    if target_policy is None:
        if len(input_dict) != 1:
            raise ValueError(f"target_policy: the dict holds {sorted(input_dict)}; name one")
        target_policy = next(iter(input_dict))
    if target_policy not in input_dict:
        raise ValueError(f"target_policy: {target_policy!r} not in input_dict ({sorted(input_dict)})")
    entry = input_dict[target_policy]
    p = _field(entry, "evaluation_policy_action_dist")
    if p.ndim != 2 or p.shape[0] % step_per_trajectory:
        raise ValueError(
            f"evaluation_policy_action_dist: expected [size, A] with size a multiple of "
            f"step_per_trajectory = {step_per_trajectory}, found {list(p.shape)}"
        )
    shape = (p.shape[0] // step_per_trajectory, step_per_trajectory, p.shape[1])
    q = _field(entry, "state_action_value_prediction", required=False)
    if q is not None and q.shape != p.shape:
        raise ValueError(f"state_action_value_prediction: expected shape {list(p.shape)}, found {list(q.shape)}")
    return p.reshape(shape), None if q is None else q.reshape(shape)


# ----------------------------------------------------------------------------------------------
# OBP.
# ----------------------------------------------------------------------------------------------
def from_obp(bandit_feedback: Mapping[str, Any]) -> Trajectories:
    """OBP bandit feedback -> :class:`Trajectories` of one step each (``[n_rounds, 1]``).

    Keys: ``context [n, d]``, ``action [n]``, ``reward [n]``, ``pscore [n]`` (behaviour
    probabilities of the logged actions, read as ``behavior_log_probs``). Each round is a
    trajectory that terminates after its step (``discounts`` 0).
    """
    if not isinstance(bandit_feedback, Mapping):
        raise ValueError(f"bandit_feedback: expected a dict, found {type(bandit_feedback).__name__}")
    r = _rewards(_field(bandit_feedback, "reward"), "reward")
    n = r.shape[0]
    x = _field(bandit_feedback, "context")
    a = _field(bandit_feedback, "action")
    _leading(x, "context", n)
    if a.shape != (n,) or a.dtype.kind not in "iuf" or not np.all(np.mod(a, 1) == 0):
        raise ValueError(f"action: expected integer action indices of shape [{n}], found {a.dtype} {list(a.shape)}")
    fields = {}
    p = _field(bandit_feedback, "pscore", required=False)
    if p is not None:
        if p.shape != (n,):
            raise ValueError(f"pscore: expected shape [{n}], found {list(p.shape)}")
        fields["behavior_log_probs"] = _log_probs_from_probs(p, "pscore")[:, None]
    return Trajectories.create(
        observations=x[:, None],
        next_observations=x[:, None],
        actions=a.astype(np.int32)[:, None],
        rewards=r[:, None],
        discounts=np.zeros((n, 1), r.dtype),
        mask=np.ones((n, 1), r.dtype),
        **fields,
    )


def to_obp(traj: Trajectories, *, n_actions: Optional[int] = None) -> dict:
    """:class:`Trajectories` with T = 1 -> OBP bandit feedback (``n_rounds``, ``n_actions``,
    ``context``, ``action``, ``reward``, ``pscore``, ``position``)."""
    traj = _check_traj(traj)
    if traj.max_length != 1:
        raise ValueError(f"traj: OBP bandit feedback has one step per round (T = 1), found T = {traj.max_length}")
    a = np.asarray(traj.actions)[:, 0]
    if a.dtype.kind not in "iu":
        raise ValueError("traj.actions: OBP needs discrete action indices")
    ctx = np.asarray(traj.observations)[:, 0]
    out = {
        "n_rounds": int(a.shape[0]),
        "n_actions": int(n_actions if n_actions is not None else a.max() + 1),
        "context": ctx.reshape(a.shape[0], -1),
        "action": a.astype(np.int64),
        "reward": np.asarray(traj.rewards)[:, 0],
        "position": None,
        "pscore": None,
    }
    if traj.behavior_log_probs is not None:
        out["pscore"] = np.exp(np.asarray(traj.behavior_log_probs)[:, 0])
    return out


# ----------------------------------------------------------------------------------------------
# Files.
# ----------------------------------------------------------------------------------------------
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


def _unflatten_episodes(arrays: Mapping[str, Any]) -> list[dict]:
    """``episode_{i}/field`` keys (Minari's HDF5 layout, or the same names in an npz) -> list."""
    eps: dict[int, dict] = {}
    for key, v in arrays.items():
        head, _, field = key.partition("/")
        if head.startswith("episode_") and field and "/" not in field:
            eps.setdefault(int(head[len("episode_"):]), {})[field] = v
    return [eps[i] for i in sorted(eps)]


def _d3rlpy_h5_episodes(arrays: Mapping[str, Any]) -> SimpleNamespace:
    """d3rlpy's dump (``observations_{i}``, ``actions_{i}``, ``rewards_{i}``, ``terminated_{i}``)."""
    n = int(np.asarray(arrays["num_episodes"]))
    eps = []
    for i in range(n):
        for k in ("observations", "actions", "rewards", "terminated"):
            if f"{k}_{i}" not in arrays:
                raise ValueError(f"{k}_{i}: missing from the d3rlpy file (tuple observations are not supported)")
        eps.append(SimpleNamespace(**{k: arrays[f"{k}_{i}"] for k in ("observations", "actions", "rewards", "terminated")}))
    return SimpleNamespace(episodes=eps)


def _detect(arrays: Mapping[str, Any]) -> str:
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
    ext = os.path.splitext(path)[1].lower()
    if ext in (".pkl", ".pickle"):
        arrays = _read_pickle(path)
        if not isinstance(arrays, Mapping):
            raise ValueError(f"{path}: expected a pickled dict, found {type(arrays).__name__}")
    elif ext in (".h5", ".hdf5"):
        arrays = _read_h5(path)
    else:
        arrays = _read_npz(path)
    kind = _detect(arrays) if format == "auto" else format
    if kind == "npz":
        if str(arrays.get("__kind__", "Trajectories")) != "Trajectories":
            raise ValueError(f"{path}: holds {arrays['__kind__']}; expected Trajectories")
        return Trajectories.create(**{k: v for k, v in arrays.items() if k != "__kind__"})
    if kind == "d3rlpy":
        if "num_episodes" in arrays:
            return from_d3rlpy(_d3rlpy_h5_episodes(arrays), unknown_next=unknown_next)
        return from_d3rlpy(arrays, unknown_next=unknown_next)
    if kind == "minari":
        eps = _unflatten_episodes(arrays)
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
