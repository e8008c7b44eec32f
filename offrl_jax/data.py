"""Offline datasets: padded trajectories and flat transitions.

Two pytree containers (``flax.struct.dataclass``) carry logged data through ``jit``, ``vmap``
and ``tree_map``:

* :class:`Trajectories`: padded ``[N, T, ...]`` arrays with a ``mask`` ``[N, T]`` that is a
  prefix of ones per row (1 on real steps, 0 on padding). Step ``t`` is discounted by
  ``gamma**t`` by the estimators.
* :class:`Transitions`: flat ``[M, ...]`` arrays of single steps.

``discounts`` is 0 where ``s'`` is a true terminal state and 1 otherwise (``gamma`` is applied
separately). A trajectory truncated by a time limit ends (``mask`` drops to 0) with
``discounts = 1`` on its last step, so bootstrapping from ``s'`` stays valid.

The raw dataclass constructors do not validate (JAX rebuilds the containers from tracers).
Use :meth:`Trajectories.create` / :meth:`Transitions.create` or the conversion functions below,
which validate on the host and raise ``ValueError`` naming the field, before anything is traced.
"""

from __future__ import annotations

import os
import zipfile
from typing import Any, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from offrl_jax.core.dtypes import float_inputs, input_dtype
from offrl_jax.core.files import atomic_write
from offrl_jax.core.learner import CheckedTrain  # noqa: F401  (its home is core.learner)
from offrl_jax.core.validation import as_host, check_finite, check_leading, check_log_probs, check_mask


Array = Any

__all__ = [
    "Trajectories",
    "Transitions",
    "from_episodes",
    "from_dict",
    "to_transitions",
    "save_npz",
    "load_npz",
    "CheckedTrain",
]

_OPTIONAL = ("behavior_log_probs", "target_log_probs", "states", "next_states")


