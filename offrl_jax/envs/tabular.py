"""Tabular MDPs and their exact solutions (the ground truth every estimator is checked against).

A :class:`TabularMDP` holds P[s, a, s'], R[s, a] (and optionally R[s, a, s']), the initial
distribution d0, the discount gamma, an optional finite horizon H, optional terminal states and
an optional observation map ``obs_of_state[s]`` (aliased states: policies act on observations,
exact values come from the true states).

Policies are ``[O, A]`` arrays of probabilities over actions per *observation* (O = S when the
MDP has no observation map). Exact solvers are pure functions, jit-able and vmappable over
policies (and over MDPs of the same size, since every array is a pytree leaf).

Float64: the solvers keep the dtype of the MDP's arrays. For float64 ground truth turn on
``jax.config.update("jax_enable_x64", True)`` (or ``JAX_ENABLE_X64=1``) and build the MDP with
``dtype=jnp.float64`` (the literature constructors take ``dtype``).

Conventions:
  * Discounted, infinite horizon (``horizon is None``): V = (I - gamma P_pi)^{-1} r_pi by a
    linear solve; J = d0^T V.
  * Finite horizon H: J = E[sum_{t=0}^{H-1} gamma^t r_t], solved by a backward ``lax.scan``;
    Q-values are time-indexed ``[H, S, A]`` (Q_t estimates the remaining H - t steps).
  * Terminal states are absorbing with zero reward: entering one ends an episode in rollouts
    (``discounts = 0`` on that step), and contributes nothing to values.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from offrl_jax.core.dtypes import float_dtype, input_dtype
from offrl_jax.core.validation import is_concrete

Array = Any

__all__ = [
    "TabularMDP",
    "state_policy",
    "policy_value",
    "state_values",
    "q_values",
    "occupancy",
    "state_distributions",
    "value_iteration",
    "ValueIterationResult",
    "ValueIterationInfo",
    "check_policy",
]


@struct.dataclass
class TabularMDP:
    """A finite MDP (optionally partially observed through a deterministic observation map).

    Attributes:
      transitions: ``[S, A, S]`` P(s' | s, a); rows sum to 1.
      rewards: ``[S, A]`` expected reward R(s, a) = sum_s' P(s'|s,a) R(s, a, s').
      initial: ``[S]`` initial state distribution d0.
      gamma: discount in [0, 1] (a pytree leaf, so MDPs can be vmapped).
      reward_table: optional ``[S, A, S]`` R(s, a, s') used by rollouts (its expectation must
        equal ``rewards``).
      reward_std: optional ``[S, A, S]`` or ``[S, A]`` std of Gaussian reward noise in rollouts.
      terminal: ``[S]`` bool, absorbing terminal states (entering one ends an episode).
      obs_of_state: ``[S]`` int observation index of each state (identity if not aliased).
      horizon: static optional finite horizon H.
      num_observations: static number of observations O.
      name: static label.
    """

    transitions: Array
    rewards: Array
    initial: Array
    gamma: Array
    terminal: Array
    obs_of_state: Array
    reward_table: Optional[Array] = None
    reward_std: Optional[Array] = None
    horizon: Optional[int] = struct.field(pytree_node=False, default=None)
    num_observations: int = struct.field(pytree_node=False, default=0)
    aliased: bool = struct.field(pytree_node=False, default=False)
    name: str = struct.field(pytree_node=False, default="mdp")

    @property
    def num_states(self) -> int:
        return self.transitions.shape[-3]

    @property
    def num_actions(self) -> int:
        return self.transitions.shape[-2]

    @classmethod
    def create(
        cls,
        transitions: Array,
        rewards: Array,
        initial: Array,
        gamma: float,
        horizon: Optional[int] = None,
        terminal: Optional[Array] = None,
        obs_of_state: Optional[Array] = None,
        reward_std: Optional[Array] = None,
        name: str = "mdp",
        dtype: Any = None,
        atol: float = 1e-6,
    ) -> "TabularMDP":
        """Validates on the host and builds an MDP.

        Args:
          transitions: ``[S, A, S]`` probabilities, rows summing to 1.
          rewards: ``[S, A]`` R(s, a) or ``[S, A, S]`` R(s, a, s').
          initial: ``[S]`` initial distribution.
          gamma: discount in [0, 1]; gamma = 1 needs a finite ``horizon``.
          horizon: optional finite horizon H (a positive int).
          terminal: optional ``[S]`` bool; terminal states must be absorbing (P[s, a, s] = 1).
          obs_of_state: optional ``[S]`` ints in [0, O): the observation policies see.
          reward_std: optional Gaussian reward-noise std, ``[S, A]`` or ``[S, A, S]``.
          dtype: float dtype of the arrays (default float32; float64 needs x64 enabled).

        Raises:
          ValueError: naming the argument, for bad shapes, probabilities, NaNs or gamma.
        """
        # The dtype policy (offrl_jax.core.dtypes): real numeric inputs (ints and lists
        # converted), arrays stored in ``dtype`` (half precision is computed in float32).
        for name, x in (("transitions", transitions), ("rewards", rewards), ("initial", initial),
                        ("terminal", terminal), ("reward_std", reward_std), ("gamma", gamma)):
            if x is not None:
                input_dtype(x, name)
        dtype = float_dtype(jnp.dtype(dtype)) if dtype is not None else jnp.dtype(jnp.float32)
        p = np.asarray(transitions, dtype=np.float64)
        if p.ndim != 3 or p.shape[0] != p.shape[2] or p.shape[0] == 0 or p.shape[1] == 0:
            raise ValueError(f"transitions: expected shape [S, A, S] with S, A >= 1, found {list(p.shape)}")
        s, a = p.shape[:2]
        if not np.all(np.isfinite(p)) or np.any(p < -atol) or np.any(p > 1 + atol):
            raise ValueError("transitions: expected finite probabilities in [0, 1]")
        rowsum = p.sum(-1)
        if not np.allclose(rowsum, 1.0, atol=atol):
            idx = np.unravel_index(np.argmax(np.abs(rowsum - 1)), rowsum.shape)
            raise ValueError(
                f"transitions: expected each P[s, a, :] to sum to 1, found {rowsum[idx]:.6g} at (s, a) = {tuple(int(i) for i in idx)}"
            )
        r = np.asarray(rewards, dtype=np.float64)
        if not np.all(np.isfinite(r)):
            raise ValueError("rewards: expected finite values, found NaN or inf")
        table = None
        if r.shape == (s, a, s):
            table = r
            r = np.sum(p * r, axis=-1)
        elif r.shape != (s, a):
            raise ValueError(f"rewards: expected shape [S, A] = {[s, a]} or [S, A, S], found {list(r.shape)}")
        d0 = np.asarray(initial, dtype=np.float64)
        if d0.shape != (s,):
            raise ValueError(f"initial: expected shape [S] = [{s}], found {list(d0.shape)}")
        if np.any(d0 < -atol) or not np.isclose(d0.sum(), 1.0, atol=atol):
            raise ValueError(f"initial: expected a probability vector summing to 1, found sum {d0.sum():.6g}")
        if not (0.0 <= float(gamma) <= 1.0) or np.isnan(gamma):
            raise ValueError(f"gamma: expected a discount in [0, 1], found {gamma}")
        if horizon is not None and (int(horizon) != horizon or horizon < 1):
            raise ValueError(f"horizon: expected a positive int or None, found {horizon}")
        if horizon is None and float(gamma) >= 1.0:
            raise ValueError("gamma: gamma = 1 needs a finite horizon (pass horizon=H)")
        term = np.zeros(s, bool) if terminal is None else np.asarray(terminal, dtype=bool)
        if term.shape != (s,):
            raise ValueError(f"terminal: expected shape [S] = [{s}], found {list(term.shape)}")
        for st in np.flatnonzero(term):
            if not np.allclose(p[st, :, st], 1.0) or not np.allclose(r[st], 0.0):
                raise ValueError(
                    f"terminal: state {st} must be absorbing with zero reward (P[s, :, s] = 1, R[s, :] = 0)"
                )
        obs = np.arange(s) if obs_of_state is None else np.asarray(obs_of_state)
        if obs.shape != (s,) or obs.dtype.kind not in "iu" or np.any(obs < 0):
            raise ValueError(f"obs_of_state: expected [S] = [{s}] non-negative ints, found {obs.shape} {obs.dtype}")
        num_obs = int(obs.max()) + 1
        std = None
        if reward_std is not None:
            std = np.asarray(reward_std, dtype=np.float64)
            if std.shape == (s, a):
                std = np.broadcast_to(std[..., None], (s, a, s))
            if std.shape != (s, a, s) or np.any(std < 0) or not np.all(np.isfinite(std)):
                raise ValueError(f"reward_std: expected non-negative [S, A] or [S, A, S], found {std.shape}")
        return cls(
            transitions=jnp.asarray(p, dtype),
            rewards=jnp.asarray(r, dtype),
            initial=jnp.asarray(d0, dtype),
            gamma=jnp.asarray(gamma, dtype),
            terminal=jnp.asarray(term),
            obs_of_state=jnp.asarray(obs, jnp.int32),
            reward_table=None if table is None else jnp.asarray(table, dtype),
            reward_std=None if std is None else jnp.asarray(std, dtype),
            horizon=None if horizon is None else int(horizon),
            num_observations=num_obs,
            aliased=not np.array_equal(obs, np.arange(s)),
            name=name,
        )


def check_policy(mdp: TabularMDP, policy: Array, name: str = "policy") -> np.ndarray:
    """Host-side check that ``policy`` is ``[O, A]`` with rows on the simplex."""
    p = np.asarray(policy)
    o, a = mdp.num_observations, mdp.num_actions
    if p.dtype.kind not in "fiu":
        raise ValueError(f"{name}: expected a real-valued [O, A] table, found dtype {p.dtype}")
    if p.shape != (o, a):
        raise ValueError(f"{name}: expected shape [O, A] = {[o, a]}, found {list(p.shape)}")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or not np.allclose(p.sum(-1), 1.0, atol=1e-5):
        bad = np.argwhere(~np.isfinite(p).all(-1) | (p < 0).any(-1) | ~np.isclose(p.sum(-1), 1.0, atol=1e-5))[0, 0]
        raise ValueError(
            f"{name}: expected rows of probabilities in [0, 1] summing to 1; row {bad} is {p[bad].tolist()}"
        )
    return p


def state_policy(mdp: TabularMDP, policy: Array) -> Array:
    """Maps an observation policy ``[O, A]`` to the state policy ``[S, A]`` (pi(a | obs(s))).

    The map is applied exactly when the MDP's observation map is not the identity. A concrete
    ``policy`` is checked on the host first (:func:`check_policy`: ``[O, A]`` rows on the simplex),
    so every exact solver and rollout refuses a table that is not a policy.
    """
    if is_concrete(policy):
        check_policy(mdp, policy)
    policy = jnp.asarray(policy)
    if not mdp.aliased:
        return policy
    return policy[mdp.obs_of_state]


def _policy_model(mdp: TabularMDP, policy: Array):
    pi = state_policy(mdp, policy).astype(mdp.rewards.dtype)
    p_pi = jnp.einsum("sa,sat->st", pi, mdp.transitions)
    r_pi = jnp.sum(pi * mdp.rewards, axis=-1)
    return pi, p_pi, r_pi


def _finite_q(mdp: TabularMDP, policy: Array, horizon: int) -> Array:
    """[H, S, A] Q_t(s, a) for t = 0..H-1 by backward induction."""
    pi = state_policy(mdp, policy).astype(mdp.rewards.dtype)

    def step(v_next, _):
        q = mdp.rewards + mdp.gamma * jnp.einsum("sat,t->sa", mdp.transitions, v_next)
        return jnp.sum(pi * q, -1), q

    v0 = jnp.zeros(mdp.num_states, mdp.rewards.dtype)
    _, qs = jax.lax.scan(step, v0, None, length=horizon)
    return qs[::-1]


def state_values(mdp: TabularMDP, policy: Array) -> Array:
    """V^pi: ``[S]`` (discounted) or ``[H, S]`` (finite horizon)."""
    if mdp.horizon is not None:
        pi = state_policy(mdp, policy).astype(mdp.rewards.dtype)
        return jnp.sum(_finite_q(mdp, policy, mdp.horizon) * pi[None], -1)
    _, p_pi, r_pi = _policy_model(mdp, policy)
    eye = jnp.eye(mdp.num_states, dtype=r_pi.dtype)
    return jnp.linalg.solve(eye - mdp.gamma * p_pi, r_pi)


def q_values(mdp: TabularMDP, policy: Array) -> Array:
    """Q^pi: ``[S, A]`` (discounted: R + gamma P V) or ``[H, S, A]`` (finite horizon)."""
    if mdp.horizon is not None:
        return _finite_q(mdp, policy, mdp.horizon)
    v = state_values(mdp, policy)
    return mdp.rewards + mdp.gamma * jnp.einsum("sat,t->sa", mdp.transitions, v)


def policy_value(mdp: TabularMDP, policy: Array) -> Array:
    """J(pi) = E_{s0 ~ d0}[V^pi(s0)] (finite horizon if ``mdp.horizon`` is set)."""
    v = state_values(mdp, policy)
    if mdp.horizon is not None:
        v = v[0]
    return jnp.dot(mdp.initial, v)


def state_distributions(mdp: TabularMDP, policy: Array, horizon: int) -> Array:
    """``[horizon, S]`` Pr_pi(s_t = s) for t = 0..horizon-1 (forward ``lax.scan``)."""
    _, p_pi, _ = _policy_model(mdp, policy)

    def step(d, _):
        return d @ p_pi, d

    _, ds = jax.lax.scan(step, mdp.initial, None, length=horizon)
    return ds


def occupancy(mdp: TabularMDP, policy: Array) -> Array:
    """Normalised discounted state-action occupancy d^pi(s, a), ``[S, A]``, summing to 1.

    Discounted: d^pi(s, a) = (1 - gamma) sum_t gamma^t Pr(s_t = s, a_t = a), the solution of the
    Bellman-flow equation d = (1 - gamma) d0 pi + gamma P_pi^T d. Finite horizon H:
    d(s, a) = sum_{t<H} gamma^t Pr(s_t = s, a_t = a) / sum_{t<H} gamma^t. Either way
    J(pi) = sum_{s,a} d(s, a) R(s, a) * normaliser, with normaliser 1 / (1 - gamma) or
    sum_{t<H} gamma^t. (Terminal absorbing states carry their share of the mass, with zero reward.)
    """
    pi, p_pi, _ = _policy_model(mdp, policy)
    if mdp.horizon is not None:
        ds = state_distributions(mdp, policy, mdp.horizon)
        disc = mdp.gamma ** jnp.arange(mdp.horizon, dtype=ds.dtype)
        d = jnp.einsum("t,ts->s", disc, ds) / jnp.sum(disc)
    else:
        eye = jnp.eye(mdp.num_states, dtype=p_pi.dtype)
        d = (1 - mdp.gamma) * jnp.linalg.solve((eye - mdp.gamma * p_pi).T, mdp.initial)
    return d[:, None] * pi


class ValueIterationResult(NamedTuple):
    """``(q_star, policy)``; unpacks as the two arrays of the array API."""

    q_star: Array
    policy: Array


class ValueIterationInfo(NamedTuple):
    iterations: Array
    converged: Array


def value_iteration(
    mdp: TabularMDP, tol: float = 1e-10, max_iterations: int = 100_000, return_info: bool = False
):
    """Optimal Q* and a greedy policy by value iteration on the true states.

    Discounted: Q_{k+1} = R + gamma P max_a Q_k under ``lax.while_loop`` until
    max |Q_{k+1} - Q_k| < tol (or ``max_iterations``). Finite horizon: backward induction, with
    ``q_star`` ``[H, S, A]`` and a time-dependent ``policy`` ``[H, S, A]``. Ties go to the lowest
    action index. The policy is over true states ``[S, A]`` (for an aliased MDP it is the
    optimal state-feedback policy). With ``return_info=True`` returns
    ``(ValueIterationResult, ValueIterationInfo(iterations, converged))``.
    """
    r, p, g = mdp.rewards, mdp.transitions, mdp.gamma
    a = mdp.num_actions
    if mdp.horizon is not None:

        def step(v_next, _):
            q = r + g * jnp.einsum("sat,t->sa", p, v_next)
            return jnp.max(q, -1), q

        _, qs = jax.lax.scan(step, jnp.zeros(mdp.num_states, r.dtype), None, length=mdp.horizon)
        q = qs[::-1]
        pol = jax.nn.one_hot(jnp.argmax(q, -1), a, dtype=r.dtype)
        info = ValueIterationInfo(jnp.asarray(mdp.horizon), jnp.asarray(True))
        res = ValueIterationResult(q, pol)
        return (res, info) if return_info else res

    def body(c):
        q, _, k = c
        q_new = r + g * jnp.einsum("sat,t->sa", p, jnp.max(q, -1))
        return q_new, jnp.max(jnp.abs(q_new - q)), k + 1

    def cond(c):
        return (c[1] >= tol) & (c[2] < max_iterations)

    q, delta, k = jax.lax.while_loop(cond, body, (r, jnp.asarray(jnp.inf, r.dtype), 0))
    pol = jax.nn.one_hot(jnp.argmax(q, -1), a, dtype=r.dtype)
    res = ValueIterationResult(q, pol)
    return (res, ValueIterationInfo(k, delta < tol)) if return_info else res
