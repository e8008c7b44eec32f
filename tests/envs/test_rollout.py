"""Tabular rollouts: Monte-Carlo agrees with exact values; jit, padding and log-probs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.envs import TabularMDP, policy_value, rollout

F64 = jnp.float64
_rollout = jax.jit(rollout, static_argnums=(3, 4))


def random_mdp(seed=0, s=5, a=3, gamma=0.8, horizon=None, terminal=False):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(s), size=(s, a))
    r = rng.normal(size=(s, a))
    term = None
    if terminal:
        p[-1] = 0.0
        p[-1, :, -1] = 1.0
        r[-1] = 0.0
        term = np.zeros(s, bool)
        term[-1] = True
    return TabularMDP.create(p, r, rng.dirichlet(np.ones(s)), gamma, horizon=horizon, terminal=term, dtype=F64)


def test_monte_carlo_mean_matches_exact_value_within_4_se():
    mdp = random_mdp(horizon=12, gamma=0.9)
    pi = jnp.asarray(np.random.default_rng(0).dirichlet(np.ones(3), 5))  # numpy: no gamma-sampler compile
    traj = _rollout(jax.random.key(1), mdp, pi, 20_000, 12)
    g = traj.returns(0.9)
    se = g.std() / np.sqrt(g.size)
    assert abs(g.mean() - policy_value(mdp, pi)) < 4 * se


def test_terminal_states_end_episodes_and_mc_matches():
    mdp = random_mdp(seed=3, terminal=True, gamma=0.9)
    pi = jnp.full((5, 3), 1 / 3, F64)
    traj = _rollout(jax.random.key(2), mdp, pi, 20_000, 200)
    m = np.asarray(traj.mask)
    assert np.all(np.diff(m, axis=1) <= 0)
    lengths = m.sum(1).astype(int)
    ended = lengths < 200
    assert ended.mean() > 0.5
    idx = np.flatnonzero(ended)
    # The last real step of an ended episode enters the terminal state, with discount 0.
    np.testing.assert_array_equal(np.asarray(traj.discounts)[idx, lengths[idx] - 1], 0.0)
    np.testing.assert_array_equal(np.asarray(traj.next_states)[idx, lengths[idx] - 1], 4)
    assert np.all(np.asarray(traj.rewards)[m == 0] == 0)
    g = traj.returns(0.9)  # 0.9 ** 200 is negligible against the standard error
    assert abs(g.mean() - policy_value(mdp, pi)) < 4 * g.std() / np.sqrt(g.size)


def test_log_probs_and_validation_pass():
    mdp = random_mdp(seed=1, horizon=6)
    pi_b = jnp.full((5, 3), 1 / 3, F64)
    pi_e = jnp.asarray(np.random.default_rng(3).dirichlet(np.ones(3), 5))
    traj = _rollout(jax.random.key(4), mdp, pi_b, 50, 6, pi_e)
    np.testing.assert_allclose(traj.behavior_log_probs, np.log(1 / 3))
    s, a = np.asarray(traj.states), np.asarray(traj.actions)
    np.testing.assert_allclose(traj.target_log_probs, np.log(np.asarray(pi_e)[s, a]))
    np.testing.assert_array_equal(traj.observations, traj.states)
    np.testing.assert_array_equal(traj.states[:, 1:], traj.next_states[:, :-1])
    traj.validate()


def test_jit_equals_nojit_and_keys_matter():
    mdp = random_mdp(seed=2, horizon=5)
    pi = jnp.full((5, 3), 1 / 3, F64)
    a = rollout(jax.random.key(7), mdp, pi, 16, 5)
    b = _rollout(jax.random.key(7), mdp, pi, 16, 5)
    jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)
    c = _rollout(jax.random.key(8), mdp, pi, 16, 5)
    assert not np.array_equal(a.states, c.states)


def test_stochastic_rewards():
    p = np.ones((1, 1, 1))
    mdp = TabularMDP.create(p, np.full((1, 1), 2.0), [1.0], 0.5, reward_std=np.ones((1, 1)), dtype=F64)
    traj = _rollout(jax.random.key(0), mdp, jnp.ones((1, 1), F64), 4000, 1)
    r = np.asarray(traj.rewards[:, 0])
    assert abs(r.mean() - 2.0) < 4 * r.std() / np.sqrt(r.size)
    assert 0.9 < r.std() < 1.1


def test_zero_probability_actions_are_never_sampled():
    p = np.zeros((2, 4, 2))
    p[:, :, 1] = 1.0
    mdp = TabularMDP.create(p, np.zeros((2, 4)), [1.0, 0.0], 0.9)  # float32
    pi = jnp.array([[0.0, 0.3, 0.7, 0.0], [0.0, 0.0, 0.0, 1.0]], jnp.float32)
    traj = _rollout(jax.random.key(5), mdp, pi, 20_000, 2)
    a0, a1 = np.asarray(traj.actions[:, 0]), np.asarray(traj.actions[:, 1])
    assert set(np.unique(a0)) == {1, 2} and set(np.unique(a1)) == {3}
    freq = (a0 == 1).mean()
    assert abs(freq - 0.3) < 4 * np.sqrt(0.3 * 0.7 / a0.size)
    assert np.all(np.isfinite(traj.behavior_log_probs))
    assert traj.rewards.dtype == jnp.float32


def test_rollout_and_solvers_refuse_non_policies_and_empty_sizes():
    from offrl_jax.envs import policy_value, q_values
    from offrl_jax.envs.suite import chain_walk

    mdp = chain_walk(4)
    good = np.full((4, 2), 0.5)
    for bad in (np.array([[0.7, 0.0]] * 4), np.array([[1.5, -0.5]] * 4), np.full((3, 2), 0.5), np.full((4, 2), np.nan)):
        for fn in (lambda p: rollout(jax.random.key(0), mdp, p, 4, 3), lambda p: policy_value(mdp, p),
                   lambda p: q_values(mdp, p), lambda p: rollout(jax.random.key(0), mdp, good, 4, 3, target_policy=p)):
            with pytest.raises(ValueError, match="policy"):
                fn(bad)
    for n, t in ((0, 3), (4, 0), (4, -1)):
        with pytest.raises(ValueError, match="num_episodes" if n == 0 else "horizon"):
            rollout(jax.random.key(0), mdp, good, n, t)
