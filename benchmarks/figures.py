"""Regenerates the README's figures (``docs/figures/*.png``) from the benchmarks' JSON results.

Usage (from the repository root, after the benchmarks have run, e.g. ``offrl-jax bench --quick``)::

    python benchmarks/figures.py --quick          # reads benchmarks/results/<name>_quick.json
    python benchmarks/figures.py                  # reads the full-size <name>.json

Each figure is drawn from one benchmark's JSON (no benchmark is re-run) and written atomically
(temporary file, then ``os.replace``); a figure whose JSON is missing is skipped with a note.

* ``ope_speed.png`` (benchmarks/ope_speed.py): run time per estimator, offrl_jax vs numpy vs SCOPE-RL;
* ``fitted_seeds.png`` (benchmarks/fitted_speed.py): FQE seed-steps per second when S seeds train
  as one vmapped program, against d3rlpy's DiscreteFQE update;
* ``thinks_vs_does.png`` (benchmarks/linear_shift.py): LSPI and linear FQI, what they think their
  greedy policy is worth vs its exact value, on narrow to broad data;
* ``horizon_variance.png`` (benchmarks/horizon_variance.py): relative RMSE of each estimator against
  the exact value at two horizons;
* ``ope_accuracy.png`` (benchmarks/ope_accuracy.py): log relative RMSE against log N of every
  estimator, one panel per problem (suite problems with exact truths, gymnax tasks with
  Monte-Carlo truths). It is drawn from the full-size ``ope_accuracy.json`` (written by
  ``python benchmarks/ope_accuracy.py --medium`` on a CPU, or the full size on an accelerator)
  whenever that file exists, even with ``--quick``: the quick run has one N per problem, no curve.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable, Dict, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

FIGURES_DIR = os.path.join(os.path.dirname(HERE), "docs", "figures")


def _load(results: str, name: str, quick: bool) -> Optional[dict]:
    path = harness.result_stem(name, results, quick) + ".json"
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _source(ax, doc: dict) -> None:
    meta = doc.get("meta", {})
    text = f"{doc['benchmark']}: {meta.get('device_kind', '?')}, {meta.get('cpu_count', '?')} CPUs, {meta.get('date', '')[:10]}"
    ax.figure.text(0.01, 0.01, text, fontsize=6, color="gray")


def ope_speed(doc: dict, plt) -> object:
    """Median run time (ms, log scale) per estimator at the largest N x T."""
    row = max(doc["results"], key=lambda r: r["N"] * r["T"])
    names = [n for n in ("is", "pdis", "wis", "wpdis", "dr", "wdr") if n in row["jax"] or n in row["numpy"]]
    libs = [("offrl_jax (jit)", row["jax"]), ("numpy", row["numpy"]), ("SCOPE-RL", row.get("scope_rl") or {})]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.27
    for j, (label, times) in enumerate(libs):
        xs = [i + (j - 1) * width for i, n in enumerate(names) if n in times]
        ys = [1e3 * times[n]["run_s"] for n in names if n in times]
        ax.bar(xs, ys, width, label=label)
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), [n.upper() for n in names])
    ax.set(ylabel="ms per call (median)", title=f"OPE estimators, N = {row['N']} trajectories x T = {row['T']} steps")
    ax.legend(fontsize=8)
    _source(ax, doc)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def fitted_seeds(doc: dict, plt) -> object:
    """Seed-steps per second vs number of seeds in one vmapped program, per network size."""
    rows = [r for r in doc["results"]["vmap"] if r["mode"] == "one vmap"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for hidden in sorted({tuple(r["hidden"]) for r in rows}):
        pts = sorted((r["seeds"], r["seed_steps_per_s"]) for r in rows if tuple(r["hidden"]) == hidden)
        ax.plot(*zip(*pts), "o-", label=f"offrl_jax FQE, MLP {'x'.join(map(str, hidden))}")
    d3 = doc["results"].get("d3rlpy") or {}
    if d3.get("update_steps_per_s"):
        label = f"d3rlpy {d3.get('d3rlpy_version', '')} DiscreteFQE update (2x256)"
        ax.axhline(d3["update_steps_per_s"], color="C3", ls="--", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set(xlabel="seeds trained as one program (jax.vmap)", ylabel="seed-steps / s",
           title="FQE on CartPole data: seeds scaling")
    ax.legend(fontsize=7)
    _source(ax, doc)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def thinks_vs_does(doc: dict, plt) -> object:
    """LSPI and linear FQI: thinks vs does per iteration, one panel per dataset."""
    res = doc["results"]
    names = list(res["curves"]["lspi"])
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.5), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], names):
        for j, learner in enumerate(("lspi", "fqi")):
            c = res["curves"][learner][name]
            ax.plot(c["thinks"], color=f"C{j}", label=f"{learner.upper()} thinks")
            ax.plot(c["does"], color=f"C{j}", ls=":", label=f"{learner.upper()} does (exact)")
        ax.axhline(res["optimal"], color="k", ls="--", lw=1, label="J(pi*)")
        ax.set(title=f"{name}, coverage {res['coverage'][name]:.2f}", xlabel="iteration k")
    axes[0][0].set_ylabel("value at the start states")
    axes[0][0].legend(fontsize=7)
    _source(axes[0][0], doc)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def horizon_variance(doc: dict, plt) -> object:
    """Relative RMSE (log scale) per estimator at each horizon."""
    rows = doc["results"]
    names = list(rows[0]["relative_rmse"])
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    width = 0.8 / len(rows)
    for j, row in enumerate(rows):
        ys = [row["relative_rmse"][n] or float("nan") for n in names]
        xs = [i + (j - (len(rows) - 1) / 2) * width for i in range(len(names))]
        ax.bar(xs, ys, width, label=f"T = {row['horizon']}")
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    ax.set(ylabel="RMSE / |J_T|", title="Error against the exact value grows with the horizon (Garnet, gamma = 1)")
    ax.legend(fontsize=8)
    _source(ax, doc)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


_ESTIMATOR_STYLE = {  # one colour and marker per estimator in every panel
    "IS": ("C0", "o"), "PDIS": ("C1", "v"), "WIS": ("C2", "s"), "WPDIS": ("C3", "^"), "DM": ("C4", "D"),
    "DR": ("C5", "<"), "WDR": ("C6", ">"), "MAGIC": ("C7", "P"), "MIS": ("C8", "X"),
}


def ope_accuracy(doc: dict, plt) -> object:
    """Relative RMSE of the target's estimate (log scale) against N at the standard T, a panel per problem."""
    from matplotlib.ticker import NullFormatter

    res = doc["results"]
    names = list(res)
    cols = 4
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.7 * rows + 0.6), squeeze=False)
    for ax, name in zip(axes.flat, names):
        r = res[name]
        conds = sorted((c for c in r["conditions"] if c["T"] == r["T0"]), key=lambda c: c["N"])
        ns = [c["N"] for c in conds]
        for e in r["estimators"]:
            ys = [c["rel_rmse"][e][r["target"]] for c in conds]
            ys = [y if y is not None and y > 0 else float("nan") for y in ys]
            color, marker = _ESTIMATOR_STYLE.get(e, ("k", "."))
            ax.plot(ns, ys, marker=marker, color=color, ms=4, lw=1.2, label=e)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        kind = "Monte-Carlo truth" if r["kind"] == "control" else "exact truth"
        ax.set_title(f"{name} (T={r['T0']}, {kind})", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="major", lw=0.3, alpha=0.5)
    for ax in axes[:, 0]:
        ax.set_ylabel("RMSE / |J(π_e)|", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("N (trajectories)", fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    handles, labels = [], []
    for ax in axes.flat:  # the union of the panels' estimators, in the table's order
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    settings = doc.get("settings", {})
    top = 1 - 0.75 / fig.get_figheight()
    fig.suptitle(f"Accuracy of every estimator vs data size ({settings.get('size', '')} size, "
                 f"{settings.get('datasets', '?')} datasets per point, "
                 f"{settings.get('control_datasets', settings.get('datasets', '?'))} on gymnax tasks)", fontsize=9, y=0.995)
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.3 / fig.get_figheight()),
               ncol=len(labels), fontsize=8, frameon=False)
    _source(axes.flat[0], doc)
    fig.tight_layout(rect=(0, 0.02, 1, top))
    return fig


