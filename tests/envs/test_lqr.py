"""Exact LQR values against closed-form Bellman expectations and Monte-Carlo rollouts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from offrl_jax.envs.lqr import (
    LinearGaussianPolicy,
    LQRSystem,
    lqr_initial_value,
    lqr_policy_value,
    lqr_q_values,
    lqr_returns,
    lqr_state_values,
    sample_lqr_transitions,
)

GAMMA = 0.8


def random_problem(seed: int, n: int, m: int):
    """A random stable system (ρ(A + BK) < 1) with random SPD costs and covariances."""
    rng = np.random.default_rng(seed)
    spd = lambda d, s: (lambda x: x @ x.T + s * np.eye(d))(rng.normal(size=(d, d)) * 0.3)
    a = rng.normal(size=(n, n))
    a *= 0.7 / np.max(np.abs(np.linalg.eigvals(a)))
    b = 0.5 * rng.normal(size=(n, m))
    k = 0.1 * rng.normal(size=(m, n))
    system = LQRSystem.create(a, b, spd(n, 0.5), spd(m, 0.2), spd(n, 0.05), rng.normal(size=n), spd(n, 0.1))
    policy = LinearGaussianPolicy.create(k, spd(m, 0.05))
    return system, policy


def gaussian_quadratic_mean(h, mean, cov):
    """E[zᵀ H z] for z ~ N(mean, cov): meanᵀ H mean + tr(H cov)."""
    return mean @ h @ mean + np.trace(h @ cov)


@pytest.fixture(scope="module")
def problem():
    system = LQRSystem.create(
        np.array([[0.9, 0.2], [0.0, 0.8]]),
        np.array([[0.0], [1.0]]),
        np.eye(2),
        0.5 * np.eye(1),
        0.05 * np.eye(2),
        np.array([1.0, -0.5]),
        0.2 * np.eye(2),
    )
    policy = LinearGaussianPolicy.create(np.array([[-0.2, -0.3]]), 0.1 * np.eye(1))
    return system, policy, _value(system, policy, GAMMA)


_value = jax.jit(lqr_policy_value)
_q_values = jax.jit(lqr_q_values)
_state_values = jax.jit(lqr_state_values)
_initial_value = jax.jit(lqr_initial_value)
_log_prob = jax.jit(LinearGaussianPolicy.log_prob)
_sample_actions = jax.jit(LinearGaussianPolicy.sample_actions)
_returns = jax.jit(lqr_returns, static_argnames=("num_episodes", "horizon"))
_sample = jax.jit(sample_lqr_transitions, static_argnames=("num_episodes", "horizon"))


@pytest.mark.parametrize("seed,n,m", [(0, 3, 2), (1, 2, 1), (2, 3, 2)])
def test_bellman_equation_closed_form(seed, n, m):
    """Q(s, a) = r(s, a) + γ E[Q(s', a')] with the expectation of the quadratic in closed form."""
    system, policy = random_problem(seed, n, m)
    value = _value(system, policy, GAMMA)
    assert bool(value.stable)
    rng = np.random.default_rng(seed + 10)
    s, a = rng.normal(size=(5, n)), rng.normal(size=(5, m))
    q = np.asarray(_q_values(value, jnp.asarray(s), jnp.asarray(a)))
    A, B, K = (np.asarray(x) for x in (system.transition, system.control, policy.gain))
    sw, sa = np.asarray(system.noise_cov), np.asarray(policy.noise_cov)
    h = np.block([[value.p_ss, value.p_sa], [np.asarray(value.p_sa).T, value.p_aa]])
    cov = np.block([[sw, sw @ K.T], [K @ sw, K @ sw @ K.T + sa]])
    for i in range(5):
        mean_next = A @ s[i] + B @ a[i]
        e_q = gaussian_quadratic_mean(h, np.r_[mean_next, K @ mean_next], cov) + float(value.c)
        r = -(s[i] @ system.state_cost @ s[i] + a[i] @ system.action_cost @ a[i])
        np.testing.assert_allclose(q[i], r + GAMMA * e_q, rtol=1e-10, atol=1e-8)
    # V(s) = E_{a~π} Q(s, a) and the Lyapunov equation P = −(Q_c + KᵀRK) + γ MᵀPM.
    v = np.asarray(_state_values(value, jnp.asarray(s)))
    cov_a = np.block([[np.zeros((n, n)), np.zeros((n, m))], [np.zeros((m, n)), sa]])
    for i in range(5):
        e_q = gaussian_quadratic_mean(h, np.r_[s[i], K @ s[i]], cov_a) + float(value.c)
        np.testing.assert_allclose(v[i], e_q, rtol=1e-10, atol=1e-8)
    mcl = A + B @ K
    p = np.asarray(value.p)
    resid = -(system.state_cost + K.T @ system.action_cost @ K) + GAMMA * mcl.T @ p @ mcl - p
    np.testing.assert_allclose(resid, 0.0, atol=1e-10)


def test_q_and_j_match_monte_carlo(problem):
    """Q^π at fixed (s, a), and J(π) from s_0 ~ N(μ_0, Σ_0), a_0 ~ π (drawn here), within 4 SE."""
    system, policy, value = problem
    per, horizon = 4000, 120  # γ^T ≈ 2.5e-12: truncation bias far below the SE.
    rng = np.random.default_rng(7)
    s = np.array([[1.0, 0.5], [-0.5, 1.5], [0.0, 0.0]])
    a = np.array([[0.3], [-1.0], [2.0]])
    s0 = rng.multivariate_normal(system.initial_mean, system.initial_cov, size=per)
    a0 = s0 @ np.asarray(policy.gain).T + rng.normal(size=(per, 1)) * np.sqrt(float(policy.noise_cov[0, 0]))
    g = _returns(
        jax.random.key(3), system, policy, GAMMA, num_episodes=4 * per, horizon=horizon,
        initial_states=jnp.asarray(np.r_[np.repeat(s, per, axis=0), s0]),
        initial_actions=jnp.asarray(np.r_[np.repeat(a, per, axis=0), a0]),
    ).reshape(4, per)
    mc, se = g.mean(1), g.std(1, ddof=1) / np.sqrt(per)
    exact = np.r_[_q_values(value, jnp.asarray(s), jnp.asarray(a)), _initial_value(system, value)]
    assert np.all(np.abs(mc - exact) < 4 * se), (mc, exact, se)


def test_policy_sampling_and_log_prob():
    _, policy = random_problem(5, 3, 2)
    obs = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)))
    lp = _log_prob(policy, obs, jnp.ones((4, 2)))
    mean = np.asarray(obs) @ np.asarray(policy.gain).T
    ref = [stats.multivariate_normal(mean[i], np.asarray(policy.noise_cov)).logpdf(np.ones(2)) for i in range(4)]
    np.testing.assert_allclose(lp, ref, rtol=1e-10)
    n = 40000
    draws = _sample_actions(policy, jax.random.key(1), jnp.repeat(obs[:1], n, axis=0))
    se = np.sqrt(np.diag(policy.noise_cov) / n)
    assert np.all(np.abs(draws.mean(0) - mean[0]) < 4 * se)
    np.testing.assert_allclose(np.cov(np.asarray(draws).T), policy.noise_cov, atol=0.05 * np.abs(policy.noise_cov).max())


def test_sampler_dataset_consistent(problem):
    system, policy, _ = problem
    ds = _sample(jax.random.key(0), system, policy, num_episodes=3, horizon=5)
    assert ds.observations.shape == (15, 2) and ds.actions.shape == (15, 1) and ds.rewards.shape == (15,)
    np.testing.assert_array_equal(ds.discounts, 1.0)
    obs = ds.observations.reshape(3, 5, 2)
    np.testing.assert_array_equal(obs[:, 1:], ds.next_observations.reshape(3, 5, 2)[:, :-1])
    o, act = np.asarray(ds.observations), np.asarray(ds.actions)
    np.testing.assert_allclose(ds.rewards, -(np.sum(o * o, -1) + 0.5 * act[:, 0] ** 2), rtol=1e-12)


def test_unstable_flag_and_float32(problem):
    system, _, _ = problem
    loud = LinearGaussianPolicy.create(np.array([[0.0, 2.0]]), np.eye(1))
    assert not bool(_value(system, loud, 0.9).stable)
    sys32 = LQRSystem.create(*(np.asarray(getattr(system, f), np.float32) for f in (
        "transition", "control", "state_cost", "action_cost", "noise_cov", "initial_mean", "initial_cov")))
    pol32 = LinearGaussianPolicy.create(np.array([[-0.2, -0.3]], np.float32), np.eye(1, dtype=np.float32))
    value = _value(sys32, pol32, 0.8)
    assert value.p.dtype == jnp.float32 and _initial_value(sys32, value).dtype == jnp.float32


def test_bad_inputs_raise():
    eye = np.eye(2)
    with pytest.raises(ValueError, match="transition"):
        LQRSystem.create(np.ones((2, 3)), np.ones((2, 1)), eye, np.eye(1), eye, np.zeros(2), eye)
    with pytest.raises(ValueError, match="control"):
        LQRSystem.create(eye, np.ones((3, 1)), eye, np.eye(1), eye, np.zeros(2), eye)
    with pytest.raises(ValueError, match="noise_cov"):
        LQRSystem.create(eye, np.ones((2, 1)), eye, np.eye(1), -eye, np.zeros(2), eye)
    with pytest.raises(ValueError, match="initial_mean"):
        LQRSystem.create(eye, np.ones((2, 1)), eye, np.eye(1), eye, np.zeros(3), eye)
    with pytest.raises(ValueError, match="state_cost"):
        LQRSystem.create(eye, np.ones((2, 1)), np.array([[1.0, 1.0], [0.0, 1.0]]), np.eye(1), eye, np.zeros(2), eye)
    with pytest.raises(ValueError, match="noise_cov"):
        LinearGaussianPolicy.create(np.ones((1, 2)), np.zeros((1, 1)))
    with pytest.raises(ValueError, match="gain"):
        LinearGaussianPolicy.create(np.ones(2), np.eye(1))
