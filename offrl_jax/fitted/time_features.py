"""Time in the observation: stationary FQE on finite-horizon or time-limited data.

A T-step (or time-limited) episode's value depends on the time left, so the evaluated Q is
Q_t(o, a): a value of the time-augmented state (o, t), not of o alone. Putting t into the
observation and treating the time-out as a terminal step (discount 0) makes stationary FQE's
fixed point this time-aware value, the quantity Monte-Carlo returns of episodes cut at T
estimate, for any γ in [0, 1] (γ = 1 included, since every episode ends). Bootstrapping through
the time-out instead ("partial-episode bootstrapping") estimates the value without the limit.
See "Time Limits in Reinforcement Learning", Pardo, Tavakoli, Levdik & Kormushev 2018.

Two encodings of t, one helper (:func:`with_time`):

* ``"index"``: tabular observations o ∈ [0, O) become x = o T + t ∈ [0, O T), so a one-hot
  network with no hidden layer is a table Q_t(o, a) (and :func:`time_augmented_policy` repeats a
  stationary [O, A] policy over t);
* ``"fraction"``: feature observations [..., D] get the feature t / T appended, [o, t / T].
"""

from __future__ import annotations

from typing import Any, Optional

import jax.numpy as jnp
import numpy as np

from offrl_jax.core.validation import check_choice, check_positive_int
from offrl_jax.data import Trajectories, Transitions, to_transitions

Array = Any

__all__ = ["with_time", "time_aware_transitions", "time_augmented_policy"]

_ENCODINGS = ("index", "fraction")


def with_time(observations: Array, steps: Array, time_limit: int, *, encoding: str = "fraction") -> Array:
    """Observations with the time step t folded in: o T + t (``"index"``) or [o, t / T] (``"fraction"``).

    Args:
      observations: ``"index"``: integer observations ``[...]``; ``"fraction"``: float
        observations ``[..., D]``.
      steps: integer time steps t in [0, T), broadcastable to the observations' leading shape.
      time_limit: T, the episode time limit or horizon (Python int >= 1).
      encoding: ``"index"`` or ``"fraction"``.

    Returns:
      ``"index"``: int32 ``[...]`` in [0, O T); ``"fraction"``: ``[..., D + 1]`` in the
      observations' dtype.
    """
    check_positive_int(time_limit, "time_limit")
    check_choice(encoding, "encoding", _ENCODINGS)
    observations = jnp.asarray(observations)
    if encoding == "index":
        t = jnp.broadcast_to(jnp.asarray(steps), observations.shape)
        return (observations * time_limit + t).astype(jnp.int32)
    t = jnp.broadcast_to(jnp.asarray(steps), observations.shape[:-1]).astype(observations.dtype)
    return jnp.concatenate([observations, (t / time_limit)[..., None]], axis=-1)


def _check_observations(traj: Trajectories, time_limit: int, encoding: str, num_observations: Optional[int]) -> None:
    if not isinstance(traj, Trajectories):
        raise ValueError(f"traj: expected offrl_jax.data.Trajectories, found {type(traj).__name__}")
    obs = traj.observations
    if encoding == "fraction":
        if obs.ndim != 3 or not jnp.issubdtype(obs.dtype, jnp.floating):
            raise ValueError(f"traj.observations: expected [N, H, D] floats, found {obs.shape} {obs.dtype}")
        return
    o = np.asarray(obs)
    if o.ndim != 2 or not np.issubdtype(o.dtype, np.integer):
        raise ValueError(f"traj.observations: expected integer tabular observations [N, T], found {o.shape} {o.dtype}")
    check_positive_int(num_observations, "num_observations")
    for name, x in (("observations", o), ("next_observations", np.asarray(traj.next_observations))):
        real = x[np.asarray(traj.mask) > 0]
        if real.size and (real.max() >= num_observations or real.min() < 0):
            raise ValueError(f"num_observations: {num_observations} but {name} range over [{real.min()}, {real.max()}]")
    if o.shape[1] > time_limit:
        raise ValueError(f"time_limit: the index encoding needs T >= the trajectories' length {o.shape[1]}, found {time_limit}")


def time_aware_transitions(
    traj: Trajectories,
    time_limit: int,
    *,
    encoding: str = "fraction",
    num_observations: Optional[int] = None,
) -> Transitions:
    """Flat transitions of the time-augmented task, the time-out terminal.

    For step t of episode n: observations ``with_time(o_t, t)``, next observations
    ``with_time(o_{t+1}, t + 1)`` (the index encoding clamps t + 1 to T − 1; that row's discount
    is 0 anyway) and discounts 0 where the episode terminates *or* t + 1 = T, so the FQE fixed
    point is Q^π(o, t, a) = E[Σ_{k=t}^{min(L, T)−1} γ^{k−t} r_k | o_t = o, a_t = a]. Rows are
    trajectories started at t = 0; a row cut by a shorter rollout horizon keeps discount 1 at
    its last step. Host-side (drops padded steps).

    Args:
      traj: padded :class:`~offrl_jax.data.Trajectories` ``[N, H]`` (int observations,
        ``"index"``) or ``[N, H, D]`` (floats, ``"fraction"``).
      time_limit: T (e.g. the horizon, or ``env_params.max_steps_in_episode``).
      encoding: ``"index"`` or ``"fraction"`` (see :func:`with_time`).
      num_observations: O, required by ``"index"`` (observations are checked against it).

    Returns:
      :class:`~offrl_jax.data.Transitions` of the M real steps.

    Raises:
      ValueError: on a bad ``time_limit``/``encoding``, observations of the wrong kind, or (index)
        observations outside [0, O) or trajectories longer than T.
    """
    check_positive_int(time_limit, "time_limit")
    check_choice(encoding, "encoding", _ENCODINGS)
    _check_observations(traj, time_limit, encoding, num_observations)
    horizon = traj.observations.shape[1]
    steps = jnp.broadcast_to(jnp.arange(horizon), traj.rewards.shape)
    timeout = (steps + 1) >= time_limit
    steps_next = jnp.minimum(steps + 1, time_limit - 1) if encoding == "index" else steps + 1
    aug = traj.replace(
        observations=with_time(traj.observations, steps, time_limit, encoding=encoding),
        next_observations=with_time(traj.next_observations, steps_next, time_limit, encoding=encoding),
        discounts=jnp.where(timeout, 0.0, traj.discounts).astype(traj.discounts.dtype),
    )
    return to_transitions(aug)


def time_augmented_policy(policy: Array, time_limit: int) -> Array:
    """``[O T, A]`` table π(a | o T + t) = π(a | o) of a stationary ``[O, A]`` policy (index encoding)."""
    check_positive_int(time_limit, "time_limit")
    return jnp.repeat(jnp.asarray(policy), time_limit, axis=0)
