"""Minari's episodes: ``observations [L + 1, ...]``, ``actions [L, ...]``, ``rewards [L]``,
``terminations [L]``, ``truncations [L]`` per episode. minari is not imported.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

import numpy as np

from offrl_jax.data import Trajectories
from offrl_jax.formats._common import _check_traj, _field, _flags, _from_rows, _leading, _real_rows, _rewards

__all__ = ["from_minari", "to_minari"]


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