# figure: (benchmark, draw, prefer the full-size JSON even with --quick)
FIGURES: Dict[str, tuple[str, Callable, bool]] = {
    "ope_speed": ("ope_speed", ope_speed, False),
    "fitted_seeds": ("fitted_speed", fitted_seeds, False),
    "thinks_vs_does": ("linear_shift", thinks_vs_does, False),
    "horizon_variance": ("horizon_variance", horizon_variance, False),
    "ope_accuracy": ("ope_accuracy", ope_accuracy, True),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Regenerate docs/figures/*.png from the benchmarks' JSON results.")
    p.add_argument("--quick", action="store_true", help="read the --quick results (<name>_quick.json)")
    p.add_argument("--results", default=harness.RESULTS_DIR, help="folder of the JSON results (default: %(default)s)")
    p.add_argument("--out", default=FIGURES_DIR, help="folder for the PNG files (default: %(default)s)")
    args = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for figure, (bench, draw, prefer_full) in FIGURES.items():
        doc = (_load(args.results, bench, False) if prefer_full else None) or _load(args.results, bench, args.quick)
        if doc is None:
            print(f"{figure}.png: skipped, no {harness.result_stem(bench, args.results, args.quick)}.json")
            continue
        fig = draw(doc, plt)
        print("wrote", os.path.join(args.out, harness.save_figure(fig, figure, args.out)))
        plt.close(fig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
