"""Behaviour-policy estimation against the truth: exact counts, cross-fitting, KL(β̂ || β) that
shrinks with N on a suite problem with known β, the Gaussian on a linear-Gaussian policy, the
diagnostics on hand-computed cases, and the named errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax import behavior
from offrl_jax.data import Trajectories

N_BIG = 1600


@pytest.fixture(scope="module")
def stitching(stitching_logs):
    """The stitching gridworld (state-dependent β), 1600 logged episodes of T = 20."""
    p, logs = stitching_logs
    return p, jax.tree_util.tree_map(lambda x: x[0], logs)


def _kl(beta_hat, beta, observations, mask):
    """Mean over logged steps of KL(β̂(·|o_t) || β(·|o_t))."""
    bh, b = np.asarray(beta_hat)[observations], np.asarray(beta)[observations]
    kl = np.sum(np.where(bh > 0, bh * (np.log(np.where(bh > 0, bh, 1)) - np.log(np.where(b > 0, b, 1))), 0), -1)
    return float(np.sum(kl * mask) / np.sum(mask))


_table = jax.jit(lambda o, a, m, no, na, alpha: behavior.smoothed_policy(behavior.action_counts(o, a, m, no, na), alpha),
                 static_argnums=(3, 4))


def test_counts_exact_jit_and_padding():
    obs = np.array([[0, 0, 1, 2], [1, 0, 0, 0]])
    act = np.array([[1, 1, 0, 1], [0, 2, 2, 2]])
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], np.float64)  # padded steps must not count
    want = np.array([[0.5, 2.5, 1.5], [2.5, 0.5, 0.5], [1, 1, 1]])
    want = want / want.sum(1, keepdims=True)
    np.testing.assert_allclose(_table(obs, act, mask, 3, 3, 0.5), want, rtol=1e-12)
    np.testing.assert_allclose(behavior.tabular_behavior(obs, act, mask, 3, 3, smoothing=0.5), want, rtol=1e-12)


def test_cross_fitted_tabular_equals_refit_on_other_folds(stitching):
    p, data = stitching
    d = jax.tree_util.tree_map(lambda x: x[:40], data)
    est = behavior.estimate_behavior(jax.random.key(0), d, "tabular", num_folds=4, num_observations=21,
                                     num_actions=4, smoothing=0.7)
    folds = np.asarray(est.folds)
    np.testing.assert_array_equal(folds, np.repeat([0, 1, 2, 3], 10))
    for k in range(4):
        other = folds != k
        table = _table(np.asarray(d.observations)[other], np.asarray(d.actions)[other],
                       np.asarray(d.mask)[other], 21, 4, 0.7)
        own = ~other
        want = np.asarray(table)[np.asarray(d.observations)[own], np.asarray(d.actions)[own]]
        want = np.where(np.asarray(d.mask)[own] > 0, np.log(want), 0.0)
        np.testing.assert_allclose(np.asarray(est.log_probs)[own], want, rtol=1e-12, atol=1e-12)
    assert est.log_probs.dtype == d.rewards.dtype


def test_tabular_kl_shrinks_with_n(stitching):
    """KL(β̂ || β) ≈ (A − 1) O_seen / (2 M) for smoothed counts: 16x the data, ~1/16 the KL."""
    p, data = stitching
    obs, act, mask = (np.asarray(x) for x in (data.observations, data.actions, data.mask))
    kls = []
    for n in (100, N_BIG):
        table = _table(obs[:n], act[:n], mask[:n], 21, 4, 0.5)
        kls.append(_kl(table, p.behavior, obs[:n], mask[:n]))
        seen = len(np.unique(obs[:n][mask[:n] > 0]))
        assert kls[-1] < 3.0 * 3 * seen / (2 * mask[:n].sum())  # within 3x the asymptotic mean
    assert kls[1] < kls[0] / 4


@pytest.fixture(scope="module")
def classifier(stitching):
    """Linear softmax on one-hot observations (a tabular softmax) and its compiled train."""
    cfg = behavior.BehaviorConfig(num_actions=4, hidden_sizes=(), num_observations=21, num_steps=600,
                                  eval_every=50, batch_size=512, learning_rate=0.05, patience=3)
    return cfg, jax.jit(behavior.make_train(cfg))


def test_classifier_kl_shrinks_and_seeds_vmap(stitching, classifier, fast_compiles):
    p, data = stitching
    cfg, train = classifier
    mask = np.asarray(data.mask)
    rows = np.argwhere(mask > 0)
    obs = np.asarray(data.observations)[rows[:, 0], rows[:, 1]]
    act = np.asarray(data.actions)[rows[:, 0], rows[:, 1]]
    size = rows.shape[0]
    kls = []
    for n in (100, N_BIG):
        n_fit = int(0.8 * n)
        fit, valid = np.flatnonzero(rows[:, 0] < n_fit), np.flatnonzero((rows[:, 0] >= n_fit) & (rows[:, 0] < n))
        data_n = behavior.behavior_data(obs, act, fit, valid, size, size)  # one shape: one compile
        res = train(jax.random.key(1), data_n)
        model = behavior.fitted_model(res.state)
        table = behavior.action_probs(cfg, model, jnp.arange(21))
        sel = rows[:, 0] < n
        kls.append(_kl(table, p.behavior, obs[sel], np.ones(sel.sum())))
        assert np.isfinite(float(res.state.best_log_likelihood))
    assert kls[1] < kls[0] / 3
    assert kls[1] < 0.01
    keys = jax.random.split(jax.random.key(2), 2)
    both = jax.jit(jax.vmap(behavior.make_train(cfg), in_axes=(0, None)))(keys, data_n)
    one = train(keys[1], data_n)
    np.testing.assert_allclose(both.state.best_log_likelihood[1], one.state.best_log_likelihood, rtol=1e-5)
    np.testing.assert_allclose(both.metrics.heldout_log_likelihood[1], one.metrics.heldout_log_likelihood,
                               rtol=1e-5)


def test_gaussian_recovers_linear_gaussian_policy(fast_compiles):
    """a = W s + σ ⊙ ε: the cross-fitted log-likelihood is within 0.02 nats/step of the true
    density's (its standard error over 1500 steps is ≈ 0.02) and the PIT calibration is good."""
    rng = np.random.default_rng(0)
    n, t, d_obs, d_act = 150, 10, 3, 2
    w = rng.normal(size=(d_obs, d_act))
    sigma = np.array([0.3, 0.8])
    obs = rng.normal(size=(n, t, d_obs))
    act = obs @ w + sigma * rng.normal(size=(n, t, d_act))
    true_ll = np.mean(np.sum(-0.5 * ((act - obs @ w) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi), -1))
    zeros = np.zeros((n, t))
    traj = Trajectories.create(observations=obs, actions=act, rewards=zeros, next_observations=obs,
                               discounts=np.ones((n, t)), mask=np.ones((n, t)))
    est = behavior.estimate_behavior(jax.random.key(0), traj, "linear", num_folds=2)
    assert est.probs is None and est.config.continuous
    ll = float(est.diagnostics.heldout_log_likelihood)
    assert abs(ll - true_ll) < 0.02
    assert float(est.diagnostics.calibration_error) < 0.03


