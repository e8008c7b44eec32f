"""Horizon-aware tabular FQE: converges to the time-indexed certainty-equivalence Q of the data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.envs import rollout
from offrl_jax.envs.suite import make_problem
from offrl_jax.fitted import FittedQConfig, make_train
from offrl_jax.fitted.horizon import cross_fitted_fqe_terms, time_augmented_policy, time_augmented_transitions


def _empirical_time_q(traj, pi, num_obs, num_actions, gamma, unvisited):
    """Backward recursion over t on counts at each step: the fixed point of tabular FQE.

    Pairs (t, o, a) absent from the data get no gradient, so FQE leaves them at their initial
    values ``unvisited[t, o, a]``; the fixed point on visited pairs bootstraps from those.
    """
    obs, act = np.asarray(traj.observations), np.asarray(traj.actions)
    rew, nxt = np.asarray(traj.rewards), np.asarray(traj.next_observations)
    disc, mask = np.asarray(traj.discounts), np.asarray(traj.mask) > 0
    n, t = obs.shape
    q = np.zeros((t + 1, num_obs, num_actions))
    visited = np.zeros((t, num_obs, num_actions), bool)
    for s in reversed(range(t)):
        v_next = (pi * q[s + 1]).sum(-1)
        tot = np.zeros((num_obs, num_actions))
        cnt = np.zeros((num_obs, num_actions))
        for i in range(n):
            if mask[i, s]:
                cont = 0.0 if s == t - 1 else disc[i, s]
                np.add.at(tot, (obs[i, s], act[i, s]), rew[i, s] + gamma * cont * v_next[nxt[i, s]])
                np.add.at(cnt, (obs[i, s], act[i, s]), 1.0)
        visited[s] = cnt > 0
        q[s] = np.where(cnt > 0, tot / np.maximum(cnt, 1), unvisited[s])
    return q[:t], visited


@pytest.mark.parametrize("name, gamma", [("graph", None), ("model_win", None)])
def test_time_augmented_fqe_matches_empirical_recursion(name, gamma):
    problem = make_problem(name, dtype=jnp.float64)
    mdp = problem.mdp
    t = min(problem.horizon, 6)
    traj = jax.jit(rollout, static_argnums=(3, 4))(jax.random.key(0), mdp, problem.behavior, 64, t, problem.target)
    g = float(mdp.gamma) if gamma is None else gamma
    o, a = mdp.num_observations, mdp.num_actions
    pi = np.asarray(problem.target)
    cfg = FittedQConfig(num_actions=a, method="fqe", gamma=g, hidden_sizes=(), num_observations=o * t,
                        num_steps=50 * (2 * t + 20), batch_size=None, learning_rate=0.1, target_update_period=50,
                        dtype="float64")
    res = jax.jit(make_train(cfg, time_augmented_policy(pi, t)))(jax.random.key(1), time_augmented_transitions(traj, o))
    table = res.state.apply_fn(res.state.params, jnp.arange(o * t)).reshape(o, t, a).transpose(1, 0, 2)
    ref, visited = _empirical_time_q(traj, pi, o, a, g, np.asarray(table))
    np.testing.assert_allclose(np.asarray(table)[visited], ref[visited], atol=2e-3)


def test_cross_fitted_terms_layout_and_bad_input():
    problem = make_problem("graph")
    mdp = problem.mdp
    traj = jax.jit(rollout, static_argnums=(3, 4))(jax.random.key(2), mdp, problem.behavior, 32, 4, problem.target)
    terms = cross_fitted_fqe_terms(jax.random.key(0), traj, mdp.num_observations, mdp.num_actions,
                                   problem.target, float(mdp.gamma), num_steps=200)
    assert terms.q_taken.shape == terms.v_hat.shape == traj.rewards.shape
    assert np.all(np.isfinite(np.asarray(terms.q_taken)))
    assert np.all(np.asarray(terms.q_taken)[np.asarray(traj.mask) == 0] == 0)
    with pytest.raises(ValueError, match="num_observations"):
        time_augmented_transitions(traj, 3)
