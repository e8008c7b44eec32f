"""Speed of the OPE confidence methods and MAGIC: compile time apart, median run time.

Cases (float32 by default, ``--x64`` for float64):

* ``bootstrap`` (percentile and BCa) of the mean of N per-trajectory statistics, B = 1000
  resamples in one jitted, vmapped call, N in {10^3, 10^4, 10^5} (``--quick``: 10^3, 10^4). The
  target is well under a second for N = 10^4 after compile.
* ``bootstrap WIS``: a self-normalised, dataset-level estimator (weighted IS from the
  trajectories' log weights and returns) renormalised inside each resample, B = 1000.
* ``student_t``, ``hoeffding``, ``empirical_bernstein``, ``hcope`` on N samples.
* ``magic``: N trajectories of T = 20 steps, J = {-1, ..., 19}, 200 bootstrap resamples.

Compile time (``lower().compile()``) is reported apart from the first call and the run time, the
median of ``--repeats`` calls under ``jax.block_until_ready``.

Usage: ``python benchmarks/ope_confidence_speed.py [--quick] [--repeats R] [--x64] [--out DIR]``.
Writes ``benchmarks/results/ope_confidence_speed[_quick].{json,md}``.
"""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def main():
    parser = harness.make_parser(__doc__, quick_repeats=3, repeats=7)
    parser.add_argument("--x64", action="store_true", help="float64 instead of float32")
    args = harness.parse_args(parser)
    if args.x64:
        jax.config.update("jax_enable_x64", True)
    from offrl_jax.ope import (
        bootstrap_interval,
        empirical_bernstein_bound,
        hcope_lower_bound,
        hoeffding_bound,
        student_t_interval,
    )
    from offrl_jax.ope.magic import magic

    dtype = jnp.float64 if args.x64 else jnp.float32
    repeats = args.repeats
    meta = harness.metadata(jnp.dtype(dtype).name)
    sizes = (1_000, 10_000) if args.quick else (1_000, 10_000, 100_000)
    rows = []
    key = jax.random.key(0)

    def record(case, n, extra, fn, fn_args):
        timing, _, _ = harness.time_jit(fn, *fn_args, repeats=repeats)
        rows.append(dict(case=case, n=n, detail=extra, **timing.as_dict()))
        print(f"{case:22s} n={n:>7d} {extra:28s} compile {timing.compile_s:8.3f} s   run {timing.run_s:8.4f} s",
              flush=True)

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

    lines = [
        "# OPE confidence methods and MAGIC: run time after compile",
        "",
        f"{harness.describe(meta)}; median of {repeats} runs; compile = lower + compile (first call apart).",
        "",
    ]
    lines += harness.markdown_table(
        ["case", "N", "detail", "compile (s)", "run (s)"],
        [[r["case"], r["n"], r["detail"], f"{r['compile_s']:.3f}", f"{r['run_s']:.4f}"] for r in rows],
        align="lrlrr",
    )
    settings = dict(sizes=list(sizes), repeats=repeats, quick=args.quick, x64=args.x64, num_resamples=1000)
    harness.write_results("ope_confidence_speed", rows, lines, meta=meta, settings=settings, out=args.out,
                          quick=args.quick)


if __name__ == "__main__":
    main()
