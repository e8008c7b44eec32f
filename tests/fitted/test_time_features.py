"""Time features: horizon-aware tabular FQE (index encoding) converges to the time-indexed
certainty-equivalence Q of the data; both encodings of the one helper; cross-fitted terms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.envs import rollout
from offrl_jax.envs.suite import make_problem
from offrl_jax.envs.empirical import estimate_mdp, model_q_hat
from offrl_jax.experiments.cross_fit import cross_fitted_fqe_terms, cross_fitted_model_terms
from offrl_jax.fitted import FittedQConfig, make_train, time_augmented_policy, time_aware_transitions, with_time


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
    res = jax.jit(make_train(cfg, time_augmented_policy(pi, t)))(jax.random.key(1), time_aware_transitions(traj, t, encoding="index", num_observations=o))
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
        time_aware_transitions(traj, 4, encoding="index", num_observations=3)
    with pytest.raises(ValueError, match="time_limit"):
        time_aware_transitions(traj, 3, encoding="index", num_observations=mdp.num_observations)
    with pytest.raises(ValueError, match="num_observations"):
        cross_fitted_fqe_terms(jax.random.key(0), traj, 3, mdp.num_actions, problem.target, 0.9)


def test_cross_fitted_model_terms_use_the_other_fold():
    """Each fold's terms are the exact Q^pi of the model estimated on the other fold."""
    problem = make_problem("graph", dtype=jnp.float64)
    mdp = problem.mdp
    traj = jax.jit(rollout, static_argnums=(3, 4))(jax.random.key(3), mdp, problem.behavior, 20, 4, problem.target)
    o, a, g = mdp.num_observations, mdp.num_actions, float(mdp.gamma)
    # Jitted (eager calls run op by op and compile every primitive); ``fit_on`` compiles once for
    # the two 10-episode folds.
    terms = jax.jit(cross_fitted_model_terms, static_argnums=(1, 2, 4, 5))(traj, o, a, problem.target, g, 4)
    fit_on = jax.jit(lambda fit, apply: model_q_hat(estimate_mdp(fit, o, a, g, 4), problem.target, apply))
    first = jax.tree_util.tree_map(lambda x: x[:10], traj)
    second = jax.tree_util.tree_map(lambda x: x[10:], traj)
    expect = fit_on(second, first)
    np.testing.assert_allclose(terms.q_taken[:10], expect.q_taken, rtol=1e-12)
    np.testing.assert_allclose(terms.v_hat[:10], expect.v_hat, rtol=1e-12)
    assert not np.allclose(terms.q_taken[:10], fit_on(first, first).q_taken)


def test_with_time_encodings():
    obs = jnp.array([[2, 0, 1]])
    np.testing.assert_array_equal(with_time(obs, jnp.arange(3), 3, encoding="index"), [[6, 1, 5]])
    feats = jnp.ones((1, 3, 2), jnp.float32)
    out = with_time(feats, jnp.arange(3), 4)
    assert out.shape == (1, 3, 3) and out.dtype == jnp.float32
    np.testing.assert_allclose(out[0, :, -1], [0.0, 0.25, 0.5])
    with pytest.raises(ValueError, match="encoding"):
        with_time(obs, 0, 3, encoding="onehot")
    with pytest.raises(ValueError, match="time_limit"):
        with_time(obs, 0, 0)
    np.testing.assert_array_equal(time_augmented_policy(jnp.eye(2), 3), np.repeat(np.eye(2), 3, axis=0))
