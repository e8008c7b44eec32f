"""TD targets and losses against hand computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.fitted import (
    ContinuousQNetwork,
    QNetwork,
    fqe_targets,
    fqi_targets,
    huber_loss,
    l2_loss,
    policy_probs,
    regression_loss,
    sampled_fqe_targets,
    sampled_next_values,
)

RNG = np.random.default_rng(0)
B, A = 5, 3
R = RNG.normal(size=B)
D = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
QN = RNG.normal(size=(B, A))
QO = RNG.normal(size=(B, A))
PI = RNG.dirichlet(np.ones(A), size=B)


def test_fqe_targets_hand():
    y = fqe_targets(jnp.asarray(R), jnp.asarray(D), jnp.asarray(QN), jnp.asarray(PI), 0.9)
    hand = np.array([R[m] + 0.9 * D[m] * sum(PI[m, a] * QN[m, a] for a in range(A)) for m in range(B)])
    np.testing.assert_allclose(y, hand, rtol=1e-12)
    # a terminal transition (d = 0) has target r; truncation (d = 1) keeps the bootstrap
    np.testing.assert_allclose(y[D == 0], R[D == 0], rtol=1e-12)
    assert np.all(np.abs(y[D == 1] - R[D == 1]) > 0)


def test_fqi_targets_hand_and_double_q():
    y = fqi_targets(jnp.asarray(R), jnp.asarray(D), jnp.asarray(QN), 0.5)
    np.testing.assert_allclose(y, R + 0.5 * D * QN.max(-1), rtol=1e-12)
    y2 = fqi_targets(jnp.asarray(R), jnp.asarray(D), jnp.asarray(QN), 0.5, jnp.asarray(QO))
    np.testing.assert_allclose(y2, R + 0.5 * D * QN[np.arange(B), QO.argmax(-1)], rtol=1e-12)
    # double-Q with the online network equal to the target network is plain max
    y3 = fqi_targets(jnp.asarray(R), jnp.asarray(D), jnp.asarray(QN), 0.5, jnp.asarray(QN))
    np.testing.assert_allclose(y3, y, rtol=1e-12)


def test_targets_stop_gradient_jit_and_vmap():
    g = jax.grad(lambda q: jnp.sum(fqe_targets(jnp.asarray(R), jnp.asarray(D), q, jnp.asarray(PI), 0.9)))(jnp.asarray(QN))
    np.testing.assert_array_equal(g, 0.0)
    f = lambda r, d, q, p: fqe_targets(r, d, q, p, 0.9)
    args = (jnp.asarray(R), jnp.asarray(D), jnp.asarray(QN), jnp.asarray(PI))
    np.testing.assert_allclose(jax.jit(f)(*args), f(*args), rtol=1e-12)
    stacked = [jnp.stack([a, 2 * a]) for a in args]
    out = jax.vmap(f)(*stacked)
    for i in range(2):
        np.testing.assert_allclose(out[i], f(*[s[i] for s in stacked]), rtol=1e-12)


def test_losses_hand():
    p, t = jnp.array([0.0, 1.0, 5.0]), jnp.array([0.5, -1.0, 1.0])
    x = np.array([-0.5, 2.0, 4.0])
    np.testing.assert_allclose(l2_loss(p, t), np.mean(0.5 * x**2))
    hub = np.where(np.abs(x) <= 1.0, 0.5 * x**2, np.abs(x) - 0.5)
    np.testing.assert_allclose(huber_loss(p, t, 1.0), hub.mean())
    np.testing.assert_allclose(regression_loss(p, t, "huber", 1.0), hub.mean())
    with pytest.raises(ValueError, match="kind"):
        regression_loss(p, t, "l1")


def test_policy_probs_table_and_function():
    table = jnp.asarray(RNG.dirichlet(np.ones(A), size=4))
    obs = jnp.array([3, 0, 3])
    np.testing.assert_allclose(policy_probs(obs, table), np.asarray(table)[[3, 0, 3]])
    f = lambda o: jax.nn.one_hot(o % A, A)
    np.testing.assert_allclose(policy_probs(obs, f), np.eye(A)[[0, 0, 0]])


def test_sampled_targets_match_closed_form():
    """Q(s, a) = -(a - s)^2 and pi(.|s) = N(mu(s), sigma^2): E Q = -((mu - s)^2 + sigma^2)."""
    sigma, k = 0.7, 4000
    s = jnp.linspace(-1.0, 1.0, 6)[:, None]
    mu = lambda o: 0.5 * o
    q_fn = lambda o, a: -jnp.sum((a - o) ** 2, -1)
    sample = lambda key, o: mu(o) + sigma * jax.random.normal(key, o.shape, o.dtype)
    vals = jax.jit(lambda key: sampled_next_values(key, q_fn, sample, s, k))(jax.random.key(3))
    assert vals.shape == (6, k)
    r, d = jnp.ones(6), jnp.ones(6).at[0].set(0.0)
    y = sampled_fqe_targets(r, d, vals, 0.9)
    exact = 1.0 + 0.9 * np.asarray(d) * -(np.asarray((mu(s) - s) ** 2)[:, 0] + sigma**2)
    se = 0.9 * np.std(np.asarray(vals), axis=-1) / np.sqrt(k)
    assert np.all(np.abs(np.asarray(y) - exact) <= 4 * se + 1e-12)
    assert float(y[0]) == 1.0


def test_networks_shapes_and_onehot_tabular():
    net = QNetwork(num_actions=3, hidden_sizes=(), num_observations=4, dtype=jnp.float64)
    params = jax.jit(net.init)(jax.random.key(0), jnp.zeros(2, jnp.int32))
    w = np.asarray(params["params"]["Dense_0"]["kernel"])
    b = np.asarray(params["params"]["Dense_0"]["bias"])
    np.testing.assert_allclose(net.apply(params, jnp.array([2, 0])), w[[2, 0]] + b[None])
    mlp = QNetwork(num_actions=2, hidden_sizes=(8, 8))
    p2 = jax.jit(mlp.init)(jax.random.key(0), jnp.zeros((1, 4)))
    out = jax.jit(mlp.apply)(p2, jnp.zeros((7, 4)))
    assert out.shape == (7, 2) and out.dtype == jnp.float32
    cq = ContinuousQNetwork(hidden_sizes=(8,))
    p3 = jax.jit(cq.init)(jax.random.key(0), jnp.zeros((1, 4)), jnp.zeros((1, 2)))
    assert jax.jit(cq.apply)(p3, jnp.zeros((7, 4)), jnp.zeros((7, 2))).shape == (7,)
