"""DICE: Lagrangians by hand, stationarity at the tabular solution, training to the tabular answer."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.data import Trajectories
from offrl_jax.envs import TabularMDP, policy_value, rollout
from offrl_jax.mis import (
    DiceConfig,
    DiceData,
    DiceNetwork,
    dice_data_from_trajectories,
    dice_estimate,
    dice_weights,
    dualdice_lagrangian,
    flow_counts,
    gendice_lagrangian,
    gradientdice_lagrangian,
    make_learner,
    make_train,
    mis_estimate,
    ratios_at,
    tabular_ratios,
    TabularMISResult,
)

S, A, GAMMA = 5, 2, 0.9


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(S), size=(S, A))
    r = rng.normal(size=(S, A))
    mdp = TabularMDP.create(p, r, np.ones(S) / S, GAMMA, dtype=jnp.float64)
    pib = jnp.full((S, A), 0.5)
    pie = jnp.asarray(rng.dirichlet(np.ones(A), size=S))
    tr = jax.jit(rollout, static_argnums=(3, 4))(jax.random.key(1), mdp, pib, 50, 20)
    data = dice_data_from_trajectories(tr, pie)
    return mdp, pie, tr, data, _tabular(tr, pie)


@jax.jit
def _tabular(tr, pie):
    r = tabular_ratios(tr.observations, tr.actions, tr.next_observations, tr.discounts, tr.mask, tr.observations[:, 0],
                       pie, GAMMA, initial_mask=tr.mask[:, 0])
    w = ratios_at(r.weights, tr.observations, tr.actions)
    est = mis_estimate(w, tr.rewards, tr.mask, GAMMA)
    return TabularMISResult(est, mis_estimate(w, tr.rewards, tr.mask, GAMMA, self_normalize=True), r)


def test_lagrangians_by_hand():
    rng = np.random.default_rng(1)
    w, c, cn, d = (rng.normal(size=4) for _ in range(4))
    c0 = rng.normal(size=3)
    disc = np.array([1.0, 0.0, 1.0, 1.0])
    g, u, lam = 0.8, 0.3, 2.0
    dual = np.mean(w**2 / 2 - (c - g * disc * cn) * w) + (1 - g) * np.mean(c0)
    np.testing.assert_allclose(dualdice_lagrangian(w, c, cn, c0, disc, g), dual, rtol=1e-12)
    gen = (1 - g) * np.mean(c0) + g * np.mean(w * disc * cn) - np.mean(w * (c + c**2 / 4))
    gen += lam * (np.mean(u * w - u) - u**2 / 2)
    np.testing.assert_allclose(gendice_lagrangian(w, c, cn, c0, disc, g, u, lam), gen, rtol=1e-12)
    grad = (1 - g) * np.mean(c0) + g * np.mean(w * disc * cn) - np.mean(w * c) - np.mean(c**2) / 2
    grad += lam * (np.mean(u * w - u) - u**2 / 2)
    np.testing.assert_allclose(gradientdice_lagrangian(w, c, cn, c0, disc, g, u, lam), grad, rtol=1e-12)


def _table_lagrangian(method, data, w_table, c_table, scalar):
    w = w_table[data.observations, data.actions]
    c = c_table[data.observations, data.actions]
    cn = jnp.sum(data.next_target_probs * c_table[data.next_observations], -1)
    c0 = jnp.sum(data.initial_target_probs * c_table[data.initial_observations], -1)
    if method == "dualdice":
        return dualdice_lagrangian(w, c, cn, c0, data.discounts, GAMMA)
    fn = gendice_lagrangian if method == "gendice" else gradientdice_lagrangian
    return fn(w, c, cn, c0, data.discounts, GAMMA, scalar, 1.0)


@pytest.mark.parametrize("method", ["dualdice", "gendice", "gradientdice"])
def test_tabular_solution_is_a_saddle_point(problem, method):
    """At w = the empirical Bellman-flow solution every partial gradient of L vanishes."""
    mdp, pie, tr, data, tab = problem
    w = tab.ratios.weights
    if method == "dualdice":  # nu solves nu - gamma P_hat_pi nu = w on the empirical model
        fc = flow_counts(data.observations, data.actions, data.next_observations, data.discounts, None,
                         data.initial_observations, pie)
        p_pi = fc.flow.reshape(S * A, S * A) / fc.data.reshape(-1, 1)
        critic = jnp.linalg.solve(jnp.eye(S * A) - GAMMA * p_pi, w.reshape(-1)).reshape(S, A)
    else:
        critic = jnp.zeros((S, A))
    grad = jax.jit(jax.grad(lambda *x: _table_lagrangian(method, data, *x), argnums=(0, 1, 2)))
    for g in grad(w, critic, jnp.zeros(())):
        np.testing.assert_allclose(g, 0.0, atol=1e-12)
    # ... and away from it they do not.
    grads = grad(w * 1.1, critic, jnp.zeros(()))
    assert float(jnp.max(jnp.abs(grads[0]))) + float(jnp.max(jnp.abs(grads[1]))) > 1e-3


NET = DiceNetwork(A, hidden_sizes=(), num_observations=S, use_bias=False, dtype=jnp.float64)
STEPS = {"dualdice": 6000, "gendice": 3000, "gradientdice": 3000}
LR = {"dualdice": 2.0, "gendice": 0.5, "gradientdice": 1.0}


def _config(method, **kw):
    base = dict(method=method, gamma=GAMMA, weight_lr=LR[method], critic_lr=LR[method], batch_size=None,
                initial_batch_size=None, optimizer="sgd", num_steps=STEPS[method])
    base.update(kw)
    return DiceConfig(**base)


@pytest.mark.parametrize("method", ["dualdice", "gendice", "gradientdice"])
def test_one_hot_dice_matches_tabular_solution(problem, method):
    """Full-batch descent-ascent with one-hot features converges to the tabular flow solution."""
    mdp, pie, tr, data, tab = problem
    cfg = _config(method)
    train = jax.jit(jax.vmap(make_train(cfg, NET, NET), in_axes=(0, None)))
    keys = jax.random.split(jax.random.key(3), 2)
    states, metrics = train(keys, data)
    assert metrics.loss.shape == (2, STEPS[method])
    s_idx, a_idx = jnp.repeat(jnp.arange(S), A), jnp.tile(jnp.arange(A), S)
    for i in range(2):
        params = jax.tree.map(lambda x: x[i], states.weight_params)
        w = dice_weights(cfg, NET, params, s_idx, a_idx).reshape(S, A)
        # Stated tolerance: 1e-3 on the weights (which are O(1)) and 1e-3 relative on J.
        np.testing.assert_allclose(w, tab.ratios.weights, atol=1e-3)
        est = dice_estimate(cfg, NET, params, data)
        np.testing.assert_allclose(est.estimate, tab.estimate, rtol=1e-3)
        np.testing.assert_allclose(est.self_normalized, tab.self_normalized, rtol=1e-3)
    if method != "gradientdice":
        return
    # vmapped over seeds == one seed at a time.
    single = jax.jit(make_train(cfg, NET, NET))(keys[1], data)
    np.testing.assert_allclose(metrics.loss[1], single.metrics.loss, rtol=1e-9, atol=1e-12)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[1], b, rtol=1e-9, atol=1e-12), states.weight_params,
                 single.state.weight_params)


def test_minibatch_mlp_dice_runs_and_tracks_truth(problem):
    """Neural networks, minibatches and Adam: GradientDICE lands near the truth (loose, 15%)."""
    mdp, pie, tr, data, tab = problem
    net = DiceNetwork(A, hidden_sizes=(32,), num_observations=S, dtype=jnp.float64)
    cfg = DiceConfig(method="gradientdice", gamma=GAMMA, weight_lr=3e-3, critic_lr=3e-3, batch_size=64,
                     initial_batch_size=64, optimizer="adam", num_steps=3000)
    state, metrics = jax.jit(make_train(cfg, net, net))(jax.random.key(0), data)
    assert bool(jnp.all(jnp.isfinite(metrics.loss)))
    est = dice_estimate(cfg, net, state.weight_params, data)
    truth = float(policy_value(mdp, pie))
    assert abs(float(est.self_normalized) - truth) < 0.15 * abs(truth), (est, truth)


def test_jit_matches_eager(problem):
    mdp, pie, tr, data, tab = problem
    rng = np.random.default_rng(2)
    x = [jnp.asarray(rng.normal(size=n)) for n in (40, 40, 40, 7, 40)]
    for fn, extra in ((gendice_lagrangian, (0.3, 2.0)),):
        f = lambda *a: fn(*a, GAMMA, *extra)
        np.testing.assert_allclose(jax.jit(f)(*x), f(*x), rtol=1e-12)
        g = jax.grad(f, argnums=(0, 1, 2, 3))
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15), jax.jit(g)(*x), g(*x))
    cfg = _config("gradientdice")
    params = make_learner(cfg, NET, NET).init(jax.random.key(0), data).weight_params
    est = lambda p: dice_estimate(cfg, NET, p, data)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), jax.jit(est)(params), est(params))


def test_validation_errors_name_arguments(problem):
    mdp, pie, tr, data, tab = problem
    for field, value in [("method", "bestdice"), ("gamma", 1.0), ("weight_lr", 0.0), ("critic_lr", -1.0),
                         ("batch_size", 0), ("initial_batch_size", 1.5), ("norm_penalty", -1.0),
                         ("positivity", "abs"), ("optimizer", "lbfgs"), ("num_steps", 0)]:
        with pytest.raises(ValueError, match=field):
            DiceConfig(**dict(dataclasses.asdict(_config("gendice")), **{field: value}))
        with pytest.raises(ValueError, match=field):
            _config("gendice").replace(**{field: value})
    with pytest.raises(ValueError, match="config"):
        make_learner({"method": "gendice"}, NET, NET)
    fields = {k: np.asarray(getattr(data, k)) for k in data.__dataclass_fields__}
    bad = dict(fields, actions=fields["actions"][:-1])
    with pytest.raises(ValueError, match="actions"):
        DiceData.create(**bad)
    bad = dict(fields, next_target_probs=fields["next_target_probs"] * 2)
    with pytest.raises(ValueError, match="next_target_probs"):
        DiceData.create(**bad)
    bad = dict(fields, rewards=np.where(np.arange(data.size) == 3, np.nan, fields["rewards"]))
    with pytest.raises(ValueError, match="rewards"):
        DiceData.create(**bad)
    bad = dict(fields, initial_observations=fields["initial_observations"][:0], initial_target_probs=fields["initial_target_probs"][:0])
    with pytest.raises(ValueError, match="initial_observations"):
        DiceData.create(**bad)
    traj = Trajectories.create(observations=np.array([[0, 4]]), actions=np.array([[0, 1]]), rewards=np.zeros((1, 2)),
                               next_observations=np.array([[4, 1]]), discounts=np.ones((1, 2)), mask=np.ones((1, 2)))
    with pytest.raises(ValueError, match="target_policy"):
        dice_data_from_trajectories(traj, pie[:2])
    converted = dice_data_from_trajectories(traj, pie)
    np.testing.assert_array_equal(converted.initial_observations, [0])
    np.testing.assert_allclose(converted.next_target_probs, pie[np.array([4, 1])])
