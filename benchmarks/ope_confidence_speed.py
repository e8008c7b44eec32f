"""Speed of the OPE confidence methods and MAGIC: compile time apart, median run time.

Cases (float32 by default, ``--x64`` for float64):

* ``bootstrap`` (percentile and BCa) of the mean of N per-trajectory statistics, B = 1000
  resamples in one jitted, vmapped call, N in {10^3, 10^4, 10^5} (``--quick``: 10^3, 10^4). The
  target is well under a second for N = 10^4 after compile.
* ``bootstrap WIS``: a self-normalised, dataset-level estimator (weighted IS from the
  trajectories' log weights and returns) renormalised inside each resample, B = 1000.
* ``student_t``, ``hoeffding``, ``empirical_bernstein``, ``hcope`` on N samples.
* ``magic``: N trajectories of T = 20 steps, J = {-1, ..., 19}, 200 bootstrap resamples.

The first call is reported as compile time (it includes compilation and one run); the run time is
the median of ``--repeats`` calls under ``jax.block_until_ready``.

Usage: ``python benchmarks/ope_confidence_speed.py [--quick] [--repeats R] [--x64]``.
Writes ``benchmarks/results/ope_confidence_speed.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _time(fn, args, repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - t0
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        runs.append(time.perf_counter() - t0)
    return compile_s, statistics.median(runs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--x64", action="store_true", help="float64 instead of float32")
    args = parser.parse_args()
    if args.x64:
        jax.config.update("jax_enable_x64", True)
    from offrl_jax.ope.confidence import (
        bootstrap_interval,
        empirical_bernstein_bound,
        hcope_lower_bound,
        hoeffding_bound,
        student_t_interval,
    )
    from offrl_jax.ope.magic import magic

    dtype = jnp.float64 if args.x64 else jnp.float32
    repeats = args.repeats or (3 if args.quick else 7)
    sizes = (1_000, 10_000) if args.quick else (1_000, 10_000, 100_000)
    rows = []
    key = jax.random.key(0)

    def record(case, n, extra, fn, fn_args):
        compile_s, run_s = _time(fn, fn_args, repeats)
        rows.append(dict(case=case, n=n, detail=extra, compile_s=compile_s, run_s=run_s))
        print(f"{case:22s} n={n:>7d} {extra:28s} compile {compile_s:8.3f} s   run {run_s:8.4f} s", flush=True)

    for n in sizes:
        k1, k2 = jax.random.split(jax.random.fold_in(key, n))
        log_w = 0.5 * jax.random.normal(k1, (n,), dtype)
        returns = jax.random.uniform(k2, (n,), dtype)
        x = jnp.exp(log_w) * returns
        for method in ("percentile", "bca"):
            f = jax.jit(lambda k, s, m=method: bootstrap_interval(k, s, num_resamples=1000, method=m))
            record(f"bootstrap {method}", n, "B = 1000, mean", f, (key, x))

        def wis(d):
            w = jax.nn.softmax(d[0])
            return jnp.sum(w * d[1])

        f = jax.jit(lambda k, lw, g: bootstrap_interval(k, (lw, g), estimator=wis, num_resamples=1000))
        record("bootstrap WIS", n, "B = 1000, renormalised", f, (key, log_w, returns))
        record("student_t", n, "two-sided", jax.jit(student_t_interval), (x,))
        hi = float(jnp.max(x)) + 1.0
        record("hoeffding", n, "lower", jax.jit(lambda s: hoeffding_bound(s, 0.0, hi)), (x,))
        record("empirical_bernstein", n, "lower", jax.jit(lambda s: empirical_bernstein_bound(s, 0.0, hi)), (x,))
        f = jax.jit(lambda k, lw, g: hcope_lower_bound(k, lw, g, 0.0, 1.0))
        record("hcope", n, "split 0.05, 64 + n_pre candidates", f, (key, log_w, returns))

    t = 20
    for n in ((1_000,) if args.quick else (1_000, 10_000)):
        ks = jax.random.split(jax.random.fold_in(key, 7 * n), 4)
        rewards = jax.random.normal(ks[0], (n, t), dtype)
        log_ratios = 0.3 * jax.random.normal(ks[1], (n, t), dtype)
        q = jax.random.normal(ks[2], (n, t), dtype)
        v = q + 0.1 * jax.random.normal(ks[3], (n, t), dtype)
        mask = jnp.ones((n, t), dtype)
        f = jax.jit(lambda k, r, lr, m, qq, vv: magic(k, r, lr, m, 0.99, qq, vv))
        record("magic", n, f"T = {t}, {t + 1} j-steps, kappa = 200", f, (key, rewards, log_ratios, mask, q, v))

    meta = dict(
        device=str(jax.devices()[0]),
        platform=platform.platform(),
        processor=platform.processor(),
        cpu_count=os.cpu_count(),
        jax_version=jax.__version__,
        dtype=jnp.dtype(dtype).name,
        repeats=repeats,
        quick=args.quick,
    )
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "ope_confidence_speed.json"), "w") as fh:
        json.dump(dict(meta=meta, rows=rows), fh, indent=2)
    lines = [
        "# OPE confidence methods and MAGIC: run time after compile",
        "",
        f"device {meta['device']} ({meta['cpu_count']} CPUs), jax {meta['jax_version']}, {meta['dtype']}, "
        f"median of {repeats} runs; compile = first call (compile + one run).",
        "",
        "| case | N | detail | compile (s) | run (s) |",
        "|---|---:|---|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['case']} | {r['n']} | {r['detail']} | {r['compile_s']:.3f} | {r['run_s']:.4f} |")
    with open(os.path.join(RESULTS, "ope_confidence_speed.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
