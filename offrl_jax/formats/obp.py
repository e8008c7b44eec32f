"""OBP's bandit feedback (``context``, ``action``, ``reward``, ``pscore``): trajectories of one
step, T = 1. obp is not imported.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from offrl_jax.data import Trajectories
from offrl_jax.formats._common import _check_traj, _field, _leading, _log_probs_from_probs, _rewards

__all__ = ["from_obp", "to_obp"]


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
