"""The jitted FQE/FQI loop: exact tabular truth, hand gradient steps, vmap, validation."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.core import make_train_seeds
from offrl_jax.data import Transitions, to_transitions
from offrl_jax.envs import q_values, rollout, value_iteration
from offrl_jax.envs.suite import garnet
from offrl_jax.fitted import (
    FittedQConfig,
    default_seeds_per_group,
    init_state,
    initial_value,
    make_learner,
    make_train,
    make_update,
    q_model_terms,
    q_network,
    validate_data,
)

# One-hot linear (tabular) Q, full batch: the loop is exact fitted policy evaluation.
TAB = FittedQConfig(
    num_actions=3,
    num_observations=7,
    hidden_sizes=(),
    gamma=0.9,
    batch_size=None,
    learning_rate=0.05,
    num_steps=3000,
    target_update_period=15,
    dtype="float64",
)


def _q_table(state, n):
    return np.asarray(state.apply_fn(state.params, jnp.arange(n)))


def test_fqe_recovers_exact_q_pi(garnet_data):
    mdp, ds, pi = garnet_data
    res = jax.jit(make_train(TAB, pi))(jax.random.key(0), ds)
    q_true = np.asarray(q_values(mdp, pi))
    # Tolerance: the fixed point is exact (the data are the model); 3000 steps leave < 1e-6.
    np.testing.assert_allclose(_q_table(res.state, 7)[:6], q_true[:6], atol=1e-6)
    assert res.metrics.loss.shape == (TAB.num_steps,)
    # FQE's direct-method estimate equals J(pi) from d0
    est = initial_value(res.state.apply_fn, res.state.params, jnp.arange(6), pi[:6])
    np.testing.assert_allclose(est, np.mean(np.sum(q_true[:6] * np.asarray(pi)[:6], -1)), atol=1e-6)


@pytest.mark.parametrize("double_q", [False, True])
def test_fqi_recovers_q_star(garnet_data, double_q):
    mdp, ds, _ = garnet_data
    cfg = TAB.replace(method="fqi", double_q=double_q)
    res = jax.jit(make_train(cfg))(jax.random.key(1), ds)
    q_star = np.asarray(value_iteration(mdp).q_star)
    np.testing.assert_allclose(_q_table(res.state, 7)[:6], q_star[:6], atol=1e-6)


def _empirical_q_pi(ds, pi, num_states, num_actions, gamma):
    """Certainty-equivalence Q^pi of the empirical model (counts), float64 linear solve."""
    s, a, r = np.asarray(ds.observations), np.asarray(ds.actions), np.asarray(ds.rewards)
    s2, d = np.asarray(ds.next_observations), np.asarray(ds.discounts)
    n = np.zeros((num_states, num_actions))
    np.add.at(n, (s, a), 1.0)
    assert np.all(n > 0), "the test needs every (s, a) covered"
    r_hat = np.zeros_like(n)
    np.add.at(r_hat, (s, a), r)
    p_hat = np.zeros((num_states, num_actions, num_states))
    np.add.at(p_hat, (s, a, s2), d)
    r_hat, p_hat = r_hat / n, p_hat / n[..., None]
    k = num_states * num_actions
    m = np.einsum("sat,tb->satb", p_hat, np.asarray(pi)).reshape(k, k)
    return np.linalg.solve(np.eye(k) - gamma * m, r_hat.ravel()).reshape(num_states, num_actions)


def test_fqe_on_rollouts_equals_certainty_equivalence():
    """On sampled (truncated) episodes, tabular FQE's fixed point is Q^pi of the empirical model;
    truncation keeps the bootstrap (discount 1 on the last step)."""
    mdp = garnet(3, 5, 2, 3, gamma=0.9, dtype=jnp.float64)
    beta = jnp.full((5, 2), 0.5)
    pi = jnp.asarray(np.random.default_rng(2).dirichlet(np.ones(2), size=5))
    ds = to_transitions(jax.jit(rollout, static_argnames=("num_episodes", "horizon"))(jax.random.key(0), mdp, beta, num_episodes=8, horizon=15))
    assert np.all(np.asarray(ds.discounts) == 1.0)
    cfg = TAB.replace(num_actions=2, num_observations=5)
    res = jax.jit(make_train(cfg, pi))(jax.random.key(0), ds)
    q_ce = _empirical_q_pi(ds, pi, 5, 2, 0.9)
    np.testing.assert_allclose(_q_table(res.state, 5), q_ce, atol=1e-6)
    # and the empirical solution is a noisy estimate of the truth (not the truth itself)
    assert np.max(np.abs(q_ce - np.asarray(jax.jit(q_values)(mdp, pi)))) > 1e-3


def test_minibatch_mlp_fqe_recovers_q_pi(make_enumerated):
    """An MLP on one-hot input trained on minibatches: with deterministic transitions (b = 1)
    every target is exact at the fixed point, so minibatch Adam converges to Q^pi itself."""
    mdp, ds = make_enumerated(4, 6, 3, 1)
    pi = jnp.asarray(np.random.default_rng(3).dirichlet(np.ones(3), size=7))
    cfg = TAB.replace(hidden_sizes=(32,), batch_size=8, learning_rate=3e-3, num_steps=3000, target_update_period=30)
    res = jax.jit(make_train(cfg, pi))(jax.random.key(0), ds)
    q_true = np.asarray(q_values(mdp, pi))
    np.testing.assert_allclose(_q_table(res.state, 7)[:6], q_true[:6], atol=1e-4)


def _linear_problem():
    rng = np.random.default_rng(5)
    m, dim, a = 6, 4, 3
    ds = Transitions.create(
        observations=rng.normal(size=(m, dim)),
        actions=np.array([0, 1, 2, 1, 0, 2]),
        rewards=rng.normal(size=m),
        next_observations=rng.normal(size=(m, dim)),
        discounts=np.array([1.0, 1.0, 0.0, 1.0, 1.0, 1.0]),
    )
    mix = jnp.asarray(rng.normal(size=(dim, a)))
    policy = lambda o: jax.nn.softmax(o @ mix, axis=-1)
    cfg = FittedQConfig(
        num_actions=a, hidden_sizes=(), gamma=0.8, batch_size=None, learning_rate=0.1, optimizer="sgd",
        target_update_period=3, dtype="float64", num_steps=5,
    )
    return ds, policy, cfg


def test_update_equals_hand_gradient_step():
    ds, policy, cfg = _linear_problem()
    state = init_state(jax.random.key(0), cfg, ds)
    update = make_update(cfg, policy)
    w = np.asarray(state.params["params"]["Dense_0"]["kernel"])
    b = np.asarray(state.params["params"]["Dense_0"]["bias"])
    x, a, r = np.asarray(ds.observations), np.asarray(ds.actions), np.asarray(ds.rewards)
    x2, d = np.asarray(ds.next_observations), np.asarray(ds.discounts)
    # by hand: q = x W + b, y = r + gamma d sum_a pi(a|s') q(s', a), L = mean 1/2 (q_a - y)^2
    q_next = x2 @ w + b
    y = r + 0.8 * d * np.sum(np.asarray(policy(jnp.asarray(x2))) * q_next, -1)
    err = (x @ w + b)[np.arange(6), a] - y
    onehot = np.eye(3)[a]
    grad_w = x.T @ (err[:, None] * onehot) / 6
    grad_b = (err[:, None] * onehot).sum(0) / 6
    for fn in (update, jax.jit(update)):
        new, metrics = fn(state, ds)
        np.testing.assert_allclose(new.params["params"]["Dense_0"]["kernel"], w - 0.1 * grad_w, rtol=1e-12)
        np.testing.assert_allclose(new.params["params"]["Dense_0"]["bias"], b - 0.1 * grad_b, rtol=1e-12)
        np.testing.assert_allclose(metrics.loss, np.mean(0.5 * err**2), rtol=1e-12)
        np.testing.assert_allclose(metrics.grad_norm, np.sqrt(np.sum(grad_w**2) + np.sum(grad_b**2)), rtol=1e-12)


def test_target_refresh_hard_and_polyak():
    ds, policy, cfg = _linear_problem()
    state0 = init_state(jax.random.key(0), cfg, ds)
    update = jax.jit(make_update(cfg, policy))
    s = state0
    for step in range(1, 7):
        s, _ = update(s, ds)
        expect = s.params if step % 3 == 0 else (state0.params if step < 3 else last_copy)
        chex.assert_trees_all_equal(s.target_params, expect)
        if step % 3 == 0:
            last_copy = s.params
    cfg_p = cfg.replace(tau=0.25)
    s1, _ = jax.jit(make_update(cfg_p, policy))(state0, ds)
    expect = jax.tree_util.tree_map(lambda p, t: 0.25 * p + 0.75 * t, s1.params, state0.params)
    chex.assert_trees_all_close(s1.target_params, expect, rtol=1e-12)


def test_update_traces_once():
    ds, policy, cfg = _linear_problem()
    state = init_state(jax.random.key(0), cfg, ds)
    update = jax.jit(chex.assert_max_traces(make_update(cfg, policy), n=1))
    for _ in range(3):
        state, _ = update(state, ds)
    ds2 = ds.replace(rewards=ds.rewards + 1.0)
    update(state, ds2)  # new values, same shapes: no retrace


# One small MLP FQE learner shared by the seed and chunk tests: its jitted init and 40-step run
# compile once and serve both (separate runs of the vmap test, the whole run of the chunk test).
SEED_CFG = TAB.replace(hidden_sizes=(8,), batch_size=8, num_steps=40, target_update_period=10)


@pytest.fixture(scope="module")
def seed_learner(garnet_data):
    _, ds, pi = garnet_data
    learner = make_learner(SEED_CFG, pi)
    return learner, jax.jit(learner.init), jax.jit(learner.run, static_argnums=2)


def test_vmap_over_seeds_equals_separate_runs(garnet_data, seed_learner):
    _, ds, pi = garnet_data
    cfg = SEED_CFG
    _, init, run = seed_learner
    keys = jax.random.split(jax.random.key(7), 4)
    train = make_train(cfg, pi)
    batched = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, ds)
    for i in range(4):
        # a separate run: train(key, data) = run(init(key, data), data, num_steps)
        state, loss = run(init(keys[i], ds), ds, cfg.num_steps)
        chex.assert_trees_all_close(
            jax.tree_util.tree_map(lambda x: x[i], batched.state.params), state.params, rtol=1e-10, atol=1e-12
        )
        np.testing.assert_allclose(batched.metrics.loss[i], loss.loss, rtol=1e-10, atol=1e-12)
    assert batched.metrics.loss.shape == (4, cfg.num_steps)
    assert not np.allclose(batched.metrics.loss[0], batched.metrics.loss[1])
    # Seeds in vmapped groups of 3 (4 = 3 + 1) side by side: the same runs, seed by seed.
    grouped = jax.jit(make_train_seeds(train, seeds_per_group=3))(keys, ds)
    chex.assert_trees_all_close(grouped.state.params, batched.state.params, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grouped.metrics.loss, batched.metrics.loss, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="seeds_per_group"):
        make_train_seeds(train, seeds_per_group=0)
    assert 1 <= default_seeds_per_group(4, cfg) <= 4


def test_learner_run_in_two_chunks_equals_one(garnet_data, seed_learner):
    """run(init, 2n) == run(run(init, n), n): the key travels in the state."""
    _, ds, _ = garnet_data
    _, init, run = seed_learner
    state0 = init(jax.random.key(2), ds)
    whole, m_whole = run(state0, ds, 40)
    half, m_a = run(state0, ds, 20)
    half, m_b = run(half, ds, 20)
    chex.assert_trees_all_equal(whole.params, half.params)
    np.testing.assert_array_equal(m_whole.loss, np.concatenate([m_a.loss, m_b.loss]))


def test_float32_default(garnet_data):
    _, ds, pi = garnet_data
    cfg = FittedQConfig(num_actions=3, num_observations=7, hidden_sizes=(4,), batch_size=4, num_steps=5, gamma=0.9)
    a = jax.jit(make_train(cfg, pi))(jax.random.key(0), ds)
    assert a.metrics.loss.dtype == jnp.float32
    assert jax.tree_util.tree_leaves(a.state.params)[0].dtype == jnp.float32


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(num_steps=0), "num_steps"),
        (dict(gamma=1.5), "gamma"),
        (dict(gamma=-0.1), "gamma"),
        (dict(method="sarsa"), "method"),
        (dict(hidden_sizes=(8, 0)), "hidden_sizes"),
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(batch_size=0), "batch_size"),
        (dict(target_update_period=0), "target_update_period"),
        (dict(tau=1.5), "tau"),
        (dict(loss="l1"), "loss"),
        (dict(optimizer="rmsprop"), "optimizer"),
        (dict(num_actions=None), "num_actions"),
        (dict(double_q=True), "double_q"),
        (dict(dtype="float16"), "dtype"),
    ],
)
def test_bad_config_raises_before_tracing(change, field):
    with pytest.raises(ValueError, match=field):
        make_train(TAB.replace(**change))


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(action_dim=2), "num_actions"),  # both set
        (dict(features="quadratic"), "features"),  # discrete
        (dict(num_action_samples=0), "num_action_samples"),
        (dict(max_grad_norm=-1.0), "max_grad_norm"),
        (dict(huber_delta=0.0), "huber_delta"),
    ],
)
def test_more_bad_config_fields_raise(change, field):
    with pytest.raises(ValueError, match=field):
        TAB.replace(**change)


def test_bad_dataset_raises(garnet_data):
    _, ds, pi = garnet_data
    with pytest.raises(ValueError, match="batch_size"):
        validate_data(TAB.replace(batch_size=1000), ds, pi)
    with pytest.raises(ValueError, match="num_actions"):
        make_train(TAB.replace(num_actions=2), pi[:, :2] / pi[:, :2].sum(-1, keepdims=True))(jax.random.key(0), ds)
    with pytest.raises(ValueError, match="num_observations"):
        validate_data(TAB.replace(num_observations=5), ds, pi[:5])
    with pytest.raises(ValueError, match="policy"):
        validate_data(TAB, ds, None)
    with pytest.raises(ValueError, match="policy"):
        validate_data(TAB, ds, pi[:, :2])
    with pytest.raises(ValueError, match="policy"):
        validate_data(TAB.replace(method="fqi"), ds, pi)
    with pytest.raises(ValueError, match="observations"):
        validate_data(TAB.replace(num_observations=None), ds, lambda o: o)
    # The policy is checked when the learner is built, before any data.
    with pytest.raises(ValueError, match="target_policy"):
        make_train(TAB, pi[:, :2])
    # Under jit only shapes are known: validate_data is the check before jitting.
    bad = ds.replace(next_observations=ds.next_observations + 7)
    with pytest.raises(ValueError, match="num_observations"):
        validate_data(TAB, bad, pi)


def test_q_model_terms_from_tabular_fqe(garnet_data):
    """q_model_terms gathers Q-hat at logged actions and V-hat under pi, zero on padding."""
    mdp, _, pi = garnet_data
    params = q_network(TAB).init(jax.random.key(0), jnp.zeros(1, jnp.int32))
    apply = q_network(TAB).apply
    table = np.asarray(apply(params, jnp.arange(7)))
    obs = jnp.array([[0, 3, 5], [2, 1, 0]])
    act = jnp.array([[1, 0, 2], [2, 2, 0]])
    mask = jnp.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    out = q_model_terms(apply, params, obs, act, mask, pi)
    o, a, m = np.asarray(obs), np.asarray(act), np.asarray(mask)
    np.testing.assert_allclose(out.q_taken, table[o, a] * m, rtol=1e-12)
    np.testing.assert_allclose(out.v_hat, np.sum(np.asarray(pi)[o] * table[o], -1) * m, rtol=1e-12)