def test_diagnostics_hand_computed():
    probs = jnp.array([[[0.95, 0.05], [0.25, 0.75], [0.5, 0.5]]])  # [1, 3, 2]
    actions = jnp.array([[0, 0, 1]])
    mask = jnp.array([[1.0, 1.0, 0.0]])
    # Forecasts (bins of width 0.5): 0.95 (hit), 0.05 (miss), 0.25 (hit), 0.75 (miss).
    # Bin [0, .5): mean forecast 0.15, frequency 0.5 -> |.15 - .5| * 2/4; bin [.5, 1]: 0.85 vs 0.5.
    ece = jax.jit(behavior.expected_calibration_error, static_argnums=3)(probs, actions, mask, 2)
    np.testing.assert_allclose(ece, 0.5 * 0.35 + 0.5 * 0.35, rtol=1e-6)
    target = jnp.array([[[0.1, 0.9], [0.6, 0.4], [0.0, 1.0]]])
    off = jax.jit(behavior.target_mass_off_support)(target, probs, mask, 0.1)
    np.testing.assert_allclose(off, [[0.9, 0.0, 0.0]])
    lp = jnp.log(jnp.array([[0.95, 0.25, 1.0]])) * mask
    diag = jax.jit(lambda *a: behavior.behavior_diagnostics(a[0], a[1], probs=a[2], actions=a[3], target_probs=a[4],
                                                             support_threshold=0.1))(lp, mask, probs, actions, target)
    np.testing.assert_allclose(diag.min_propensity, 0.25, rtol=1e-6)
    np.testing.assert_allclose(diag.heldout_log_likelihood, (np.log(0.95) + np.log(0.25)) / 2, rtol=1e-6)
    np.testing.assert_allclose(diag.target_mass_off_support, 0.45, rtol=1e-6)
    np.testing.assert_allclose(diag.max_target_mass_off_support, 0.9, rtol=1e-6)


