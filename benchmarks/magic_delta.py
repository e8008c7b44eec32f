"""MAGIC's delta trade-off: RMSE of MAGIC at several delta against WDR and the direct method.

MAGIC (Thomas & Brunskill 2016) measures the bias of each j-step return g^(j) as its distance
from a (1 - delta) bootstrap interval of WDR, so a bias smaller than about one half-width of that
interval is invisible to it. This script shows what that means, on the two problems of the paper:

* ``model_win``: the maximum-likelihood model is right in structure (a good model): the direct
  method is accurate and MAGIC should follow it;
* ``model_fail``: the model is built over aliased observations, so its dynamics are badly wrong
  (a biased model): MAGIC should follow WDR.

For each problem, N (trajectories per dataset) and delta, ``datasets`` independent datasets are
drawn; the table reports RMSE / RMSE of the better of WDR and DM, and the RMSEs themselves.
Everything for one (problem, N) runs as one ``jax.jit(jax.vmap(...))`` program over datasets.

Usage: ``python benchmarks/magic_delta.py [--quick] [--out DIR] [--datasets D]``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

DELTAS = (0.02, 0.1, 0.3, 0.6, 0.9)


def run_case(name: str, n: int, datasets: int, deltas, seed: int = 0) -> dict:
    import jax
    import jax.numpy as jnp

    from offrl_jax.envs.empirical import logged_model_terms
    from offrl_jax.envs.suite import make_problem, problem_value
    from offrl_jax.ope.magic import magic

    problem = make_problem(name, dtype=jnp.float64)
    mdp = problem.mdp

    def one(key):
        k1, k2 = jax.random.split(key)
        tr, lr, (q, v) = logged_model_terms(k1, problem, n)
        out = [magic(k2, tr.rewards, lr, tr.mask, mdp.gamma, q, v, delta=d) for d in deltas]
        # Weight MAGIC puts on the short returns (j < T/2): where a biased model shows.
        short = jnp.asarray(out[0].j_steps) < problem.horizon // 2
        return (jnp.stack([o.estimate for o in out]), out[0].wdr, out[0].returns[0],
                jnp.stack([jnp.sum(jnp.where(short, o.weights, 0.0)) for o in out]))

    fn = jax.jit(jax.vmap(one))
    keys = jax.random.split(jax.random.key(seed), datasets)
    timing, (est, wdr, dm, short_w), _ = harness.time_jit(fn, keys, repeats=1)
    truth = float(problem_value(problem))

    def rmse(x):
        return float(jnp.sqrt(jnp.mean((x - truth) ** 2)))

    def se_of_rmse(x):  # delta method: sd((x - J)^2) / (2 RMSE sqrt(D))
        sq = (x - truth) ** 2
        r = jnp.sqrt(jnp.mean(sq))
        return float(jnp.std(sq, ddof=1) / (2 * r * jnp.sqrt(sq.shape[0])))

    return {
        "problem": name,
        "n": n,
        "datasets": datasets,
        "truth": truth,
        "rmse_wdr": rmse(wdr),
        "rmse_dm": rmse(dm),
        "rmse_magic": {str(d): rmse(est[:, i]) for i, d in enumerate(deltas)},
        "se_rmse_magic": {str(d): se_of_rmse(est[:, i]) for i, d in enumerate(deltas)},
        "short_weight": {str(d): float(jnp.mean(short_w[:, i])) for i, d in enumerate(deltas)},
        "timing": timing.as_dict(),
    }


def write(rows, deltas, meta, settings, out):
    head = ["problem", "N", "WDR", "DM"] + [f"MAGIC d={d}" for d in deltas] + [f"ratio d={d}" for d in deltas]
    table = []
    for r in rows:
        best = min(r["rmse_wdr"], r["rmse_dm"])
        table.append(
            [r["problem"], r["n"], f"{r['rmse_wdr']:.4f}", f"{r['rmse_dm']:.4f}"]
            + [f"{r['rmse_magic'][str(d)]:.4f} ± {r['se_rmse_magic'][str(d)]:.4f}" for d in deltas]
            + [f"{r['rmse_magic'][str(d)] / best:.2f}" for d in deltas]
        )
    lines = [
        "# MAGIC delta trade-off (RMSE over datasets; ratio = MAGIC / min(WDR, DM))",
        "",
        harness.describe(meta),
        "",
        *harness.markdown_table(head, table),
        "",
        "Mean weight MAGIC puts on j < T/2 (the short returns, where the model's bias enters):",
        "",
        *harness.markdown_table(
            ["problem", "N"] + [f"d={d}" for d in deltas],
            [[r["problem"], r["n"]] + [f"{r['short_weight'][str(d)]:.2f}" for d in deltas] for r in rows],
        ),
        "",
        f"Settings: {settings}. ± is the standard error of the RMSE (delta method).",
    ]
    harness.write_results("magic_delta", rows, lines, meta=meta, settings=settings, out=out, quick=settings["quick"])


def main():
    parser = harness.make_parser(__doc__)
    parser.add_argument("--datasets", type=int, default=128, help="independent datasets per (problem, N)")
    args = harness.parse_args(parser)
    import jax

    jax.config.update("jax_enable_x64", True)
    if args.quick:
        sizes, datasets, deltas = (100, 400), 24, (0.02, 0.1, 0.5)
    else:
        sizes, datasets, deltas = (100, 300, 1000, 3000), args.datasets, DELTAS
    settings = {"sizes": list(sizes), "datasets": datasets, "deltas": list(deltas), "quick": args.quick}
    meta = harness.metadata("float64")
    rows = []
    for name in ("model_win", "model_fail"):
        for n in sizes:
            rows.append(run_case(name, n, datasets, deltas))
            print(f"{name} N={n}: WDR {rows[-1]['rmse_wdr']:.4f} DM {rows[-1]['rmse_dm']:.4f} "
                  f"MAGIC {rows[-1]['rmse_magic']}", flush=True)
    write(rows, deltas, meta, settings, args.out)


if __name__ == "__main__":
    main()