# ----------------------------------------------------------------------------------------------
# Containers.
# ----------------------------------------------------------------------------------------------
@struct.dataclass
class Trajectories:
    """Padded trajectories ``[N, T, ...]`` with a prefix ``mask``.

    Attributes:
      observations: ``[N, T, ...]`` what the policy saw at step t (int index for tabular MDPs).
      actions: ``[N, T]`` (discrete) or ``[N, T, d]`` (continuous).
      rewards: ``[N, T]`` r_t.
      next_observations: ``[N, T, ...]`` observation after step t.
      discounts: ``[N, T]`` 0 if ``s_{t+1}`` is terminal, else 1 (gamma applied separately).
      mask: ``[N, T]`` 1 on real steps, 0 on padding; a prefix of ones per row.
      behavior_log_probs: optional ``[N, T]`` log pi_beta(a_t | s_t) (0 on padding).
      target_log_probs: optional ``[N, T]`` log pi(a_t | s_t) of a known target policy.
      states / next_states: optional ``[N, T]`` true (unaliased) states, for tabular MDPs whose
        observations alias states; exact ground truth is indexed by these.
    """

    observations: Array
    actions: Array
    rewards: Array
    next_observations: Array
    discounts: Array
    mask: Array
    behavior_log_probs: Optional[Array] = None
    target_log_probs: Optional[Array] = None
    states: Optional[Array] = None
    next_states: Optional[Array] = None

    @property
    def num_episodes(self) -> int:
        return self.rewards.shape[0]

    @property
    def max_length(self) -> int:
        return self.rewards.shape[1]

    @property
    def lengths(self) -> Array:
        """``[N]`` number of real steps of each trajectory."""
        return jnp.sum(self.mask.astype(jnp.int32), axis=-1)

    def returns(self, gamma: float) -> Array:
        """``[N]`` discounted returns G_n = sum_t gamma^t r_t over real steps."""
        t = jnp.arange(self.rewards.shape[-1], dtype=self.rewards.dtype)
        disc = jnp.broadcast_to(jnp.asarray(gamma, self.rewards.dtype) ** t, self.rewards.shape)
        return jnp.sum(self.rewards * self.mask * disc, axis=-1)

    def log_ratios(self) -> Array:
        """``[N, T]`` log pi(a_t|s_t) - log pi_beta(a_t|s_t) (0 on padding)."""
        if self.target_log_probs is None or self.behavior_log_probs is None:
            raise ValueError(
                "target_log_probs/behavior_log_probs: both are needed for importance ratios; "
                "found None"
            )
        return jnp.where(self.mask > 0, self.target_log_probs - self.behavior_log_probs, 0.0)

    @classmethod
    def create(cls, **fields: Array) -> "Trajectories":
        """Validates on the host and builds a :class:`Trajectories` of jax arrays.

        Raises:
          ValueError: naming the field, on mismatched shapes, NaN/inf, log-probabilities that are
            NaN or > 0, a mask that is not a prefix of ones, or an empty dataset.
        """
        required = ("observations", "actions", "rewards", "next_observations", "discounts", "mask")
        for f in required:
            if fields.get(f) is None:
                raise ValueError(f"{f}: required field is missing")
        unknown = set(fields) - set(required) - set(_OPTIONAL)
        if unknown:
            raise ValueError(f"unknown Trajectories fields {sorted(unknown)}")
        fields = _dtype_policy(fields)
        mask = check_mask(fields["mask"])
        nt = mask.shape
        out = {"mask": jnp.asarray(mask)}
        rewards = check_finite(fields["rewards"], "rewards")
        if rewards.shape != nt:
            raise ValueError(
                f"rewards: expected shape {list(nt)} (same as mask [N, T]), found {list(rewards.shape)}"
            )
        if not np.issubdtype(rewards.dtype, np.floating):
            rewards = rewards.astype(np.float32)
        out["rewards"] = jnp.asarray(rewards)
        out["mask"] = jnp.asarray(mask.astype(out["rewards"].dtype))
        for f in ("observations", "next_observations", "actions"):
            a = check_finite(fields[f], f)
            check_leading(a, f, nt, "[N, T] as mask")
            out[f] = jnp.asarray(a)
        if out["observations"].shape != out["next_observations"].shape:
            raise ValueError(
                f"next_observations: expected shape {list(out['observations'].shape)} "
                f"(as observations), found {list(out['next_observations'].shape)}"
            )
        d = check_finite(fields["discounts"], "discounts")
        if d.shape != nt:
            raise ValueError(f"discounts: expected shape {list(nt)}, found {list(d.shape)}")
        if np.any((d < 0) | (d > 1)):
            raise ValueError(f"discounts: expected values in [0, 1], found range [{d.min()}, {d.max()}]")
        out["discounts"] = jnp.asarray(d.astype(rewards.dtype))
        for f in ("behavior_log_probs", "target_log_probs"):
            if fields.get(f) is not None:
                lp = check_log_probs(fields[f], f)
                if lp.shape != nt:
                    raise ValueError(f"{f}: expected shape {list(nt)}, found {list(lp.shape)}")
                real = np.asarray(mask) > 0
                if f == "behavior_log_probs" and np.any(~np.isfinite(lp[real])):
                    idx = tuple(np.argwhere(real & ~np.isfinite(lp))[0].tolist())
                    raise ValueError(
                        f"{f}: behaviour probability is 0 at logged step {idx}; a logged action "
                        "must have positive behaviour probability"
                    )
                lp = np.where(real, lp, 0.0).astype(rewards.dtype)
                out[f] = jnp.asarray(lp)
        for f in ("states", "next_states"):
            if fields.get(f) is not None:
                s = as_host(fields[f], f)
                check_leading(s, f, nt, "[N, T] as mask")
                out[f] = jnp.asarray(s)
        return cls(**out)

    def validate(self) -> "Trajectories":
        """Re-runs :meth:`create`'s checks on this container; returns it unchanged."""
        Trajectories.create(**_fields(self))
        return self


