"""Classical outer/inner FQI/FQE and the distribution-shift curves."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.envs import q_values, value_iteration
from offrl_jax.fitted import FittedQConfig, fitted_q_iteration, q_network

# One-hot linear Q (with bias), full-batch gradient descent. Per action the Hessian of the
# loss has eigenvalues 2/M, 14/M (and 0 along the W/b shift that leaves Q unchanged), so step
# size M/8 = 4.5 contracts the error by 0.75 per step: 150 steps solve each regression to
# ~1e-18 and iterate k is exactly the k-th Bellman iterate T^k 0.
CFG = FittedQConfig(
    num_actions=3, num_observations=7, hidden_sizes=(), gamma=0.9, batch_size=None,
    learning_rate=4.5, optimizer="sgd", num_steps=150, dtype="float64", method="fqi",
)
K = 40


def _bellman_iterates(mdp, k, pi=None):
    """Q_1..Q_k with Q_0 = 0: Q_{j+1} = R + gamma P max Q_j (or the expectation under pi)."""
    r, p, g = np.asarray(mdp.rewards), np.asarray(mdp.transitions), float(mdp.gamma)
    q, out = np.zeros_like(r), []
    for _ in range(k):
        v = q.max(-1) if pi is None else np.sum(np.asarray(pi) * q, -1)
        q = r + g * p @ v
        out.append(q)
    return np.stack(out)


@pytest.fixture(scope="module")
def fqi_run(garnet_data):
    mdp, ds, _ = garnet_data
    eval_fn = lambda params: _apply(params, jnp.arange(7))
    return jax.jit(lambda k, d: fitted_q_iteration(k, d, CFG, K, eval_fn=eval_fn))(jax.random.key(0), ds)


def _apply(params, obs):
    return q_network(CFG).apply(params, obs)


def test_outer_fqi_iterates_are_bellman_iterates(garnet_data, fqi_run):
    mdp, _, _ = garnet_data
    exact = _bellman_iterates(mdp, K)
    np.testing.assert_allclose(fqi_run.evals[:, :6], exact[:, :6], atol=1e-6)
    assert fqi_run.metrics.loss.shape == (K, CFG.num_steps)
    # and they approach Q* at rate gamma^k
    q_star = np.asarray(value_iteration(mdp).q_star)
    assert np.abs(fqi_run.evals[-1, :6] - q_star[:6]).max() < 0.9**K * 30


def test_outer_fqe_iterates_and_reinitialize(garnet_data):
    mdp, ds, pi = garnet_data
    cfg = CFG.replace(method="fqe")
    eval_fn = lambda params: _apply(params, jnp.arange(7))
    res = jax.jit(lambda k, d: fitted_q_iteration(k, d, cfg, 8, target_policy=pi, eval_fn=eval_fn, reinitialize=True))(
        jax.random.key(1), ds
    )
    exact = _bellman_iterates(mdp, 8, pi)
    np.testing.assert_allclose(res.evals[:, :6], exact[:, :6], atol=1e-6)
    assert not np.allclose(q_values(mdp, pi)[:6], exact[-1, :6], atol=1e-3)  # not yet converged


def test_bad_iteration_args(garnet_data):
    _, ds, pi = garnet_data
    with pytest.raises(ValueError, match="num_iterations"):
        fitted_q_iteration(jax.random.key(0), ds, CFG, 0)
    with pytest.raises(ValueError, match="policy"):
        fitted_q_iteration(jax.random.key(0), ds, CFG.replace(method="fqe"), 3)
    with pytest.raises(ValueError, match="discrete"):
        fitted_q_iteration(jax.random.key(0), ds, FittedQConfig(action_dim=1, gamma=0.5), 3)
