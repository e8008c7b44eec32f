"""Offline policy-gradient training: exact J(π) improves over the behaviour policy; the trainer's
plumbing (recompilation, checkpoints, seeds, validation)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from offrl_jax.envs import policy_value, rollout
from offrl_jax.envs.suite import make_problem
from offrl_jax.pg import (
    make_surrogate,
    make_train,
    mlp_categorical,
    pg_batch,
    tabular_softmax,
)
from offrl_jax.trainers.pg import OfflinePGTrainer


def _exact_j(problem, policy, params):
    table = policy.probs(params, jnp.arange(problem.mdp.num_observations))
    return float(policy_value(problem.mdp, table))


@pytest.mark.parametrize(
    "name,num_episodes,horizon,options,min_gain",
    [
        ("chain_walk_20", 100, 40, {"clip": 100.0}, 1.5),
        ("gridworld", 512, 25, {"self_normalize": True}, 0.5),
    ],
)
def test_training_improves_exact_value_over_behaviour(name, num_episodes, horizon, options, min_gain):
    """Per-decision importance-weighted PG from behaviour data only; J measured exactly."""
    problem = make_problem(name, dtype=jnp.float64)
    data = rollout(jax.random.key(0), problem.mdp, problem.behavior, num_episodes, horizon)
    policy = tabular_softmax(*problem.behavior.shape, init_logits=jnp.log(problem.behavior))
    trainer = OfflinePGTrainer(
        policy, data, float(problem.mdp.gamma), "per_decision", optax.adam(0.05),
        chunk_size=200, progress=False, **options,
    )
    j_before = _exact_j(problem, policy, trainer.params)
    trainer.fit(200)
    j_after = _exact_j(problem, policy, trainer.params)
    print(f"{name}: exact J(behaviour) = {j_before:.4f}, J(learned) = {j_after:.4f}")
    np.testing.assert_allclose(j_before, float(policy_value(problem.mdp, problem.behavior)), rtol=1e-10)
    assert j_after > j_before + min_gain
    hist = trainer.history
    assert hist["estimate"].shape == (200,) and np.all(hist["num_nonfinite"] == 0)
    assert hist["ess"][0] == pytest.approx(num_episodes)  # π = β at the start


@pytest.fixture(scope="module")
def small():
    problem = make_problem("chain_walk_4", dtype=jnp.float64)
    data = rollout(jax.random.key(1), problem.mdp, problem.behavior, 32, 15)
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

    def trainer():
        return OfflinePGTrainer(policy, data, gamma, "first_order", optax.adam(0.1), batch_size=8, chunk_size=5,
                                progress=False, self_normalize=True)

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


def test_make_train_mlp_improves_and_vmap_over_seeds_equals_loop(small):
    """A flax MLP policy trained from behaviour data improves the exact J; vmapped seeds equal a
    loop over seeds."""
    problem, data = small
    policy = mlp_categorical(2, num_observations=4, hidden_sizes=(16,), dtype=jnp.float64)
    train = make_train(
        policy, optax.adam(0.02), make_surrogate("first_order", float(problem.mdp.gamma), self_normalize=True),
        pg_batch(data), num_steps=100, batch_size=16,
    )
    keys = jax.random.split(jax.random.key(3), 2)
    states, metrics = jax.jit(jax.vmap(train))(keys)
    s1, m1 = jax.jit(train)(keys[1])
    for a, b in zip(jax.tree.leaves(states.params), jax.tree.leaves(s1.params)):
        np.testing.assert_allclose(a[1], b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(metrics.estimate[1], m1.estimate, rtol=1e-10)
    assert not np.allclose(metrics.estimate[0], metrics.estimate[1])  # minibatches differ by seed
    j_before = float(policy_value(problem.mdp, problem.behavior))
    for i in range(2):
        params = jax.tree.map(lambda x: x[i], states.params)
        assert _exact_j(problem, policy, params) > j_before + 0.5
    assert np.all(np.isfinite(metrics.grad_norm))


def test_trainer_validation(small):
    problem, data = small
    policy = tabular_softmax(4, 2)
    with pytest.raises(ValueError, match="estimator"):
        OfflinePGTrainer(policy, data, 0.9, "reinforce")
    with pytest.raises(ValueError, match="options"):
        OfflinePGTrainer(policy, data, 0.9, "per_decision", discount_states=False)
    with pytest.raises(ValueError, match="clip"):
        OfflinePGTrainer(policy, data, 0.9, "per_decision", clip=-1.0)
    with pytest.raises(ValueError, match="batch_size"):
        OfflinePGTrainer(policy, data, 0.9, batch_size=0)
    with pytest.raises(ValueError, match="gamma"):
        OfflinePGTrainer(policy, data, 1.5)
    with pytest.raises(ValueError, match="behavior_log_probs"):
        OfflinePGTrainer(policy, data.replace(behavior_log_probs=None), 0.9)
    with pytest.raises(ValueError, match="state_weights"):
        OfflinePGTrainer(policy, data, 0.9, "state_marginal")
    with pytest.raises(ValueError, match="num_steps"):
        make_train(policy, optax.sgd(0.1), make_surrogate("trajectory", 0.9), pg_batch(data), 0)
