"""Estimators with estimated propensities are consistent: on the stitching gridworld (known,
state-dependent β) the IS, PDIS, DR and MIS estimates that use cross-fitted smoothed-count β̂
approach the exact J(π) as N grows.

R = 32 datasets of N = 1600 trajectories, vmapped; each also cut into 16 datasets of N = 100.
DR uses a deliberately wrong model Q̂ = Q^π / 2, so its correction rests on the weights. With
16x the trajectories the root-mean-square error should fall about 4x (√16); the test asks for
2x. At N = 1600 the mean of the 32 estimates must lie within 3 standard errors (sd / √R) of
J(π), i.e. no bias is detectable at that size; MIS (state ratios ŵ_t(s) from counts times
π/β̂) is a ratio of count estimates with an O(1/N) bias of its own, for which 0.03 (5% of
J(π) ≈ 0.60) is allowed on top.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.behavior import cross_fitted_tabular
from offrl_jax.core import fold_indices
from offrl_jax.envs import q_values
from offrl_jax.envs.suite import problem_value
from offrl_jax.mis import mis_finite_horizon
from offrl_jax.ope import doubly_robust, log_importance_ratios, per_decision_is, trajectory_is
from offrl_jax.pg import tabular_state_weights

R, SIZES, K = 32, (100, 1600), 5
NAMES = ("is", "pdis", "dr", "mis")


def _estimator(problem, num_episodes):
    mdp, T = problem.mdp, problem.horizon
    gamma = float(mdp.gamma)
    pi = problem.target
    q = 0.5 * q_values(mdp.replace(horizon=T), pi)  # [T, S, A] a wrong model: half of Q^π_t
    folds = np.concatenate([np.full(len(f), k) for k, f in enumerate(fold_indices(num_episodes, K))])
    log_pi = jnp.log(pi)

    def one(d):
        lp_hat, _ = cross_fitted_tabular(d.observations, d.actions, d.mask, folds, 21, 4, K, 0.5)
        tlp = jnp.where(d.mask > 0, log_pi[d.observations, d.actions], 0.0)
        lr = log_importance_ratios(tlp, lp_hat, d.mask)
        t = jnp.arange(T)[None, :]
        q_taken = q[t, d.states, d.actions] * d.mask
        v_hat = jnp.sum(pi[d.states] * q[t, d.states], -1) * d.mask
        w_state = tabular_state_weights(d.states, d.actions, d.next_states, d.discounts, d.mask, pi).weights
        return jnp.stack([
            trajectory_is(d.rewards, lr, d.mask, gamma),
            per_decision_is(d.rewards, lr, d.mask, gamma),
            doubly_robust(d.rewards, lr, d.mask, gamma, q_taken, v_hat),
            mis_finite_horizon(w_state * jnp.exp(lr), d.rewards, d.mask, gamma),
        ])

    return jax.jit(jax.vmap(one))


@pytest.fixture(scope="module")
def results(stitching_logs):
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)  # programs that run once
    try:
        problem, data = stitching_logs  # [R, 1600, T]
        assert data.rewards.shape[:2] == (R, SIZES[1])
        truth = float(problem_value(problem))
        cut = SIZES[1] // SIZES[0]
        small = jax.tree_util.tree_map(lambda x: x.reshape((R * cut, SIZES[0]) + x.shape[2:]), data)
        est = {SIZES[1]: np.asarray(_estimator(problem, SIZES[1])(data)),
               SIZES[0]: np.asarray(_estimator(problem, SIZES[0])(small))}
    finally:
        jax.config.update("jax_disable_most_optimizations", previous)
    return truth, est


@pytest.mark.parametrize("i,name", list(enumerate(NAMES)))
def test_error_shrinks_with_n(results, i, name):
    truth, est = results
    rmse = {n: float(np.sqrt(np.mean((est[n][:, i] - truth) ** 2))) for n in SIZES}
    assert rmse[SIZES[1]] < rmse[SIZES[0]] / 2, (name, rmse)
    big = est[SIZES[1]][:, i]
    se = big.std(ddof=1) / np.sqrt(len(big))
    allowance = 0.03 if name == "mis" else 0.0
    assert abs(big.mean() - truth) < 3 * se + allowance, (name, big.mean(), truth, se)