@struct.dataclass
class Transitions:
    """Flat transitions ``[M, ...]``: (s, a, r, s', discount) with optional log pi_beta(a|s)."""

    observations: Array
    actions: Array
    rewards: Array
    next_observations: Array
    discounts: Array
    behavior_log_probs: Optional[Array] = None
    target_log_probs: Optional[Array] = None
    states: Optional[Array] = None
    next_states: Optional[Array] = None

    @property
    def size(self) -> int:
        return self.rewards.shape[0]

    @classmethod
    def create(cls, **fields: Array) -> "Transitions":
        """Validates on the host (shapes, NaN, log-prob range, emptiness) and builds the container."""
        required = ("observations", "actions", "rewards", "next_observations", "discounts")
        for f in required:
            if fields.get(f) is None:
                raise ValueError(f"{f}: required field is missing")
        unknown = set(fields) - set(required) - set(_OPTIONAL)
        if unknown:
            raise ValueError(f"unknown Transitions fields {sorted(unknown)}")
        fields = _dtype_policy(fields)
        rewards = check_finite(fields["rewards"], "rewards")
        if rewards.ndim != 1:
            raise ValueError(f"rewards: expected shape [M], found {list(rewards.shape)}")
        if rewards.shape[0] == 0:
            raise ValueError("rewards: empty dataset (M = 0); expected at least one transition")
        if not np.issubdtype(rewards.dtype, np.floating):
            rewards = rewards.astype(np.float32)
        m = rewards.shape
        out = {"rewards": jnp.asarray(rewards)}
        for f in ("observations", "next_observations", "actions", "discounts"):
            a = check_finite(fields[f], f)
            check_leading(a, f, m, "[M] as rewards")
            out[f] = jnp.asarray(a)
        if out["observations"].shape != out["next_observations"].shape:
            raise ValueError(
                f"next_observations: expected shape {list(out['observations'].shape)}, "
                f"found {list(out['next_observations'].shape)}"
            )
        d = np.asarray(out["discounts"])
        if d.shape != m:
            raise ValueError(f"discounts: expected shape {list(m)} (as rewards), found {list(d.shape)}")
        if np.any((d < 0) | (d > 1)):
            raise ValueError(f"discounts: expected values in [0, 1], found range [{d.min()}, {d.max()}]")
        out["discounts"] = jnp.asarray(d.astype(rewards.dtype))
        for f in ("behavior_log_probs", "target_log_probs"):
            if fields.get(f) is not None:
                lp = check_log_probs(fields[f], f)
                if lp.shape != m:
                    raise ValueError(f"{f}: expected shape {list(m)}, found {list(lp.shape)}")
                if f == "behavior_log_probs" and not np.all(np.isfinite(lp)):
                    idx = int(np.argwhere(~np.isfinite(lp))[0, 0])
                    raise ValueError(
                        f"{f}: behaviour probability is 0 at logged transition {idx}; a logged action "
                        "must have positive behaviour probability"
                    )
                out[f] = jnp.asarray(lp)
        for f in ("states", "next_states"):
            if fields.get(f) is not None:
                s = as_host(fields[f], f)
                check_leading(s, f, m, "[M] as rewards")
                out[f] = jnp.asarray(s)
        return cls(**out)


_FLOAT_FIELDS = ("rewards", "discounts", "behavior_log_probs", "target_log_probs")


def _dtype_policy(fields: dict) -> dict:
    """The package's dtype policy (:mod:`offrl_jax.core.dtypes`) for container fields: every
    field real numeric (``ValueError`` naming it otherwise); rewards, discounts and
    log-probabilities (and so the mask) in one float dtype (integers, bools and lists
    converted, half precision computed in float32); observations and actions keep their dtype
    (indices stay integral)."""
    fields = {k: v for k, v in fields.items() if v is not None}
    for k, v in fields.items():
        if isinstance(v, jax.core.Tracer):
            as_host(v, k)  # ValueError: containers are validated before tracing
        input_dtype(v, k)
    names = [f for f in _FLOAT_FIELDS if f in fields]
    converted = float_inputs([fields[f] for f in names], names)
    fields.update({f: np.asarray(x) for f, x in zip(names, converted)})
    return fields


