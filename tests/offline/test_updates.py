"""Each offline method's update against a step computed by hand on a tiny tabular problem.

Tabular networks (one-hot input, no hidden layer): Q(s, a) = K[s, a] + b[a], so a loss
gradient dL/dQ[s, a] gives dK = dL/dQ and db = its column sums. Full batch, float64, SGD (TD3+BC:
Adam's first step, −lr g / (|g| + 1e-8)).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.data import Transitions
from offrl_jax.fitted.loop import fitted_batch
from offrl_jax.offline import BCConfig, BCQConfig, CQLConfig, IQLConfig, TD3BCConfig, bc, bcq, cql, iql, td3_bc
from offrl_jax.offline.common import gaussian_log_prob

O, A, LR, G = 4, 3, 0.5, 0.9
COMMON = dict(num_actions=A, num_observations=O, hidden_sizes=(), batch_size=None, learning_rate=LR,
              optimizer="sgd", dtype="float64")


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(3)
    m = 10
    return Transitions.create(
        observations=rng.integers(0, O, m), actions=rng.integers(0, A, m), rewards=rng.normal(size=m),
        next_observations=rng.integers(0, O, m), discounts=(rng.random(m) > 0.2).astype(np.float64),
    )


def _table(params):
    p = params["params"]
    p = p["inner"]["Dense_0"] if "inner" in p else p["Dense_0"]
    return np.asarray(p["kernel"]), np.asarray(p["bias"])


def _q(params):
    k, b = _table(params)
    return k + b


def _sgd(params, dq):
    """Parameters after one SGD step with dL/dQ table ``dq`` [O, A]."""
    k, b = _table(params)
    return k - LR * dq, b - LR * dq.sum(0)


def _scatter(ds, per_row):
    """dL/dQ[s, a] = Σ_m over rows with s_m = s of ``per_row[m, a]``."""
    out = np.zeros((O, per_row.shape[1]))
    np.add.at(out, np.asarray(ds.observations), per_row)
    return out


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _assert_table(params, expected):
    k, b = _table(params)
    np.testing.assert_allclose(k, expected[0], atol=1e-12)
    np.testing.assert_allclose(b, expected[1], atol=1e-12)


def _data(ds):
    s, a, r = (np.asarray(x) for x in (ds.observations, ds.actions, ds.rewards))
    return s, a, r, np.asarray(ds.next_observations), np.asarray(ds.discounts), np.eye(A)[a]


@pytest.mark.parametrize("lagrangian", [False, True])
def test_cql_step(tiny, lagrangian):
    cfg = CQLConfig(gamma=G, alpha=0.7, target_action_gap=0.4 if lagrangian else None,
                    alpha_learning_rate=0.01, **COMMON)
    state = cql.make_learner(cfg).init(jax.random.key(0), tiny)
    new, metrics = jax.jit(cql.make_update(cfg))(state, fitted_batch(cfg.fitted, tiny))
    s, a, r, s2, d, onehot = _data(tiny)
    q = _q(state.params)
    y = r + G * d * q[s2].max(-1)
    q_sa = q[s, a]
    m = len(r)
    gap = np.mean(np.log(np.exp(q[s]).sum(-1)) - q_sa)
    dq = _scatter(tiny, ((q_sa - y)[:, None] * onehot + 0.7 * (_softmax(q[s]) - onehot)) / m)
    _assert_table(new.params, _sgd(state.params, dq))
    np.testing.assert_allclose(metrics.gap, gap, rtol=1e-12)
    np.testing.assert_allclose(metrics.loss, 0.5 * np.mean((q_sa - y) ** 2) + 0.7 * gap, rtol=1e-12)
    g = -0.7 * (gap - 0.4)  # d/d log α of −α (gap − τ), one Adam step of 0.01
    expected_log_alpha = np.log(0.7) - (0.01 * g / (abs(g) + 1e-8) if lagrangian else 0.0)
    np.testing.assert_allclose(new.log_alpha, expected_log_alpha, rtol=1e-12)


def test_bcq_step(tiny):
    cfg = BCQConfig(gamma=G, threshold=0.3, **COMMON)
    state = bcq.make_learner(cfg).init(jax.random.key(1), tiny)
    new, metrics = jax.jit(bcq.make_update(cfg))(state, fitted_batch(cfg.fitted, tiny))
    s, a, r, s2, d, onehot = _data(tiny)
    q, logits = _q(state.params), _q(state.behavior.params)
    p = _softmax(logits)
    allowed = p / p.max(-1, keepdims=True) > 0.3
    a_star = np.where(allowed, q, -np.inf).argmax(-1)
    y = r + G * d * q[s2, a_star[s2]]
    m = len(r)
    _assert_table(new.params, _sgd(state.params, _scatter(tiny, (q[s, a] - y)[:, None] * onehot / m)))
    _assert_table(new.behavior.params, _sgd(state.behavior.params, _scatter(tiny, (p[s] - onehot) / m)))
    np.testing.assert_allclose(metrics.allowed, allowed[s2].sum(-1).mean(), rtol=1e-12)
    # The greedy policy stays inside the allowed set.
    np.testing.assert_array_equal(bcq.act(cfg, state, jnp.arange(O)), a_star)


def test_iql_step(tiny):
    cfg = IQLConfig(gamma=G, expectile=0.8, temperature=2.0, max_weight=3.0, tau=0.25, **COMMON)
    state = iql.make_learner(cfg).init(jax.random.key(2), tiny)
    new, _ = jax.jit(iql.make_update(cfg))(state, tiny)
    s, a, r, s2, d, onehot = _data(tiny)
    m = len(r)
    q, v, logits = _q(state.q.params), _q(state.v.params)[:, 0], _q(state.policy.params)
    u = q[s, a] - v[s]
    w_exp = np.where(u < 0, 0.2, 0.8)
    dv = _scatter(tiny, (-2.0 * w_exp * u / m)[:, None])
    kv, bv = _sgd(state.v.params, dv)
    _assert_table(new.v.params, (kv, bv))
    v_new = (kv + bv)[:, 0]
    y = r + G * d * v_new[s2]
    k_q, b_q = _sgd(state.q.params, _scatter(tiny, (q[s, a] - y)[:, None] * onehot / m))
    _assert_table(new.q.params, (k_q, b_q))
    k0, b0 = _table(state.q.params)
    np.testing.assert_allclose(_table(new.q_target)[0], 0.25 * k_q + 0.75 * k0, atol=1e-12)
    weights = np.minimum(np.exp(2.0 * (q[s, a] - v_new[s])), 3.0)
    dpi = _scatter(tiny, weights[:, None] * (_softmax(logits[s]) - onehot) / m)
    _assert_table(new.policy.params, _sgd(state.policy.params, dpi))


def test_bc_step(tiny):
    cfg = BCConfig(**COMMON)
    state = bc.make_learner(cfg).init(jax.random.key(3), tiny)
    new, metrics = jax.jit(bc.make_update(cfg))(state, tiny)
    s, a, *_ , onehot = _data(tiny)
    p = _softmax(_q(state.params))
    _assert_table(new.params, _sgd(state.params, _scatter(tiny, (p[s] - onehot) / len(s))))
    np.testing.assert_allclose(metrics.loss, -np.mean(np.log(p[s, a])), rtol=1e-12)


def test_gaussian_log_prob():
    mean, log_std, x = jnp.array([[0.5, -1.0]]), jnp.array([0.2, -0.3]), jnp.array([[1.0, 0.0]])
    sd = np.exp([0.2, -0.3])
    ref = np.sum(-0.5 * ((np.array([1.0, 0.0]) - [0.5, -1.0]) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi))
    np.testing.assert_allclose(gaussian_log_prob(mean, log_std, x), [ref], rtol=1e-12)


def test_td3_bc_step():
    """Linear critics Q_i = w_i·[s; a] + c_i and actor π = a_max tanh(W s + b); no target noise,
    actor every step, Adam's first step on each."""
    rng = np.random.default_rng(4)
    m, ds_, da = 6, 2, 1
    data = Transitions.create(
        observations=rng.normal(size=(m, ds_)), actions=rng.uniform(-1, 1, (m, da)), rewards=rng.normal(size=m),
        next_observations=rng.normal(size=(m, ds_)), discounts=np.ones(m),
    )
    lr, amax, alpha = 0.01, 2.0, 2.5
    cfg = TD3BCConfig(action_dim=da, hidden_sizes=(), gamma=G, policy_noise=0.0, policy_delay=1, tau=0.5,
                      max_action=amax, alpha=alpha, batch_size=None, learning_rate=lr, dtype="float64")
    state = td3_bc.make_learner(cfg).init(jax.random.key(5), data)
    new, _ = jax.jit(td3_bc.make_update(cfg))(state, data)
    obs, act, r, nxt = (np.asarray(x) for x in (data.observations, data.actions, data.rewards, data.next_observations))
    adam = lambda g: -lr * g / (np.abs(g) + 1e-8)  # noqa: E731
    cp = state.critic.params["params"]
    w = [np.asarray(cp[f"ContinuousQNetwork_{i}"]["Dense_0"]["kernel"])[:, 0] for i in range(2)]
    c = [float(cp[f"ContinuousQNetwork_{i}"]["Dense_0"]["bias"][0]) for i in range(2)]
    ap = state.actor.params["params"]["Dense_0"]
    wa, ba = np.asarray(ap["kernel"]), np.asarray(ap["bias"])
    pi = lambda x, W, b: amax * np.tanh(x @ W + b)  # noqa: E731
    a2 = pi(nxt, wa, ba)
    x2 = np.concatenate([nxt, a2], -1)
    y = r + G * np.minimum(x2 @ w[0] + c[0], x2 @ w[1] + c[1])
    x = np.concatenate([obs, act], -1)
    new_w, new_c = [], []
    for i in range(2):
        err = x @ w[i] + c[i] - y
        new_w.append(w[i] + adam(2 * x.T @ err / m))
        new_c.append(c[i] + adam(2 * err.mean()))
    ncp = new.critic.params["params"]
    for i in range(2):
        np.testing.assert_allclose(ncp[f"ContinuousQNetwork_{i}"]["Dense_0"]["kernel"][:, 0], new_w[i], atol=1e-12)
        np.testing.assert_allclose(ncp[f"ContinuousQNetwork_{i}"]["Dense_0"]["bias"][0], new_c[i], atol=1e-12)
    # Actor: gradient of −λ mean Q1(s, π(s)) + mean ‖π(s) − a‖² through the updated critic 1.
    z = obs @ wa + ba
    p = amax * np.tanh(z)
    q1 = np.concatenate([obs, p], -1) @ new_w[0] + new_c[0]
    lam = alpha / np.mean(np.abs(q1))
    dpi = (-lam * new_w[0][ds_:][None, :] + 2 * (p - act)) / m
    dz = dpi * amax * (1 - np.tanh(z) ** 2)
    nap = new.actor.params["params"]["Dense_0"]
    np.testing.assert_allclose(nap["kernel"], wa + adam(obs.T @ dz), atol=1e-12)
    np.testing.assert_allclose(nap["bias"], ba + adam(dz.sum(0)), atol=1e-12)
    # Polyak targets at rate 0.5.
    np.testing.assert_allclose(new.actor_target["params"]["Dense_0"]["bias"], 0.5 * (ba + adam(dz.sum(0)) + ba),
                               atol=1e-12)
