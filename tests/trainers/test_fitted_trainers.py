"""FQETrainer / FQITrainer on the generic Trainer: progress, metrics, callbacks, export,
determinism, checkpoints; FQI and continuous FQE vmapped over seeds (FQE: tests/fitted/test_train.py);
FQE, FQI and continuous FQE resumed bit for bit."""

import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.data import Transitions
from offrl_jax.envs import TabularMDP
from offrl_jax.fitted import FittedQConfig, make_train
from offrl_jax.trainers import FittedQTrainer, FQETrainer, FQITrainer, Trainer

S, A = 5, 2
CFG = FittedQConfig(
    num_actions=A, num_observations=S, hidden_sizes=(8,), gamma=0.8, batch_size=8,
    learning_rate=1e-2, target_update_period=20,
)


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(S), size=(S, A))
    r = rng.normal(size=(S, A))
    mdp = TabularMDP.create(p, r, np.ones(S) / S, 0.8)
    m = 64
    s, a = rng.integers(0, S, m), rng.integers(0, A, m)
    s2 = np.array([rng.choice(S, p=p[i, j]) for i, j in zip(s, a)])
    ds = Transitions.create(observations=s, actions=a, rewards=r[s, a], next_observations=s2, discounts=np.ones(m))
    pi = jnp.asarray(rng.dirichlet(np.ones(A), size=S), jnp.float32)
    return mdp, ds, pi


