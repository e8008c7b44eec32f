"""Compile and run time of doubly robust with its overflow guard, by method and size.

DR runs its recursion in plain floats and switches to a scaled (mantissa x 2^exponent) recursion
when plain floats could over- or underflow (``offrl_jax.ope.doubly_robust``, "Overflow"). Under
``jit`` both forms are compiled (a ``lax.cond``); called eagerly on concrete arrays, the scaled form
is compiled only when the data need it. This script measures what that guard costs:

* ``compile``: ``lower(...).compile()`` of ``jax.jit(doubly_robust)`` per method (``scan``,
  ``associative``, ``weights``) and of WDR; the median over ``repeats`` fresh compiles
  (``jax.clear_caches()`` between them), wall seconds and process CPU seconds (CPU time is less
  sensitive to other work on the machine);
* ``floor``: the same for an unguarded plain recursion (a vmapped reverse ``lax.scan`` of
  V(t) = c_t + a_t V(t+1), written here), the cost of DR without any guard;
* ``eager first call``: ``doubly_robust`` (scan) called on numpy arrays in a fresh cache, which
  compiles its pieces as it runs;
* run times (median of repeats) on ordinary data (the plain path) and on the same data with a
  first ratio of e^50 in every row (above the plain-float bound: the scaled path).

Usage: python benchmarks/dr_compile.py [--quick] [--repeats R] [--out DIR].
Writes benchmarks/results/dr_compile[_quick].{json,md}.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

GAMMA = 0.99
METHODS = ("scan", "associative", "weights")


def make_data(n: int, t: int, scaled: bool, seed: int = 0) -> dict:
    """Random rewards and model terms; log-ratios log(0.4/0.5) or log(0.6/0.5) at random actions.
    ``scaled``: the first ratio of every row is e^50, above the plain-float bound e^44 of float32
    (the estimate, about e^50, is finite), so DR takes its scaled recursion."""
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 2, size=(n, t))
    lr = np.log(np.array([0.4, 0.6]))[actions] - np.log(0.5)
    if scaled:
        lr[:, 0] = 50.0
    f32 = lambda x: np.asarray(x, np.float32)  # noqa: E731
    return {
        "rewards": f32(rng.uniform(size=(n, t))),
        "log_ratios": f32(lr),
        "mask": np.ones((n, t), np.float32),
        "q_taken": f32(rng.normal(size=(n, t))),
        "v_hat": f32(rng.normal(size=(n, t))),
    }


def functions():
    import jax
    import jax.numpy as jnp

    from offrl_jax import ope

    def dr(method):
        return lambda r, lr, m, g, q, v: ope.doubly_robust(r, lr, m, g, q, v, method=method, validate=False)

    def floor(r, lr, m, g, q, v):
        # The unguarded plain recursion V(t) = c_t + a_t V(t+1), one reverse scan per row.
        def row(r, lr, m, q, v):
            rho = jnp.exp(lr)
            c, a = m * (v + rho * (r - q)), jnp.where(m > 0, g * rho, 1.0)
            step = lambda nxt, ca: (ca[0] + ca[1] * nxt, None)  # noqa: E731
            return jax.lax.scan(step, jnp.zeros((), r.dtype), (c, a), reverse=True)[0]

        return jnp.mean(jax.vmap(row)(r, lr, m, q, v))

    fns = {f"dr_{m}": dr(m) for m in METHODS}
    fns["wdr"] = lambda r, lr, m, g, q, v: ope.weighted_doubly_robust(r, lr, m, g, q, v, validate=False)
    fns["floor"] = floor
    return fns


def compile_times(fn, args, repeats: int) -> dict:
    """Median wall and CPU seconds of ``repeats`` fresh compiles of ``jax.jit(fn)``."""
    import jax

    wall, cpu = [], []
    for _ in range(repeats):
        jax.clear_caches()
        c0 = time.process_time()
        _, seconds = harness.compile_jit(jax.jit(fn), *args)
        cpu.append(time.process_time() - c0)
        wall.append(seconds)
    return {"compile_s": statistics.median(wall), "compile_cpu_s": statistics.median(cpu)}


def run_size(n: int, t: int, repeats: int, compile_repeats: int) -> list:
    import jax
    import jax.numpy as jnp

    from offrl_jax import ope

    rows = []
    data = {kind: make_data(n, t, kind == "scaled") for kind in ("plain", "scaled")}
    order = ("rewards", "log_ratios", "mask")
    # Eager first call on numpy arrays (fresh caches): what a script calling DR once pays.
    jax.clear_caches()
    d = data["plain"]
    eager = harness.time_calls(
        lambda: ope.doubly_robust(*(d[k] for k in order), GAMMA, d["q_taken"], d["v_hat"], validate=False), repeats=1
    )[0]
    for name, fn in functions().items():
        row = {"n": n, "t": t, "estimator": name}
        args = {}
        for kind, dd in data.items():
            args[kind] = [jnp.asarray(dd[k]) for k in order]
            args[kind] += [jnp.asarray(GAMMA, jnp.float32), jnp.asarray(dd["q_taken"]), jnp.asarray(dd["v_hat"])]
        row.update(compile_times(fn, args["plain"], compile_repeats))
        for kind in ("plain", "scaled"):
            timing, value, _ = harness.time_jit(fn, *args[kind], repeats=repeats)
            row[f"run_{kind}_s"] = timing.run_s
            row[f"value_{kind}"] = float(value)
        if name == "dr_scan":
            row["eager_first_call_s"] = eager.first_call_s
        rows.append(row)
    return rows


def markdown(rows: list, meta: dict) -> list:
    lines = [
        "# DR overflow guard: compile and run time",
        "",
        harness.describe(meta),
        "",
        "Compile: median of fresh compiles of the jitted estimator (wall s, and process CPU s). Run: median ms on "
        "ordinary data (`plain`: the plain recursion) and on the same data with a first ratio of e^50 per row "
        "(`scaled`: above the plain-float bound, DR runs its scaled recursion). `floor`: an unguarded plain scan "
        "(no overflow handling). "
        "`eager`: first call of `doubly_robust` on numpy arrays with empty caches.",
        "",
    ]
    table = []
    for r in rows:
        eager = f"{r['eager_first_call_s']:.2f}" if "eager_first_call_s" in r else ""
        table.append([
            f"{r['n']}x{r['t']}", r["estimator"], f"{r['compile_s']:.2f}", f"{r['compile_cpu_s']:.2f}", eager,
            f"{1e3 * r['run_plain_s']:.2f}", f"{1e3 * r['run_scaled_s']:.2f}",
        ])
    header = ["N x T", "estimator", "compile s", "compile CPU s", "eager first call s", "run ms (plain)",
              "run ms (scaled)"]
    return lines + harness.markdown_table(header, table, "llrrrrr")


def main(argv=None) -> None:
    parser = harness.make_parser(__doc__, quick_repeats=3, repeats=5)
    args = harness.parse_args(parser, argv)
    sizes = [(4, 10_000), (1000, 100)] if args.quick else [(4, 10_000), (1000, 100), (100_000, 100), (1000, 1000)]
    compile_repeats = 1 if args.quick else 3
    rows = []
    for n, t in sizes:
        rows.extend(run_size(n, t, args.repeats, compile_repeats))
    meta = harness.metadata("float32")
    settings = {"sizes": sizes, "repeats": args.repeats, "compile_repeats": compile_repeats, "gamma": GAMMA}
    harness.write_results("dr_compile", rows, markdown(rows, meta), meta=meta, settings=settings, out=args.out,
                          quick=args.quick)


if __name__ == "__main__":
    main()
