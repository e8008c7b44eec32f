"""Checkpoint selection by OPE: chunked training, DR/FQE wiring, Monte-Carlo values, the summary."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax import fitted
from offrl_jax.core import Learner
from offrl_jax.data import to_transitions
from offrl_jax.envs import control_rollout, controller
from offrl_jax.experiments import checkpoint_selection as cs
from offrl_jax.experiments import fixing_shift as fs

ENV, GAMMA, HORIZON = "CartPole-v1", 0.5, 40


class _Steps(NamedTuple):
    num_steps: int


def _rule_method(num_steps=4):
    """A 'learner' whose every checkpoint is the CartPole controller's deterministic rule."""
    spec_w = jnp.asarray((0.1, 0.5, 10.0, 2.0), jnp.float32)

    def act(state, obs):
        del state
        return (obs.astype(jnp.float32) @ spec_w >= 0).astype(jnp.int32)

    def make_learner(config):
        return Learner(init=lambda key, data: jnp.zeros((), jnp.int32),
                       run=lambda state, data, n: (state + n, ()), num_steps=config.num_steps)

    return fs.ControlMethod("rule", _Steps(num_steps), None, act, make_learner)


@pytest.fixture(scope="module")
def expert_logs():
    c = controller(ENV, 0.0)  # log-probability 0 on every logged action
    collect = jax.jit(lambda k, p: control_rollout(k, ENV, c.policy, p, 6, HORIZON))
    traj = collect(jax.random.key(0), c.params)
    return traj, to_transitions(traj)


def test_dr_of_the_logging_rule_is_the_logged_return_and_mc_is_exact(expert_logs):
    traj, data = expert_logs
    fq = fitted.FittedQConfig(num_actions=2, method="fqe", gamma=GAMMA, hidden_sizes=(8,), num_steps=600,
                              batch_size=None, learning_rate=1e-2, target_update_period=20)
    fn = jax.jit(lambda k, ek, d, tr: cs.checkpoint_values(k, ek, d, tr, ENV, _rule_method(), fq, 2, 3,
                                                           reward_scale=1 - GAMMA))
    vals = fn(jax.random.split(jax.random.key(1), 2), jax.random.key(2), data, traj)
    assert vals.fqe.shape == vals.dr.shape == vals.mc.shape == (2, 2)
    np.testing.assert_array_equal(np.asarray(vals.steps), [[2, 4], [2, 4]])
    # Target = behaviour rule, ratios 1 and V̂(s_t) = Q̂(s_t, a_t): DR telescopes to the logged
    # discounted return, for any Q̂ (the expert never fails in 40 steps).
    logged = float(np.mean(np.asarray(traj.returns(GAMMA))))
    assert logged == pytest.approx((1 - GAMMA**HORIZON) / (1 - GAMMA), rel=1e-6)
    np.testing.assert_allclose(np.asarray(vals.dr), logged, rtol=1e-5)
    # Monte Carlo: the rule balances for the whole time limit of 500 steps in every episode.
    np.testing.assert_allclose(np.asarray(vals.mc), (1 - GAMMA**500) / (1 - GAMMA), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(vals.mc_standard_error), 0.0, atol=1e-4)
    # FQE of the same fixed policy on its own data (full-batch steps): the true value is
    # (1 − γ^500) / (1 − γ) = 2; 30 target refreshes leave a bias of 2 γ^30 ≈ 2e-9, so the 2%
    # tolerance is the network fit's (0.2% measured).
    np.testing.assert_allclose(np.asarray(vals.fqe), 2.0, rtol=0.02)


def test_checkpoints_end_where_make_train_ends(expert_logs):
    _, data = expert_logs
    method = fs.control_methods(2, GAMMA, num_steps=6, batch_size=32, hidden_sizes=(8,), names=("BC",))["BC"]
    key = jax.random.key(3)
    states = jax.jit(lambda k, d: cs.train_checkpoints(k, d, method, 3))(key, data)
    whole = method.make_train(method.config)(key, data).state
    for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(states.params)):
        assert b.shape == (3,) + a.shape
        np.testing.assert_allclose(np.asarray(b[-1]), np.asarray(a), rtol=1e-6, atol=1e-7)
    # Checkpoints differ from each other (training moved between them).
    leaf = np.asarray(jax.tree.leaves(states.params)[0])
    assert not np.allclose(leaf[0], leaf[-1])
    with pytest.raises(ValueError, match="num_checkpoints"):
        cs.train_checkpoints(key, data, method, 4)


def test_summary_chooses_argmax_and_scores_it():
    mc = np.array([[1.0, 3.0, 2.0, 0.0], [5.0, 4.0, 6.0, 7.0]])
    fqe = np.array([[0.0, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]])  # seed 0: worst pick; seed 1: best pick
    dr = np.array([[1.0, 9.0, 2.0, 0.0], [0.0, 9.0, 1.0, 2.0]])
    vals = cs.CheckpointValues(np.tile(np.arange(1, 5), (2, 1)), fqe, dr, mc, np.zeros_like(mc))
    s = cs.selection_summary(vals)
    assert s["FQE"]["chosen_index"] == [3, 3] and s["DR"]["chosen_index"] == [1, 1]
    assert s["last"][0] == pytest.approx(3.5) and s["best"][0] == pytest.approx(5.0)
    # regret@1 = (max J − J[argmax Ĵ]) / (max J − min J) per seed, then averaged.
    assert s["FQE"]["regret_at_1"][0] == pytest.approx(np.mean([(3 - 0) / 3, 0.0]))
    assert s["DR"]["regret_at_1"][0] == pytest.approx(np.mean([0.0, (7 - 4) / 3]))
    assert s["FQE"]["chosen_value"][0] == pytest.approx(3.5)
    # Spearman: estimates rank (1, 2, 3, 4); values (2, 4, 3, 1) give -0.4 and (2, 1, 3, 4) give 0.8.
    assert s["FQE"]["spearman_per_seed"] == pytest.approx([-0.4, 0.8])
    nan_dr = vals._replace(dr=np.full_like(dr, np.nan))
    assert "DR" not in cs.selection_summary(nan_dr)


def test_checkpoint_values_refuses_bad_arguments(expert_logs):
    traj, data = expert_logs
    fqi = fitted.FittedQConfig(num_actions=2, method="fqi", gamma=GAMMA)
    with pytest.raises(ValueError, match="fqe_config"):
        cs.checkpoint_values(jax.random.split(jax.random.key(0), 1), jax.random.key(1), data, traj, ENV,
                             _rule_method(), fqi, 2, 2)
    fq = fitted.FittedQConfig(num_actions=2, method="fqe", gamma=GAMMA)
    with pytest.raises(ValueError, match="behavior_log_probs"):
        cs.checkpoint_values(jax.random.split(jax.random.key(0), 1), jax.random.key(1), data,
                             traj.replace(behavior_log_probs=None), ENV, _rule_method(), fq, 2, 2)
