"""SCOPE-RL's logged dataset dict and OPE input dict. scope-rl is not imported.

The logged dataset holds flat rows of ``n_trajectories`` fixed-length trajectories of
``step_per_trajectory`` steps (``state``, ``action``, ``reward``, ``done``, ``terminal``,
``pscore``); the OPE input dict holds ``evaluation_policy_action_dist`` and
``state_action_value_prediction`` ``[size, A]`` per evaluated policy.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from offrl_jax.data import Trajectories
from offrl_jax.formats._common import _check_traj, _field, _flags, _leading, _log_probs_from_probs, _rewards

Array = Any

__all__ = ["from_scope_rl", "to_scope_rl", "from_scope_rl_input_dict", "to_scope_rl_input_dict"]


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
