"""DICE learner convention: vmapped seeds equal separate runs; DiceTrainer chunks, metrics,
checkpoint resume bit for bit, no recompilation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.core import TrainResult
from offrl_jax.mis import DiceConfig, DiceData, DiceNetwork, make_train
from offrl_jax.trainers import Trainer
from offrl_jax.trainers.dice import DiceTrainer

S, A = 3, 2


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    m = 64
    pi = rng.dirichlet(np.ones(A), size=S)
    obs, nxt = rng.integers(0, S, m), rng.integers(0, S, m)
    f32 = np.float32
    return DiceData.create(
        observations=obs, actions=rng.integers(0, A, m), rewards=rng.normal(size=m).astype(f32), next_observations=nxt,
        discounts=np.ones(m, f32), next_target_probs=pi[nxt].astype(f32), initial_observations=np.zeros(4, int),
        initial_target_probs=pi[np.zeros(4, int)].astype(f32),
    )


NET = DiceNetwork(A, hidden_sizes=(8,), num_observations=S)  # float32: the default dtype is kept
CFG = DiceConfig(method="gendice", gamma=0.9, weight_lr=1e-2, critic_lr=1e-2, batch_size=16, initial_batch_size=4,
                 num_steps=100)


def test_vmapped_seeds_equal_separate_runs(data):
    """Seeds 0, 1, 2 vmapped in one program equal each run alone (float64: no round-off slack)."""
    net = DiceNetwork(A, hidden_sizes=(8,), num_observations=S, dtype=jnp.float64)
    data = jax.tree.map(lambda x: x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x, data)
    train = make_train(CFG, net, net)
    keys = jnp.stack([jax.random.key(i) for i in range(3)])
    many = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, data)
    assert isinstance(many, TrainResult) and many.metrics.loss.shape == (3, CFG.num_steps)
    one = jax.jit(train)
    for i in range(3):
        single = one(keys[i], data)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, rtol=1e-9, atol=1e-12), many.metrics, single.metrics)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, rtol=1e-9, atol=1e-12), many.state.weight_params,
                     single.state.weight_params)
    assert int(single.state.step) == CFG.num_steps
    # Different seeds give different runs (the minibatch key is carried in the state).
    assert not np.allclose(many.metrics.loss[0], many.metrics.loss[1])


def _trainer(data, **kw):
    return DiceTrainer(CFG, NET, NET, data, seed=0, chunk_size=25, progress=False, **kw)


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    """100 steps in chunks of 25 with callbacks, checkpointed at step 50 (shared: one compilation)."""
    calls = []
    ckpt = str(tmp_path_factory.mktemp("dice") / "ckpt")
    trainer = _trainer(data, callbacks=[lambda t: calls.append(t.step) or {"est": t.estimate().estimate}], eval_every=50)
    trainer.fit(50)
    trainer.save(ckpt)
    trainer.fit(50)
    return trainer, calls, ckpt


def test_resume_is_bit_for_bit_and_compiles_once(data, straight, tmp_path):
    straight, calls, ckpt = straight
    assert calls == [50, 100] and [e["step"] for e in straight.evals] == [50, 100]
    assert isinstance(straight, Trainer)
    # Four chunks of 25 steps (two fits, a save between them): one compilation.
    assert straight._chunk._cache_size() == 1, straight._chunk._cache_size()
    resumed = _trainer(data).restore(ckpt)
    assert resumed.step == 50
    resumed.fit(50)
    assert resumed.step == 100
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), resumed.state.weight_params, straight.state.weight_params)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), resumed.state.critic_params, straight.state.critic_params)
    hist, ref = resumed.history, straight.history
    assert set(hist) >= {"loss", "weight_mean", "estimate", "step"} and len(hist["loss"]) == 100
    assert hist["loss"].dtype == np.float32 and resumed.estimate().estimate.dtype == jnp.float32
    np.testing.assert_array_equal(hist["loss"], ref["loss"])
    w = resumed.weights(data.observations[:5], data.actions[:5])
    assert w.shape == (5,) and bool(jnp.all(w >= 0))  # GenDICE weights are squared
    resumed.to_json(str(tmp_path / "m.json"))
    resumed.to_csv(str(tmp_path / "m.csv"))


def test_trainer_validates(data, straight):
    with pytest.raises(ValueError, match="method"):
        DiceTrainer(CFG.replace(method="x"), NET, NET, data)
    with pytest.raises(ValueError, match="data"):
        DiceTrainer(CFG, NET, NET, {"observations": 1})
    with pytest.raises(ValueError, match="steps"):
        straight[0].fit(0)



def test_trainer_checks_the_data_like_train(data):
    """The trainer runs the same host checks as make_train's train: a NaN reward is named."""
    import dataclasses

    import numpy as np

    rewards = np.array(data.rewards, dtype=np.float64)
    rewards[0] = np.nan
    with pytest.raises(ValueError, match="rewards"):
        DiceTrainer(CFG, NET, NET, dataclasses.replace(data, rewards=rewards), progress=False)
