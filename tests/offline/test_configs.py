"""Offline configs share fitted-Q's loop-field checks; new_states builds the networks as before."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax import fitted
from offrl_jax.core.learner import CheckedTrain
from offrl_jax.core.validation import check_float_dtype
from offrl_jax.data import Transitions
from offrl_jax.fitted.config import LOOP_FIELDS, check_loop_fields, loop_fields
from offrl_jax.offline import BCConfig, BCQConfig, CQLConfig, IQLConfig, TD3BCConfig, bc, iql, td3_bc
from offrl_jax.offline.common import logits_network, make_optimizer, new_state, value_network


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: CQLConfig(num_actions=3, loss="l1"), "loss"),
        (lambda: CQLConfig(num_actions=3, huber_delta=0.0), "huber_delta"),
        (lambda: CQLConfig(num_actions=3, max_grad_norm=-1.0), "max_grad_norm"),
        (lambda: BCQConfig(num_actions=3, target_update_period=0), "target_update_period"),
        (lambda: BCQConfig(num_actions=3, tau=1.5), "tau"),
        (lambda: BCConfig(num_actions=3, dtype="float16"), "dtype"),
        (lambda: IQLConfig(num_actions=3, optimizer="rmsprop"), "optimizer"),
        (lambda: TD3BCConfig(action_dim=1, learning_rate=0.0), "learning_rate"),
        (lambda: fitted.FittedQConfig(num_actions=3, batch_size=0), "batch_size"),
    ],
)
def test_every_config_refuses_a_bad_loop_field_by_name(make, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        make()


def test_float64_needs_x64_and_the_one_check_names_the_field():
    with pytest.raises(ValueError, match="^precision: expected one of"):
        check_float_dtype("bfloat16", "precision")
    check_float_dtype("float32", "precision")
    if not jax.config.jax_enable_x64:
        with pytest.raises(ValueError, match="jax_enable_x64"):
            check_float_dtype("float64", "dtype")
    else:
        check_float_dtype("float64", "dtype")


def test_cql_and_bcq_fitted_configs_carry_every_loop_field():
    cfg = CQLConfig(num_actions=3, num_observations=7, hidden_sizes=(4,), gamma=0.9, num_steps=7, batch_size=5,
                    learning_rate=2, optimizer="sgd", max_grad_norm=1.0, loss="huber", huber_delta=2,
                    target_update_period=3, tau=0.5, double_q=True, dtype="float32")
    want = fitted.FittedQConfig(num_actions=3, num_observations=7, method="fqi", gamma=0.9, hidden_sizes=(4,),
                                num_steps=7, batch_size=5, learning_rate=2.0, optimizer="sgd", max_grad_norm=1.0,
                                loss="huber", huber_delta=2.0, target_update_period=3, tau=0.5, double_q=True)
    assert cfg.fitted == want and set(loop_fields(cfg)) == set(LOOP_FIELDS)
    b = BCQConfig(num_actions=3, num_observations=7, loss="huber", tau=0.25).fitted
    assert b.double_q and b.loss == "huber" and b.tau == 0.25 and b.max_grad_norm is None
    check_loop_fields(object())  # a config without loop fields has nothing to check


def _data(continuous):
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(6, 3)).astype(np.float32)
    act = rng.normal(size=(6, 2)).astype(np.float32) if continuous else rng.integers(0, 2, 6)
    return Transitions(observations=obs, actions=act, rewards=np.ones(6, np.float32),
                       discounts=np.ones(6, np.float32), next_observations=obs)


def test_new_states_build_the_same_networks_as_explicit_keys():
    """BC, IQL and TD3+BC initialise network i with split(key, k + 1)[i] and run with the last key."""
    key = jax.random.key(3)
    same = lambda a, b: jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)  # noqa: E731
    data = _data(False)
    obs = data.observations[:1]
    cfg = BCConfig(num_actions=2, hidden_sizes=(4,), batch_size=4)
    state = bc.make_learner(cfg).init(key, data)
    k_init, k_run = jax.random.split(key)
    same(state.params, new_state(k_init, logits_network(cfg), (obs,), make_optimizer(1e-3)).params)
    np.testing.assert_array_equal(jax.random.key_data(state.key), jax.random.key_data(k_run))
    icfg = IQLConfig(num_actions=2, hidden_sizes=(4,), batch_size=4)
    state = iql.make_learner(icfg).init(key, data)
    k_q, k_v, k_pi, k_run = jax.random.split(key, 4)
    same(state.v.params, new_state(k_v, value_network(icfg), (obs,), make_optimizer(3e-4)).params)
    same(state.policy.params, new_state(k_pi, logits_network(icfg), (obs,), make_optimizer(3e-4)).params)
    cdata = _data(True)
    tcfg = TD3BCConfig(action_dim=2, hidden_sizes=(4,), batch_size=4)
    state = td3_bc.make_learner(tcfg).init(key, cdata)
    k_c, _, k_run = jax.random.split(key, 3)
    critic = new_state(k_c, td3_bc.TwinQNetwork((4,), jnp.float32), (cdata.observations[:1], cdata.actions[:1]),
                       make_optimizer(3e-4))
    same(state.critic.params, critic.params)
    np.testing.assert_array_equal(jax.random.key_data(state.key), jax.random.key_data(k_run))


def test_checked_train_lives_in_core_and_is_still_in_data():
    from offrl_jax import data

    assert data.CheckedTrain is CheckedTrain and "CheckedTrain" in data.__all__
