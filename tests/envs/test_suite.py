"""The literature suite: closed forms, published values and optimal policies, Monte Carlo."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.envs import occupancy, policy_value, rollout, value_iteration
from offrl_jax.envs.suite import (
    PROBLEMS,
    GRIDWORLD_STARTS,
    chain_walk,
    garnet,
    graph,
    graph_policy,
    graph_pomdp,
    gridworld,
    gridworld_best_actions,
    gridworld_policies,
    make_problem,
    model_fail,
    model_fail_policies,
    model_win,
    model_win_policies,
    problem_value,
    stitching_gridworld,
    stitching_layout,
    stitching_policies,
)
from offrl_jax.envs.tabular import check_policy

F64 = jnp.float64
_values = jax.jit(jax.vmap(policy_value, in_axes=(None, 0)))
_value = jax.jit(policy_value)
_occupancy = jax.jit(occupancy)
_value_iteration = jax.jit(value_iteration, static_argnames=("tol",))
_rollout = jax.jit(rollout, static_argnums=(3, 4))


# ----------------------------------------------------------------------------- chain walk


def test_chain_walk_4_tables_by_hand():
    mdp = chain_walk(4, dtype=F64)
    p = np.asarray(mdp.transitions)
    np.testing.assert_allclose(p[0, 0], [0.9, 0.1, 0, 0])  # L at the left end stays w.p. 0.9
    np.testing.assert_allclose(p[0, 1], [0.1, 0.9, 0, 0])
    np.testing.assert_allclose(p[2, 0], [0, 0.9, 0, 0.1])
    np.testing.assert_allclose(p[3, 1], [0, 0, 0.1, 0.9])
    np.testing.assert_allclose(mdp.rewards, [[0, 0], [1, 1], [1, 1], [0, 0]])
    np.testing.assert_allclose(mdp.initial, 0.25)
    assert float(mdp.gamma) == 0.9 and mdp.horizon is None


def test_chain_walk_value_iteration_matches_published_optimal_policies():
    # 4 states: RRLL, V* = (8.1, 9.1, 9.1, 8.1): by symmetry V*(2) = 1 + V*(1) and
    # V*(1) = 0.9 (0.9 V*(2) + 0.1 V*(1)), so V*(1) = 8.1 (solved by hand).
    q, pol = _value_iteration(chain_walk(4, dtype=F64), tol=1e-12)
    np.testing.assert_array_equal(np.argmax(pol, -1), [1, 1, 0, 0])
    np.testing.assert_allclose(q.max(-1), [8.1, 9.1, 9.1, 8.1], atol=1e-9)
    # 20 states: L on the paper's states 1-10, R on 11-20.
    _, pol = _value_iteration(chain_walk(20, dtype=F64), tol=1e-12)
    np.testing.assert_array_equal(np.argmax(pol, -1), [0] * 10 + [1] * 10)
    # 50 states: R 1-9, L 10-25, R 26-41, L 42-50; states 10 and 41 are ties (excluded).
    q, pol = _value_iteration(chain_walk(50, dtype=F64), tol=1e-12)
    expected = np.array([1] * 9 + [0] * 16 + [1] * 16 + [0] * 9)
    keep = np.ones(50, bool)
    keep[[9, 40]] = False
    np.testing.assert_array_equal(np.argmax(pol, -1)[keep], expected[keep])
    np.testing.assert_allclose(q[9, 0], q[9, 1], atol=1e-8)


def test_chain_walk_exact_value_of_uniform_policy_by_linear_solve():
    mdp = chain_walk(20, success_prob=0.7, gamma=0.8, reward_states=[3, 11], reward=2.0, dtype=F64)
    # Under the uniform policy each move is left or right w.p. 1/2 regardless of p.
    s = np.arange(20)
    p_pi = np.zeros((20, 20))
    np.add.at(p_pi, (s, np.maximum(s - 1, 0)), 0.5)
    np.add.at(p_pi, (s, np.minimum(s + 1, 19)), 0.5)
    r = np.zeros(20)
    r[[3, 11]] = 2.0
    v = np.linalg.solve(np.eye(20) - 0.8 * p_pi, r)
    assert np.isclose(_value(mdp, jnp.full((20, 2), 0.5, F64)), v.mean(), atol=1e-12)


def test_chain_walk_validation():
    with pytest.raises(ValueError, match="reward_states"):
        chain_walk(7)
    with pytest.raises(ValueError, match="reward_states"):
        chain_walk(4, reward_states=[4])
    with pytest.raises(ValueError, match="success_prob"):
        chain_walk(4, success_prob=1.5)
    with pytest.raises(ValueError, match="num_states"):
        chain_walk(1, reward_states=[0])


# -------------------------------------------------------------------- ModelFail / ModelWin


@pytest.mark.parametrize("gamma", [1.0, 0.9, 0.5])
def test_model_fail_closed_form_over_policy_grid(gamma):
    mdp = model_fail(gamma, dtype=F64)
    assert mdp.num_observations == 1 and mdp.horizon == 2
    p = np.linspace(0.0, 1.0, 11)
    pols = jnp.asarray(np.stack([p, 1 - p], -1)[:, None, :])  # [K, O=1, A=2]
    np.testing.assert_allclose(_values(mdp, pols), gamma * (2 * p - 1), atol=1e-12)
    looped = [policy_value(mdp, pi) for pi in pols[:3]]  # not jitted, not vmapped
    np.testing.assert_allclose(looped, _values(mdp, pols)[:3], atol=1e-12)


def test_model_fail_policies():
    mdp = model_fail(dtype=F64)
    pb, pe = model_fail_policies(F64)
    assert pb.shape == pe.shape == (1, 2)
    assert np.isclose(_value(mdp, pb), 0.76) and np.isclose(_value(mdp, pe), -0.76)


@pytest.mark.parametrize("gamma", [1.0, 0.95, 0.7])
def test_model_win_closed_form_over_policy_grid(gamma):
    mdp = model_win(gamma, dtype=F64)
    rng = np.random.default_rng(0)
    k = 9
    p0 = np.linspace(0.0, 1.0, k)
    pols = rng.dirichlet(np.ones(2), size=(k, 3))  # arbitrary in s1, s2 (variance only)
    pols[:, 0] = np.stack([p0, 1 - p0], -1)
    expected = 0.2 * ((1 - p0) - p0) * np.sum(gamma ** (2 * np.arange(10)))
    np.testing.assert_allclose(_values(mdp, jnp.asarray(pols)), expected, atol=1e-12)
    # Odd horizon: s0 is visited at t = 0, 2, 4, 6 when H = 7.
    short = model_win(gamma, horizon=7, dtype=F64)
    expected = 0.2 * ((1 - p0) - p0) * np.sum(gamma ** (2 * np.arange(4)))
    np.testing.assert_allclose(_values(short, jnp.asarray(pols)), expected, atol=1e-12)


def test_model_win_policies():
    mdp = model_win(dtype=F64)
    pb, pe = model_win_policies(F64)
    np.testing.assert_allclose(pb[0], [0.99, 0.01])
    np.testing.assert_allclose(pe[0], [0.01, 0.99])
    assert np.isclose(_value(mdp, pe), 1.96) and np.isclose(_value(mdp, pb), -1.96)


# ------------------------------------------------------------------------------ COBS Graph


def test_graph_tables_by_hand():
    mdp = graph(horizon=3, stochastic=True, dtype=F64)  # states 0..5, 5 terminal
    p, tab = np.asarray(mdp.transitions), np.asarray(mdp.reward_table)
    np.testing.assert_allclose(p[0, 0], [0, 0.75, 0.25, 0, 0, 0])
    np.testing.assert_allclose(p[0, 1], [0, 0.25, 0.75, 0, 0, 0])
    np.testing.assert_allclose(p[1, 1], [0, 0, 0, 0.25, 0.75, 0])  # odd: a1 -> s + 3
    np.testing.assert_allclose(p[2, 0], [0, 0, 0, 0.75, 0.25, 0])  # even: a0 -> s + 1
    np.testing.assert_allclose(p[3, 0], [0, 0, 0, 0, 0, 1])
    np.testing.assert_allclose(tab[0, 0, [1, 2]], [1, -1])
    np.testing.assert_allclose(tab[[3, 4], 1, 5], [1, -1])
    np.testing.assert_array_equal(mdp.terminal, [0, 0, 0, 0, 0, 1])
    sparse = graph(horizon=3, sparse=True, dtype=F64)
    np.testing.assert_allclose(sparse.rewards[:3], 0.0)
    np.testing.assert_allclose(sparse.rewards[3:5, 0], [1, -1])


@pytest.mark.parametrize("stochastic", [True, False])
@pytest.mark.parametrize("sparse", [True, False])
def test_graph_closed_forms(stochastic, sparse):
    p = np.linspace(0.0, 1.0, 6)
    c = (p - 0.5) if stochastic else (2 * p - 1)
    for horizon, gamma in [(2, 0.9), (5, 1.0), (16, 0.98)]:
        for mdp in (
            graph(horizon, gamma, stochastic, sparse, dtype=F64),
            graph_pomdp(horizon, gamma, stochastic, sparse, num_obs=3, dtype=F64),
        ):
            pols = jnp.stack([graph_policy(mdp, q) for q in p])
            if sparse:
                expected = c * gamma ** (horizon - 1)
            else:
                expected = c * np.sum(gamma ** np.arange(horizon))
            np.testing.assert_allclose(_values(mdp, pols), expected, atol=1e-12)


def test_graph_cobs_config_values():
    m = graph(dtype=F64)  # base_toy_graph: T = 16, gamma = 0.98, stochastic, dense
    assert round(float(_value(m, graph_policy(m, 0.2))), 5) == -4.14303
    assert round(float(_value(m, graph_policy(m, 0.8))), 5) == 4.14303
    m = graph_pomdp(dtype=F64)  # toy_graph_pomdp: 6 observations, sparse
    assert round(float(_value(m, graph_policy(m, 0.2))), 5) == -0.22157
    assert round(float(_value(m, graph_policy(m, 0.8))), 5) == 0.22157
    m = graph(horizon=4, dtype=F64)  # tabular_example
    assert round(float(_value(m, graph_policy(m, 0.2))), 5) == -1.16448
    m = graph(stochastic=False, dtype=F64)
    assert round(float(_value(m, graph_policy(m, 0.2))), 5) == -8.28607


def test_graph_pomdp_observation_map():
    m = graph_pomdp(dtype=F64)
    # np.array_split of states 1..30 into 5 groups of 6; state 0 -> 0, state 31 -> 5.
    expected = [0] + [g for g in range(5) for _ in range(6)] + [5]
    np.testing.assert_array_equal(m.obs_of_state, expected)
    assert m.num_observations == 6
    m = graph_pomdp(horizon=3, num_obs=3, dtype=F64)  # states 1..4 -> [1, 2], [3, 4]
    np.testing.assert_array_equal(m.obs_of_state, [0, 0, 0, 1, 1, 2])
    with pytest.raises(ValueError, match="num_obs"):
        graph_pomdp(num_obs=1)
    with pytest.raises(ValueError, match="num_obs"):
        graph_pomdp(horizon=3, num_obs=6)  # more observations than states 1..4 plus 2
    with pytest.raises(ValueError, match="horizon"):
        graph(horizon=1)
    with pytest.raises(ValueError, match="prob_a0"):
        graph_policy(m, 1.2)


# -------------------------------------------------------------------------- COBS Gridworld


def test_gridworld_published_values():
    pe, pb = gridworld_policies([0.1, 0.6], dtype=F64)
    m = gridworld(dtype=F64)
    assert round(float(_value(m, pe)), 5) == 0.31296
    assert round(float(_value(m, pb)), 5) == -0.81253
    m = gridworld(slip=0.0, dtype=F64)
    assert round(float(_value(m, pe)), 5) == 0.61176
    assert round(float(_value(m, pb)), 5) == -0.59810


def test_gridworld_tables_and_policies():
    m = gridworld(dtype=F64)
    p, tab = np.asarray(m.transitions), np.asarray(m.reward_table)
    # Cell 0 (top-left), action right: 0.8 + 0.05 to cell 1; left/up stay (0.05 each); down 0.05.
    np.testing.assert_allclose(p[0, 1, [0, 1, 8]], [0.1, 0.85, 0.05])
    np.testing.assert_allclose(tab[0, 1, 1], -0.01)
    np.testing.assert_allclose(tab[11, 3, 19], -0.5)  # (2, 3) is a hole
    np.testing.assert_allclose(tab[62, 1, 63], 1.0)  # entering the goal
    assert bool(m.terminal[63]) and int(np.sum(m.terminal)) == 1
    np.testing.assert_allclose(np.asarray(m.initial)[GRIDWORLD_STARTS], 1 / 15)
    best = gridworld_best_actions()
    assert best.shape == (64,) and best[62] == 1 and best[55] == 3  # next to the goal
    pol = gridworld_policies(0.6, dtype=F64)
    np.testing.assert_allclose(pol[np.arange(64), best], 0.15 + 0.4)
    np.testing.assert_allclose(pol.sum(-1), 1.0)
    with pytest.raises(ValueError, match="epsilon"):
        gridworld_policies(1.5)
    with pytest.raises(ValueError, match="slip"):
        gridworld(slip=-0.1)


# ---------------------------------------------------------------------------- stitching


def _support(mdp, pi):
    return np.asarray(_occupancy(mdp, pi)) > 1e-12


@pytest.mark.parametrize("room_size,corridor_length,slip", [(3, 3, 0.0), (5, 2, 0.0), (3, 3, 0.1)])
def test_stitching_optimal_beats_behaviour_and_is_covered_by_their_union(
    room_size, corridor_length, slip
):
    mdp = stitching_gridworld(room_size, corridor_length, slip=slip, horizon=40, dtype=F64)
    first, second, best = stitching_policies(room_size, corridor_length, dtype=F64)
    j_first, j_second, j_best = (float(_value(mdp, pi)) for pi in (first, second, best))
    assert j_best > j_second + 1e-3 and j_best > j_first + 1e-3
    sup1, sup2, sup_best = _support(mdp, first), _support(mdp, second), _support(mdp, best)
    assert np.all(sup_best <= (sup1 | sup2))
    assert not np.all(sup_best <= sup1) and not np.all(sup_best <= sup2)
    if slip == 0.0:
        # The shortest-path policy is optimal: its value equals J* from value iteration.
        q_star, _ = _value_iteration(mdp)
        j_star = float(jnp.dot(mdp.initial, q_star[0].max(-1)))
        assert np.isclose(j_best, j_star, atol=1e-12)
        length = 3 * room_size + corridor_length - 2
        assert np.isclose(j_best, 0.95 ** (length - 1), atol=1e-12)
        assert j_first == 0.0
        assert np.isclose(j_second, 0.95 ** (length - 1 + 2 * (room_size - 1 - room_size // 2)))


def test_stitching_layout_and_validation():
    expected = ["111000111", "111111111", "111000111"]
    assert ["".join(str(int(c)) for c in row) for row in stitching_layout()] == expected
    assert stitching_gridworld().num_states == 21
    with pytest.raises(ValueError, match="room_size"):
        stitching_gridworld(room_size=4)
    with pytest.raises(ValueError, match="corridor_length"):
        stitching_policies(corridor_length=0)
    with pytest.raises(ValueError, match="epsilon"):
        stitching_policies(epsilon=2.0)


# --------------------------------------------------------------------------------- Garnet


def test_garnet_structure_and_determinism():
    a, b = garnet(3, 30, 4, 5, dtype=F64), garnet(3, 30, 4, 5, dtype=F64)
    np.testing.assert_array_equal(a.transitions, b.transitions)
    np.testing.assert_array_equal(a.rewards, b.rewards)
    c = garnet(4, 30, 4, 5, dtype=F64)
    assert not np.allclose(a.transitions, c.transitions)
    p = np.asarray(a.transitions)
    assert np.all(np.sum(p > 0, -1) == 5)  # exactly b distinct next states
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(a.initial, 1 / 30)
    assert np.all(np.sum(np.asarray(garnet(0, 10, 2, 1, dtype=F64).transitions) > 0, -1) == 1)


def test_garnet_distributions():
    # Cut points: each nonzero probability is a Beta(1, b - 1) spacing. For b = 4: variance
    # 3/80 = 0.0375 and fourth central moment 0.004352, so the sample variance has standard error
    # sqrt((0.004352 - 0.0375^2) / n); n = 1000 rows (conservative: entries of a row are
    # dependent). Normalised uniforms would give ~0.0195, 10 standard errors away.
    m = garnet(1, 200, 5, 4, dtype=F64)
    p = np.asarray(m.transitions)
    nz = p[p > 0]
    se = np.sqrt((0.004352 - 0.0375**2) / 1000)
    assert abs(nz.var() - 0.0375) < 4 * se
    r = np.asarray(m.rewards).ravel()  # N(0, 1) means
    assert abs(r.mean()) < 4 / np.sqrt(r.size) and abs(r.var() - 1) < 4 * np.sqrt(2 / r.size)
    # Successors are uniform over states: 1000 (s, a) pairs x 4 successors over 200 states.
    counts = np.sum(p > 0, axis=(0, 1))
    expected = 1000 * 4 / 200
    chi2 = np.sum((counts - expected) ** 2 / expected)  # ~ chi2(199): mean 199, sd 20
    assert chi2 < 199 + 4 * np.sqrt(2 * 199)


def test_garnet_values_vmapped_over_mdps_equal_looped_and_numpy_solve():
    mdps = [garnet(s, 8, 3, 2, gamma=0.9, dtype=F64) for s in range(4)]
    pi = jnp.full((8, 3), 1 / 3, F64)
    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *mdps)
    vm = jax.jit(jax.vmap(policy_value, in_axes=(0, None)))(stacked, pi)
    looped = [policy_value(m, pi) for m in mdps]
    np.testing.assert_allclose(vm, looped, atol=1e-12)
    for m, j in zip(mdps, looped):
        p_pi = np.asarray(m.transitions).mean(1)
        v = np.linalg.solve(np.eye(8) - 0.9 * p_pi, np.asarray(m.rewards).mean(1))
        assert np.isclose(j, v.mean(), atol=1e-12)


def test_garnet_validation():
    with pytest.raises(ValueError, match="branching"):
        garnet(0, 5, 2, 6)
    with pytest.raises(ValueError, match="seed"):
        garnet(-1, 5, 2, 2)
    with pytest.raises(ValueError, match="reward_std"):
        garnet(0, 5, 2, 2, reward_std=-1.0)


# ------------------------------------------------------------------------------- problems


@pytest.mark.parametrize("name", PROBLEMS)
def test_problem_is_valid_and_monte_carlo_matches_exact_value(name):
    prob = make_problem(name, dtype=F64)
    mdp = prob.mdp
    for pol, arg in ((prob.behavior, "behavior"), (prob.target, "target")):
        check_policy(mdp, pol, arg)
        assert pol.shape == (mdp.num_observations, mdp.num_actions)
    assert np.all(np.asarray(prob.behavior)[np.asarray(prob.target) > 0] > 0)  # coverage
    assert not np.allclose(prob.behavior, prob.target)
    assert not np.isclose(problem_value(prob), problem_value(prob, prob.behavior))
    # Monte Carlo of T-step episodes under the target against the exact T-step value.
    traj = _rollout(jax.random.key(7), mdp, prob.target, 4000, prob.horizon)
    g = np.asarray(traj.returns(float(mdp.gamma)))
    se = g.std() / np.sqrt(g.size)
    exact = float(problem_value(prob))
    assert abs(g.mean() - exact) < 4 * se + 1e-12
    if mdp.horizon is None:  # truncation gap: 2.3e-4 (chain walks), 6.2e-4 (Garnet)
        assert abs(exact - float(_value(mdp, prob.target))) < 1e-3


def test_stochastic_rewards_keep_the_mean():
    mdp = graph(horizon=6, sparse=True, stochastic_rewards=True, dtype=F64)
    pi = graph_policy(mdp, 0.3)
    traj = _rollout(jax.random.key(3), mdp, pi, 4000, 6)
    g = np.asarray(traj.returns(0.98))
    assert g.std() > 2.0  # six N(0, 1) noises: sd >= sqrt(sum gamma^2t) ~ 2.4
    assert abs(g.mean() - float(_value(mdp, pi))) < 4 * g.std() / np.sqrt(g.size)


def test_dtypes_and_unknown_problem():
    for build in (lambda d: chain_walk(4, dtype=d), lambda d: model_fail(dtype=d),
                  lambda d: graph(dtype=d), lambda d: gridworld(dtype=d),
                  lambda d: stitching_gridworld(dtype=d), lambda d: garnet(0, 5, 2, 2, dtype=d)):
        assert build(None).rewards.dtype == jnp.float32
        assert build(F64).transitions.dtype == jnp.float64
    prob = make_problem("gridworld")
    assert prob.behavior.dtype == prob.target.dtype == prob.mdp.rewards.dtype == jnp.float32
    assert problem_value(prob).dtype == jnp.float32
    with pytest.raises(ValueError, match="name"):
        make_problem("chain_walk_7")
