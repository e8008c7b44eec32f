"""K policies at once equal K single-policy calls: OPE estimators, tabular MIS and FQE."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax import ope
from offrl_jax.data import Trajectories, to_transitions
from offrl_jax.envs import controller
from offrl_jax.fitted import FittedQConfig, initial_value, make_train
from offrl_jax.fitted.many import initial_values_policies, make_train_policies
from offrl_jax.mis import tabular_time_mis
from offrl_jax.mis.many import tabular_mis_policies, tabular_time_mis_policies
from offrl_jax.mis.tabular import tabular_ratios
from offrl_jax.mis.estimators import mis_estimate, ratios_at


N, T, O, A, K = 16, 4, 3, 2, 3


@pytest.fixture(scope="module")
def graph_data():
    """A small padded tabular dataset (no environment needed) and K = 3 target policies."""
    rng = np.random.default_rng(0)
    behavior = rng.dirichlet(np.ones(A), size=O)
    obs = rng.integers(0, O, size=(N, T + 1))
    u = rng.random((N, T))
    act = (u > behavior[obs[:, :-1], 0]).astype(np.int32)
    lengths = rng.integers(1, T + 1, size=N)
    mask = (np.arange(T)[None] < lengths[:, None]).astype(float)
    tr = Trajectories(
        observations=jnp.asarray(obs[:, :-1] * mask, jnp.int32), actions=jnp.asarray(act * mask, jnp.int32),
        rewards=jnp.asarray(rng.normal(size=(N, T)) * mask), next_observations=jnp.asarray(obs[:, 1:] * mask, jnp.int32),
        discounts=jnp.ones((N, T)), mask=jnp.asarray(mask),
        behavior_log_probs=jnp.asarray(np.log(behavior[obs[:, :-1], act]) * mask),
    )
    pols = jnp.asarray(rng.dirichlet(np.ones(A), size=(K, O))).at[0].set(behavior)  # k = 0: the behaviour
    q = jnp.asarray(rng.normal(size=(K, N, T, A)))
    return tr, pols, q


def _single(key, rewards, lr, mask, q, v):
    d = (rewards, lr, mask, 0.9)
    return {
        "is": ope.trajectory_is(*d), "pdis": ope.per_decision_is(*d), "wis": ope.weighted_is(*d),
        "wpdis": ope.weighted_per_decision_is(*d), "dm": ope.direct_method(v[:, 0]),
        "dr": ope.doubly_robust(*d, q, v), "wdr": ope.weighted_doubly_robust(*d, q, v),
        "magic": ope.magic(key, *d, q, v, num_resamples=20).estimate,
    }


def test_estimators_k_policies_equal_single_calls(graph_data, fast_compiles):
    tr, pols, q = graph_data
    lp = ope.tabular_log_probs(pols, tr.observations, tr.actions, tr.mask)
    lr = ope.policy_log_ratios(lp, tr.behavior_log_probs, tr.mask)
    terms = ope.policy_model_terms(q, pols[:, tr.observations], tr.actions, tr.mask)
    key = jax.random.key(3)
    many = jax.jit(lambda *a: ope.evaluate_policies(*a, key=key, num_resamples=20))(tr.rewards, lr, tr.mask, 0.9, *terms)
    single = jax.jit(_single)
    for k in range(K):
        lr_k = ope.log_importance_ratios(jnp.log(pols[k][tr.observations, tr.actions]), tr.behavior_log_probs, tr.mask)
        np.testing.assert_allclose(lr[k], lr_k, atol=1e-12)
        one = single(key, tr.rewards, lr_k, tr.mask, terms.q_taken[k], terms.v_hat[k])
        for name, value in one.items():
            np.testing.assert_allclose(many[name][k], value, rtol=1e-10, atol=1e-12, err_msg=name)
    # the behaviour policy itself (k = 0): every ratio is 1, so WIS is the mean return
    np.testing.assert_allclose(many["wis"][0], jnp.mean(tr.returns(0.9)), rtol=1e-12)


def test_stacked_pytree_policies_equal_single():
    pol, _ = controller("CartPole-v1", 0.5)
    eps = (0.2, 0.5)
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *[controller("CartPole-v1", e).params for e in eps])
    rng = np.random.default_rng(1)
    obs, act = rng.normal(size=(3, 5, 4)), rng.integers(0, 2, size=(3, 5))
    lp = ope.stacked_log_probs(pol.log_prob, stacked, jnp.asarray(obs), jnp.asarray(act), jnp.ones((3, 5)))
    rule = (obs @ np.array([0.1, 0.5, 10.0, 2.0]) >= 0).astype(int)  # CartPole's controller: push right
    for k, e in enumerate(eps):
        np.testing.assert_allclose(lp[k], np.log(e / 2 + (1 - e) * (act == rule)), rtol=1e-6)


def test_mis_k_policies_equal_single_calls(graph_data, fast_compiles):
    t, pols, _ = graph_data
    many = jax.jit(tabular_time_mis_policies)(
        t.observations, t.actions, t.next_observations, t.discounts, t.mask, t.rewards, pols, 1.0
    )
    np.testing.assert_allclose(many[1], tabular_time_mis(t, pols[1], 1.0).estimate, rtol=1e-10)
    s0 = t.observations[:, 0]
    disc = jax.jit(tabular_mis_policies)(t.observations, t.actions, t.next_observations, t.discounts, t.mask, s0, t.rewards, pols, 0.9)
    r = tabular_ratios(t.observations, t.actions, t.next_observations, t.discounts, t.mask, s0, pols[2], 0.9)
    w = ratios_at(r.weights, t.observations, t.actions)
    np.testing.assert_allclose(disc[2], mis_estimate(w, t.rewards, t.mask, jnp.asarray(0.9)), rtol=1e-10)


def test_fqe_k_policies_train_as_one_program(graph_data, fast_compiles):
    tr, pols, _ = graph_data
    data = to_transitions(tr)
    cfg = FittedQConfig(
        num_actions=A, num_observations=O, hidden_sizes=(), gamma=0.9, num_steps=30,
        batch_size=None, learning_rate=0.1, dtype="float64",
    )
    key = jax.random.key(2)
    res = jax.jit(make_train_policies(cfg))(key, data, pols)
    many = initial_values_policies(res, tr.observations[:, 0], pols)
    one = make_train(cfg, pols[1])(key, data)
    np.testing.assert_allclose(
        many[1], initial_value(one.state.apply_fn, one.state.params, tr.observations[:, 0], pols[1]), rtol=1e-10
    )
    assert many.shape == (K,)


def test_errors_name_the_argument(graph_data):
    tr, pols, _ = graph_data
    lr = jnp.zeros((2,) + tr.rewards.shape)
    with pytest.raises(ValueError, match="estimators"):
        ope.evaluate_policies(tr.rewards, lr, tr.mask, 0.9, estimators=("nope",))
    with pytest.raises(ValueError, match="q_taken"):
        ope.evaluate_policies(tr.rewards, lr, tr.mask, 0.9, estimators=("dr",))
    with pytest.raises(ValueError, match="log_ratios"):
        ope.evaluate_policies(tr.rewards, lr[0], tr.mask, 0.9)
    with pytest.raises(ValueError, match=r"log_ratios.*policy k = 1"):
        ope.evaluate_policies(tr.rewards, lr.at[1, 0, 0].set(jnp.nan), tr.mask, 0.9)
    with pytest.raises(ValueError, match="policies"):
        ope.tabular_log_probs(pols[0], tr.observations, tr.actions, tr.mask)
    with pytest.raises(ValueError, match="target_policies"):
        tabular_time_mis_policies(tr.observations, tr.actions, tr.next_observations, tr.discounts, tr.mask, tr.rewards, pols[0], 1.0)
