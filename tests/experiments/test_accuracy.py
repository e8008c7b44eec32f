"""Smoke-level correctness of the accuracy experiment: exact truths, zero error where it must be."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.envs import TabularMDP
from offrl_jax.envs.suite import Problem, make_problem
from offrl_jax.experiments import accuracy as acc


def test_every_estimator_exact_on_a_constant_reward_problem(fast_compiles):
    """Reward 1 everywhere and on-policy candidates: every return is sum_{t<3} 0.9^t, so every
    estimator (IS family, DM/DR/WDR/MAGIC with the model, MIS) is exact on every dataset."""
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(2), size=(2, 2))
    mdp = TabularMDP.create(p, np.ones((2, 2)), np.array([0.5, 0.5]), 0.9, horizon=3, dtype=jnp.float64)
    behavior = jnp.asarray([[0.3, 0.7], [0.6, 0.4]])
    prob = Problem("constant", mdp, behavior, behavior, 32, 3)
    cands = acc.candidate_policies(prob, num_mismatch=2, num_selection=2)
    truth = acc.tabular_true_values(prob, cands.policies, 3)
    np.testing.assert_allclose(truth, 1 + 0.9 + 0.81, rtol=1e-12)  # every candidate: constant reward
    run = jax.jit(acc.make_tabular_run(32, 3, num_resamples=4))
    est = run(jax.random.split(jax.random.key(0), 2), mdp, behavior, cands.policies[:2])
    assert set(est) == set(acc.TABULAR_ESTIMATORS)
    rel = acc.relative_rmse_table(est, truth[:2])
    for name, r in rel.items():
        assert r.shape == (2,)
        np.testing.assert_allclose(r, 0.0, atol=1e-6, err_msg=name)  # float32 data


def test_model_fail_truths_and_selection_scores():
    prob = make_problem("model_fail", dtype=jnp.float64)
    cands = acc.candidate_policies(prob, num_mismatch=3, num_selection=2)
    truth = acc.tabular_true_values(prob, cands.policies, prob.horizon)
    g = float(prob.mdp.gamma)
    np.testing.assert_allclose(truth[[0, 2]], [0.76 * g, -0.76 * g], rtol=1e-12)  # J(pi_b), J(pi_e)
    assert cands.labels[0] == "mix 0.00" and cands.mismatch.sum() == 3 and cands.selection.sum() == 2
    # estimates ranked like the truth on one dataset and reversed on the other
    est = {"x": np.stack([truth, -truth])[:, :3]}
    (rho, _, regret, _), = acc.selection_scores(est, truth[:3], np.ones(3, bool)).values()
    np.testing.assert_allclose([rho, regret], [0.0, 0.5])  # mean of (1, -1) and of (0, 1)


# ------------------------------------------------------------------------------------------------
# gymnax rows: cross-fitted neural FQE (DM, DR, WDR, MAGIC). CartPole cut at T = 3 steps never
# terminates from its start states, so with γ = 1 every policy's value is exactly 3 and the
# time-aware Q_t = 3 − t = 3 (1 − t/T) is linear in the network's t/T input: a linear Q̂ can be
# exact, and FQE's fixed point is that Q.
# ------------------------------------------------------------------------------------------------
_T, _G, _EPS = 3, 1.0, (0.1, 0.5, 1.0)
_EXACT = 3.0


@pytest.fixture(scope="module")
def control_terms():
    """``(terms for 2 datasets in one vmapped call, each dataset alone, the datasets)``."""
    from offrl_jax.envs import control_rollout, controller

    pol, b_params = controller("CartPole-v1", 0.5)
    cands = acc.control_candidates("CartPole-v1", _EPS)
    cfg = acc.control_fqe_config("CartPole-v1", _G, hidden_sizes=(), num_steps=500, batch_size=64,
                                 learning_rate=3e-2)
    keys = jax.random.split(jax.random.key(3), 2)
    data = jax.vmap(lambda k: control_rollout(k, "CartPole-v1", pol, b_params, 64, _T))(keys)

    def terms(key, tr):
        return acc.cross_fitted_control_terms(key, tr, pol.log_prob, cands.policies, cfg, _T)

    prev = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    try:
        both = jax.jit(jax.vmap(terms))(keys, data)
        one = jax.jit(terms)
        alone = [one(keys[i], jax.tree.map(lambda x: x[i], data)) for i in range(2)]
    finally:
        jax.config.update("jax_disable_most_optimizations", prev)
    return both, alone, data


def test_control_fqe_dm_and_q_hat_match_the_exact_values(control_terms):
    both, _, data = control_terms
    assert both.q_taken.shape == both.v_hat.shape == (2, len(_EPS), 64, _T)
    assert bool(jnp.all(data.mask == 1))  # no episode ends before T
    dm = np.asarray(both.v_hat[..., 0].mean(-1))  # [D, K]: (1/N) Σ_n V̂(s_0^n)
    np.testing.assert_allclose(dm, _EXACT, rtol=0.02)
    # every step and policy: V̂_t = Q̂_t(s, a_t) = 3 − t (a wrong time-out or half order is off by far more)
    for f in ("v_hat", "q_taken"):
        x = np.asarray(getattr(both, f))
        np.testing.assert_allclose(x.mean(2), np.broadcast_to([3.0, 2.0, 1.0], (2, len(_EPS), _T)),
                                   rtol=0.02, atol=0.02, err_msg=f)
        assert np.max(np.abs(x - np.array([3.0, 2.0, 1.0]))) < 0.3, f  # each row: the state features extrapolate


def test_control_fqe_datasets_vmapped_equal_single_runs(control_terms):
    both, alone, _ = control_terms
    for i in range(2):
        for f in ("q_taken", "v_hat"):
            np.testing.assert_allclose(np.asarray(getattr(both, f)[i]), np.asarray(getattr(alone[i], f)),
                                       rtol=1e-4, atol=1e-4, err_msg=f"dataset {i} {f}")


def test_control_run_every_estimator_near_the_exact_value():
    """The whole gymnax program (rollout, IS family, cross-fitted FQE, DM/DR/WDR/MAGIC) for 2 datasets."""
    cfg = acc.control_fqe_config("CartPole-v1", _G, hidden_sizes=(), num_steps=500, batch_size=64,
                                 learning_rate=3e-2)
    run = jax.jit(acc.make_control_run("CartPole-v1", 0.5, _EPS, 64, _T, _G, fqe=cfg, num_resamples=10))
    prev = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    try:
        est = run(jax.random.split(jax.random.key(3), 2))
    finally:
        jax.config.update("jax_disable_most_optimizations", prev)
    assert set(est) == set(acc.CONTROL_ESTIMATORS)
    for name in ("WIS", "WPDIS"):  # constant returns: self-normalised estimates are exact
        np.testing.assert_allclose(np.asarray(est[name]), _EXACT, rtol=1e-5, err_msg=name)
    for name in ("DM", "DR", "WDR", "MAGIC"):
        np.testing.assert_allclose(np.asarray(est[name]), _EXACT, rtol=0.02, err_msg=name)
    with pytest.raises(ValueError, match="fqe"):
        acc.make_control_run("CartPole-v1", 0.5, _EPS, 63, _T, _G, fqe=cfg)
