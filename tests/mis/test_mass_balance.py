"""Mass balance of the tabular MIS diagnostics (exact identities of the empirical model).

Discounted (``tabular_ratios``): the target's occupancy in the empirical model sums to
(1 - gamma) + gamma E_D[discount w] over all pairs, and the logged pairs hold E_D[w], so

    unsupported_mass = (1 - gamma) + gamma E_D[discount w] - E_D[w],

which without terminal transitions (discount = 1) is (1 - gamma)(1 - E_D[w]).
Time-indexed (``tabular_time_ratios``, full-length trajectories): the mass at step t + 1 is
what the logged pairs of step t pass on, sum_n discount^n_t w_t^n / N.
"""

import jax
import numpy as np
import pytest

from offrl_jax.data import Trajectories, Transitions
from offrl_jax.mis import tabular_mis, tabular_ratios, tabular_time_mis, tabular_time_ratios

S, A, M, GAMMA = 5, 2, 40, 0.8


def _random_data(seed, terminal):
    rng = np.random.default_rng(seed)
    s = rng.integers(0, S, M)
    a = rng.integers(0, A, M)
    a[s == 2] = 0  # pair (2, 1) never logged
    s2 = rng.integers(0, S, M)
    s2[:3] = 4
    s[s == 4] = 3  # state 4 is reached but never left in the data
    d = np.where(rng.random(M) < 0.3, 0.0, 1.0) if terminal else np.ones(M)
    s0 = rng.integers(0, S, 6)
    pi = rng.dirichlet(np.ones(A), size=S)
    return s, a, s2, d, s0, pi


_solve = jax.jit(tabular_ratios, static_argnames=())


@pytest.mark.parametrize("terminal", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_unsupported_mass_balances(seed, terminal):
    s, a, s2, d, s0, pi = _random_data(seed, terminal)
    r = _solve(s, a, s2, d, None, s0, pi, GAMMA)
    w = np.asarray(r.weights)[s, a]
    data_mass = w.mean()
    np.testing.assert_allclose(r.data_mass, data_mass, rtol=1e-12)
    expected = (1 - GAMMA) + GAMMA * np.mean(d * w) - data_mass
    assert float(r.unsupported_mass) > 0.01  # the fixture really has unsupported pairs
    np.testing.assert_allclose(r.unsupported_mass, expected, rtol=1e-10, atol=1e-14)
    if not terminal:
        np.testing.assert_allclose(r.unsupported_mass, (1 - GAMMA) * (1 - data_mass), rtol=1e-10)


def test_unsupported_mass_through_tabular_mis():
    s, a, s2, d, s0, pi = _random_data(3, False)
    data = Transitions.create(
        observations=s, actions=a, rewards=np.ones(M), next_observations=s2, discounts=d
    )
    res = tabular_mis(data, pi, GAMMA, initial_states=s0)
    np.testing.assert_allclose(
        res.ratios.unsupported_mass, (1 - GAMMA) * (1 - res.ratios.data_mass), rtol=1e-10
    )


@pytest.mark.parametrize("terminal", [False, True])
def test_time_indexed_mass_balance(terminal):
    rng = np.random.default_rng(7)
    n, t = 12, 4
    s = rng.integers(0, S, (n, t))
    a = rng.integers(0, A, (n, t))
    s2 = np.concatenate([s[:, 1:], rng.integers(0, S, (n, 1))], 1)
    d = np.where(rng.random((n, t)) < 0.25, 0.0, 1.0) if terminal else np.ones((n, t))
    mask = np.ones((n, t))
    pi = rng.dirichlet(np.ones(A), size=S)
    r = jax.jit(tabular_time_ratios)(s, a, s2, d, mask, pi)
    total = np.asarray(r.target_marginals).sum((1, 2))
    passed = (np.asarray(r.weights) * d).sum(0) / n  # mass handed on by the logged pairs of step t
    np.testing.assert_allclose(total[0], 1.0, rtol=1e-12)
    np.testing.assert_allclose(total[1:], passed[:-1], rtol=1e-10)
    logged = np.asarray(r.weights).sum(0) / n  # mass on logged pairs at step t
    np.testing.assert_allclose(r.unsupported_mass, total - logged, rtol=1e-10, atol=1e-14)
    traj = Trajectories.create(
        observations=s, actions=a, rewards=np.ones((n, t)), next_observations=s2, discounts=d, mask=mask
    )
    res = tabular_time_mis(traj, pi, 1.0)
    np.testing.assert_allclose(res.estimate, logged.sum(), rtol=1e-10)
