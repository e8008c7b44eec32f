"""Sharded datasets and seeds: padding and placement here; 8 devices and 2 processes in subprocesses.

The multi-device checks need ``--xla_force_host_platform_device_count=8`` set before JAX starts
and the two-process check needs two fresh interpreters, so both run as child processes whose
output is shown on failure.
"""

import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from offrl_jax import ope
from offrl_jax.core import sharding
from offrl_jax.data import Trajectories

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("XLA_FLAGS", None)
    env.update(extra)
    return env


def _report(name, procs_out):
    return f"{name} failed:\n" + "\n".join(f"--- {label} (exit {rc}) ---\n{out[-6000:]}" for label, rc, out in procs_out)


def _trajectories(n=5, t=4):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, t + 1, size=n)
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.float64)
    lp = np.log(rng.uniform(0.2, 1.0, size=(n, t))) * mask
    return Trajectories.create(
        observations=rng.integers(0, 3, size=(n, t)), actions=rng.integers(0, 2, size=(n, t)),
        rewards=rng.normal(size=(n, t)) * mask, next_observations=rng.integers(0, 3, size=(n, t)),
        discounts=np.ones((n, t)), mask=mask, behavior_log_probs=lp, target_log_probs=lp * 0.5,
    )


def test_pad_rows_appends_masked_zero_rows():
    traj = _trajectories()
    padded, n = sharding.pad_rows(traj, 4)
    assert n == 5 and padded.rewards.shape == (8, 4) and padded.observations.dtype == np.asarray(traj.observations).dtype
    for leaf, orig in zip(jax.tree_util.tree_leaves(padded), jax.tree_util.tree_leaves(traj)):
        np.testing.assert_array_equal(leaf[:5], orig)
        np.testing.assert_array_equal(leaf[5:], 0)
    assert sharding.pad_rows(traj, 5)[0].rewards.shape == (5, 4)


def test_bad_inputs_raise_naming_the_argument():
    with pytest.raises(ValueError, match="multiple"):
        sharding.pad_rows({"x": np.ones(3)}, 0)
    with pytest.raises(ValueError, match="tree: expected every array to share one leading row axis"):
        sharding.pad_rows({"x": np.ones(3), "y": np.ones(4)}, 2)
    with pytest.raises(ValueError, match="placed: expected a ShardedRows"):
        sharding.sharded(lambda d: d)({"x": np.ones(3)})


def test_one_device_sharded_path_equals_plain_call():
    """Padding to the device count, placing and the rows() view change no estimate."""
    traj = _trajectories()
    mesh = sharding.data_mesh(jax.devices()[:1])
    placed = sharding.shard_rows(traj, mesh)
    assert placed.runs == ((0, 5),) and placed.num_rows == 5 and not sharding.rows_are_sharded()

    def wdr(t):
        return ope.weighted_doubly_robust(t.rewards, t.log_ratios(), t.mask, 0.9, 0.3 * t.rewards, 0.1 * t.mask)

    want = jax.jit(wdr)(traj)
    run = sharding.sharded(wdr, mesh)
    np.testing.assert_allclose(run(placed), want, rtol=1e-12)
    # One process: from_process_shards places the same rows as shard_rows.
    from_processes = sharding.from_process_shards(traj, mesh)
    assert from_processes.runs == placed.runs
    np.testing.assert_allclose(run(from_processes), want, rtol=1e-12)
    # Rows held as two runs with padding between them (several processes) come back in order.
    padded = jax.tree_util.tree_map(lambda x: np.concatenate([x[:3], np.zeros_like(x[:2]), x[3:]]), traj)
    split = sharding.ShardedRows(padded, ((0, 3), (5, 7)))
    assert split.num_rows == 5
    np.testing.assert_allclose(jax.jit(wdr)(split.rows()), want, rtol=1e-12)


def test_eight_devices_sharded_equals_unsharded():
    """Every listed estimator and solver, FQE and seed sweeps: 8 forced devices, 21 rows padded to 24."""
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "_multidevice_cases.py")],
        env=_env(), capture_output=True, text=True, timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, _report("8-device checks", [("_multidevice_cases.py", proc.returncode, out)])
    assert "0 failures" in proc.stdout and "FAIL" not in proc.stdout, out


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_over_loopback_equal_one_process():
    """jax.distributed on 127.0.0.1 with gloo: each process loads half of the data."""
    port = _free_port()
    script = os.path.join(HERE, "_two_process.py")
    procs = [
        subprocess.Popen([sys.executable, script, str(port), str(i)], env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        for i in range(2)
    ]
    results = []
    for i, p in enumerate(procs):
        try:
            out, _ = p.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            out, _ = p.communicate()
        results.append((f"process {i}", p.returncode, out))
    assert all(rc == 0 for _, rc, _ in results), _report("two-process check", results)
    for label, _, out in results:
        assert out.count(" ok ") == 5, _report("two-process check", results)
