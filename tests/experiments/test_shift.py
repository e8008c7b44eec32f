"""Distribution shift: "thinks" (a learner's value of its greedy policy) vs "does" (its exact value).

Linear (LSPI, linear FQI on rolled-out data) and neural outer/inner FQI share one
:class:`ShiftCurves` and one computation, :func:`thinks_vs_does`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.envs import policy_value, value_iteration
from offrl_jax.experiments.shift import (
    fitted_distribution_shift,
    linear_distribution_shift,
    linear_q_tables,
    thinks_vs_does,
)
from offrl_jax.fitted import FittedQConfig
from offrl_jax.policies import greedy

# One-hot linear Q (with bias), full-batch gradient descent: each inner regression is solved to
# ~1e-18, so outer iterate k is the k-th Bellman-optimality iterate (see tests/fitted/test_iteration.py).
CFG = FittedQConfig(
    num_actions=3, num_observations=7, hidden_sizes=(), gamma=0.9, batch_size=None,
    learning_rate=4.5, optimizer="sgd", num_steps=150, dtype="float64", method="fqi",
)


# ---------------------------------------------------------------------------------------------
# The shared computation.
# ---------------------------------------------------------------------------------------------
def test_thinks_equals_does_for_exact_q_star(random_mdp, one_hot_table):
    mdp = random_mdp(30, num_states=5, num_actions=3)
    q_star, pi_star = value_iteration(mdp)
    w = jnp.stack([jnp.zeros(15), q_star.T.reshape(-1)])
    curves = thinks_vs_does(mdp, linear_q_tables(one_hot_table(5, 3), w))
    j_star = float(policy_value(mdp, pi_star))
    np.testing.assert_allclose(curves.thinks[1], j_star, rtol=1e-10)
    np.testing.assert_allclose(curves.does[1], j_star, rtol=1e-10)
    np.testing.assert_allclose(curves.optimal, j_star, rtol=1e-10)
    np.testing.assert_allclose(curves.q_tables[1], q_star, rtol=1e-12)
    assert float(curves.thinks[0]) == 0.0
    np.testing.assert_allclose(curves.does[0], policy_value(mdp, jax.nn.one_hot(jnp.zeros(5, int), 3)), rtol=1e-10)


def test_shift_validation(cost_chain):
    mdp = cost_chain(4)
    with pytest.raises(ValueError, match="q_tables"):
        thinks_vs_does(mdp, linear_q_tables(jnp.ones((4, 3, 2)), jnp.ones((2, 2))))
    with pytest.raises(ValueError, match="weights_history"):
        linear_q_tables(jnp.ones((4, 2, 2)), jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="phi_table"):
        linear_distribution_shift(jax.random.key(0), mdp, jnp.ones((4, 3, 2)), jnp.full((4, 2), 0.5), 2, 3)


# ---------------------------------------------------------------------------------------------
# Linear: LSPI and linear FQI on rolled-out behaviour data.
# ---------------------------------------------------------------------------------------------
def test_narrow_data_overestimates_broad_data_agrees(cost_chain, one_hot_table):
    """Cost-to-goal chain (reward -1 per step, goal terminal). Narrow data never tries L, so the
    ridge prior Q̂(s, L) = 0 looks better than every tried action: both LSPI and FQI go L, think
    ~0 and do -1/(1-γ) = -10, worse than the behaviour they learned from. Uniform data covers all
    pairs and both reach the optimal policy with "thinks" within sampling error of "does"."""
    mdp = cost_chain(6)
    table = one_hot_table(6, 2)
    narrow = jnp.tile(jnp.asarray([0.0, 1.0]), (6, 1))
    broad = jnp.full((6, 2), 0.5)
    run = jax.jit(jax.vmap(lambda pol: linear_distribution_shift(jax.random.key(0), mdp, table, pol, 100, 30)))
    rep = run(jnp.stack([narrow, broad]))
    j_star = float(rep.optimal[0])
    assert j_star == pytest.approx(float(policy_value(mdp, value_iteration(mdp)[1])), rel=1e-10)
    for curves in (rep.lspi, rep.fqi):
        thinks, does = np.asarray(curves.thinks), np.asarray(curves.does)
        np.testing.assert_allclose(curves.optimal, rep.optimal, rtol=1e-12)
        # narrow: overestimation by ~|J*| and a learned policy worse than the behaviour policy
        assert thinks[0, -1] - does[0, -1] > 0.8 * abs(j_star)
        assert does[0, -1] < float(rep.behavior[0]) - 1.0
        # broad: optimal policy, estimate within 5% of the truth
        assert does[1, -1] == pytest.approx(j_star, rel=1e-8)
        assert abs(thinks[1, -1] - does[1, -1]) < 0.05 * abs(j_star)
    assert float(rep.coverage[0]) < float(rep.coverage[1])


# ---------------------------------------------------------------------------------------------
# Neural outer/inner FQI (moved from tests/fitted/test_iteration.py).
# ---------------------------------------------------------------------------------------------
def test_fitted_shift_curves_exact_on_covered_data(garnet_data):
    mdp, ds = garnet_data
    curves = fitted_distribution_shift(jax.random.key(0), ds, mdp, CFG.replace(num_steps=100), 30)
    q = np.asarray(curves.q_tables)
    d0 = np.asarray(mdp.initial)
    for k in (0, 5, 29):
        np.testing.assert_allclose(curves.thinks[k], d0 @ q[k].max(-1), rtol=1e-10)
        np.testing.assert_allclose(curves.does[k], policy_value(mdp, greedy(jnp.asarray(q[k]))), rtol=1e-10)
    # full coverage: the greedy policy becomes optimal and its prediction meets the truth
    np.testing.assert_allclose(curves.does[-1], curves.optimal, atol=1e-8)
    np.testing.assert_allclose(curves.thinks[-1], curves.optimal, atol=0.9**30 * 30)


def test_fitted_shift_validation(garnet_data):
    mdp, ds = garnet_data
    with pytest.raises(ValueError, match="method"):
        fitted_distribution_shift(jax.random.key(0), ds, mdp, CFG.replace(method="fqe"), 3)
    with pytest.raises(ValueError, match="gamma"):
        fitted_distribution_shift(jax.random.key(0), ds, mdp, CFG.replace(gamma=0.5), 3)
