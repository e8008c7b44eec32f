"""Speed and memory of the OPE estimators: offrl_jax vs plain numpy vs SCOPE-RL 0.2.1.

For N in {1e3, 1e4, 1e5} and T in {10, 100, 1000} with N * T <= 1e7: each estimator's run time
after compile (median of repeats, ``jax.block_until_ready``), its compile time separately, the
numpy version of ``benchmarks/numpy_ope.py`` side by side (same numbers checked), and SCOPE-RL's
estimators (TIS, PDIS, DR and their self-normalised versions) on the same inputs when SCOPE-RL
can be imported (``--peer-python`` names an interpreter that has it; it runs in a subprocess).
Peak memory: the compiled program's memory analysis for JAX (arguments + temporaries + outputs),
``tracemalloc`` for numpy and SCOPE-RL.

A second part ("from action distributions") starts from the arrays a researcher holds: target
action distributions ``[N, T, A]``, logged actions, behaviour propensities at the logged actions
and a Q-hat table ``[N, T, A]`` (default N = 1e5, T = 100, A = 4; ``--quick``: N = 2e4). Per
estimator: ``offrl_jax.ope.from_distributions`` end to end from numpy arrays with its value
checks (``e2e``), the same without the checks, from device-resident arrays, its compile time
apart; SCOPE-RL 0.2.1 on the same arrays; and the *floors*: a jitted sum over exactly the inputs
the estimator reads, i.e. the time to read them once (from device arrays, and called on the
numpy arrays, which adds copying them to the device), and numpy's sums over the numpy inputs
(one read of the researcher's arrays, the floor of ``e2e``, which reads them in place). ``all``
is every estimator from one ``estimate_all`` program.

Usage: python benchmarks/ope_speed.py [--quick] [--repeats R] [--sizes 100000x100,...]
[--dist-sizes 100000x100x4,...] [--part all|arrays|distributions] [--peer-python PYTHON]
(``--peer-python`` defaults to ``$OFFRL_JAX_PEER_PYTHON``). Writes benchmarks/results/ope_speed[_quick].{json,md}.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

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
    import jax.numpy as jnp

    args = [jnp.asarray(data[k]) for k in ("rewards", "log_ratios", "mask")]
    args += [jnp.asarray(GAMMA, jnp.float32), jnp.asarray(data["q_taken"]), jnp.asarray(data["v_hat"])]
    out = {}
    for name, f in fns.items():
        timing, value, compiled = harness.time_jit(f, *args, repeats=repeats)
        out[name] = {**timing.as_dict(), "value": float(value), "peak_bytes": harness.compiled_bytes(compiled)}
    return out


def bench_numpy(data, repeats):
    import numpy_ope

    args = (data["rewards"], data["log_ratios"], data["mask"], np.float32(GAMMA), data["q_taken"], data["v_hat"])
    out = {}
    for name, f in numpy_ope.ESTIMATORS.items():
        _, peak = harness.python_peak_bytes(f, *args)
        timing, value = harness.time_calls(f, *args, repeats=repeats)
        out[name] = {**timing.as_dict(), "value": float(value), "peak_bytes": peak}
    return out


# ----------------------------------------------------------------------------------------------
# SCOPE-RL worker (runs inside the peer interpreter; imports numpy, scope_rl and the harness).
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
        _, peak = harness.python_peak_bytes(lambda: est.estimate_policy_value(**kw))
        timing, value = harness.time_calls(lambda: est.estimate_policy_value(**kw), repeats=repeats)
        out[name] = {**timing.as_dict(), "value": float(value), "peak_bytes": peak, "class": cls}
    return out


def bench_scope(peer_python, data, repeats):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.npz")
        np.savez(path, **{k: data[k] for k in ("actions", "rewards", "q_all", "pscore", "pi_e")})
        return harness.run_peer(peer_python, os.path.abspath(__file__), ["--scope-worker", path, "--repeats", str(repeats)])


# ----------------------------------------------------------------------------------------------
# From action distributions.
# ----------------------------------------------------------------------------------------------
DIST_ROWS = {  # ours -> SCOPE-RL class
    "is": "TrajectoryWiseImportanceSampling",
    "pdis": "PerDecisionImportanceSampling",
    "wis": "SelfNormalizedTIS",
    "wpdis": "SelfNormalizedPDIS",
    "dm": None,
    "dr": "DoublyRobust",
    "wdr": "SelfNormalizedDR",
    "all": None,
}
_READS_Q = ("dm", "dr", "wdr", "all")


def make_dist_data(n: int, t: int, a: int, seed: int = 0) -> dict:
    """Target pi(.|s_t) Dirichlet(1) per step, behaviour uniform, rewards U(0, 1), Q-hat N(0, 1)."""
    rng = np.random.default_rng(seed)
    return {
        "rewards": rng.uniform(size=(n, t)).astype(np.float32),
        "actions": rng.integers(0, a, size=(n, t)).astype(np.int32),
        "mask": np.ones((n, t), np.float32),
        "target_probs": rng.dirichlet(np.ones(a), size=(n, t)).astype(np.float32),
        "behavior_probs": np.full((n, t), 1.0 / a, np.float32),
        "q_values": rng.normal(size=(n, t, a)).astype(np.float32),
    }


def bench_dist_jax(data, repeats):
    import jax
    import jax.numpy as jnp

    from offrl_jax.ope import from_distributions as fd

    dev = {k: jax.device_put(v) for k, v in data.items()}
    keys = ("rewards", "actions", "mask", "target_probs", "behavior_probs", "q_values")
    floor_fns = {
        False: jax.jit(lambda r, a, m, p, b: jnp.sum(r) + jnp.sum(a) + jnp.sum(m) + jnp.sum(p) + jnp.sum(b)),
        True: jax.jit(lambda r, a, m, p, b, q: jnp.sum(r) + jnp.sum(a) + jnp.sum(m) + jnp.sum(p) + jnp.sum(b) + jnp.sum(q)),
    }
    floors, host_floors, np_floors = {}, {}, {}
    for reads_q, f in floor_fns.items():
        args = [dev[k] for k in keys[: 6 if reads_q else 5]]
        floors[reads_q] = harness.time_jit(f, *args, repeats=repeats)[0].as_dict()
        host = [data[k] for k in keys[: 6 if reads_q else 5]]
        host_floors[reads_q] = harness.time_calls(lambda: f(*host), repeats=repeats)[0].as_dict()
        np_floors[reads_q] = harness.time_calls(lambda: [x.sum() for x in host], repeats=repeats)[0].as_dict()

    def call(src, name, validate):
        est = tuple(fd.ESTIMATORS_FROM_DISTRIBUTIONS) if name == "all" else (name,)
        q = src["q_values"] if name in _READS_Q else None
        return lambda: fd.estimate_all(
            src["rewards"], src["actions"], src["mask"], src["target_probs"], GAMMA,
            behavior_probs=src["behavior_probs"], q_values=q, estimators=est, validate=validate,
        )

    out = {}
    for name in DIST_ROWS:
        row = {}
        for label, src, validate in (("e2e", data, True), ("novalidate", data, False), ("device", dev, False)):
            timing, value = harness.time_calls(call(src, name, validate), repeats=repeats)
            row[label] = timing.as_dict()
        res = value.as_dict()
        row["value"] = float(res[name]) if name != "all" else {k: float(v) for k, v in res.items()}
        row["compile_s"] = row["e2e"]["first_call_s"] - row["e2e"]["run_s"]
        row["floor"] = floors[name in _READS_Q]
        row["floor_host"] = host_floors[name in _READS_Q]
        row["floor_numpy"] = np_floors[name in _READS_Q]
        out[name] = row
    return out


def scope_dist_worker(npz_path: str, repeats: int) -> dict:
    from scope_rl.ope import discrete

    z = np.load(npz_path)
    n, t, a = z["q_values"].shape
    kw = dict(
        step_per_trajectory=int(t),
        action=z["actions"].reshape(-1).astype(np.int64),
        reward=z["rewards"].reshape(-1).astype(np.float64),
        pscore=z["behavior_probs"].reshape(-1).astype(np.float64),
        evaluation_policy_action_dist=z["target_probs"].reshape(n * t, a).astype(np.float64),
        state_action_value_prediction=z["q_values"].reshape(n * t, a).astype(np.float64),
        gamma=float(GAMMA),
    )
    out = {}
    for name, cls in DIST_ROWS.items():
        if cls is None:
            continue
        est = getattr(discrete, cls)()
        timing, value = harness.time_calls(lambda: est.estimate_policy_value(**kw), repeats=repeats)
        out[name] = {**timing.as_dict(), "value": float(value), "class": cls}
    return out


def bench_dist_scope(peer_python, data, repeats):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "dist.npz")
        np.savez(path, **data)
        return harness.run_peer(
            peer_python, os.path.abspath(__file__), ["--scope-dist-worker", path, "--repeats", str(repeats)]
        )


def run_distributions(sizes, repeats, peer):
    rows = []
    for n, t, a in sizes:
        data = make_dist_data(n, t, a)
        row = {"N": n, "T": t, "A": a, "jax": bench_dist_jax(data, repeats)}
        if peer:
            row["scope_rl"], row["scope_rl_error"] = bench_dist_scope(peer, data, min(repeats, 3))
        else:
            row["scope_rl"], row["scope_rl_error"] = None, "no --peer-python"
        rows.append(row)
        print(f"done distributions N={n} T={t} A={a}", flush=True)
    lines = [
        "",
        "## From action distributions: arrays -> estimate",
        "",
        "Times in ms (median). `e2e`: offrl_jax from numpy arrays, value checks included (`validate=True`); "
        "`no checks`: without them; `device`: from arrays already on the device, no checks; `compile`: first call "
        "minus a run. `floor`: a jitted sum over the inputs the estimator reads, from device arrays, and "
        "`host floor`: the same sum called on the numpy arrays (it includes copying them to the device, "
        "the copy e2e avoids by reading numpy buffers in place); `numpy floor`: one read of the numpy "
        "inputs the estimator reads (numpy sums over them), the floor of `e2e`. `x SCOPE-RL` = SCOPE-RL / e2e; "
        "`device / floor`; `e2e / numpy floor`. `diff` = relative difference from SCOPE-RL's value.",
        "",
    ]
    table = []
    for row in rows:
        for name in DIST_ROWS:
            j = row["jax"][name]
            s = (row["scope_rl"] or {}).get(name)
            e2e, nov, dev = (1e3 * j[k]["run_s"] for k in ("e2e", "novalidate", "device"))
            fl = 1e3 * j["floor"]["run_s"]
            hfl = 1e3 * j["floor_host"]["run_s"]
            nfl = 1e3 * j["floor_numpy"]["run_s"]
            diff = "-" if s is None else f"{abs(j['value'] - s['value']) / max(abs(s['value']), 1e-12):.1e}"
            table.append([
                row["N"], row["T"], row["A"], name, f"{e2e:.1f}", f"{nov:.1f}", f"{dev:.1f}",
                f"{1e3 * j['compile_s']:.0f}", "-" if s is None else f"{1e3 * s['run_s']:.0f}",
                "-" if s is None else f"{1e3 * s['run_s'] / e2e:.1f}", f"{fl:.1f}", f"{hfl:.1f}",
                f"{nfl:.1f}", f"{dev / fl:.2f}", f"{e2e / nfl:.2f}", diff,
            ])
    lines += harness.markdown_table(
        ["N", "T", "A", "estimator", "e2e ms", "no checks ms", "device ms", "compile ms", "SCOPE-RL ms",
         "x SCOPE-RL", "floor ms", "host floor ms", "numpy floor ms", "device / floor", "e2e / numpy floor", "diff"],
        table,
    )
    errs = sorted({r["scope_rl_error"] for r in rows if r["scope_rl_error"]})
    if errs:
        lines += ["", f"SCOPE-RL not run: {errs}"]
    return rows, lines


def _fmt_mem(b):
    return "-" if b is None else f"{b / 2**20:.0f}"


def main():
    ap = harness.make_parser(__doc__, quick_repeats=5, repeats=5)
    ap.add_argument("--scope-worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--scope-dist-worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--sizes", default=None, help="e.g. 100000x100,1000x10 (default: the full grid)")
    ap.add_argument("--dist-sizes", default=None, help="N x T x A of the action-distribution part, e.g. 100000x100x4")
    ap.add_argument("--part", default="all", choices=("all", "arrays", "distributions"))
    args = harness.parse_args(ap)
    if args.scope_worker:
        harness.emit_peer_result(scope_worker(args.scope_worker, args.repeats))
        return
    if args.scope_dist_worker:
        harness.emit_peer_result(scope_dist_worker(args.scope_dist_worker, args.repeats))
        return

    if args.sizes:
        sizes = [tuple(int(v) for v in item.split("x")) for item in args.sizes.split(",")]
    elif args.quick:
        sizes = [(1000, 10), (1000, 100)]
    else:
        sizes = [(n, t) for n in (1000, 10_000, 100_000) for t in (10, 100, 1000) if n * t <= 10_000_000]
    if args.part == "distributions":
        sizes = []
    if args.dist_sizes:
        dist_sizes = [tuple(int(v) for v in item.split("x")) for item in args.dist_sizes.split(",")]
    else:
        dist_sizes = [(20_000, 100, 4)] if args.quick else [(100_000, 100, 4)]
    if args.part == "arrays":
        dist_sizes = []
    fns = jax_functions()
    meta = harness.metadata("float32")
    peer, peer_reason = harness.resolve_peer_python(args.peer_python)
    rows = []
    for n, t in sizes:
        data = make_data(n, t)
        reps = args.repeats if n * t <= 1_000_000 else min(args.repeats, 3)
        row = {"N": n, "T": t, "jax": bench_jax(data, reps, fns), "numpy": bench_numpy(data, reps)}
        if peer:
            row["scope_rl"], row["scope_rl_error"] = bench_scope(peer, data, min(reps, 3))
        else:
            row["scope_rl"], row["scope_rl_error"] = None, peer_reason
        for name, (np_name, _) in ROWS.items():
            a, b = row["jax"][name]["value"], row["numpy"][np_name]["value"]
            row["jax"][name]["max_rel_diff_vs_numpy"] = abs(a - b) / max(abs(b), 1e-6)
            if row["scope_rl"] and name in row["scope_rl"]:
                c = row["scope_rl"][name]["value"]
                row["jax"][name]["rel_diff_vs_scope"] = abs(a - c) / max(abs(c), 1e-6)
        rows.append(row)
        print(f"done N={n} T={t}", flush=True)

    lines = [
        "# ope_speed: OPE estimators, offrl_jax vs numpy vs SCOPE-RL 0.2.1",
        "",
        f"{harness.describe(meta)}; gamma = {GAMMA}. "
        "Times in ms: JAX run (after compile, median), JAX compile (lower + compile), numpy, SCOPE-RL 0.2.1; "
        "speed-ups = other / JAX; memory in MiB (JAX: compiled args + temps + outputs; others: tracemalloc peak). "
        "`diff` = |JAX - numpy| / |numpy| (both float32).",
        "",
    ]
    table = []
    for row in rows:
        for name, (np_name, _) in ROWS.items():
            j, p = row["jax"][name], row["numpy"][np_name]
            s = (row["scope_rl"] or {}).get(name)
            table.append([
                row["N"], row["T"], name, f"{1e3 * j['run_s']:.2f}", f"{1e3 * j['compile_s']:.0f}",
                f"{1e3 * p['run_s']:.2f}", "-" if s is None else f"{1e3 * s['run_s']:.1f}",
                f"{p['run_s'] / j['run_s']:.1f}", "-" if s is None else f"{s['run_s'] / j['run_s']:.0f}",
                _fmt_mem(j["peak_bytes"]), _fmt_mem(p["peak_bytes"]), "-" if s is None else _fmt_mem(s["peak_bytes"]),
                f"{j['max_rel_diff_vs_numpy']:.1e}",
            ])
    lines += harness.markdown_table(
        ["N", "T", "estimator", "JAX ms", "compile ms", "numpy ms", "SCOPE-RL ms", "x numpy", "x SCOPE-RL",
         "JAX MiB", "numpy MiB", "SCOPE MiB", "diff"],
        table,
    )
    errs = sorted({r["scope_rl_error"] for r in rows if r["scope_rl_error"]})
    if errs:
        lines += ["", f"SCOPE-RL not run: {errs}"]
    if not rows:
        lines = lines[:3]
    dist_rows = []
    if dist_sizes:
        dist_rows, dist_lines = run_distributions(dist_sizes, min(args.repeats, 5), peer)
        lines += dist_lines
    settings = {"gamma": GAMMA, "sizes": [list(s) for s in sizes], "dist_sizes": [list(s) for s in dist_sizes],
                "repeats": args.repeats, "peer_python": peer, "quick": args.quick, "part": args.part}
    results = {"arrays": rows, "distributions": dist_rows}
    harness.write_results("ope_speed", results, lines, meta=meta, settings=settings, out=args.out, quick=args.quick)


if __name__ == "__main__":
    main()