def _params_equal(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_fqe_trainer_metrics_callbacks_export(problem, tmp_path):
    mdp, ds, pi = problem
    seen = []

    def cb(trainer):
        seen.append(trainer.step)
        return {"estimate": trainer.estimate(jnp.arange(S))}

    tr = FQETrainer(ds, CFG, pi, seed=0, chunk_size=50, callbacks=[cb], eval_every=100, progress=True)
    tr.fit(200).fit(100)
    hist = tr.history
    assert set(hist) >= {"step", "loss", "q_mean", "target_mean", "grad_norm"}
    assert hist["loss"].shape == (300,) and hist["step"][-1] == 300
    assert np.all(np.isfinite(hist["loss"]))
    assert seen == [100, 200, 300] and [e["step"] for e in tr.evals] == [100, 200, 300]
    # the compiled chunk was traced once across the six chunks of the two fit calls
    assert tr._chunk._cache_size() == 1
    tr.to_csv(tmp_path / "m.csv")
    tr.to_json(tmp_path / "m.json")
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert len(rows) == 300 and float(rows[-1]["loss"]) == pytest.approx(float(hist["loss"][-1]))
    blob = json.load(open(tmp_path / "m.json"))
    assert len(blob["history"]["loss"]) == 300 and blob["evals"][0]["step"] == 100
    assert tr.q_values(jnp.arange(S)).shape == (S, A)


def test_trainer_deterministic_given_seed(problem):
    """Same seed: identical runs, whatever the chunking (80 steps as 2 x 40 or 1 x 80)."""
    _, ds, _ = problem
    a = FQITrainer(ds, CFG.replace(method="fqi"), seed=3, chunk_size=40, progress=False).fit(80)
    b = FQITrainer(ds, CFG.replace(method="fqi"), seed=3, chunk_size=80, progress=False).fit(80)
    c = FQITrainer(ds, CFG.replace(method="fqi"), seed=4, chunk_size=40, progress=False).fit(80)
    np.testing.assert_array_equal(a.history["loss"], b.history["loss"])
    _params_equal(a.state.params, b.state.params)
    assert not np.array_equal(a.history["loss"], c.history["loss"])
    assert a.greedy_actions(jnp.arange(S)).shape == (S,)


def test_fqe_trainer_converges_to_tabular_truth(problem):
    """Full-coverage check of the trainer's wiring: Q-hat near Q^pi of the empirical data."""
    mdp, ds, pi = problem
    cfg = CFG.replace(hidden_sizes=(), batch_size=None, learning_rate=0.05, target_update_period=10)
    tr = FQETrainer(ds, cfg, pi, seed=0, chunk_size=1500, progress=False).fit(1500)
    # Q-hat solves the empirical Bellman equation: check the residual on the data, in float32
    q = np.asarray(tr.q_values(jnp.arange(S)))
    s, a = np.asarray(ds.observations), np.asarray(ds.actions)
    y = np.asarray(ds.rewards) + 0.8 * np.sum(np.asarray(pi)[np.asarray(ds.next_observations)] * q[np.asarray(ds.next_observations)], -1)
    resid = np.zeros((S, A)); cnt = np.zeros((S, A))
    np.add.at(resid, (s, a), y - q[s, a]); np.add.at(cnt, (s, a), 1)
    assert np.max(np.abs(resid[cnt > 0] / cnt[cnt > 0])) < 1e-3


def test_trainer_rejects_bad_input(problem):
    _, ds, pi = problem
    with pytest.raises(ValueError, match="method"):
        FQETrainer(ds, CFG.replace(method="fqi"), pi)
    with pytest.raises(ValueError, match="method"):
        FQITrainer(ds, CFG)
    with pytest.raises(ValueError, match="batch_size"):
        FQETrainer(ds, CFG.replace(batch_size=1000), pi)
    with pytest.raises(ValueError, match="num_observations"):
        FQETrainer(ds.replace(observations=ds.observations + S), CFG, pi)
    with pytest.raises(ValueError, match="chunk_size"):
        FQETrainer(ds, CFG, pi, chunk_size=0)
    tr = FQETrainer(ds, CFG, pi, chunk_size=10, progress=False)
    with pytest.raises(ValueError, match="steps"):
        tr.fit(0)


# Continuous actions: a linear-Gaussian target on random float transitions (only the wiring is
# under test here; tests/fitted/test_continuous.py checks the values against the exact LQR Q).
CONT = FittedQConfig(
    action_dim=1, gamma=0.8, features="quadratic", num_action_samples=2, batch_size=16, learning_rate=1e-2,
    target_update_period=5, num_steps=30,
)


def _sample_actions(key, obs):
    return -0.3 * obs[:, :1] + 0.1 * jax.random.normal(key, obs.shape[:1] + (1,), obs.dtype)


@pytest.fixture(scope="module")
def continuous_data():
    rng = np.random.default_rng(4)
    m = 64
    obs = rng.normal(size=(m, 2)).astype(np.float32)
    return Transitions.create(
        observations=obs, actions=rng.normal(size=(m, 1)).astype(np.float32),
        rewards=rng.normal(size=m).astype(np.float32), next_observations=rng.normal(size=(m, 2)).astype(np.float32),
        discounts=np.ones(m, np.float32),
    )


def _case(kind, problem, continuous_data):
    """(data, config, target policy, trainer factory) of one kind of fitted-Q run."""
    _, ds, pi = problem
    if kind == "fqe":
        return ds, CFG.replace(num_steps=30), pi, lambda **kw: FQETrainer(ds, CFG.replace(num_steps=30), pi, **kw)
    if kind == "fqi":
        cfg = CFG.replace(method="fqi", double_q=True, num_steps=30)
        return ds, cfg, None, lambda **kw: FQITrainer(ds, cfg, **kw)
    return continuous_data, CONT, _sample_actions, lambda **kw: FQETrainer(continuous_data, CONT, _sample_actions, **kw)


# FQE's vmapped seeds against separate runs: tests/fitted/test_train.py::test_vmap_over_seeds_equals_separate_runs.
@pytest.mark.parametrize("kind", ["fqi", "continuous"])
def test_vmapped_three_seeds_equal_separate_runs(kind, problem, continuous_data):
    data, cfg, pi, _ = _case(kind, problem, continuous_data)
    train = make_train(cfg, pi)
    keys = jax.random.split(jax.random.key(5), 3)
    batched = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, data)
    single = jax.jit(train)
    for i in range(3):
        one = single(keys[i], data)
        for x, y in zip(jax.tree_util.tree_leaves(batched.state.params), jax.tree_util.tree_leaves(one.state.params)):
            np.testing.assert_allclose(x[i], y, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(batched.metrics.loss[i], one.metrics.loss, rtol=1e-5, atol=1e-6)
    assert batched.metrics.loss.shape == (3, cfg.num_steps)
    assert not np.allclose(batched.metrics.loss[0], batched.metrics.loss[1])


@pytest.mark.parametrize("kind", ["fqe", "fqi", "continuous"])
def test_checkpoint_round_trip_resumes_bit_for_bit(kind, problem, continuous_data, tmp_path):
    *_, make = _case(kind, problem, continuous_data)
    full = make(seed=2, chunk_size=20, progress=False).fit(20)
    assert isinstance(full, Trainer) and isinstance(full, FittedQTrainer)
    full.save(tmp_path / "ck")
    full.fit(40)
    resumed = make(seed=2, chunk_size=20, progress=False).restore(tmp_path / "ck")
    assert resumed.step == 20
    resumed.fit(40)
    for k in ("loss", "q_mean", "target_mean", "grad_norm"):
        np.testing.assert_array_equal(resumed.history[k], full.history[k])
    _params_equal(resumed.state.params, full.state.params)
    _params_equal(resumed.state.target_params, full.state.target_params)
    _params_equal(resumed.state.opt_state, full.state.opt_state)
    np.testing.assert_array_equal(jax.random.key_data(resumed.state.key), jax.random.key_data(full.state.key))


def test_continuous_trainer_estimate_and_config_mismatch(continuous_data, tmp_path):
    tr = FQETrainer(continuous_data, CONT, _sample_actions, chunk_size=10, progress=False).fit(10)
    s0 = continuous_data.observations[:8]
    est = tr.estimate(s0, key=jax.random.key(0), num_samples=4)
    assert est.shape == () and np.isfinite(float(est))
    assert tr.q_values(s0, continuous_data.actions[:8]).shape == (8,)
    with pytest.raises(ValueError, match="key"):
        tr.estimate(s0)
    tr.save(tmp_path / "ck")
    other = FQETrainer(continuous_data, CONT.replace(num_action_samples=3), _sample_actions, progress=False)
    with pytest.raises(ValueError, match="num_action_samples"):
        other.restore(tmp_path / "ck")
