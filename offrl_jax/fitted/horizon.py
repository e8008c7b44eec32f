"""Fitted Q evaluation on finite-horizon tabular data, and its Q-hat as DR / WDR inputs.

A T-step episode's value depends on the time left, so the evaluated Q is Q_t(o, a). Here the
step is folded into the observation, x = o T + t, and the last step (t = T - 1) is terminal
(discount 0): stationary FQE on x then estimates the horizon-aware Q_t, for any gamma in [0, 1]
(gamma = 1 included, since every episode ends). With one-hot inputs and no hidden layer the
network is a table, and FQE converges to the certainty-equivalence Q of the data.

:func:`cross_fitted_fqe_terms` trains on one half of the trajectories and evaluates Q-hat on the
other (and vice versa), so the Q-hat that corrects a trajectory never saw it: DR stays unbiased
(Jiang & Li 2016 assume an independent Q-hat). See "Batch Policy Learning under Constraints",
Le, Voloshin & Yue 2019 (FQE).
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.data import Trajectories, Transitions
from offrl_jax.fitted.train import FittedQConfig, dr_inputs, make_train

Array = Any

__all__ = ["time_augmented_transitions", "time_augmented_policy", "cross_fitted_fqe_terms"]


def _check_tabular(traj: Trajectories, num_observations: int) -> np.ndarray:
    if not isinstance(traj, Trajectories):
        raise ValueError(f"traj: expected offrl_jax.data.Trajectories, found {type(traj).__name__}")
    obs = np.asarray(traj.observations)
    if obs.ndim != 2 or not np.issubdtype(obs.dtype, np.integer):
        raise ValueError(f"traj.observations: expected integer tabular observations [N, T], found {obs.shape} {obs.dtype}")
    if int(num_observations) < 1 or obs.max() >= num_observations or obs.min() < 0:
        raise ValueError(f"num_observations: {num_observations} but observations range over [{obs.min()}, {obs.max()}]")
    return obs


def time_augmented_transitions(traj: Trajectories, num_observations: int) -> Transitions:
    """Transitions with x = o T + t as the observation and the horizon as termination.

    Args:
      traj: tabular :class:`~offrl_jax.data.Trajectories` ``[N, T]`` (int observations).
      num_observations: O.

    Returns:
      :class:`~offrl_jax.data.Transitions` over O T observations (real steps only); the
      discount is 0 at termination and at t = T - 1.
    """
    obs = _check_tabular(traj, num_observations)
    n, t = obs.shape
    steps = np.broadcast_to(np.arange(t)[None, :], (n, t))
    nxt = np.asarray(traj.next_observations)
    last = steps == t - 1
    x = obs * t + steps
    x_next = np.where(last, obs * t + steps, nxt * t + np.minimum(steps + 1, t - 1))
    disc = np.where(last, 0.0, np.asarray(traj.discounts))
    keep = np.asarray(traj.mask) > 0
    return Transitions.create(
        observations=x[keep].astype(np.int32),
        actions=np.asarray(traj.actions)[keep].astype(np.int32),
        rewards=np.asarray(traj.rewards)[keep],
        next_observations=x_next[keep].astype(np.int32),
        discounts=disc[keep].astype(np.asarray(traj.rewards).dtype),
    )


def time_augmented_policy(policy: Array, horizon: int) -> Array:
    """``[O T, A]`` table pi(a | o T + t) = pi(a | o) for a stationary ``[O, A]`` policy."""
    return jnp.repeat(jnp.asarray(policy), int(horizon), axis=0)


def cross_fitted_fqe_terms(
    key: Array,
    traj: Trajectories,
    num_observations: int,
    num_actions: int,
    policy: Array,
    gamma: float,
    num_steps: Optional[int] = None,
    learning_rate: float = 0.1,
):
    """FQE Q-hat of a stationary tabular policy as cross-fitted ``(q_taken, v_hat)`` ``[N, T]``.

    Tabular (one-hot, no hidden layer) horizon-aware FQE with Adam and full-batch steps, trained
    on each half of the trajectories and evaluated on the other. The target network is refreshed
    every 50 steps; the default ``num_steps`` = 50 (2T + 20) gives every step of the horizon
    several refreshes to propagate.

    Args:
      key: PRNG key.
      traj: tabular :class:`~offrl_jax.data.Trajectories` ``[N, T]``, N >= 2.
      num_observations, num_actions: O and A.
      policy: ``[O, A]`` evaluated policy.
      gamma: discount in [0, 1].
      num_steps: gradient steps per half.
      learning_rate: Adam step size.

    Returns:
      :class:`~offrl_jax.ope.ModelTerms` ``(q_taken, v_hat)``, ``[N, T]``, 0 on padding.
    """
    from offrl_jax.ope.doubly_robust import ModelTerms

    obs = _check_tabular(traj, num_observations)
    n, t = obs.shape
    if n < 2:
        raise ValueError(f"traj: cross-fitting needs N >= 2 trajectories, found {n}")
    pi = time_augmented_policy(policy, t)
    steps = int(num_steps) if num_steps is not None else 50 * (2 * t + 20)
    cfg = FittedQConfig(
        num_actions=int(num_actions), method="fqe", gamma=float(gamma), hidden_sizes=(),
        num_observations=int(num_observations) * t, num_steps=steps, batch_size=None,
        learning_rate=float(learning_rate), optimizer="adam", target_update_period=50,
    )
    train = jax.jit(make_train(cfg, pi))
    half = n // 2
    parts = [jax.tree_util.tree_map(lambda a: a[:half], traj), jax.tree_util.tree_map(lambda a: a[half:], traj)]
    x = jnp.asarray(obs * t + np.arange(t)[None, :], jnp.int32)
    xs = (x[:half], x[half:])
    q_parts, v_parts = [], []
    for i, (fit, apply_i) in enumerate(((parts[1], 0), (parts[0], 1))):
        res = train(jax.random.fold_in(key, i), time_augmented_transitions(fit, num_observations))
        part = parts[apply_i]
        terms = dr_inputs(res.state.apply_fn, res.state.params, xs[apply_i], part.actions, pi[xs[apply_i]], part.mask)
        q_parts.append(terms.q_taken)
        v_parts.append(terms.v_hat)
    dtype = jnp.asarray(traj.rewards).dtype
    return ModelTerms(jnp.concatenate(q_parts).astype(dtype), jnp.concatenate(v_parts).astype(dtype))
