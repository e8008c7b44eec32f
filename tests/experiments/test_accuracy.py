"""Smoke-level correctness of the accuracy experiment: exact truths, zero error where it must be."""

import jax
import jax.numpy as jnp
import numpy as np

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
