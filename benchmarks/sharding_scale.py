"""Sharded estimators and FQE: overhead of the sharded path on one device, time against device count.

For each device count D in ``--devices`` (default 1, 2, 4, 8) a worker process (so that the
host device count can be forced before JAX starts: ``--xla_force_host_platform_device_count=D``;
on a GPU machine the worker uses the first D GPUs) times, on the same data:

* ``unsharded``: ``jax.jit(fn)(data)`` with the data on the first device;
* ``sharded``: :func:`offrl_jax.core.sharding.sharded` on a D-device mesh, the rows placed with
  :func:`~offrl_jax.core.sharding.shard_rows` (padded to a multiple of D);

for weighted per-decision IS, DR, weighted DR ([N, T] trajectories), LSTDQ ([M, K] transitions)
and a short minibatch FQE, and checks both give the same numbers (``max_rel_diff``) and whether XLA compiled the same
instructions for both (``same_program``: on one device it does, so the sharded path costs nothing
there by construction and the measured ratio shows the timing noise). On one device
``sharded / unsharded`` is the overhead of the sharded code path (target <= 1.10). Forced host
devices share the machine's cores, so on CPU the D > 1 rows measure correctness and overhead,
not speed-up; on several accelerators the same script measures scaling.

Usage: python benchmarks/sharding_scale.py [--quick] [--repeats R] [--devices 1,2,4,8] [--out DIR]
Writes benchmarks/results/sharding_scale[_quick].{json,md}.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

GAMMA = 0.99
SIZES = {"quick": dict(n=20_000, t=100, m=200_000, k=32, fqe_steps=100), "full": dict(n=100_000, t=100, m=1_000_000, k=64, fqe_steps=500)}


def make_data(n: int, t: int, m: int, k: int, seed: int = 0) -> tuple[dict, dict]:
    """Trajectories (two actions, behaviour uniform, target (0.4, 0.6)) and linear transitions."""
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 2, size=(n, t))
    pi_e, pi_b = np.array([0.4, 0.6]), np.array([0.5, 0.5])
    lengths = rng.integers(t // 2, t + 1, size=n)
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.float32)
    q_all = rng.normal(size=(n, t, 2)).astype(np.float32)
    traj = {
        "rewards": (rng.uniform(size=(n, t)) * mask).astype(np.float32),
        "log_ratios": ((np.log(pi_e[actions]) - np.log(pi_b[actions])) * mask).astype(np.float32),
        "mask": mask,
        "q_taken": np.take_along_axis(q_all, actions[..., None], -1)[..., 0] * mask,
        "v_hat": (q_all * pi_e[None, None, :].astype(np.float32)).sum(-1) * mask,
    }
    states = rng.integers(0, 50, size=m)
    trans = {
        "phi_sa": rng.normal(size=(m, k)).astype(np.float32) / np.sqrt(k),
        "phi_next_pi": rng.normal(size=(m, k)).astype(np.float32) / np.sqrt(k),
        "rewards": rng.normal(size=m).astype(np.float32),
        "discounts": (rng.uniform(size=m) > 0.01).astype(np.float32),
        "observations": states.astype(np.int32),
        "actions": rng.integers(0, 2, size=m).astype(np.int32),
        "next_observations": rng.integers(0, 50, size=m).astype(np.int32),
    }
    return traj, trans


def cases(fqe_steps: int) -> dict:
    import jax
    import jax.numpy as jnp

    from offrl_jax import linear, ope
    from offrl_jax.data import Transitions
    from offrl_jax.fitted import FittedQConfig, make_train

    def args(d):
        return d["rewards"], d["log_ratios"], d["mask"], GAMMA

    config = FittedQConfig(num_actions=2, num_observations=50, hidden_sizes=(64,), gamma=GAMMA, batch_size=256,
                           num_steps=fqe_steps, target_update_period=50, learning_rate=1e-3)
    train = make_train(config, jnp.full((50, 2), 0.5))
    fields = ("observations", "actions", "rewards", "next_observations", "discounts")

    return {
        "wpdis": ("traj", lambda d: ope.weighted_per_decision_is(*args(d), validate=False)),
        "dr": ("traj", lambda d: ope.doubly_robust(*args(d), d["q_taken"], d["v_hat"], validate=False)),
        "wdr": ("traj", lambda d: ope.weighted_doubly_robust(*args(d), d["q_taken"], d["v_hat"], validate=False)),
        "lstdq": ("trans", lambda d: linear.lstdq(d["phi_sa"], d["phi_next_pi"], d["rewards"], d["discounts"], GAMMA, 1e-3)),
        "fqe": ("trans", lambda d: train(jax.random.key(0), Transitions(**{f: d[f] for f in fields})).state.params),
    }


def worker(num_devices: int, size: str, repeats: int) -> dict:
    """Runs in a process whose host device count is forced to ``num_devices``."""
    import jax

    from offrl_jax.core import sharding

    s = SIZES[size]
    traj, trans = make_data(s["n"], s["t"], s["m"], s["k"])
    data = jax.device_put({"traj": traj, "trans": trans}, jax.devices()[0])  # both sides start on device
    mesh = sharding.data_mesh(jax.devices()[:num_devices])
    placed = {name: sharding.shard_rows(d, mesh) for name, d in data.items()}
    rows = []
    for name, (kind, fn) in cases(s["fqe_steps"]).items():
        base, base_s = harness.compile_jit(jax.jit(fn), data[kind])
        shard, shard_s = harness.compile_jit(_Lowerable(sharding.sharded(fn, mesh)), placed[kind])
        # Interleaved calls (unsharded, sharded, unsharded, ...) so that load changes hit both alike.
        base_out, base_first = harness.timed_call(base, data[kind])
        out, shard_first = harness.timed_call(shard, placed[kind])
        times: dict = {"unsharded": [], "sharded": []}
        for _ in range(repeats):
            times["unsharded"].append(harness.timed_call(base, data[kind])[1])
            times["sharded"].append(harness.timed_call(shard, placed[kind])[1])
        base_t = harness.summarize(times["unsharded"], base_first, base_s)
        shard_t = harness.summarize(times["sharded"], shard_first, shard_s)
        ratios = [b / a for a, b in zip(times["unsharded"], times["sharded"])]
        scale = max(float(np.max(np.abs(np.asarray(b, np.float64)))) for b in jax.tree_util.tree_leaves(base_out))
        diff = max(float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
                   for a, b in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(base_out)))
        rows.append({"estimator": name, "devices": num_devices, "unsharded": base_t.as_dict(), "sharded": shard_t.as_dict(),
                     "ratio": float(np.median(ratios)), "ratio_of_min": shard_t.min_s / base_t.min_s,
                     "max_rel_diff": diff / max(scale, 1e-30), "same_program": _instructions(base) == _instructions(shard)})
    return {"backend": jax.default_backend(), "device_count": jax.device_count(), "rows": rows}


def _instructions(compiled) -> list:
    """The compiled program's instructions (opcode, shapes, operands), names and annotations dropped."""
    out = []
    for line in compiled.as_text().splitlines():
        if " = " in line and not line.lstrip().startswith(("HloModule", "#")):
            rhs = re.sub(r", (metadata|sharding|frontend_attributes)=\{.*", "", line.split(" = ", 1)[1])
            out.append(re.sub(r"%[\w.\-]+", "%", rhs))
    return sorted(out)


