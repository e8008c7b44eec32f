"""Offline policy-gradient training: exact J(π) improves over the behaviour policy; the trainer's
plumbing (recompilation, checkpoints, seeds, validation)."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from offrl_jax.envs import policy_value, rollout
from offrl_jax.envs.suite import make_problem
from offrl_jax.pg import PGConfig, make_learner, make_train, pg_batch
from offrl_jax.policies import mlp_categorical, tabular_softmax
from offrl_jax.trainers import Trainer
from offrl_jax.trainers.pg import OfflinePGTrainer


@partial(jax.jit, static_argnums=1)
def _exact_j_jit(mdp, policy, params):
    return policy_value(mdp, policy.probs(params, jnp.arange(mdp.num_observations)))


def _exact_j(problem, policy, params):
    """Exact J(π_θ), jitted (one compilation per MDP and policy; not op by op)."""
    return float(_exact_j_jit(problem.mdp, policy, params))


_rollout = jax.jit(rollout, static_argnums=(3, 4))
_policy_value = jax.jit(policy_value)


@pytest.mark.parametrize(
    "name,num_episodes,horizon,options,min_gain",
    [
        ("chain_walk_20", 100, 40, {"max_log_weight": float(np.log(100.0))}, 1.5),
        ("gridworld", 512, 25, {"self_normalize": True}, 0.5),
    ],
)
def test_training_improves_exact_value_over_behaviour(name, num_episodes, horizon, options, min_gain):
    """Per-decision importance-weighted PG from behaviour data only; J measured exactly."""
    problem = make_problem(name, dtype=jnp.float64)
    data = _rollout(jax.random.key(0), problem.mdp, problem.behavior, num_episodes, horizon)
    policy = tabular_softmax(*problem.behavior.shape, init_logits=jnp.log(problem.behavior))
    config = PGConfig(estimator="per_decision", gamma=float(problem.mdp.gamma), learning_rate=0.05, **options)
    trainer = OfflinePGTrainer(data, policy, config, chunk_size=200, progress=False)
    j_before = _exact_j(problem, policy, trainer.params)
    trainer.fit(200)
    j_after = _exact_j(problem, policy, trainer.params)
    print(f"{name}: exact J(behaviour) = {j_before:.4f}, J(learned) = {j_after:.4f}")
    np.testing.assert_allclose(j_before, float(_policy_value(problem.mdp, problem.behavior)), rtol=1e-10)
    assert j_after > j_before + min_gain
    hist = trainer.history
    assert hist["estimate"].shape == (200,) and np.all(hist["num_nonfinite"] == 0)
    assert hist["ess"][0] == pytest.approx(num_episodes)  # π = β at the start


@pytest.fixture(scope="module")
def small():
    problem = make_problem("chain_walk_4", dtype=jnp.float64)
    data = _rollout(jax.random.key(1), problem.mdp, problem.behavior, 32, 15)
    return problem, data


def test_checkpoint_resume_is_exact_and_no_recompilation(small, tmp_path):
    problem, data = small
    gamma = float(problem.mdp.gamma)
    base = tabular_softmax(4, 2)
    traces = []

    def counted_log_prob(params, obs, actions):
        traces.append(1)  # runs only while tracing
        return base.log_prob(params, obs, actions)

    policy = base._replace(log_prob=counted_log_prob)

    config = PGConfig(estimator="first_order", gamma=gamma, learning_rate=0.1, batch_size=8, self_normalize=True)

    def trainer():
        return OfflinePGTrainer(data, policy, config, chunk_size=5, progress=False)

    full = trainer()
    full.fit(10)
    n_traces = len(traces)
    full.save(str(tmp_path / "ckpt"))
    full.fit(10)
    assert n_traces > 0 and len(traces) == n_traces  # later chunks reuse the compiled update

    resumed = trainer()
    resumed.restore(str(tmp_path / "ckpt"))
    assert resumed.step == 10
    resumed.fit(10)
    np.testing.assert_array_equal(resumed.params, full.params)
    np.testing.assert_array_equal(resumed.history["estimate"], full.history["estimate"])
    with pytest.raises(ValueError, match="learning_rate"):
        OfflinePGTrainer(data, policy, config.replace(learning_rate=0.2), progress=False).restore(str(tmp_path / "ckpt"))


def test_make_train_mlp_improves_and_vmap_over_seeds_equals_separate_runs(small):
    """A flax MLP policy trained from behaviour data improves the exact J; 3 vmapped seeds equal
    3 separate runs; the data go in at call time."""
    problem, data = small
    policy = mlp_categorical(2, num_observations=4, hidden_sizes=(16,), dtype=jnp.float64)
    config = PGConfig(
        estimator="first_order", gamma=float(problem.mdp.gamma), learning_rate=0.02, num_steps=100,
        batch_size=16, self_normalize=True,
    )
    train = make_train(config, policy)
    batch = pg_batch(data)
    keys = jax.random.split(jax.random.key(3), 3)
    res = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, batch)
    one = jax.jit(train)
    j_before = float(_policy_value(problem.mdp, problem.behavior))
    for i in range(3):
        single = one(keys[i], batch)
        for a, b in zip(jax.tree.leaves(res.state.params), jax.tree.leaves(single.state.params)):
            np.testing.assert_allclose(a[i], b, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(res.metrics.estimate[i], single.metrics.estimate, rtol=1e-10)
        params = jax.tree.map(lambda x: x[i], res.state.params)
        assert _exact_j(problem, policy, params) > j_before + 0.5
    assert not np.allclose(res.metrics.estimate[0], res.metrics.estimate[1])  # minibatches differ by seed
    assert res.metrics.estimate.shape == (3, 100)
    np.testing.assert_allclose(res.metrics.loss, -res.metrics.estimate)
    assert np.all(np.isfinite(res.metrics.grad_norm)) and np.all(res.metrics.ess > 0)


def test_generic_trainer_runs_the_learner_like_train(small):
    """``Trainer(pg.make_learner(config, policy), batch)`` in two chunks equals ``make_train``."""
    problem, data = small
    policy = tabular_softmax(4, 2)
    config = PGConfig(estimator="trajectory_rtg", gamma=float(problem.mdp.gamma), num_steps=6, batch_size=8)
    batch = pg_batch(data)
    trainer = Trainer(make_learner(config, policy, optax.sgd(0.1)), batch, seed=5, config=config, chunk_size=3,
                      progress=False).fit(6)
    res = jax.jit(make_train(config, policy, optax.sgd(0.1)))(jax.random.key(5), batch)
    np.testing.assert_allclose(trainer.state.params, res.state.params, rtol=1e-12)
    np.testing.assert_allclose(trainer.history["estimate"], res.metrics.estimate, rtol=1e-12)


def test_config_and_trainer_validation(small):
    problem, data = small
    policy = tabular_softmax(4, 2)
    with pytest.raises(ValueError, match="estimator"):
        PGConfig(estimator="reinforce")
    with pytest.raises(ValueError, match="discount_states"):
        PGConfig(estimator="per_decision", discount_states=False)
    PGConfig(estimator="first_order", discount_states=False)
    with pytest.raises(ValueError, match="max_log_weight"):
        PGConfig(max_log_weight=float("nan"))
    with pytest.raises(ValueError, match="batch_size"):
        PGConfig(batch_size=0)
    with pytest.raises(ValueError, match="gamma"):
        PGConfig(gamma=1.5)
    with pytest.raises(ValueError, match="num_steps"):
        PGConfig(num_steps=0)
    with pytest.raises(ValueError, match="optimizer"):
        PGConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match="learning_rate"):
        PGConfig(learning_rate=-1.0)
    with pytest.raises(ValueError, match="behavior_log_probs"):
        OfflinePGTrainer(data.replace(behavior_log_probs=None), policy, PGConfig(gamma=0.9))
    with pytest.raises(ValueError, match="state_weights"):
        OfflinePGTrainer(data, policy, PGConfig(estimator="state_marginal", gamma=0.9))
    with pytest.raises(ValueError, match="config"):
        OfflinePGTrainer(data, policy, {"gamma": 0.9})
