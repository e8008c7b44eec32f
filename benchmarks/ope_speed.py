"""Speed and memory of the OPE estimators: offrl_jax vs plain numpy vs SCOPE-RL 0.2.1.

For N in {1e3, 1e4, 1e5} and T in {10, 100, 1000} with N * T <= 1e7: each estimator's run time
after compile (median of repeats, ``jax.block_until_ready``), its compile time separately, the
numpy version of ``benchmarks/numpy_ope.py`` side by side (same numbers checked), and SCOPE-RL's
estimators (TIS, PDIS, DR and their self-normalised versions) on the same inputs when SCOPE-RL
can be imported (``--peer-python`` names an interpreter that has it; it runs in a subprocess).
Peak memory: the compiled program's memory analysis for JAX (arguments + temporaries + outputs),
``tracemalloc`` for numpy and SCOPE-RL.

Usage: python benchmarks/ope_speed.py [--quick] [--sizes 100000x100,...] [--peer-python /path/to/python]
Writes benchmarks/results/ope_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GAMMA = 0.99
# JAX estimator -> (numpy name, SCOPE-RL class name or None)
ROWS = {
    "is": ("is", "TrajectoryWiseImportanceSampling"),
    "pdis": ("pdis", "PerDecisionImportanceSampling"),
    "wis": ("wis", "SelfNormalizedTIS"),
    "wpdis": ("wpdis", "SelfNormalizedPDIS"),
    "dm": ("dm", None),
    "dr": ("dr", "DoublyRobust"),
    "dr_associative": ("dr", None),
    "dr_weights": ("dr", None),
    "wdr": ("wdr", "SelfNormalizedDR"),
}


def make_data(n: int, t: int, seed: int = 0) -> dict:
    """Two actions; behaviour uniform, target (0.4, 0.6); random rewards and Q-hat (float32)."""
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 2, size=(n, t))
    pi_e = np.array([0.4, 0.6], np.float32)
    pi_b = np.array([0.5, 0.5], np.float32)
    q_all = rng.normal(size=(n, t, 2)).astype(np.float32)
    return {
        "actions": actions,
        "rewards": rng.uniform(size=(n, t)).astype(np.float32),
        "log_ratios": (np.log(pi_e[actions]) - np.log(pi_b[actions])).astype(np.float32),
        "mask": np.ones((n, t), np.float32),
        "q_all": q_all,
        "q_taken": np.take_along_axis(q_all, actions[..., None], -1)[..., 0],
        "v_hat": (q_all * pi_e[None, None, :]).sum(-1).astype(np.float32),
        "pscore": pi_b[actions].reshape(-1).astype(np.float64),
        "pi_e": pi_e,
    }


def _timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def jax_functions():
    import jax

    from offrl_jax import ope

    def dr(method):
        return lambda r, lr, m, g, q, v: ope.doubly_robust(r, lr, m, g, q, v, method=method)

    fns = {
        "is": lambda r, lr, m, g, q, v: ope.trajectory_is(r, lr, m, g),
        "pdis": lambda r, lr, m, g, q, v: ope.per_decision_is(r, lr, m, g),
        "wis": lambda r, lr, m, g, q, v: ope.weighted_is(r, lr, m, g),
        "wpdis": lambda r, lr, m, g, q, v: ope.weighted_per_decision_is(r, lr, m, g),
        "dm": lambda r, lr, m, g, q, v: ope.direct_method(v[:, 0]),
        "dr": dr("scan"),
        "dr_associative": dr("associative"),
        "dr_weights": dr("weights"),
        "wdr": lambda r, lr, m, g, q, v: ope.weighted_doubly_robust(r, lr, m, g, q, v),
    }
    return {k: jax.jit(f) for k, f in fns.items()}


def bench_jax(data, repeats, fns):
    import jax
    import jax.numpy as jnp

    args = [jnp.asarray(data[k]) for k in ("rewards", "log_ratios", "mask")]
    args += [jnp.asarray(GAMMA, jnp.float32), jnp.asarray(data["q_taken"]), jnp.asarray(data["v_hat"])]
    jax.block_until_ready(args)
    out = {}
    for name, f in fns.items():
        t0 = time.perf_counter()
        compiled = f.lower(*args).compile()
        compile_s = time.perf_counter() - t0
        mem = compiled.memory_analysis()
        peak = None
        if mem is not None:
            peak = int(mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes)
        jax.block_until_ready(compiled(*args))  # warm-up
        run_s, value = _timed(lambda: jax.block_until_ready(compiled(*args)), repeats)
        out[name] = {"compile_s": compile_s, "run_s": run_s, "value": float(value), "peak_bytes": peak}
    return out


def bench_numpy(data, repeats):
    sys.path.insert(0, HERE)
    import numpy_ope

    args = (data["rewards"], data["log_ratios"], data["mask"], np.float32(GAMMA), data["q_taken"], data["v_hat"])
    out = {}
    for name, f in numpy_ope.ESTIMATORS.items():
        tracemalloc.start()
        value = f(*args)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        run_s, value = _timed(lambda: f(*args), repeats)
        out[name] = {"run_s": run_s, "value": float(value), "peak_bytes": int(peak)}
    return out


# ----------------------------------------------------------------------------------------------
# SCOPE-RL worker (runs inside the peer interpreter).
# ----------------------------------------------------------------------------------------------
def scope_worker(npz_path: str, repeats: int) -> dict:
    from scope_rl.ope import discrete

    z = np.load(npz_path)
    n, t = z["rewards"].shape
    pi_e = z["pi_e"].astype(np.float64)
    kw = dict(
        step_per_trajectory=int(t),
        action=z["actions"].reshape(-1).astype(np.int64),
        reward=z["rewards"].reshape(-1).astype(np.float64),
        pscore=z["pscore"],
        evaluation_policy_action_dist=np.broadcast_to(pi_e, (n * t, 2)).copy(),
        state_action_value_prediction=z["q_all"].reshape(n * t, 2).astype(np.float64),
        gamma=float(GAMMA),
    )
    out = {}
    for name, (_, cls) in ROWS.items():
        if cls is None:
            continue
        est = getattr(discrete, cls)()
        tracemalloc.start()
        est.estimate_policy_value(**kw)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        run_s, value = _timed(lambda: est.estimate_policy_value(**kw), repeats)
        out[name] = {"run_s": run_s, "value": float(value), "peak_bytes": int(peak), "class": cls}
    return out


def bench_scope(peer_python, data, repeats):
    if not peer_python:
        return None, "no --peer-python given"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.npz")
        np.savez(path, **{k: data[k] for k in ("actions", "rewards", "q_all", "pscore", "pi_e")})
        cmd = [peer_python, os.path.abspath(__file__), "--scope-worker", path, "--repeats", str(repeats)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return None, proc.stderr.strip().splitlines()[-1] if proc.stderr else f"exit {proc.returncode}"
    return json.loads(proc.stdout.strip().splitlines()[-1]), None


def _fmt_mem(b):
    return "-" if b is None else f"{b / 2**20:.0f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--peer-python", default=None, help="interpreter with scope-rl==0.2.1 installed")
    ap.add_argument("--scope-worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sizes", default=None, help="e.g. 100000x100,1000x10 (default: the full grid)")
    args = ap.parse_args()
    if args.scope_worker:
        print(json.dumps(scope_worker(args.scope_worker, args.repeats)))
        return

    import jax

    if args.sizes:
        sizes = [tuple(int(v) for v in item.split("x")) for item in args.sizes.split(",")]
    elif args.quick:
        sizes = [(1000, 10), (1000, 100)]
    else:
        sizes = [(n, t) for n in (1000, 10_000, 100_000) for t in (10, 100, 1000) if n * t <= 10_000_000]
    fns = jax_functions()
    results = {
        "device": str(jax.devices()[0]),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "jax_version": jax.__version__,
        "dtype": "float32",
        "gamma": GAMMA,
        "sizes": [],
    }
    for n, t in sizes:
        data = make_data(n, t)
        reps = args.repeats if n * t <= 1_000_000 else 3
        row = {"N": n, "T": t, "jax": bench_jax(data, reps, fns), "numpy": bench_numpy(data, reps)}
        row["scope_rl"], row["scope_rl_error"] = bench_scope(args.peer_python, data, min(reps, 3))
        for name, (np_name, _) in ROWS.items():
            a, b = row["jax"][name]["value"], row["numpy"][np_name]["value"]
            row["jax"][name]["max_rel_diff_vs_numpy"] = abs(a - b) / max(abs(b), 1e-6)
            if row["scope_rl"] and name in row["scope_rl"]:
                c = row["scope_rl"][name]["value"]
                row["jax"][name]["rel_diff_vs_scope"] = abs(a - c) / max(abs(c), 1e-6)
        results["sizes"].append(row)
        print(f"done N={n} T={t}", flush=True)
    results["load_average_at_end"] = os.getloadavg()

    lines = [
        f"OPE estimators, {results['device']}, jax {results['jax_version']}, float32, gamma = {GAMMA}, "
        f"{results['cpu_count']} CPUs (load average at start {results['load_average_at_start'][0]:.1f}). "
        "Times in ms: JAX run (after compile, median), JAX compile, numpy, SCOPE-RL 0.2.1; "
        "speed-ups = other / JAX; memory in MiB (JAX: compiled args + temps + outputs; others: tracemalloc peak). "
        "`diff` = |JAX - numpy| / |numpy| (both float32).",
        "",
        "| N | T | estimator | JAX ms | compile ms | numpy ms | SCOPE-RL ms | x numpy | x SCOPE-RL | JAX MiB | numpy MiB | SCOPE MiB | diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["sizes"]:
        for name, (np_name, _) in ROWS.items():
            j, p = row["jax"][name], row["numpy"][np_name]
            s = (row["scope_rl"] or {}).get(name)
            s_ms = "-" if s is None else f"{1e3 * s['run_s']:.1f}"
            s_x = "-" if s is None else f"{s['run_s'] / j['run_s']:.0f}"
            lines.append(
                f"| {row['N']} | {row['T']} | {name} | {1e3 * j['run_s']:.2f} | {1e3 * j['compile_s']:.0f} | "
                f"{1e3 * p['run_s']:.2f} | {s_ms} | "
                f"{p['run_s'] / j['run_s']:.1f} | {s_x} | "
                f"{_fmt_mem(j['peak_bytes'])} | {_fmt_mem(p['peak_bytes'])} | "
                f"{'-' if s is None else _fmt_mem(s['peak_bytes'])} | {j['max_rel_diff_vs_numpy']:.1e} |"
            )
    errs = {(r["N"], r["T"]): r["scope_rl_error"] for r in results["sizes"] if r["scope_rl_error"]}
    if errs:
        lines += ["", f"SCOPE-RL not run: {sorted(set(errs.values()))}"]
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "ope_speed.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(HERE, "results", "ope_speed.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
