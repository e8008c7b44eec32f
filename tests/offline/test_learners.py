"""Whole runs: CQL → FQI as α → 0, BC recovers the behaviour policy, seeds vmap, checkpoints resume."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax import fitted
from offrl_jax.data import Transitions
from offrl_jax.envs import value_iteration
from offrl_jax.offline import BCConfig, BCQConfig, CQLConfig, IQLConfig, TD3BCConfig, bc, bcq, cql
from offrl_jax.trainers import OfflineTrainer

# Tabular CQL on the enumerated Garnet (6 states + terminal, 3 actions, branching 2, full
# coverage), outer/inner form: the target is refreshed every 150 full-batch SGD steps, each
# inner regression solved to ~1e-15 (see tests/fitted/test_iteration.py for the step size).
INNER, OUTER = 150, 120
TAB = dict(num_actions=3, num_observations=7, hidden_sizes=(), gamma=0.9, batch_size=None, learning_rate=4.5,
           optimizer="sgd", num_steps=INNER * OUTER, target_update_period=INNER, dtype="float64")


@pytest.fixture(scope="module")
def enumerated(make_enumerated):
    return make_enumerated(0, 6, 3, 2)


@pytest.fixture(scope="module")
def cql_tables(enumerated):
    """Q̂ over the 6 non-terminal states for α = 0, 0.01, 0.1 (one program, α a static field)."""
    _, ds = enumerated
    out = {}
    for alpha in (0.0, 0.01, 0.1):
        res = jax.jit(cql.make_train(CQLConfig(alpha=alpha, **TAB)))(jax.random.key(0), ds)
        out[alpha] = np.asarray(cql.q_values(res.state, jnp.arange(6)))
    return out


def test_cql_recovers_fqi_as_alpha_vanishes(enumerated, cql_tables):
    mdp, _ = enumerated
    q_star = np.asarray(value_iteration(mdp).q_star)[:6]
    err = {a: np.abs(q - q_star).max() for a, q in cql_tables.items()}
    # α = 0 is FQI: its fixed point is Q* of the (exact) empirical model; 0.9^120 * |Q| ~ 1e-5.
    assert err[0.0] < 1e-4
    # The penalty moves the fixed point by O(α): ten times less α, about ten times less bias.
    assert 0.05 < err[0.1] < 1.0
    assert err[0.01] < err[0.1] / 5
    # and it is conservative: Q̂ below Q* on average.
    assert (cql_tables[0.1] - q_star).mean() < 0


def test_cql_alpha_zero_is_fqi_bit_for_bit(enumerated):
    """Same init, same minibatches, same targets: α = 0 CQL and the fitted FQI loop agree exactly."""
    _, ds = enumerated
    cfg = CQLConfig(alpha=0.0, **{**TAB, "batch_size": 8, "num_steps": 40, "learning_rate": 0.3,
                                  "target_update_period": 10})
    a = jax.jit(cql.make_train(cfg))(jax.random.key(7), ds)
    b = jax.jit(fitted.make_train(cfg.fitted))(jax.random.key(7), ds)
    jax.tree_util.tree_map(np.testing.assert_array_equal, a.state.params, b.state.params)
    np.testing.assert_array_equal(a.metrics.td_loss, b.metrics.loss)


def test_bcq_threshold_zero_is_double_q_fqi(enumerated):
    _, ds = enumerated
    cfg = BCQConfig(threshold=0.0, **{**TAB, "batch_size": 8, "num_steps": 30, "learning_rate": 0.3,
                                      "target_update_period": 10})
    a = jax.jit(bcq.make_train(cfg))(jax.random.key(3), ds)
    b = jax.jit(fitted.make_train(cfg.fitted))(jax.random.key(3), ds)
    jax.tree_util.tree_map(np.testing.assert_array_equal, a.state.params, b.state.params)


def test_bc_recovers_behavior_policy():
    """Tabular BC converges to the empirical π̂_β(a|s) = n(s, a)/n(s), which is within 4 standard
    errors of the true π_β (fixed key: deterministic)."""
    rng = np.random.default_rng(0)
    pi_b = rng.dirichlet(np.ones(3), size=4)
    m = 4000
    s = rng.integers(0, 4, m)
    a = (rng.random(m)[:, None] > np.cumsum(pi_b[s], -1)).sum(-1)
    ds = Transitions.create(observations=s, actions=a, rewards=np.zeros(m), next_observations=s,
                            discounts=np.ones(m))
    cfg = BCConfig(num_actions=3, num_observations=4, hidden_sizes=(), batch_size=None, learning_rate=0.05,
                   num_steps=1500, dtype="float64")
    res = jax.jit(bc.make_train(cfg))(jax.random.key(0), ds)
    probs = np.asarray(bc.action_probs(res.state, jnp.arange(4)))
    counts = np.zeros((4, 3))
    np.add.at(counts, (s, a), 1)
    n_s = counts.sum(-1, keepdims=True)
    np.testing.assert_allclose(probs, counts / n_s, atol=1e-3)
    se = np.sqrt(pi_b * (1 - pi_b) / n_s)
    assert np.all(np.abs(probs - pi_b) < 4 * se)


def test_vmapped_seeds_equal_separate_runs(enumerated):
    """Every method runs the one scan loop (common.scan_learner); CQL with an MLP stands for all."""
    _, ds = enumerated
    cfg = CQLConfig(num_actions=3, num_observations=7, hidden_sizes=(4,), gamma=0.9, batch_size=8, num_steps=12,
                    target_update_period=5, target_action_gap=1.0, dtype="float64")
    train = cql.make_train(cfg)
    keys = jax.random.split(jax.random.key(11), 3)
    many = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, ds)
    one = jax.jit(train)
    for i in range(3):
        single = one(keys[i], ds)
        jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x[i], y, rtol=1e-10, atol=1e-12),
                               many.state.params, single.state.params)
        np.testing.assert_allclose(many.metrics.alpha[i], single.metrics.alpha, rtol=1e-10)


def test_trainer_resumes_bit_for_bit(enumerated, tmp_path):
    _, ds = enumerated
    cfg = IQLConfig(num_actions=3, num_observations=7, hidden_sizes=(4,), gamma=0.9, batch_size=8, dtype="float64")
    first = OfflineTrainer(ds, cfg, seed=2, chunk_size=5, progress=False).fit(5)
    first.save(str(tmp_path))
    first.fit(5)
    resumed = OfflineTrainer(ds, cfg, seed=99, chunk_size=10, progress=False).restore(str(tmp_path)).fit(5)
    jax.tree_util.tree_map(np.testing.assert_array_equal, first.state.policy.params, resumed.state.policy.params)
    np.testing.assert_array_equal(first.history["loss"], resumed.history["loss"])
    np.testing.assert_array_equal(first.act(jnp.arange(6)), resumed.act(jnp.arange(6)))
    assert first.q_values(jnp.arange(6)).shape == (6, 3)


def test_config_and_data_errors(enumerated):
    _, ds = enumerated
    with pytest.raises(ValueError, match="alpha"):
        CQLConfig(num_actions=3, alpha=-1.0)
    with pytest.raises(ValueError, match="threshold"):
        BCQConfig(num_actions=3, threshold=1.5)
    with pytest.raises(ValueError, match="expectile"):
        IQLConfig(num_actions=3, expectile=0.2)
    with pytest.raises(ValueError, match="num_actions"):
        BCConfig(num_actions=3, action_dim=2)
    with pytest.raises(ValueError, match="policy_delay"):
        TD3BCConfig(action_dim=1, policy_delay=0)
    with pytest.raises(ValueError, match="gamma"):
        CQLConfig(num_actions=3, gamma=1.0)
    with pytest.raises(ValueError, match="num_actions"):  # actions 0..2 do not fit 2 outputs
        cql.make_learner(CQLConfig(num_actions=2, num_observations=7, batch_size=8)).init(jax.random.key(0), ds)
    with pytest.raises(ValueError, match="config"):
        OfflineTrainer(ds, fitted.FittedQConfig(num_actions=3, method="fqi"))
