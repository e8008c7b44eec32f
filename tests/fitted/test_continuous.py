"""Continuous-action FQE (``FittedQConfig(action_dim=...)``, sampled targets) in the one jitted loop
against the exact LQR Q^π and J(π)."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from offrl_jax.data import Transitions
from offrl_jax.envs.lqr import (
    LinearGaussianPolicy,
    LQRSystem,
    lqr_initial_value,
    lqr_policy_value,
    lqr_q_values,
    lqr_state_values,
    sample_lqr_transitions,
)
from offrl_jax.fitted import (
    FittedQConfig,
    QuadraticQNetwork,
    init_state,
    initial_value,
    make_train,
    make_update,
    sampled_fqe_targets,
    sampled_next_values,
)

GAMMA = 0.8
SYSTEM = LQRSystem.create(
    np.array([[0.9, 0.2], [0.0, 0.8]]), np.array([[0.0], [1.0]]), np.eye(2), 0.5 * np.eye(1),
    0.01 * np.eye(2), np.array([1.0, -0.5]), np.eye(2),
)
TARGET = LinearGaussianPolicy.create(np.array([[-0.2, -0.3]]), 0.1 * np.eye(1))
BEHAVIOR = LinearGaussianPolicy.create(np.array([[-0.1, -0.1]]), 0.3 * np.eye(1))
QUADRATIC = FittedQConfig(
    action_dim=1, gamma=GAMMA, features="quadratic", num_action_samples=4, num_steps=1500,
    batch_size=256, learning_rate=1e-2, tau=0.05, dtype="float64",
)
MLP = FittedQConfig(
    action_dim=1, gamma=GAMMA, features="mlp", hidden_sizes=(32, 32), num_action_samples=4, num_steps=2000,
    batch_size=256, learning_rate=3e-3, tau=0.05, dtype="float32",
)
SEEDS = jax.random.split(jax.random.key(0), 2)
_train_quadratic = make_train(QUADRATIC, TARGET.sample_actions)


@functools.partial(jax.jit, static_argnums=0)
def _evaluate(apply_fn, params, s0, value):
    """(Ĵ with K = 16, mean |Q̂ − Q^π| / mean |Q̂| at (s_0^n, a_n ~ π), Q̂(s_0^n, a_n) [N])."""
    j_hat = initial_value(apply_fn, params, s0, TARGET.sample_actions, key=jax.random.key(3), num_samples=16)
    a0 = TARGET.sample_actions(jax.random.key(6), s0)
    q_hat = apply_fn(params, s0, a0)
    q_err = jnp.mean(jnp.abs(q_hat - lqr_q_values(value, s0, a0))) / jnp.mean(jnp.abs(q_hat))
    return j_hat, q_err, q_hat


@pytest.fixture(scope="module")
def data():
    """(dataset of 20 000 behaviour transitions, exact Q^π value, exact J(π), start states s_0^n).

    FQE estimates are compared with (1/N) Σ_n V^π(s_0^n) on the same start states, so the
    sampling error of the s_0^n (about 1% of J here) does not enter the tolerance.
    """
    ds = jax.jit(sample_lqr_transitions, static_argnums=(3, 4))(jax.random.key(1), SYSTEM, BEHAVIOR, 1000, 20)
    value = lqr_policy_value(SYSTEM, TARGET, GAMMA)
    s0 = np.random.default_rng(5).multivariate_normal(SYSTEM.initial_mean, SYSTEM.initial_cov, size=4000)
    return ds, value, float(lqr_initial_value(SYSTEM, value)), jnp.asarray(s0)


def _j_on(value, s0):
    return float(jnp.mean(lqr_state_values(value, s0)))


@pytest.fixture(scope="module")
def quadratic_runs(data):
    return jax.jit(jax.vmap(_train_quadratic, in_axes=(0, None)))(SEEDS, data[0])


def _exact_h(value):
    return np.block([[value.p_ss, value.p_sa], [np.asarray(value.p_sa).T, value.p_aa]])


def test_quadratic_fqe_recovers_exact_q(data, quadratic_runs):
    """Q^π lies in the model class: W, Q on the start states and Ĵ all within 2%.

    Measured (two seeds): W 0.80% / 0.94% of max |H|, Q 0.65% / 1.3%, Ĵ 0.32% / 1.2%; the rest
    is the finite-data error of the FQE fixed point plus the noise of the last Adam iterates.
    """
    ds, value, _, s0 = data
    h = _exact_h(value)
    j = _j_on(value, s0)
    for i in range(len(SEEDS)):
        p = jax.tree.map(lambda x: x[i], quadratic_runs.state.params)
        w = np.asarray(p["params"]["w"])
        w = 0.5 * (w + w.T)
        assert np.abs(w - h).max() < 2e-2 * np.abs(h).max(), (w, h)
        j_hat, q_err, _ = _evaluate(quadratic_runs.state.apply_fn, p, s0, value)
        assert float(q_err) < 2e-2, q_err
        assert abs(float(j_hat) - j) < 2e-2 * abs(j), (j_hat, j)
    metrics = quadratic_runs.metrics
    assert metrics.loss.shape == (len(SEEDS), QUADRATIC.num_steps)
    assert np.all(np.isfinite(metrics.loss))


def test_vmapped_seeds_equal_separate_runs(data, quadratic_runs):
    single = jax.jit(_train_quadratic)
    for i in range(len(SEEDS)):
        res = single(SEEDS[i], data[0])
        for a, b in zip(jax.tree.leaves(quadratic_runs.state.params), jax.tree.leaves(res.state.params)):
            np.testing.assert_allclose(a[i], b, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(quadratic_runs.metrics.loss[i], res.metrics.loss, rtol=1e-9)
    assert not np.allclose(quadratic_runs.metrics.loss[0], quadratic_runs.metrics.loss[1])


@pytest.mark.slow
def test_mlp_fqe_close_to_exact_j(data):
    """MLP 2x32 in float32: Ĵ within 5% of (1/N) Σ_n V^π(s_0^n) (measured: 1.3%)."""
    ds, value, _, s0 = data
    j = _j_on(value, s0)
    res = jax.jit(make_train(MLP, TARGET.sample_actions))(jax.random.key(11), ds)
    j_hat = float(_evaluate(res.state.apply_fn, res.state.params, s0, value)[0])
    assert abs(j_hat - j) < 5e-2 * abs(j), (j_hat, j)
    assert res.state.params["params"]["Dense_0"]["kernel"].dtype == jnp.float32


def test_sampled_targets_unbiased_for_quadratic():
    """Mean of y over 4000 keys is within 4 SE of r + γ d E_{a'~π} Q̄(s', a') in closed form."""
    rng = np.random.default_rng(2)
    w = rng.normal(size=(3, 3))
    params = {"params": {"w": jnp.asarray(w), "b": jnp.asarray(rng.normal(size=3)), "c": jnp.asarray(0.7)}}
    q_bar = functools.partial(QuadraticQNetwork(dtype=jnp.float64).apply, params)
    s_next = rng.normal(size=(5, 2))
    rewards, discounts = jnp.asarray(rng.normal(size=5)), jnp.array([1.0, 1.0, 0.0, 1.0, 1.0])

    def targets(key):
        nv = sampled_next_values(key, q_bar, TARGET.sample_actions, jnp.asarray(s_next), 3)
        return sampled_fqe_targets(rewards, discounts, nv, GAMMA)

    y = np.asarray(jax.jit(jax.vmap(targets))(jax.random.split(jax.random.key(0), 4000)))
    k, sa = np.asarray(TARGET.gain), np.asarray(TARGET.noise_cov)
    ws = 0.5 * (w + w.T)
    for m in range(5):
        mean = np.r_[s_next[m], k @ s_next[m]]
        e_q = mean @ ws @ mean + ws[2:, 2:].ravel() @ sa.ravel() + np.asarray(params["params"]["b"]) @ mean + 0.7
        exact = float(rewards[m]) + GAMMA * float(discounts[m]) * e_q
        se = y[:, m].std(ddof=1) / np.sqrt(y.shape[0])
        assert abs(y[:, m].mean() - exact) <= 4 * se + 1e-12, (m, y[:, m].mean(), exact, se)


def test_initial_value_of_exact_q(data):
    """With Q̂ = Q^π exactly, Ĵ = mean_n mean_k Q^π(s_0^n, a_k) is within 4 SE of J(π)."""
    _, value, j, s0 = data
    params = {"params": {"w": jnp.asarray(_exact_h(value)), "b": jnp.zeros(3), "c": value.c}}
    apply_fn = QuadraticQNetwork(dtype=jnp.float64).apply
    j_hat, q_err, per_row = _evaluate(apply_fn, params, s0, value)
    assert float(q_err) < 1e-12
    se = float(np.std(per_row, ddof=1)) / np.sqrt(len(per_row))
    assert abs(float(j_hat) - j) < 4 * se, (j_hat, j, se)


def test_one_update_jit_matches_no_jit_and_hand_gradient(data):
    """One SGD step equals the closed-form gradient of ½ mean (xᵀWx + bᵀx + c − y)²."""
    ds = jax.tree.map(lambda x: x[:64], data[0])
    cfg = dataclasses.replace(QUADRATIC, optimizer="sgd", learning_rate=0.1, tau=None, target_update_period=1)
    state = init_state(jax.random.key(0), cfg, ds)
    w0 = jnp.asarray(np.random.default_rng(0).normal(size=(3, 3)) * 0.1)
    params = {"params": {"w": w0, "b": jnp.full(3, 0.1), "c": jnp.asarray(-1.0)}}
    state = state.replace(params=params, target_params=params)
    update = make_update(cfg, TARGET.sample_actions)
    new_jit, m_jit = jax.jit(update)(state, ds)
    new_eager, m_eager = update(state, ds)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12), new_jit.params, new_eager.params)
    np.testing.assert_allclose(m_jit.loss, m_eager.loss, rtol=1e-10)
    # Hand gradient, same targets (same key split as the update).
    _, k_next = jax.random.split(state.key)
    nv = sampled_next_values(k_next, functools.partial(state.apply_fn, params), TARGET.sample_actions,
                             ds.next_observations, cfg.num_action_samples)
    y = np.asarray(ds.rewards + GAMMA * ds.discounts * nv.mean(1))
    x = np.c_[np.asarray(ds.observations), np.asarray(ds.actions)]
    err = np.einsum("bi,ij,bj->b", x, w0, x) + x @ np.full(3, 0.1) - 1.0 - y
    grad_w = np.einsum("b,bi,bj->ij", err, x, x) / len(y)
    np.testing.assert_allclose(new_jit.params["params"]["w"], w0 - 0.1 * grad_w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(new_jit.params["params"]["c"], -1.0 - 0.1 * err.mean(), rtol=1e-10)
    # target_update_period=1: the target is the new online parameters.
    np.testing.assert_allclose(new_jit.target_params["params"]["w"], new_jit.params["params"]["w"])
    assert int(new_jit.step) == 1 and isinstance(optax.tree.norm(new_jit.params), jax.Array)


def test_bad_configs_raise(data):
    ds = data[0]
    sample = TARGET.sample_actions
    bad = {
        "action_dim": dict(action_dim=0),
        "num_action_samples": dict(num_action_samples=0),
        "num_steps": dict(num_steps=0),
        "gamma": dict(gamma=1.0),
        "features": dict(features="cubic"),
        "learning_rate": dict(learning_rate=-1.0),
        "tau": dict(tau=2.0),
    }
    for name, change in bad.items():
        with pytest.raises(ValueError, match=name):
            make_train(dataclasses.replace(QUADRATIC, **change), sample)
    small = jax.tree.map(lambda x: x[:100], ds)
    with pytest.raises(ValueError, match="batch_size"):
        make_train(QUADRATIC, sample)(jax.random.key(0), small)
    with pytest.raises(ValueError, match="action_dim"):
        make_train(dataclasses.replace(QUADRATIC, action_dim=2), sample)(jax.random.key(0), ds)
    with pytest.raises(ValueError, match="sample_actions"):
        make_train(QUADRATIC, lambda k, o: jnp.zeros((o.shape[0], 3)))(jax.random.key(0), ds)
    int_actions = Transitions(ds.observations, jnp.zeros(ds.rewards.shape, jnp.int32), ds.rewards,
                              ds.next_observations, ds.discounts)
    with pytest.raises(ValueError, match="action_dim"):
        make_train(QUADRATIC, sample)(jax.random.key(0), int_actions)
    with pytest.raises(ValueError, match="data"):
        make_train(QUADRATIC, sample)(jax.random.key(0), (ds.observations, ds.actions))
    with pytest.raises(ValueError, match="target_policy"):
        make_train(QUADRATIC, None)
    with pytest.raises(ValueError, match="method"):
        dataclasses.replace(QUADRATIC, method="fqi")