class _Lowerable:
    """Gives :func:`harness.compile_jit` the ``lower`` of a :func:`sharding.sharded` wrapper."""

    def __init__(self, run):
        self.lower = run.lower


def run_worker(num_devices: int, size: str, repeats: int) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={num_devices}").strip()
    root = os.path.dirname(HERE)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", str(num_devices), size, str(repeats)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"worker with {num_devices} devices failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = harness.make_parser(__doc__, quick_repeats=9, repeats=15)
    parser.add_argument("--devices", default="1,2,4,8", help="device counts to run (default: %(default)s)")
    args = harness.parse_args(parser, argv)
    try:
        counts = [int(x) for x in args.devices.split(",")]
        if any(c < 1 for c in counts):
            raise ValueError
    except ValueError:
        parser.error(f"--devices: expected comma-separated positive ints, found {args.devices!r}")
    size = "quick" if args.quick else "full"
    results = [run_worker(d, size, args.repeats) for d in counts]
    meta = harness.metadata(dtype="float32")
    meta["worker_backend"] = results[0]["backend"]
    rows = [r for res in results for r in res["rows"]]
    table = harness.markdown_table(
        ["estimator", "devices", "unsharded ms", "sharded ms", "sharded / unsharded (median of pairs)",
         "min / min", "compile s (sharded)", "max rel. diff", "same program"],
        [[r["estimator"], r["devices"], f"{1e3 * r['unsharded']['run_s']:.2f}", f"{1e3 * r['sharded']['run_s']:.2f}",
          f"{r['ratio']:.3f}", f"{r['ratio_of_min']:.3f}", f"{r['sharded']['compile_s']:.2f}", f"{r['max_rel_diff']:.1e}",
          "yes" if r["same_program"] else "no"]
         for r in rows],
    )
    s = SIZES[size]
    head = [
        "# Sharded estimators: overhead on one device, time against device count",
        "",
        harness.describe(meta),
        "",
        f"Trajectories N = {s['n']}, T = {s['t']}; transitions M = {s['m']}, K = {s['k']}; FQE {s['fqe_steps']} steps "
        f"of batch 256, MLP (64,). Unsharded: jax.jit on one device; sharded: core.sharding.sharded on a D-device "
        f"mesh (rows padded to a multiple of D). {args.repeats} interleaved pairs of calls (unsharded, sharded); "
        "the ratio is the median of the per-pair ratios. On CPU the D devices are forced host "
        "devices sharing the same cores: the D > 1 rows show correctness and overhead, not speed-up.",
        "",
    ]
    harness.write_results("sharding_scale", rows, head + table, meta=meta, settings={**s, "devices": counts},
                          out=args.out, quick=args.quick)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        harness.emit_peer_result(worker(int(sys.argv[2]), sys.argv[3], int(sys.argv[4])))
    else:
        main()
