"""Exact solvers against closed forms and hand computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax import policies
from offrl_jax.envs import (
    TabularMDP,
    occupancy,
    policy_value,
    q_values,
    state_distributions,
    state_values,
    value_iteration,
)

F64 = jnp.float64


def two_state_mdp(gamma=0.9, horizon=None):
    # s0: a0 stays (r=0), a1 moves to s1 (r=1); s1 absorbing with r=2 per step.
    p = np.zeros((2, 2, 2))
    p[0, 0, 0] = 1.0
    p[0, 1, 1] = 1.0
    p[1, :, 1] = 1.0
    r = np.array([[0.0, 1.0], [2.0, 2.0]])
    return TabularMDP.create(p, r, [1.0, 0.0], gamma, horizon=horizon, dtype=F64)


def test_two_state_by_hand():
    mdp = two_state_mdp()
    pi = np.array([[0.5, 0.5], [1.0, 0.0]])
    # V1 = 2 / (1 - 0.9) = 20; V0 = 0.5 * 0.9 V0 + 0.5 (1 + 0.9 * 20)  =>  V0 = 9.5 / 0.55.
    np.testing.assert_allclose(state_values(mdp, pi), [9.5 / 0.55, 20.0], rtol=1e-12)
    np.testing.assert_allclose(policy_value(mdp, pi), 9.5 / 0.55, rtol=1e-12)
    q = q_values(mdp, pi)
    np.testing.assert_allclose(q, [[0.9 * 9.5 / 0.55, 19.0], [20.0, 20.0]], rtol=1e-12)


def test_finite_horizon_geometric_series():
    mdp = two_state_mdp(gamma=0.5, horizon=4)
    pi = np.array([[0.0, 1.0], [1.0, 0.0]])
    # r_0 = 1 then 2 per step: 1 + 2 (0.5 + 0.25 + 0.125).
    np.testing.assert_allclose(policy_value(mdp, pi), 1 + 2 * 0.875, rtol=1e-12)
    q = q_values(mdp, pi)
    assert q.shape == (4, 2, 2)
    # Last step: Q_3 = R.
    np.testing.assert_allclose(q[-1], mdp.rewards)
    # Undiscounted finite horizon is allowed.
    mdp1 = two_state_mdp(gamma=1.0, horizon=3)
    np.testing.assert_allclose(policy_value(mdp1, pi), 1 + 2 + 2, rtol=1e-12)


def test_discounted_value_is_limit_of_finite_horizon():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5), size=(5, 3))
    r = rng.normal(size=(5, 3))
    d0 = rng.dirichlet(np.ones(5))
    pi = rng.dirichlet(np.ones(3), size=5)
    inf = TabularMDP.create(p, r, d0, 0.8, dtype=F64)
    fin = TabularMDP.create(p, r, d0, 0.8, horizon=400, dtype=F64)
    np.testing.assert_allclose(policy_value(fin, pi), policy_value(inf, pi), rtol=1e-10)


def test_occupancy_normalised_and_gives_value():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(6), size=(6, 2))
    r = rng.normal(size=(6, 2))
    d0 = rng.dirichlet(np.ones(6))
    pi = rng.dirichlet(np.ones(2), size=6)
    mdp = TabularMDP.create(p, r, d0, 0.9, dtype=F64)
    d = occupancy(mdp, pi)
    np.testing.assert_allclose(d.sum(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(jnp.sum(d * mdp.rewards) / (1 - 0.9), policy_value(mdp, pi), rtol=1e-10)
    # Bellman flow: d = (1 - g) d0 pi + g pi * (P^T d).
    flow = (1 - 0.9) * d0[:, None] * pi + 0.9 * pi * jnp.einsum("sa,sat->t", d, mdp.transitions)[:, None]
    np.testing.assert_allclose(d, flow, atol=1e-12)
    # Finite horizon: the discount-weighted average of the state marginals.
    fin = TabularMDP.create(p, r, d0, 0.9, horizon=7, dtype=F64)
    df = occupancy(fin, pi)
    norm = np.sum(0.9 ** np.arange(7))
    np.testing.assert_allclose(jnp.sum(df * fin.rewards) * norm, policy_value(fin, pi), rtol=1e-10)
    ds = state_distributions(fin, pi, 7)
    np.testing.assert_allclose(ds.sum(-1), np.ones(7), rtol=1e-12)


def test_value_iteration_matches_policy_evaluation_of_its_greedy_policy():
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.ones(7), size=(7, 3))
    r = rng.normal(size=(7, 3))
    mdp = TabularMDP.create(p, r, np.full(7, 1 / 7), 0.95, dtype=F64)
    (q_star, pi_star), info = value_iteration(mdp, return_info=True)
    assert bool(info.converged)
    np.testing.assert_allclose(q_values(mdp, pi_star), q_star, atol=1e-8)
    # Bellman optimality and no better deterministic policy among random perturbations.
    bellman = mdp.rewards + 0.95 * jnp.einsum("sat,t->sa", mdp.transitions, q_star.max(-1))
    np.testing.assert_allclose(q_star, bellman, atol=1e-8)
    for seed in range(5):
        pi = jnp.asarray(np.random.default_rng(seed).dirichlet(np.ones(3), 7))  # numpy: no gamma-sampler compile
        assert policy_value(mdp, pi) <= policy_value(mdp, pi_star) + 1e-10


def test_finite_horizon_value_iteration():
    mdp = two_state_mdp(gamma=1.0, horizon=3)
    q, pi = value_iteration(mdp)
    assert q.shape == (3, 2, 2)
    # Going to s1 at once is optimal: 1 + 2 + 2.
    np.testing.assert_allclose(q[0].max(-1)[0], 5.0)
    np.testing.assert_allclose(pi[0, 0], [0.0, 1.0])


def test_aliased_observations_share_a_policy_row():
    p = np.zeros((3, 2, 3))
    p[0, 0, 1] = 1.0
    p[0, 1, 2] = 1.0
    p[1:, :, 1:] = np.eye(2)[:, None, :]
    r = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    mdp = TabularMDP.create(p, r, [1.0, 0.0, 0.0], 0.5, obs_of_state=[0, 0, 0], dtype=F64)
    assert mdp.num_observations == 1
    pi = np.array([[0.25, 0.75]])
    # V1 = 0.25 / 0.5, V2 = 0.75 / 0.5; V0 = 0.5 (0.25 V1 + 0.75 V2).
    np.testing.assert_allclose(policy_value(mdp, pi), 0.5 * (0.25 * 0.5 + 0.75 * 1.5), rtol=1e-12)


def test_jit_and_vmap_over_policies_and_mdps():
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(4), size=(4, 2))
    mdp = TabularMDP.create(p, rng.normal(size=(4, 2)), np.full(4, 0.25), 0.9, dtype=F64)
    pis = jnp.asarray(np.random.default_rng(1).dirichlet(np.ones(2), (8, 4)))  # numpy: no gamma-sampler compile
    looped = np.array([policy_value(mdp, pi) for pi in pis])
    np.testing.assert_allclose(jax.jit(jax.vmap(policy_value, (None, 0)))(mdp, pis), looped, rtol=1e-12)
    np.testing.assert_allclose(jax.jit(policy_value)(mdp, pis[0]), looped[0], rtol=1e-12)
    # vmap over MDPs of the same size (different discounts).
    mdps = jax.tree_util.tree_map(lambda *x: jnp.stack(x), mdp, mdp.replace(gamma=jnp.asarray(0.5)))
    both = jax.vmap(policy_value, (0, None))(mdps, pis[0])
    np.testing.assert_allclose(both[1], policy_value(mdp.replace(gamma=jnp.asarray(0.5)), pis[0]), rtol=1e-12)


def test_policy_helpers():
    q = jnp.array([[1.0, 3.0, 2.0], [0.0, 0.0, -1.0]])
    np.testing.assert_allclose(policies.greedy(q), [[0, 1, 0], [1, 0, 0]])
    eg = policies.epsilon_greedy(q, 0.3)
    np.testing.assert_allclose(eg.sum(-1), 1.0)
    np.testing.assert_allclose(eg[0], [0.1, 0.8, 0.1])
    np.testing.assert_allclose(policies.softmax(q, 1e-3)[0], [0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(policies.mixture(policies.greedy(q), policies.uniform(2, 3), 0.5)[1], [2 / 3, 1 / 6, 1 / 6])
    lp = policies.log_prob(policies.greedy(q), jnp.array([0, 0]), jnp.array([1, 0]))
    assert lp[0] == 0.0 and lp[1] == -jnp.inf


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(transitions=np.ones((2, 2, 2))), "transitions"),
        (dict(transitions=np.ones((2, 2))), "transitions"),
        (dict(rewards=np.full((2, 2), np.nan)), "rewards"),
        (dict(rewards=np.zeros((3, 2))), "rewards"),
        (dict(initial=[0.5, 0.6]), "initial"),
        (dict(initial=[1.0]), "initial"),
        (dict(gamma=1.5), "gamma"),
        (dict(gamma=1.0), "gamma"),
        (dict(horizon=0), "horizon"),
        (dict(terminal=[True, False]), "terminal"),
        (dict(obs_of_state=[0.5, 1.0]), "obs_of_state"),
    ],
)
def test_validation_names_the_argument(kwargs, field):
    p = np.zeros((2, 2, 2))
    p[:, :, 1] = 1.0
    args = dict(transitions=p, rewards=np.ones((2, 2)), initial=[1.0, 0.0], gamma=0.9)
    args.update(kwargs)
    with pytest.raises(ValueError, match=field):
        TabularMDP.create(**args)


def test_permuted_observation_map_with_as_many_observations_as_states():
    p = np.zeros((2, 2, 2))
    p[:, :, 0] = 1.0
    r = np.array([[1.0, 0.0], [0.0, 1.0]])
    # Observation 0 is state 1 and observation 1 is state 0.
    mdp = TabularMDP.create(p, r, [1.0, 0.0], 0.5, obs_of_state=[1, 0], dtype=F64)
    pi = np.array([[1.0, 0.0], [0.0, 1.0]])  # in state 0 (observation 1) take action 1: reward 0
    np.testing.assert_allclose(policy_value(mdp, pi), 0.0, atol=1e-12)
    from offrl_jax.envs import check_policy

    with pytest.raises(ValueError, match="policy"):
        check_policy(TabularMDP.create(p, r, [1.0, 0.0], 0.5, obs_of_state=[0, 0], dtype=F64), pi)
