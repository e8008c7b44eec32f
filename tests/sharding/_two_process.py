"""One of two processes of the loopback ``jax.distributed`` check (run as a script).

``python _two_process.py PORT PROCESS_ID``: joins a two-process CPU cluster on 127.0.0.1 (gloo
collectives), loads its half of a dataset, and checks that DR, WPDIS, LSTDQ and a short
data-parallel FQE and FQE seeds computed on the global 2-device mesh equal the numbers computed here on the
whole dataset in one process. Exits 1 on a mismatch.
"""

import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_disable_most_optimizations", True)
jax.config.update("jax_cpu_collectives_implementation", "gloo")

import _cases  # noqa: E402
from offrl_jax.core import sharding  # noqa: E402

NUM_ROWS = 21  # split 10 + 11: the first process's block is padded, so the real rows are two runs


def estimates(d):
    return {name: _cases.TRAJECTORY_CASES[name](d) for name in ("doubly_robust", "weighted_per_decision_is")}


def solvers(d):
    return {"lstdq": _cases.TRANSITION_CASES["lstdq"](d), "fqe": _cases.fqe_case(d)}


def main(port: int, process_id: int) -> int:
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=process_id, initialization_timeout=60)
    assert jax.process_count() == 2 and jax.device_count() == 2, (jax.process_count(), jax.devices())
    mesh = sharding.data_mesh()
    traj = _cases.trajectories(NUM_ROWS)
    half = NUM_ROWS // 2
    rows = slice(0, half) if process_id == 0 else slice(half, NUM_ROWS)
    local = {k: v[rows] for k, v in traj.items()}  # what this process loads

    got = {}
    for fn, local_data in ((estimates, local), (solvers, _cases.transitions(local))):
        placed = sharding.from_process_shards(local_data, mesh)
        assert len(placed.runs) == 2, placed.runs
        got.update(sharding.to_host(sharding.sharded(fn, mesh)(placed)))
    want = {**jax.jit(estimates)(traj), **jax.jit(solvers)(_cases.transitions(traj))}

    # Seeds over the two processes' devices (3 seeds, padded to 4); data replicated.
    keys = jax.random.split(jax.random.key(11), 3)
    data = _cases.fqe_data(_cases.transitions(traj))
    seeds = _cases.fqe_seeds()
    got["fqe_seeds"] = sharding.to_host(sharding.shard_seeds(seeds, mesh)(keys, data).state.params)
    want["fqe_seeds"] = jax.jit(seeds)(keys, data).state.params

    failures = 0
    for name in want:
        bad = _cases.close(got[name], want[name])
        print(f"process {process_id}: {'ok  ' if not bad else 'FAIL'} {name}" + ("" if not bad else ": " + "; ".join(bad[:3])))
        failures += bool(bad)
    jax.distributed.shutdown()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2])))