def test_with_estimated_behavior_fills_trajectories(stitching):
    p, data = stitching
    d = jax.tree_util.tree_map(lambda x: x[:40], data).replace(behavior_log_probs=None)
    tp = np.asarray(p.target)[np.asarray(d.observations)]
    out, est = behavior.with_estimated_behavior(jax.random.key(0), d, "tabular", num_folds=4, num_observations=21,
                                                smoothing=0.7, target_probs=tp)
    np.testing.assert_array_equal(out.behavior_log_probs, est.log_probs)
    assert est.probs.shape == (40, 20, 4)
    np.testing.assert_allclose(jnp.sum(est.probs, -1), 1.0, rtol=1e-5)
    assert 0.0 <= float(est.diagnostics.target_mass_off_support) <= 1.0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(model="forest"), "model"),
        (dict(num_folds=1), "num_folds"),
        (dict(holdout_fraction=1.0), "holdout_fraction"),
        (dict(num_actions=2), "actions"),  # logged actions reach 3
        (dict(target_probs=np.ones((40, 20, 4))), "target_probs"),
        (dict(support_threshold=0.0), "support_threshold"),
    ],
)
def test_estimate_behavior_errors_name_the_argument(stitching, kwargs, match):
    _, data = stitching
    d = jax.tree_util.tree_map(lambda x: x[:40], data)
    with pytest.raises(ValueError, match=match):
        behavior.estimate_behavior(jax.random.key(0), d, **kwargs)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(), "num_actions"),
        (dict(num_actions=3, action_dim=2), "num_actions"),
        (dict(num_actions=3, num_steps=110, eval_every=50), "num_steps"),
        (dict(num_actions=3, hidden_sizes=[8]), "hidden_sizes"),
        (dict(num_actions=3, learning_rate=0.0), "learning_rate"),
        (dict(num_actions=3, weight_decay=-1.0), "weight_decay"),
        (dict(action_dim=1, min_log_std=2.0, max_log_std=1.0), "min_log_std"),
    ],
)
def test_config_errors_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        behavior.BehaviorConfig(**kwargs)


def test_with_behavior_log_probs_rejects_bad_values(stitching):
    _, data = stitching
    d = jax.tree_util.tree_map(lambda x: x[:5], data)
    with pytest.raises(ValueError, match="behavior_log_probs"):
        behavior.with_behavior_log_probs(d, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="behavior_log_probs"):
        behavior.with_behavior_log_probs(d, np.full((5, 20), 0.5))
