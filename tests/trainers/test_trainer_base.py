"""The one Trainer over any Learner: determinism, resume bit for bit, config records, atomic and
all-or-nothing checkpoints (a writer killed with SIGKILL at random moments never loses the last
completed checkpoint), one writer per directory."""

import json
import os
import subprocess
import sys
import textwrap
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import struct

from offrl_jax.core import Learner, TrainResult, config_field, make_train_seeds, train_from_learner
from offrl_jax.trainers import Trainer


@struct.dataclass
class RegConfig:
    learning_rate: float = config_field(0.1)
    batch_size: int = config_field(4)
    num_steps: int = config_field(20)


class RegState(struct.PyTreeNode):
    params: jnp.ndarray
    opt_state: optax.OptState
    key: jnp.ndarray


class RegMetrics(NamedTuple):
    loss: jnp.ndarray


def make_learner(config: RegConfig) -> Learner:
    """Least squares by minibatch SGD: a minimal learner following the package convention."""
    opt = optax.sgd(config.learning_rate)

    def init(key, data):
        x, _ = data
        params = jnp.zeros(x.shape[1], x.dtype)
        return RegState(params, opt.init(params), key)

    def run(state, data, num_steps):
        x, y = data

        def body(s, _):
            key, k = jax.random.split(s.key)
            idx = jax.random.randint(k, (config.batch_size,), 0, x.shape[0])
            loss, g = jax.value_and_grad(lambda p: jnp.mean((x[idx] @ p - y[idx]) ** 2))(s.params)
            upd, opt_state = opt.update(g, s.opt_state)
            return RegState(optax.apply_updates(s.params, upd), opt_state, key), RegMetrics(loss)

        return jax.lax.scan(body, state, None, length=num_steps)

    return Learner(init, run, config.num_steps)


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3))
    return jnp.asarray(x), jnp.asarray(x @ np.array([1.0, -2.0, 0.5]))


def _leaves_equal(a, b):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        if jnp.issubdtype(u.dtype, jax.dtypes.prng_key):
            u, v = jax.random.key_data(u), jax.random.key_data(v)
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def test_train_vmap_seeds_and_trainer_agree():
    cfg, data = RegConfig(), _data()
    train = train_from_learner(make_learner(cfg))
    keys = jax.random.split(jax.random.key(0), 3)
    batched = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, data)
    assert isinstance(batched, TrainResult) and batched.metrics.loss.shape == (3, 20)
    grouped = jax.jit(make_train_seeds(train, seeds_per_group=2))(keys, data)
    _leaves_equal(batched, grouped)
    for i in range(3):
        _leaves_equal(jax.tree_util.tree_map(lambda x: x[i], batched), train(keys[i], data))
    # The Trainer runs the same steps as train() for the same key (seed 0 -> key(0)).
    tr = Trainer(make_learner(cfg), data, seed=0, config=cfg, chunk_size=7, progress=False).fit(20)
    single = train(jax.random.key(0), data)
    _leaves_equal(tr.state.params, single.state.params)
    np.testing.assert_array_equal(tr.history["loss"], np.asarray(single.metrics.loss))
    assert tr._chunk._cache_size() == 2  # chunks of 7 and of 6 steps: two shapes, no more


def test_resume_bit_for_bit_and_config_recorded(tmp_path):
    cfg, data = RegConfig(), _data()
    ref = Trainer(make_learner(cfg), data, config=cfg, progress=False).fit(30)
    a = Trainer(make_learner(cfg), data, config=cfg, chunk_size=5, progress=False).fit(10)
    a.save(tmp_path / "ck")
    meta = json.loads(next((tmp_path / "ck").glob("step_*/trainer.json")).read_text())
    assert meta["config"]["learning_rate"] == "0.1" and meta["step"] == 10
    b = Trainer(make_learner(cfg), data, config=cfg, seed=123, progress=False).restore(tmp_path / "ck")
    assert b.step == 10
    b.fit(20)
    _leaves_equal(ref.state, b.state)
    np.testing.assert_array_equal(ref.history["loss"], b.history["loss"])
    # Another config: refused, naming the field, and nothing changed.
    other = RegConfig(learning_rate=0.2)
    c = Trainer(make_learner(other), data, config=other, progress=False)
    before = c.state
    with pytest.raises(ValueError, match="learning_rate"):
        c.restore(tmp_path / "ck")
    assert c.state is before and c.step == 0