def _fields(x) -> dict:
    return {k: getattr(x, k) for k in x.__dataclass_fields__ if getattr(x, k) is not None}


# ----------------------------------------------------------------------------------------------
# Conversions.
# ----------------------------------------------------------------------------------------------
_EPISODE_ALIASES = {
    "observations": ("observations", "obs", "observation", "s"),
    "actions": ("actions", "action", "a"),
    "rewards": ("rewards", "reward", "r"),
    "next_observations": ("next_observations", "next_obs", "next_observation", "s_next"),
    "discounts": ("discounts", "discount"),
    "terminals": ("terminals", "terminal", "dones", "done"),
    "behavior_log_probs": ("behavior_log_probs", "log_probs", "behavior_log_prob"),
    "target_log_probs": ("target_log_probs", "target_log_prob"),
    "states": ("states",),
    "next_states": ("next_states",),
}


def _get(ep: Mapping[str, Array], key: str):
    for k in _EPISODE_ALIASES[key]:
        if k in ep:
            return ep[k]
    return None


def from_episodes(
    episodes: Sequence[Mapping[str, Array]], max_length: Optional[int] = None
) -> Trajectories:
    """Pads a list of variable-length episodes into :class:`Trajectories`.

    Each episode is a dict of arrays with a leading time axis of its own length L_i: keys
    ``observations``, ``actions``, ``rewards`` and optionally ``next_observations`` (else taken
    from the next observation; the last one must then be given as ``L_i + 1`` observations),
    ``discounts`` or ``terminals`` (default: not terminal), ``behavior_log_probs``,
    ``target_log_probs``, ``states``, ``next_states``. Padding is zeros with mask 0.

    Raises:
      ValueError: on an empty list, an empty episode, or inconsistent lengths.
    """
    if len(episodes) == 0:
        raise ValueError("episodes: empty dataset; expected at least one episode")
    eps = []
    for i, ep in enumerate(episodes):
        r = np.asarray(_get(ep, "rewards")) if _get(ep, "rewards") is not None else None
        if r is None:
            raise ValueError(f"episodes[{i}]: missing 'rewards'")
        length = r.shape[0]
        if length == 0:
            raise ValueError(f"episodes[{i}]: empty episode (0 steps)")
        obs = _get(ep, "observations")
        if obs is None or _get(ep, "actions") is None:
            raise ValueError(f"episodes[{i}]: expected keys 'observations' and 'actions'")
        obs = np.asarray(obs)
        nxt = _get(ep, "next_observations")
        if nxt is None:
            if obs.shape[0] != length + 1:
                raise ValueError(
                    f"episodes[{i}].observations: without next_observations expected {length + 1} "
                    f"observations (L + 1), found {obs.shape[0]}"
                )
            obs, nxt = obs[:-1], obs[1:]
        e = {"observations": obs, "next_observations": np.asarray(nxt), "rewards": r}
        e["actions"] = np.asarray(_get(ep, "actions"))
        disc = _get(ep, "discounts")
        term = _get(ep, "terminals")
        if disc is not None:
            e["discounts"] = np.asarray(disc, dtype=np.float64)
        elif term is not None:
            e["discounts"] = 1.0 - np.asarray(term, dtype=np.float64)
        else:
            e["discounts"] = np.ones(length)
        for k in ("behavior_log_probs", "target_log_probs", "states", "next_states"):
            if _get(ep, k) is not None:
                e[k] = np.asarray(_get(ep, k))
        for k, v in e.items():
            if v.shape[:1] != (length,):
                raise ValueError(
                    f"episodes[{i}].{k}: expected leading length {length} (as rewards), "
                    f"found shape {list(v.shape)}"
                )
        eps.append(e)
    keys = set(eps[0])
    for i, e in enumerate(eps):
        if set(e) != keys:
            raise ValueError(
                f"episodes[{i}]: fields {sorted(e)} differ from episodes[0]'s {sorted(keys)}"
            )
    t_max = max(e["rewards"].shape[0] for e in eps)
    if max_length is not None:
        if max_length < t_max:
            raise ValueError(f"max_length: {max_length} is shorter than the longest episode ({t_max})")
        t_max = max_length
    n = len(eps)
    out = {}
    for k in keys:
        ref = eps[0][k]
        buf = np.zeros((n, t_max) + ref.shape[1:], dtype=np.result_type(*[e[k].dtype for e in eps]))
        for i, e in enumerate(eps):
            buf[i, : e[k].shape[0]] = e[k]
        out[k] = buf
    mask = np.zeros((n, t_max), dtype=np.float32)
    for i, e in enumerate(eps):
        mask[i, : e["rewards"].shape[0]] = 1.0
    out["rewards"] = out["rewards"].astype(np.float32) if out["rewards"].dtype.kind != "f" else out["rewards"]
    return Trajectories.create(mask=mask, **out)


