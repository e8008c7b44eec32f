"""The tabular environments of the COBS off-policy evaluation benchmark: Graph, Graph-POMDP and
the 8x8 Gridworld, with the behaviour/evaluation policies of its configurations.

See "Empirical Study of Off-Policy Policy Evaluation for Reinforcement Learning", Voloshin,
Le, Jiang & Yue 2019 (arXiv 1911.06854), and its code (clvoloshin/COBS: ``ope/envs/graph.py``,
``ope/envs/gridworld.py``, ``paper.py``, ``cfgs/*.json``).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import jax.numpy as jnp
import numpy as np

from offrl_jax.envs.suite_classic import _check_int, _check_prob
from offrl_jax.envs.tabular import TabularMDP

Array = Any

__all__ = [
    "graph",
    "graph_pomdp",
    "graph_policy",
    "gridworld",
    "gridworld_best_actions",
    "gridworld_policies",
    "GRIDWORLD_REWARDS",
    "GRIDWORLD_STARTS",
]

_GRAPH_SLIP = 0.25  # COBS Graph ``slippage``


def _graph_tables(horizon: int, stochastic: bool, sparse: bool):
    """P[s, a, s'] and R(s, a, s') of the COBS Graph with horizon T (S = 2T states)."""
    t = horizon
    s_num = 2 * t
    end = s_num - 1
    slip = _GRAPH_SLIP if stochastic else 0.0
    trans = np.zeros((s_num, 2, s_num))
    table = np.zeros((s_num, 2, s_num))
    for s in range(s_num - 3):  # states before the last column: 0 .. 2T-4
        for a in range(2):
            if s == 0:
                intended = 1 + a
            elif s % 2 == 1:
                intended = s + 2 + a
            else:
                intended = s + 1 + a
            other = intended + 1 if intended % 2 == 1 else intended - 1
            trans[s, a, intended] += 1.0 - slip
            trans[s, a, other] += slip
            if not sparse:
                table[s, a, intended] = 1.0 if intended % 2 == 1 else -1.0
                table[s, a, other] = 1.0 if other % 2 == 1 else -1.0
    # Last column: any action ends the episode with +1 (top) or -1 (bottom).
    trans[end - 2, :, end] = trans[end - 1, :, end] = trans[end, :, end] = 1.0
    table[end - 2, :, end], table[end - 1, :, end] = 1.0, -1.0
    return trans, table


def _graph(horizon, gamma, stochastic, sparse, stochastic_rewards, obs, name, dtype):
    t = _check_int(horizon, "horizon", 2)
    trans, table = _graph_tables(t, bool(stochastic), bool(sparse))
    s_num = 2 * t
    terminal = np.zeros(s_num, bool)
    terminal[-1] = True
    std = None
    if stochastic_rewards:
        std = np.ones((s_num, 2))
        std[-1] = 0.0
    initial = np.eye(s_num)[0]
    return TabularMDP.create(
        trans, table, initial, gamma, horizon=t, terminal=terminal, obs_of_state=obs,
        reward_std=std, name=name, dtype=dtype,
    )


def graph(
    horizon: int = 16,
    gamma: float = 0.98,
    stochastic: bool = True,
    sparse: bool = False,
    stochastic_rewards: bool = False,
    dtype: Any = None,
) -> TabularMDP:
    """The COBS Graph: two rows of states, every episode exactly T steps long.

    States 0 .. 2T-1: 0 is the start, column k >= 1 holds {2k-1 (top), 2k (bottom)}, 2T-1 is
    the absorbing end. From 0: a0 -> 1, a1 -> 2; from odd s: a0 -> s+2, a1 -> s+3; from even
    s >= 2: a0 -> s+1, a1 -> s+2 (a0 aims at the top, a1 at the bottom of the next column). In
    the stochastic env the intended state is reached w.p. 0.75, otherwise the other state of
    that column. Dense reward: +1 on entering a top (odd) state, -1 on entering a bottom one.
    From the last column (2T-3 or 2T-2) any action gives +1 / -1 by the *current* state and
    ends the episode. Sparse reward keeps only that final +-1. Stochastic rewards add N(0, 1)
    noise to every step's reward (COBS draws ``randn()`` also for the zero sparse rewards).

    For a state-independent policy with P(a0) = p, the top is entered w.p.
    q = 0.75 p + 0.25 (1-p) (stochastic) or q = p (deterministic), every step has mean reward
    c(p) = 2q - 1 (= p - 0.5, resp. 2p - 1), and

      dense:  J = c(p) (1 - gamma^T) / (1 - gamma),     sparse:  J = c(p) gamma^(T-1).

    COBS configurations (``cfgs/base_toy_graph_cfg.json``): T = 16, gamma = 0.98, stochastic
    env, dense deterministic rewards, N = 256, pi_b P(a0) = 0.8, pi_e P(a0) = 0.2, so
    J(pi_e) = -4.14303 and J(pi_b) = +4.14303.

    See Voloshin, Le, Jiang & Yue 2019, "Empirical Study of Off-Policy Policy Evaluation for
    Reinforcement Learning" (COBS ``ope/envs/graph.py``).

    Args:
      horizon: T >= 2, the episode length.
      gamma: discount in [0, 1].
      stochastic: slip to the other state of the column w.p. 0.25.
      sparse: reward only at the last step.
      stochastic_rewards: add N(0, 1) noise to every reward in rollouts.
      dtype: float dtype (default float32).

    Returns:
      A :class:`TabularMDP` with 2T states (2T-1 terminal), 2 actions, R(s, a, s') in
      ``reward_table`` and finite horizon T.
    """
    return _graph(horizon, gamma, stochastic, sparse, stochastic_rewards, None, "graph", dtype)


def graph_pomdp(
    horizon: int = 16,
    gamma: float = 0.98,
    stochastic: bool = True,
    sparse: bool = True,
    stochastic_rewards: bool = False,
    num_obs: int = 6,
    dtype: Any = None,
) -> TabularMDP:
    """The COBS Graph-POMDP: :func:`graph` seen through ``num_obs`` aliased observations.

    The states 1 .. 2T-2 are cut into ``num_obs - 1`` consecutive groups by
    ``np.array_split``; a state observes its group index. The start state 0 shares observation
    0 with the first group, and the end state 2T-1 observes ``num_obs - 1``. Exact values come
    from the true states; for state-independent policies they equal the Graph's closed forms.

    The defaults are the COBS configuration ``cfgs/toy_graph_pomdp_cfg.json``: T = 16,
    gamma = 0.98, stochastic env, *sparse* deterministic rewards, 6 observations, N = 1024,
    pi_b P(a0) = 0.8, pi_e P(a0) = 0.2, so J(pi_e) = -0.22157 and J(pi_b) = +0.22157.

    See Voloshin et al. 2019 (COBS ``ope/envs/graph.py``, ``make_pomdp``).

    Args:
      horizon, gamma, stochastic, sparse, stochastic_rewards, dtype: as in :func:`graph`.
      num_obs: number of observations O in [2, 2T - 1].

    Returns:
      A :class:`TabularMDP` with 2T states, 2 actions and ``num_observations = num_obs``.
    """
    t = _check_int(horizon, "horizon", 2)
    o = _check_int(num_obs, "num_obs", 2)
    if o > 2 * t - 1:
        raise ValueError(
            f"num_obs: expected an int in [2, 2 * horizon - 1 = {2 * t - 1}], found {o}"
        )
    obs = np.zeros(2 * t, np.int32)
    for group, states in enumerate(np.array_split(np.arange(1, 2 * t - 1), o - 1)):
        obs[states] = group
    obs[-1] = o - 1
    return _graph(t, gamma, stochastic, sparse, stochastic_rewards, obs, "graph_pomdp", dtype)


def graph_policy(mdp: TabularMDP, prob_a0: float) -> Array:
    """The state-independent policy pi(a0 | o) = p, pi(a1 | o) = 1 - p of the COBS Graph.

    COBS configurations use p = 0.8 (behaviour, ``base_policy = 4``) and p = 0.2 (evaluation,
    ``eval_policy = 1``), from ``paper.py``'s P(a0) = max(0.001, 0.2 k). See Voloshin et al.
    2019 (COBS ``paper.py:toy_graph``).

    Args:
      mdp: a :func:`graph` or :func:`graph_pomdp` MDP (gives O and the dtype).
      prob_a0: p in [0, 1].

    Returns:
      ``[O, 2]`` probabilities.
    """
    p = _check_prob(prob_a0, "prob_a0")
    row = jnp.asarray([p, 1.0 - p], mdp.rewards.dtype)
    return jnp.broadcast_to(row, (mdp.num_observations, 2))


# 8x8 Gridworld of COBS ``ope/envs/gridworld.py``: the reward of *entering* each cell.
_H, _F, _D = -0.5, -0.005, -0.01
GRIDWORLD_REWARDS = np.array(
    [
        [_D, _D, _D, _D, _D, _D, _D, _D],
        [_D, _D, _F, _D, _H, _D, _D, _D],
        [_D, _D, _D, _H, _D, _D, _F, _D],
        [_D, _F, _D, _D, _D, _H, _D, _F],
        [_D, _D, _D, _H, _D, _D, _F, _D],
        [_D, _H, _H, _D, _F, _D, _H, _D],
        [_D, _H, _D, _D, _H, _D, _H, _D],
        [_D, _D, _D, _H, _D, _F, _D, 1.0],
    ]
)
GRIDWORLD_STARTS = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 24, 32, 40, 48, 56])
_GOAL = 63
# Action -> (d_row, d_col): 0 left, 1 right, 2 up, 3 down (COBS ``mapping_reversed``).
_MOVES = np.array([[0, -1], [0, 1], [-1, 0], [1, 0]])


def _gridworld_next() -> np.ndarray:
    """``[64, 4]`` next cell of each (cell, action) without slip (off-grid moves stay put)."""
    rows, cols = np.divmod(np.arange(64), 8)
    nr = np.clip(rows[:, None] + _MOVES[None, :, 0], 0, 7)
    nc = np.clip(cols[:, None] + _MOVES[None, :, 1], 0, 7)
    return 8 * nr + nc


def gridworld(
    slip: float = 0.2, horizon: Optional[int] = 25, gamma: float = 0.98, dtype: Any = None
) -> TabularMDP:
    """The 8x8 COBS Gridworld with holes, "fast" cells and a goal.

    Cell (row, col) is state s = 8 row + col; actions 0 left, 1 right, 2 up, 3 down; a move
    off the grid stays put. With probability ``slip`` the action is replaced by a uniformly
    random one (possibly the same), so P(s' | s, a) = (1 - slip) 1[s' = n(s, a)] +
    (slip / 4) sum_b 1[s' = n(s, b)]. The reward is that of the entered cell
    (:data:`GRIDWORLD_REWARDS`): -0.01 by default, -0.5 in the 11 holes, -0.005 in the 7 fast
    cells, +1 at the goal s = 63, which ends the episode. The start is uniform over the top
    row and left column (:data:`GRIDWORLD_STARTS`, 15 cells).

    COBS pads finished episodes with an extra absorbing state 64; here the goal itself is the
    absorbing terminal state (R(s, a, 63) = +1 on entry, zero afterwards), which gives the
    same returns with 64 states. COBS configuration (``cfgs/base_gridworld_cfg.json``): slip 0.2,
    T = 25, gamma = 0.98, N = 1024, pi_e epsilon = 0.1, pi_b epsilon = 0.6
    (:func:`gridworld_policies`): J(pi_e) = 0.31296, J(pi_b) = -0.81253 (without slip 0.61176
    and -0.59810).

    See Voloshin et al. 2019 (COBS ``ope/envs/gridworld.py``, ``paper.py:gridworld``).

    Args:
      slip: probability in [0, 1] of a uniformly random action (COBS: 0.2 * stochastic_env).
      horizon: T >= 1 (``None`` gives the discounted infinite-horizon MDP).
      gamma: discount in [0, 1].
      dtype: float dtype (default float32).

    Returns:
      A :class:`TabularMDP` with 64 states (63 terminal), 4 actions and R(s, a, s').
    """
    slip = _check_prob(slip, "slip")
    if horizon is not None:
        horizon = _check_int(horizon, "horizon", 1)
    nxt = _gridworld_next()
    idx = np.arange(64)
    trans = np.zeros((64, 4, 64))
    for a in range(4):
        np.add.at(trans, (idx, a, nxt[:, a]), 1.0 - slip)
        for b in range(4):
            np.add.at(trans, (idx, a, nxt[:, b]), slip / 4)
    trans[_GOAL] = 0.0
    trans[_GOAL, :, _GOAL] = 1.0
    table = np.broadcast_to(GRIDWORLD_REWARDS.reshape(-1), (64, 4, 64)).copy()
    table[_GOAL] = 0.0
    initial = np.zeros(64)
    initial[GRIDWORLD_STARTS] = 1.0 / len(GRIDWORLD_STARTS)
    terminal = idx == _GOAL
    return TabularMDP.create(
        trans, table, initial, gamma, horizon=horizon, terminal=terminal, name="gridworld",
        dtype=dtype,
    )


def gridworld_best_actions() -> np.ndarray:
    """``[64]`` the greedy actions of COBS ``Gridworld.best_policy()`` (host NumPy ints).

    Reproduces COBS's value iteration exactly, quirks included: synchronous sweeps with its own
    gamma = 0.99 (not the env's), no slip, the reward of the *current* cell,
    U_{k+1}(s) = r(s) + 0.99 max_a U_k(n(s, a)) for s != 63 and U(63) = r(63) = 1, starting
    from U_0 = 0 and stopping at the first sweep with max |U_{k+1} - U_k| < 0.001 (1 - 0.99) /
    0.99, returning the *previous* iterate U_k; then a*(s) = argmax_a U_k(n(s, a)) with ties to
    the lowest action index (np.argmax). See Voloshin et al. 2019 (COBS
    ``ope/envs/gridworld.py``).
    """
    nxt = _gridworld_next()
    r = GRIDWORLD_REWARDS.reshape(-1)
    gamma, eps = 0.99, 0.001
    not_goal = np.arange(64) != _GOAL
    u1 = np.zeros(64)
    while True:
        u = u1.copy()
        u1 = r + gamma * np.max(u[nxt], axis=1) * not_goal
        if np.max(np.abs(u1 - u)) < eps * (1 - gamma) / gamma:
            break
    return np.argmax(u[nxt], axis=1)


def gridworld_policies(epsilon: Union[float, Sequence[float]], dtype: Any = None) -> Array:
    """Epsilon-greedy policies around :func:`gridworld_best_actions`, as COBS builds them.

    pi_eps(a | s) = eps / 4 + (1 - eps) 1[a = a*(s)]. COBS configuration: pi_e eps = 0.1,
    pi_b eps = 0.6 (``eval_policy = 10``, ``base_policy = 60``, divided by 100).
    See Voloshin et al. 2019 (COBS ``paper.py:gridworld``, ``EGreedyPolicy``).

    Args:
      epsilon: eps in [0, 1], or a sequence of K of them.
      dtype: float dtype (default float32).

    Returns:
      ``[64, 4]`` probabilities, or ``[K, 64, 4]`` for a sequence of epsilons.
    """
    eps = np.asarray(epsilon, dtype=np.float64)
    if eps.ndim > 1 or not np.all(np.isfinite(eps)) or np.any(eps < 0) or np.any(eps > 1):
        raise ValueError(
            f"epsilon: expected a probability in [0, 1] or a 1-D sequence, found {epsilon!r}"
        )
    greedy = np.eye(4)[gridworld_best_actions()]
    pol = eps[..., None, None] / 4 + (1 - eps[..., None, None]) * greedy
    return jnp.asarray(pol, jnp.dtype(dtype or jnp.float32))
