"""d3rlpy's ``MDPDataset`` layout: flat rows ``observations [M, ...]``, ``actions [M, ...]``,
``rewards [M]`` (or ``[M, 1]``), ``terminals [M]``, ``timeouts [M]``; an episode ends after a row
flagged terminal (true termination) or time-out (a cut by a time limit). d3rlpy is not imported.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from offrl_jax.data import Trajectories
from offrl_jax.formats._common import (
    UNKNOWN_NEXT,
    _check_traj,
    _field,
    _flags,
    _from_rows,
    _leading,
    _real_rows,
    _rewards,
)

__all__ = ["from_d3rlpy", "to_d3rlpy"]


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
    if unknown_next not in UNKNOWN_NEXT:
        raise ValueError(f"unknown_next: expected one of {UNKNOWN_NEXT}, found {unknown_next!r}")
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