def test_damaged_checkpoint_changes_nothing(tmp_path):
    cfg, data = RegConfig(), _data()
    a = Trainer(make_learner(cfg), data, config=cfg, progress=False).fit(5)
    path = a.save(tmp_path / "ck")
    b = Trainer(make_learner(cfg), data, config=cfg, progress=False)
    state, step = b.state, b.step
    with open(os.path.join(path, "history.npz"), "wb") as f:
        f.write(b"garbage")
    with pytest.raises(ValueError, match="damaged"):
        b.restore(tmp_path / "ck")
    assert b.state is state and b.step == step and b.history["step"].size == 0
    with open(os.path.join(path, "trainer.json"), "w") as f:
        f.write('{"step": 5, "ev')
    with pytest.raises(ValueError, match="damaged"):
        b.restore(tmp_path / "ck")
    assert b.state is state and b.step == step
    with pytest.raises(ValueError, match="no checkpoint"):
        b.restore(tmp_path / "empty")


def test_keep_prunes_old_checkpoints_and_one_writer_per_directory(tmp_path):
    import fcntl

    cfg, data = RegConfig(), _data()
    a = Trainer(make_learner(cfg), data, config=cfg, progress=False)
    for _ in range(4):
        a.fit(2).save(tmp_path / "ck", keep=2)
    assert len(list((tmp_path / "ck").glob("step_*"))) == 2
    fd = os.open(tmp_path / "ck" / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as if another trainer were saving right now
    try:
        with pytest.raises(ValueError, match="another"):
            a.save(tmp_path / "ck")
    finally:
        os.close(fd)
    b = Trainer(make_learner(cfg), data, config=cfg, progress=False).restore(tmp_path / "ck")
    assert b.step == 8


_ZYGOTE = textwrap.dedent(
    """
    # Imports once (no JAX backend started yet), then forks one writer per trial: each child
    # trains and saves in a loop and reports every completed save; the parent SIGKILLs it at a
    # random moment after its first save. Children share a persistent compilation cache.
    import json, os, random, signal, sys, time
    sys.path.insert(0, {tests!r})
    import jax
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_compilation_cache_dir", sys.argv[2])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    from trainers.test_trainer_base import RegConfig, make_learner, _data
    from offrl_jax.trainers import Trainer

    rng = random.Random(0)
    for i in range(int(sys.argv[3])):
        d = os.path.join(sys.argv[1], f"ck{{i}}")
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            cfg = RegConfig()
            tr = Trainer(make_learner(cfg), _data(), config=cfg, chunk_size=3, progress=False)
            while True:
                tr.fit(3)
                tr.save(d, keep=2)
                os.write(w, f"{{tr.step}} ".encode())
        os.close(w)
        with os.fdopen(r) as f:
            first = ""
            while not first.strip():
                c = f.read(1)
                if not c:
                    break
                first += c
            time.sleep(rng.uniform(0.0, 0.15))
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            done = [int(x) for x in (first + f.read()).split()]
        print(json.dumps({{"dir": d, "completed": done}}), flush=True)
    """
)


@pytest.mark.slow
def test_kill_during_save_never_loses_the_last_checkpoint(tmp_path):
    """20 writers saving in a loop, each killed with SIGKILL at a random moment after its first
    completed save: the last completed checkpoint restores every time, bit for bit."""
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = tmp_path / "zygote.py"
    script.write_text(_ZYGOTE.format(tests=tests))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(tests), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, str(script), str(tmp_path), str(tmp_path / "cache"), "20"],
                         capture_output=True, text=True, env=env, timeout=600)
    trials = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(trials) == 20, out.stderr[-2000:]
    cfg, data = RegConfig(), _data()
    template = Trainer(make_learner(cfg), data, config=cfg, progress=False)
    reference = {}
    for trial in trials:
        assert trial["completed"], "a writer was killed before its first save completed"
        tr = Trainer(make_learner(cfg), data, config=cfg, progress=False, state=template.state)
        tr.restore(trial["dir"])
        # The restored step is the last completed save, or one more if that save finished after
        # the writer's last report and before the kill.
        last = max(trial["completed"])
        assert tr.step in (last, last + 3), (tr.step, last)
        if tr.step not in reference:
            reference[tr.step] = Trainer(make_learner(cfg), data, config=cfg, chunk_size=3,
                                         progress=False).fit(tr.step).state
        _leaves_equal(tr.state, reference[tr.step])