def from_dict(
    data: Mapping[str, Array], max_length: Optional[int] = None, unknown_next: str = "error"
) -> Trajectories:
    """Cuts a flat D4RL/Minari-style dict into :class:`Trajectories`.

    Keys: ``observations`` ``[M, ...]``, ``actions`` ``[M, ...]``, ``rewards`` ``[M]``,
    ``terminals`` ``[M]`` (true termination after step m), ``timeouts`` ``[M]`` (time-limit
    truncation after step m), optional ``next_observations`` (else the following row's
    observation; the final row of an episode then needs ``next_observations``) and
    ``behavior_log_probs``/``log_probs`` and ``target_log_probs``. An episode ends after any step
    with a terminal or timeout flag, and at the end of the arrays. ``terminals``/``timeouts`` must
    be 0/1 flags.

    Without ``next_observations``, the last step of an episode that ends by a time-out (or at the
    end of the arrays without a terminal flag) has no known s' to bootstrap from: by default that
    raises ``ValueError``; ``unknown_next="drop"`` drops those steps (each such episode becomes
    one step shorter and ends by time-out at the step before, as d3rlpy does for its transitions).
    """
    if unknown_next not in ("error", "drop"):
        raise ValueError(f"unknown_next: expected 'error' or 'drop', found {unknown_next!r}")
    r = check_finite(data.get("rewards"), "rewards") if data.get("rewards") is not None else None
    if r is None:
        raise ValueError("rewards: required key is missing")
    m = r.shape[0]
    if m == 0:
        raise ValueError("rewards: empty dataset (M = 0)")
    for key in ("observations", "actions"):
        if data.get(key) is None:
            raise ValueError(f"{key}: required key is missing")
    flags = {}
    for name in ("terminals", "timeouts"):
        a = check_finite(data.get(name, np.zeros(m)), name)
        if a.shape != (m,):
            raise ValueError(f"{name}: expected shape [{m}] (as rewards), found {list(a.shape)}")
        if not np.all((a == 0) | (a == 1)):
            bad = a[(a != 0) & (a != 1)][0]
            raise ValueError(f"{name}: expected 0/1 (or bool) flags, found {bad}")
        flags[name] = a.astype(bool)
    term, tout = flags["terminals"], flags["timeouts"]
    obs = np.asarray(data["observations"])
    check_leading(obs, "observations", (m,), "[M] as rewards")
    nxt = data.get("next_observations")
    ends = np.flatnonzero(term | tout)
    ends = np.unique(np.concatenate([ends, [m - 1]]))
    starts = np.concatenate([[0], ends[:-1] + 1])
    if nxt is None:
        # The next observation is the following row. At an episode's last row it is unknown: the
        # row's own observation stands in where the step is terminal (discount 0, never used).
        # After a time-out s' is needed to bootstrap, so that step cannot be kept as it is.
        nxt = np.concatenate([obs[1:], obs[-1:]], axis=0)
        nxt[ends] = obs[ends]
        cut = ends[~term[ends]]
        if cut.size:
            if unknown_next == "error":
                raise ValueError(
                    f"next_observations: missing, and {cut.size} episode(s) end without termination "
                    f"(time-out or end of data, first at row {int(cut[0])}), where s' is needed to "
                    "bootstrap; pass next_observations, or unknown_next='drop' to drop those last steps"
                )
            keep_rows = np.setdiff1d(np.arange(m), cut)
            if keep_rows.size == 0:
                raise ValueError("rewards: no step left after dropping the last step of each truncated episode")
            sub = {k: np.asarray(v)[keep_rows] for k, v in data.items() if np.ndim(v) >= 1 and np.shape(v)[0] == m}
            # The step before a dropped one now ends its episode by the same time-out.
            prev = cut - 1
            prev = prev[(prev >= 0) & ~np.isin(prev, ends)]
            tflag = np.zeros(m, bool)
            tflag[prev] = True
            sub["timeouts"] = (tout | tflag)[keep_rows].astype(np.float64)
            sub["terminals"] = term[keep_rows].astype(np.float64)
            sub["next_observations"] = np.concatenate([obs[1:], obs[-1:]], axis=0)[keep_rows]
            return from_dict(sub, max_length=max_length)
    nxt = np.asarray(nxt)
    episodes = []
    for s0, e0 in zip(starts, ends):
        sl = slice(s0, e0 + 1)
        ep = {
            "observations": obs[sl],
            "next_observations": nxt[sl],
            "actions": np.asarray(data["actions"])[sl],
            "rewards": r[sl],
            "terminals": term[sl],
        }
        lp = data.get("behavior_log_probs", data.get("log_probs"))
        if lp is not None:
            ep["behavior_log_probs"] = np.asarray(lp)[sl]
        if data.get("target_log_probs") is not None:
            ep["target_log_probs"] = np.asarray(data["target_log_probs"])[sl]
        episodes.append(ep)
    return from_episodes(episodes, max_length=max_length)


