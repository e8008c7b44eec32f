"""The literature suite of tabular MDPs with exact ground truth, and standard OPE problems.

Constructors (each returns a validated :class:`~offrl_jax.envs.tabular.TabularMDP` and takes
``dtype=``):

* :func:`chain_walk` (Lagoudakis & Parr 2003),
* :func:`model_fail`, :func:`model_win` (Thomas & Brunskill 2016),
* :func:`graph`, :func:`graph_pomdp`, :func:`gridworld` (COBS, Voloshin et al. 2019),
* :func:`stitching_gridworld` (two rooms and a corridor; trajectory stitching),
* :func:`garnet` (Archibald et al. 1995; Bhatnagar et al. 2009).

:func:`make_problem` bundles an MDP with a behaviour policy, a target policy, a number of
episodes N and a horizon T (:data:`PROBLEMS` lists the names); :func:`problem_value` gives the
exact expected return of T-step episodes, the quantity an OPE estimator on such data estimates.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax.numpy as jnp
import numpy as np

from offrl_jax.envs.suite_classic import (
    CHAIN_WALK_REWARD_STATES,
    PolicyPair,
    chain_walk,
    garnet,
    model_fail,
    model_fail_policies,
    model_win,
    model_win_policies,
)
from offrl_jax.envs.suite_cobs import (
    GRIDWORLD_REWARDS,
    GRIDWORLD_STARTS,
    graph,
    graph_policy,
    graph_pomdp,
    gridworld,
    gridworld_best_actions,
    gridworld_policies,
)
from offrl_jax.envs.suite_stitching import (
    StitchingPolicies,
    stitching_gridworld,
    stitching_layout,
    stitching_policies,
)
from offrl_jax.envs.tabular import TabularMDP, policy_value

Array = Any

__all__ = [
    "CHAIN_WALK_REWARD_STATES",
    "GRIDWORLD_REWARDS",
    "GRIDWORLD_STARTS",
    "PROBLEMS",
    "PolicyPair",
    "Problem",
    "StitchingPolicies",
    "chain_walk",
    "garnet",
    "graph",
    "graph_policy",
    "graph_pomdp",
    "gridworld",
    "gridworld_best_actions",
    "gridworld_policies",
    "make_problem",
    "model_fail",
    "model_fail_policies",
    "model_win",
    "model_win_policies",
    "problem_value",
    "stitching_gridworld",
    "stitching_layout",
    "stitching_policies",
]

PROBLEMS = (
    "chain_walk_4",
    "chain_walk_20",
    "model_fail",
    "model_win",
    "graph",
    "graph_pomdp",
    "gridworld",
    "stitching_gridworld",
    "garnet",
)


class Problem(NamedTuple):
    """A standard off-policy evaluation problem.

    Attributes:
      name: one of :data:`PROBLEMS`.
      mdp: the :class:`TabularMDP` (discounted infinite-horizon MDPs keep ``horizon=None``).
      behavior: ``[O, A]`` behaviour policy that collects the data.
      target: ``[O, A]`` target policy to evaluate (covered by ``behavior``).
      num_episodes: N, the standard dataset size.
      horizon: T, the episode length of the data (a truncation for discounted MDPs).
    """

    name: str
    mdp: TabularMDP
    behavior: Array
    target: Array
    num_episodes: int
    horizon: int


def _optimal_q(mdp: TabularMDP, tol: float = 1e-12, max_iterations: int = 100_000) -> np.ndarray:
    """``[S, A]`` Q* of a discounted MDP by value iteration in float64 NumPy on the host.

    Q_{k+1} = R + gamma P max_a Q_k until max |Q_{k+1} - Q_k| < tol. Used by the constructors to
    build greedy target policies independently of the MDP's dtype (float32 tables included).
    See "Dynamic Programming", Bellman 1957.

    Raises:
      ValueError: if ``mdp`` has a finite horizon or gamma >= 1.
    """
    gamma = float(mdp.gamma)
    if mdp.horizon is not None or gamma >= 1.0:
        raise ValueError("mdp: expected a discounted MDP (horizon=None, gamma < 1)")
    p = np.asarray(mdp.transitions, np.float64)
    r = np.asarray(mdp.rewards, np.float64)
    q = r.copy()
    for _ in range(max_iterations):
        q_new = r + gamma * p @ q.max(-1)
        if np.max(np.abs(q_new - q)) < tol:
            return q_new
        q = q_new
    return q


def _eps_greedy(q: np.ndarray, eps: float, dtype) -> Array:
    greedy = np.eye(q.shape[-1])[np.argmax(q, -1)]
    return jnp.asarray(eps / q.shape[-1] + (1 - eps) * greedy, dtype)


def make_problem(name: str, dtype: Any = None) -> Problem:
    """Builds the standard OPE problem ``name`` (behaviour != target), as in the literature.

    * ``chain_walk_4``, ``chain_walk_20``: uniform -> 0.1-greedy on Q*; N = 100, T = 100.
    * ``model_fail``: pi(a0) = 0.88 -> 0.12 (LTMLE_OPE replication); N = 1000, T = 2.
    * ``model_win``: pi(.|s0) = (0.99, 0.01) -> (0.01, 0.99) (LTMLE_OPE); N = 1000, T = 20.
    * ``graph``: P(a0) = 0.8 -> 0.2, COBS ``base_toy_graph`` (dense); N = 256, T = 16.
    * ``graph_pomdp``: P(a0) = 0.8 -> 0.2, COBS ``toy_graph_pomdp`` (6 obs, sparse);
      N = 1024, T = 16.
    * ``gridworld``: 0.6-greedy -> 0.1-greedy, COBS ``base_gridworld``; N = 1024, T = 25.
    * ``stitching_gridworld``: (first + second) / 2, each 0.1-soft -> 0.1-soft optimal;
      N = 200, T = 20.
    * ``garnet``: seed 0, 20 states, 4 actions, b = 3: uniform -> 0.2-greedy on Q*;
      N = 200, T = 200.

    The discounted MDPs (chain walks, gamma = 0.9; Garnet, gamma = 0.95) keep ``horizon=None``;
    their data are truncated at T, where the bound gamma^T max|R| / (1 - gamma) on the gap to the
    infinite-horizon value is 2.7e-4 (chain walks) and 2.2e-3 (Garnet, max|R| = 3.11); the
    actual gaps are 2.3e-4 and 6.2e-4. :func:`problem_value` gives the exact T-step value. The other
    problems are episodic with horizon T. The chain, stitching and Garnet choices of N and the
    epsilons are this library's; the rest follow the cited configurations.

    Args:
      name: one of :data:`PROBLEMS`.
      dtype: float dtype (default float32).

    Returns:
      A :class:`Problem`.

    Raises:
      ValueError: for an unknown ``name``.
    """
    if name not in PROBLEMS:
        raise ValueError(f"name: expected one of {PROBLEMS}, found {name!r}")
    dt = jnp.dtype(dtype or jnp.float32)
    if name.startswith("chain_walk"):
        mdp = chain_walk(int(name.rsplit("_", 1)[1]), dtype=dt)
        behavior = jnp.full((mdp.num_states, 2), 0.5, dt)
        return Problem(name, mdp, behavior, _eps_greedy(_optimal_q(mdp), 0.1, dt), 100, 100)
    if name == "model_fail":
        return Problem(name, model_fail(dtype=dt), *model_fail_policies(dt), 1000, 2)
    if name == "model_win":
        return Problem(name, model_win(dtype=dt), *model_win_policies(dt), 1000, 20)
    if name in ("graph", "graph_pomdp"):
        mdp = graph(dtype=dt) if name == "graph" else graph_pomdp(dtype=dt)
        n = 256 if name == "graph" else 1024
        return Problem(name, mdp, graph_policy(mdp, 0.8), graph_policy(mdp, 0.2), n, mdp.horizon)
    if name == "gridworld":
        behavior, target = gridworld_policies([0.6, 0.1], dtype=dt)
        return Problem(name, gridworld(dtype=dt), behavior, target, 1024, 25)
    if name == "stitching_gridworld":
        pols = stitching_policies(epsilon=0.1, dtype=dt)
        behavior = 0.5 * pols.first + 0.5 * pols.second
        return Problem(name, stitching_gridworld(dtype=dt), behavior, pols.optimal, 200, 20)
    mdp = garnet(0, 20, 4, 3, dtype=dt)
    behavior = jnp.full((20, 4), 0.25, dt)
    return Problem(name, mdp, behavior, _eps_greedy(_optimal_q(mdp), 0.2, dt), 200, 200)


def problem_value(problem: Problem, policy: Optional[Array] = None) -> Array:
    """Exact J_T(pi) = E_pi[sum_{t<T} gamma^t r_t] over the problem's T-step episodes.

    For episodic problems this is ``policy_value(problem.mdp, policy)``; for discounted MDPs it
    is the value of the T-step truncation (what the problem's data can estimate without bias),
    computed by backward induction on ``problem.mdp`` with ``horizon = T``.

    Args:
      problem: a :class:`Problem`.
      policy: ``[O, A]`` policy (default: ``problem.target``).

    Returns:
      Scalar J_T(pi) in the MDP's dtype.
    """
    policy = problem.target if policy is None else policy
    return policy_value(problem.mdp.replace(horizon=problem.horizon), policy)
