"""A two-room gridworld whose optimal behaviour must be stitched from two behaviour policies.

Each behaviour policy is good on one half of the map and poor on the other: the first walks the
shortest way out of the start room and then idles in the goal room; the second leaves the start
room by a detour and then walks the shortest way to the goal. The optimal policy follows the
first policy in the start room and the second in the goal room, so every state-action pair it
visits appears in the union of the two behaviour datasets, though in neither alone. This is the
"trajectory stitching" setting of offline RL benchmarks (e.g. the maze tasks of "D4RL: Datasets
for Deep Data-Driven Reinforcement Learning", Fu, Kumar, Nachum, Tucker & Levine 2020).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax.numpy as jnp
import numpy as np

from offrl_jax.envs.suite_classic import _check_int, _check_prob
from offrl_jax.envs.tabular import TabularMDP

Array = Any

__all__ = ["stitching_gridworld", "stitching_policies", "StitchingPolicies", "stitching_layout"]

# Action -> (d_row, d_col): 0 left, 1 right, 2 up, 3 down (as in the COBS gridworld).
_MOVES = np.array([[0, -1], [0, 1], [-1, 0], [1, 0]])
_LEFT, _RIGHT, _UP, _DOWN = 0, 1, 2, 3


def stitching_layout(room_size: int = 3, corridor_length: int = 3) -> np.ndarray:
    """``[n, 2n + L]`` bool map of free cells: two n x n rooms joined by a corridor of length L.

    The corridor is the middle row ``n // 2`` between the rooms. For n = 3, L = 3
    (``S`` start, ``G`` goal, ``#`` wall)::

        S . . # # # . . .
        . . . . . . . . .
        . . . # # # . . G
    """
    n = _check_int(room_size, "room_size", 3)
    if n % 2 == 0:
        raise ValueError(
            f"room_size: expected an odd int >= 3 (the corridor is the middle row), found {n}"
        )
    length = _check_int(corridor_length, "corridor_length", 1)
    free = np.zeros((n, 2 * n + length), bool)
    free[:, :n] = free[:, n + length :] = True
    free[n // 2, n : n + length] = True
    return free


def _cells(free: np.ndarray):
    """Row-major free cells, their state index, and the ``[S, 4]`` next state of each move."""
    cells = np.argwhere(free)
    index = -np.ones(free.shape, int)
    index[cells[:, 0], cells[:, 1]] = np.arange(len(cells))
    nxt = np.zeros((len(cells), 4), int)
    for a, (dr, dc) in enumerate(_MOVES):
        r, c = cells[:, 0] + dr, cells[:, 1] + dc
        ok = (r >= 0) & (r < free.shape[0]) & (c >= 0) & (c < free.shape[1])
        ok[ok] &= free[r[ok], c[ok]]
        target = index[np.where(ok, r, 0), np.where(ok, c, 0)]
        nxt[:, a] = np.where(ok, target, np.arange(len(cells)))
    return cells, index, nxt


def stitching_gridworld(
    room_size: int = 3,
    corridor_length: int = 3,
    slip: float = 0.0,
    gamma: float = 0.95,
    horizon: Optional[int] = 20,
    step_reward: float = 0.0,
    dtype: Any = None,
) -> TabularMDP:
    """Two n x n rooms joined by a one-cell-wide corridor; start top-left, goal bottom-right.

    Layout (:func:`stitching_layout`; n = 3, L = 3 shown, 21 free cells)::

        S . . # # # . . .        room A: columns 0 .. n-1
        . . . . . . . . .        corridor: row n // 2, columns n .. n+L-1
        . . . # # # . . G        room B: columns n+L .. 2n+L-1

    States are the free cells in row-major order. Actions 0 left, 1 right, 2 up, 3 down; a move
    into a wall or off the grid stays put; with probability ``slip`` the action is replaced by a
    uniformly random one. Entering the goal gives +1 and ends the episode (the goal is an
    absorbing terminal state); every other step gives ``step_reward``. The episode starts in S.
    The shortest path from S to G has (n - 1) + (2n + L - 1) = 3n + L - 2 steps (10 for the
    defaults), so without slip and with ``step_reward = 0`` the optimal value is
    gamma^(3n + L - 3) (0.95^9 = 0.6302 for the defaults).
    Behaviour policies: :func:`stitching_policies`. The stitching setting is that of the maze
    datasets of "D4RL: Datasets for Deep Data-Driven Reinforcement Learning", Fu et al. 2020;
    this small tabular instance has exact ground truth.

    Args:
      room_size: n, odd, >= 3.
      corridor_length: L >= 1.
      slip: probability in [0, 1] of a uniformly random action.
      gamma: discount in [0, 1].
      horizon: finite horizon H (``None``: discounted, infinite horizon; needs gamma < 1).
      step_reward: reward of every step that does not enter the goal.
      dtype: float dtype (default float32).

    Returns:
      A :class:`TabularMDP` with one state per free cell and 4 actions.
    """
    free = stitching_layout(room_size, corridor_length)
    slip = _check_prob(slip, "slip")
    if not np.isfinite(step_reward):
        raise ValueError(f"step_reward: expected a finite number, found {step_reward}")
    cells, index, nxt = _cells(free)
    s_num = len(cells)
    goal = index[-1, -1]
    idx = np.arange(s_num)
    trans = np.zeros((s_num, 4, s_num))
    for a in range(4):
        np.add.at(trans, (idx, a, nxt[:, a]), 1.0 - slip)
        for b in range(4):
            np.add.at(trans, (idx, a, nxt[:, b]), slip / 4)
    trans[goal] = 0.0
    trans[goal, :, goal] = 1.0
    table = np.full((s_num, 4, s_num), float(step_reward))
    table[:, :, goal] = 1.0
    table[goal] = 0.0
    terminal = idx == goal
    initial = np.eye(s_num)[index[0, 0]]
    return TabularMDP.create(
        trans, table, initial, gamma, horizon=horizon, terminal=terminal,
        name="stitching_gridworld", dtype=dtype,
    )


class StitchingPolicies(NamedTuple):
    """``[S, 4]`` policies of :func:`stitching_gridworld`.

    Attributes:
      first: shortest way out of room A, then idles in room B (moves up).
      second: detour out of room A, then the shortest way to the goal.
      optimal: the shortest-path policy (first on room A and the corridor, second on room B).
    """

    first: Array
    second: Array
    optimal: Array


def stitching_policies(
    room_size: int = 3, corridor_length: int = 3, epsilon: float = 0.0, dtype: Any = None
) -> StitchingPolicies:
    """The two behaviour policies of :func:`stitching_gridworld` and the optimal policy.

    The optimal action a*(s) moves to a neighbour with the smallest shortest-path (BFS) distance
    to the goal, ties to the lowest action index (left, right, up, down); without slip it is the
    optimal policy (the greedy policy of Q*). Then, on room A, the corridor and room B:

      first:   a*(s),   a*(s),  up         (reaches room B, never the goal)
      second:  detour,  a*(s),  a*(s)      (reaches the goal 2(n - 1 - n//2) steps late)

    where the detour goes down to the bottom row of room A, right to its last column and up to
    the corridor. Each policy is made epsilon-soft: pi(a|s) = eps / 4 + (1 - eps) 1[a = a(s)].
    A 50/50 mixture of the two (per step or per trajectory) covers every state-action pair of
    the optimal policy, though neither policy alone does (Fu et al. 2020 call this stitching).

    Args:
      room_size, corridor_length: as in :func:`stitching_gridworld`.
      epsilon: eps in [0, 1].
      dtype: float dtype (default float32).

    Returns:
      :class:`StitchingPolicies` of ``[S, 4]`` arrays.
    """
    free = stitching_layout(room_size, corridor_length)
    eps = _check_prob(epsilon, "epsilon")
    n, mid = free.shape[0], free.shape[0] // 2
    cells, index, nxt = _cells(free)
    goal = index[-1, -1]
    # BFS distances to the goal (moves are reversible, so distances are symmetric).
    dist = np.full(len(cells), np.inf)
    dist[goal], frontier, d = 0, [goal], 0
    while frontier:
        d += 1
        frontier = [t for s in frontier for t in nxt[s] if dist[t] == np.inf]
        dist[frontier] = d
    best = np.argmin(dist[nxt], axis=1)
    rows, cols = cells[:, 0], cells[:, 1]
    in_a, in_b = cols < n, cols >= free.shape[1] - n
    detour = np.where(
        (cols == n - 1) & (rows > mid), _UP,
        np.where((cols == n - 1) & (rows == mid), _RIGHT, np.where(rows < n - 1, _DOWN, _RIGHT)),
    )
    first = np.where(in_b, _UP, best)
    second = np.where(in_a, detour, best)
    dtype = jnp.dtype(dtype or jnp.float32)

    def soft(actions):
        return jnp.asarray(eps / 4 + (1 - eps) * np.eye(4)[actions], dtype)

    return StitchingPolicies(soft(first), soft(second), soft(best))
