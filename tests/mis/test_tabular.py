"""Tabular MIS: exact population identities, convergence rate, unbiasedness over many datasets."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.data import Transitions, to_transitions
from offrl_jax.envs import (
    TabularMDP,
    exact_ratios,
    exact_time_ratios,
    logged_distribution,
    occupancy,
    policy_value,
    rollout,
    state_distributions,
    stationary_distribution,
)
from offrl_jax.envs.suite import make_problem, problem_value
from offrl_jax.experiments.mis_table import mis_rows
from offrl_jax.mis import (
    mis_average_reward,
    mis_estimate,
    mis_finite_horizon,
    ratios_at,
    tabular_average_ratios,
    tabular_mis,
    tabular_ratios,
    tabular_time_mis,
    tabular_time_ratios,
)

GAMMA = 0.9


def _random_mdp(seed=0, s=5, a=2, gamma=GAMMA, terminal=False, horizon=None):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(s), size=(s, a))
    r = rng.normal(size=(s, a))
    init = np.ones(s) / s
    term = None
    if terminal:  # last state absorbing, reachable from every state
        p[:, :, -1] += 0.1
        p[-1] = 0.0
        p[-1, :, -1] = 1.0
        p /= p.sum(-1, keepdims=True)
        r[-1] = 0.0
        init = np.r_[np.ones(s - 1) / (s - 1), 0.0]
        term = np.arange(s) == s - 1
    mdp = TabularMDP.create(p, r, init, gamma, horizon=horizon, terminal=term, dtype=jnp.float64)
    pib = jnp.full((s, a), 1.0 / a)
    pie = jnp.asarray(rng.dirichlet(np.ones(a), size=s))
    return mdp, pib, pie


def _population(mdp, d_data):
    """All (s, a, s') triples, weighted by d^D(s, a) P(s'|s, a): the infinite-data limit."""
    s, a, s2 = np.meshgrid(*(np.arange(n) for n in mdp.transitions.shape), indexing="ij")
    weight = np.asarray(d_data)[..., None] * np.asarray(mdp.transitions)
    disc = 1.0 - np.asarray(mdp.terminal)[s2].astype(float)
    return s.ravel(), a.ravel(), s2.ravel(), disc.ravel(), weight.ravel()


_population_solve = jax.jit(
    lambda s, a, s2, disc, pie, wt, mu0: tabular_ratios(
        s, a, s2, disc, wt, jnp.arange(mu0.shape[0]), pie, GAMMA, initial_mask=mu0
    )
)


@pytest.mark.parametrize("terminal", [False, True])
@pytest.mark.parametrize("data", ["logged", "behavior_occupancy", "on_policy"])
def test_population_solve_equals_exact_ratios(terminal, data):
    mdp, pib, pie = _random_mdp(terminal=terminal)
    if data == "logged":
        d_data = logged_distribution(mdp, pib, 7)
    elif data == "behavior_occupancy":
        d_data = occupancy(mdp, pib)
    else:
        d_data = occupancy(mdp, pie)
    d_data = jnp.where(mdp.terminal[:, None], 0.0, d_data)
    d_data = d_data / jnp.sum(d_data)
    s, a, s2, disc, wt = _population(mdp, d_data)
    res = _population_solve(s, a, s2, disc, pie, wt, mdp.initial)
    exact = exact_ratios(occupancy(mdp, pie), d_data)
    np.testing.assert_allclose(res.weights, exact.weights, rtol=1e-9, atol=1e-10)
    assert int(jnp.sum(res.unsupported)) == 0 and float(res.unsupported_mass) == 0.0
    live_mass = float(jnp.sum(jnp.where(mdp.terminal[:, None], 0.0, occupancy(mdp, pie))))
    np.testing.assert_allclose(res.data_mass, live_mass, rtol=1e-9)
    assert terminal or abs(live_mass - 1.0) < 1e-12
    if data == "on_policy" and not terminal:
        np.testing.assert_allclose(res.weights, 1.0, rtol=1e-9)
    # J = E_D[w r] / (1 - gamma) exactly, in the population.
    j = mis_estimate(ratios_at(res.weights, s, a), np.asarray(mdp.rewards)[s, a] * 1.0, wt, GAMMA)
    np.testing.assert_allclose(j * np.sum(wt), policy_value(mdp, pie), rtol=1e-9)


def test_population_average_reward_equals_stationary():
    mdp, pib, pie = _random_mdp(seed=3)
    d_data = logged_distribution(mdp, pib, 5)
    s, a, s2, _, wt = _population(mdp, d_data)
    res = tabular_average_ratios(s, a, s2, None, wt, pie)
    d_pi = stationary_distribution(mdp, pie)
    np.testing.assert_allclose(res.weights, exact_ratios(d_pi, d_data).weights, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(res.data_mass, 1.0, rtol=1e-10)
    rho = mis_average_reward(ratios_at(res.weights, s, a), np.asarray(mdp.rewards)[s, a], wt)
    np.testing.assert_allclose(rho, jnp.sum(d_pi * mdp.rewards), rtol=1e-8)
    # The discounted ratios tend to the average-reward ones as gamma -> 1 (error O(1 - gamma)).
    near = tabular_ratios(s, a, s2, np.ones_like(wt), wt, np.arange(5), pie, 1 - 1e-6, initial_mask=mdp.initial)
    np.testing.assert_allclose(near.weights, res.weights, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# Many datasets at once: module-level jitted functions, shared across tests.
# ---------------------------------------------------------------------------------------------
@partial(jax.jit, static_argnames=("n", "t"))
def _datasets(keys, mdp, pib, n, t):
    return jax.vmap(lambda k: rollout(k, mdp, pib, n, t))(keys)


def _stationary(traj, pie, gamma):
    r = tabular_ratios(
        traj.states, traj.actions, traj.next_states, traj.discounts, traj.mask, traj.states[:, 0], pie, gamma,
        initial_mask=traj.mask[:, 0],
    )
    w = ratios_at(r.weights, traj.states, traj.actions)
    est = mis_estimate(w, traj.rewards, traj.mask, gamma)
    return est, mis_estimate(w, traj.rewards, traj.mask, gamma, self_normalize=True), r


_stationary_many = jax.jit(jax.vmap(_stationary, in_axes=(0, None, None)))
_stationary_one = jax.jit(_stationary)


def _time_indexed(traj, pie, gamma, pooled=False):
    r = tabular_time_ratios(traj.states, traj.actions, traj.next_states, traj.discounts, traj.mask, pie, pooled=pooled)
    return mis_finite_horizon(r.weights, traj.rewards, traj.mask, gamma)


_time_many = jax.jit(jax.vmap(_time_indexed, in_axes=(0, None, None, None)), static_argnums=3)


def _within(estimates, truth, k=4.0):
    est = np.asarray(estimates)
    se = est.std(ddof=1) / np.sqrt(est.size)
    assert abs(est.mean() - float(truth)) < k * se, (est.mean(), float(truth), se)
    return se


K, N, T = 64, 160, 20


@pytest.fixture(scope="module")
def shared():
    """64 datasets of 160 trajectories x 20 steps from a 5-state MDP with a terminal state."""
    mdp, pib, pie = _random_mdp(seed=2, terminal=True)
    tr = _datasets(jax.random.split(jax.random.key(7), K), mdp, pib, N, T)
    return mdp, pib, pie, tr


def _first_rows(tr, n):
    """The first n trajectories of each dataset, by masking (same shapes: no recompilation)."""
    keep = (jnp.arange(tr.mask.shape[1]) < n).astype(tr.mask.dtype)
    return tr.replace(mask=tr.mask * keep[None, :, None])


def test_weights_converge_at_root_n_rate(shared):
    mdp, pib, pie, tr = shared
    d_data = logged_distribution(mdp, pib, T)
    exact = exact_ratios(occupancy(mdp, pie), d_data).weights
    errors = []
    for n in (N // 4, N):
        w = _stationary_many(_first_rows(tr, n), pie, GAMMA)[2].weights
        errors.append(float(jnp.sqrt(jnp.mean(jnp.sum(d_data[None] * (w - exact[None]) ** 2, axis=(1, 2))))))
    # 4x the data halves the d^D-weighted RMSE (1/sqrt(N)); tolerance [1.6, 2.5].
    assert 1.6 < errors[0] / errors[1] < 2.5, errors


def test_exact_and_estimated_weights_unbiased_over_datasets(shared):
    mdp, pib, pie, tr = shared
    truth = policy_value(mdp, pie)
    est, sn, r = _stationary_many(tr, pie, GAMMA)
    _within(est, truth)
    assert int(jnp.max(jnp.sum(r.unsupported, axis=(1, 2)))) == 0
    # Exact ratios d^pi / d^D with d^D the logged distribution: unbiased for J_infinity.
    exact = exact_ratios(occupancy(mdp, pie), logged_distribution(mdp, pib, T)).weights
    w = exact[tr.states, tr.actions]
    # Trajectories end at the terminal state, so M varies: sum(w r) / E[M] is the unbiased form.
    m_expected = N * jnp.sum(state_distributions(mdp, pib, T)[:, :-1])
    j_exact = jnp.sum(w * tr.rewards * tr.mask, axis=(1, 2)) / m_expected / (1 - GAMMA)
    _within(j_exact, truth)
    # Terminal transitions carry no flow: E_D[w] < 1 (the target's mass absorbed by the terminal).
    assert float(jnp.max(r.data_mass)) < 1.0


@pytest.mark.parametrize("pooled", [False, True])
def test_time_indexed_mis_unbiased_over_datasets(shared, pooled):
    mdp, pib, pie, tr = shared
    est = _time_many(tr, pie, GAMMA, pooled)
    _within(est, policy_value(mdp.replace(horizon=T), pie))


def test_stationary_mis_on_suite():
    prob = make_problem("garnet", dtype=jnp.float64)
    tr = _datasets(jax.random.split(jax.random.key(11), 32), prob.mdp, prob.behavior, 100, prob.horizon)
    est, sn, _ = _stationary_many(tr, prob.target, float(prob.mdp.gamma))
    # The data are truncated at T, but the solve uses every logged successor: it estimates the
    # infinite-horizon J (policy_value), not the T-step truncation.
    truth = policy_value(prob.mdp, prob.target)
    _within(est, truth)
    _within(sn, truth)


@pytest.mark.parametrize("name", ["model_win"])
def test_time_indexed_mis_on_suite(name):
    prob = make_problem(name, dtype=jnp.float64)
    tr = _datasets(jax.random.split(jax.random.key(5), 32), prob.mdp, prob.behavior, prob.num_episodes, prob.horizon)
    pie = prob.target[prob.mdp.obs_of_state]
    est = _time_many(tr, pie, float(prob.mdp.gamma), False)
    _within(est, problem_value(prob))


def test_time_indexed_table_converges_to_exact(shared):
    mdp, pib, pie, tr = shared
    pooled = jax.tree.map(lambda x: x.reshape((K * N,) + x.shape[2:]), tr)  # 10240 trajectories
    r = jax.jit(tabular_time_ratios)(pooled.states, pooled.actions, pooled.next_states, pooled.discounts, pooled.mask, pie)
    np.testing.assert_allclose(r.table[:5], exact_time_ratios(mdp, pie, pib, T)[:5], atol=0.08)
    # Mass leaves only through the terminal state, never through unlogged pairs here.
    assert float(jnp.max(r.unsupported_mass[:5])) == 0.0
    alive = 1.0 - state_distributions(mdp, pie, T)[:, -1]
    np.testing.assert_allclose(r.target_marginals.sum((1, 2))[:5], alive[:5], atol=0.02)


def test_unsupported_pairs_are_reported_not_divided(shared):
    mdp, pib, pie, tr = shared
    one = _one(tr, 0)
    one = one.replace(mask=one.mask * (one.actions == 0))  # action 1 never logged
    res = _stationary_one(one, pie, GAMMA)[2]
    assert bool(res.finite)
    assert bool(jnp.all(res.unsupported[:-1, 1])) and not bool(jnp.any(res.unsupported[:, 0]))
    assert bool(jnp.all(res.weights[:, 1] == 0))
    assert 0.0 < float(res.unsupported_mass) < 1.0


def test_average_reward_over_datasets(shared):
    _, pib, _, _ = shared
    mdp, _, pie = _random_mdp(seed=5)  # no terminal state: a continuing chain, same shapes

    def avg(traj):
        r = tabular_average_ratios(traj.states, traj.actions, traj.next_states, None, traj.mask, pie)
        return mis_average_reward(ratios_at(r.weights, traj.states, traj.actions), traj.rewards, traj.mask)

    tr = _datasets(jax.random.split(jax.random.key(3), K), mdp, pib, N, T)
    est = jax.jit(jax.vmap(avg))(_first_rows(tr, 20))
    _within(est, jnp.sum(stationary_distribution(mdp, pie) * mdp.rewards))


# ---------------------------------------------------------------------------------------------
# jit / vmap / dtype / containers.
# ---------------------------------------------------------------------------------------------
def _one(tr, i):
    return jax.tree.map(lambda x: x[i], tr)


def test_jit_and_vmap_match(shared):
    mdp, pib, pie, tr = shared
    small = _first_rows(tr, 30)
    batched = _stationary_many(small, pie, GAMMA)
    times = _time_many(small, pie, GAMMA, False)
    for i in range(2):
        one = _one(small, i)
        eager = _stationary(one, pie, GAMMA)
        np.testing.assert_allclose(batched[0][i], eager[0], rtol=1e-10)
        np.testing.assert_allclose(batched[1][i], eager[1], rtol=1e-10)
        np.testing.assert_allclose(batched[2].weights[i], eager[2].weights, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(times[i], _time_indexed(one, pie, GAMMA), rtol=1e-10)
    avg = lambda x: tabular_average_ratios(x.states, x.actions, x.next_states, None, x.mask, pie).weights
    one = _one(small, 0)
    np.testing.assert_allclose(jax.jit(avg)(one), avg(one), rtol=1e-8, atol=1e-10)


def test_padded_steps_are_excluded(shared):
    mdp, pib, pie, tr = shared
    one = _one(tr, 0)
    pad = jax.tree.map(lambda x: jnp.concatenate([x, jnp.full_like(x[:, :3], 3)], axis=1), one)
    pad = pad.replace(mask=jnp.concatenate([one.mask, jnp.zeros_like(one.mask[:, :3])], axis=1))
    a = _stationary_many(tr, pie, GAMMA)
    b = _stationary_one(pad, pie, GAMMA)
    np.testing.assert_allclose(a[2].weights[0], b[2].weights, rtol=1e-12)
    np.testing.assert_allclose(a[0][0], b[0], rtol=1e-12)
    np.testing.assert_allclose(_time_many(tr, pie, 1.0, False)[0], jax.jit(_time_indexed)(pad, pie, 1.0), rtol=1e-12)


def test_float32_stays_float32(shared):
    mdp, pib, pie, tr = shared
    one = _one(tr, 0)
    f32 = jax.tree.map(lambda x: x.astype(jnp.float32) if x.dtype == jnp.float64 else x, one)
    est, sn, res = _stationary_one(f32, pie.astype(jnp.float32), GAMMA)
    assert est.dtype == jnp.float32 and sn.dtype == jnp.float32 and res.weights.dtype == jnp.float32
    ref = _stationary_many(tr, pie, GAMMA)[0][0]
    np.testing.assert_allclose(est, ref, rtol=1e-4)


def test_tabular_mis_containers_and_rows(shared):
    mdp, pib, pie, tr = shared
    one = _one(_first_rows(tr, 30), 1)
    res = tabular_mis(one, pie, GAMMA)
    est, sn, r = _stationary_many(_first_rows(tr, 30), pie, GAMMA)
    np.testing.assert_allclose(res.estimate, est[1], rtol=1e-10)
    np.testing.assert_allclose(res.self_normalized, sn[1], rtol=1e-10)
    res_t = tabular_mis(to_transitions(one), pie, GAMMA, initial_states=one.observations[:30, 0])
    np.testing.assert_allclose(res_t.estimate, est[1], rtol=1e-10)
    rows = dict(mis_rows(one, pie, GAMMA, finite_horizon=False))
    np.testing.assert_allclose(rows["MIS (tabular, stationary)"], est[1], rtol=1e-10)
    np.testing.assert_allclose(rows["MIS (tabular, stationary, self-normalised)"], sn[1], rtol=1e-10)
    fh = dict(mis_rows(one, pie, GAMMA, finite_horizon=True))
    np.testing.assert_allclose(fh["MIS (tabular, time-indexed)"], _time_many(_first_rows(tr, 30), pie, GAMMA, False)[1], rtol=1e-10)
    np.testing.assert_allclose(fh["MIS (tabular, time-indexed, pooled)"], _time_many(_first_rows(tr, 30), pie, GAMMA, True)[1], rtol=1e-10)


def test_estimator_hand_values():
    w = jnp.array([2.0, 0.5, 1.0, 7.0])
    r = jnp.array([1.0, -2.0, 3.0, 9.0])
    m = jnp.array([1.0, 1.0, 1.0, 0.0])
    np.testing.assert_allclose(mis_estimate(w, r, m, 0.5), (2 - 1 + 3) / 3 / 0.5)
    np.testing.assert_allclose(mis_estimate(w, r, m, 0.5, self_normalize=True), (2 - 1 + 3) / 3.5 / 0.5)
    np.testing.assert_allclose(mis_estimate(w, r, None, 0.5), (2 - 1 + 3 + 63) / 4 / 0.5)
    with pytest.raises(AssertionError):  # the old order (gamma before mask) fails the shape checks
        mis_estimate(w, r, 0.5, m)
    np.testing.assert_allclose(mis_average_reward(w, r), (2 - 1 + 3 + 63) / 4)
    wt = jnp.array([[1.0, 2.0, 5.0], [3.0, 0.0, 0.0]])
    rt = jnp.array([[1.0, 1.0, 1.0], [2.0, 4.0, 0.0]])
    mt = jnp.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    np.testing.assert_allclose(mis_finite_horizon(wt, rt, mt, 0.5), (1 + 0.5 * 2 + 6) / 2)


def test_validation_errors_name_arguments(shared):
    mdp, pib, pie, tr = shared
    tr = _one(tr, 0)
    with pytest.raises(ValueError, match="gamma"):
        tabular_mis(tr, pie, 1.0)
    with pytest.raises(ValueError, match="target_policy"):
        tabular_mis(tr, pie * 2.0, GAMMA)
    with pytest.raises(ValueError, match="target_policy"):
        tabular_mis(tr, pie[None], GAMMA)
    with pytest.raises(ValueError, match="ridge"):
        tabular_mis(tr, pie, GAMMA, ridge=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        tabular_time_mis(tr, pie, 1.5)
    with pytest.raises(ValueError, match="target_policy"):
        tabular_time_mis(tr, pie * 2.0, GAMMA)
    with pytest.raises(ValueError, match="initial_states"):
        tabular_mis(to_transitions(tr), pie, GAMMA)
    with pytest.raises(ValueError, match="initial_states"):
        tabular_mis(to_transitions(tr), pie, GAMMA, initial_states=jnp.array([9]))
    bad = Transitions.create(
        observations=np.array([0, 1]), actions=np.array([0, 5]), rewards=np.zeros(2),
        next_observations=np.array([1, 2]), discounts=np.ones(2),
    )
    with pytest.raises(ValueError, match="actions"):
        tabular_mis(bad, pie, GAMMA, initial_states=np.array([0]))
    with pytest.raises(ValueError, match="states" if tr.states is None else "data.observations"):
        tabular_mis(tr, pie, GAMMA, use_states=True) if tr.states is None else tabular_mis(
            tr.replace(observations=tr.observations + 10), pie, GAMMA
        )