def to_transitions(traj: Trajectories) -> Transitions:
    """Flattens :class:`Trajectories` to :class:`Transitions`, dropping padded steps (host-side)."""
    keep = np.asarray(traj.mask) > 0
    out = {}
    for k, v in _fields(traj).items():
        if k == "mask":
            continue
        out[k] = jnp.asarray(np.asarray(v)[keep])
    return Transitions(**out)


def save_npz(path: str | os.PathLike, data: Trajectories | Transitions) -> None:
    """Saves a container to ``.npz`` at exactly ``path`` (fields by name, plus its kind).

    The file is written to a temporary name in the same folder, flushed to disk and published by
    an atomic rename, so a failed or killed write leaves any previous file at ``path`` intact.
    """
    if not isinstance(data, (Trajectories, Transitions)):
        raise ValueError(f"data: expected Trajectories or Transitions, found {type(data).__name__}")
    arrays = {k: np.asarray(v) for k, v in _fields(data).items()}
    kind = np.array(type(data).__name__)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, __kind__=kind, **arrays)

    atomic_write(path, write)


def load_npz(path: str | os.PathLike) -> Trajectories | Transitions:
    """Loads a container saved by :func:`save_npz`, validating it.

    Raises:
      ValueError: naming the file, if it is missing, not an ``.npz`` archive, has no container
        kind, or its fields fail the container's checks.
    """
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"{path}: cannot read an .npz archive written by save_npz ({e})") from e
    with z:
        if "__kind__" not in z.files:
            raise ValueError(f"{path}: not a file written by save_npz (no '__kind__' entry)")
        kind = str(z["__kind__"])
        fields = {k: z[k] for k in z.files if k != "__kind__"}
    cls = {"Trajectories": Trajectories, "Transitions": Transitions}.get(kind)
    if cls is None:
        raise ValueError(f"{path}: unknown container kind {kind!r}")
    return cls.create(**fields)
