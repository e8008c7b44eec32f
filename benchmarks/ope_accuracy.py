"""Accuracy and selection of every OPE estimator on the suite and on gymnax tasks (COBS style).

Following "Empirical Study of Off-Policy Policy Evaluation for Reinforcement Learning", Voloshin
et al. 2019: for every suite problem with an exact truth (chain walks, ModelFail, ModelWin,
Graph, Graph-POMDP, gridworld, stitching gridworld, Garnet; ``offrl_jax.envs.suite``) and for
gymnax tasks with Monte-Carlo truths (CartPole-v1, Acrobot-v1 with ε-mixed controllers), D
datasets are drawn under the behaviour policy and every estimator evaluates a family of K
candidate policies on each (``offrl_jax.experiments.accuracy``): all datasets, estimators and
policies of one (problem, N, T) are ONE jitted, vmapped call.

Outputs (``--out``, default benchmarks/results): ``ope_accuracy[_quick].json`` and ``.md`` with

1. per problem, relative RMSE sqrt(mean_d (Ĵ_d − J)²) / |J(π_e)| of each estimator over the
   datasets, for the target π_e at each data size N (and horizon T), and for the mismatch sweep
   (1 − α) π_b + α π_e at the standard N (α = 0 is on-policy); the best estimator of each column
   in bold;
2. the summary at the standard (N, T) across problems, and the estimators' wins;
3. the selection table: per problem, each estimator's mean Spearman ρ and mean normalised
   regret@1 over datasets on the selection family ((1 − α) π_poor + α π_e, or the controller's
   ε-mixtures) against the true values (``offrl_jax.selection``);
4. ``ope_accuracy[_quick]_rmse_vs_n.png``: log relative RMSE against log N, one panel per problem.

Model-based rows (DM, DR, WDR, MAGIC) on tabular problems use the certainty-equivalence model of
each dataset (the fixed point of tabular horizon-aware FQE); on gymnax tasks they use neural FQE
cross-fitted by trajectory halves (``experiments.accuracy.cross_fitted_control_terms``), the
D datasets × 2 halves × K policies trained as one program. Compile time is reported apart from
run time (``lower().compile()`` then one call).

Usage: python benchmarks/ope_accuracy.py [--quick | --medium] [--datasets D] [--problems a,b] [--out DIR]
``--quick`` is a smoke run (a few problems, one size, tiny FQE: it proves the script and its tables);
``--medium`` runs every problem at 3 data sizes in ≲30 min on 2 CPU cores (written as the full-size
``ope_accuracy.json``, its settings record the size); the full size is meant for an accelerator.
``--problems`` runs a subset (a run of several problems also writes ``ope_accuracy_partial.json``
after each one) and ``--merge A.json B.json ...`` rebuilds the tables, figure and JSON from runs of
subsets, e.g. the suite and the gymnax tasks as separate processes.
"""

from __future__ import annotations

import json
import os
import sys

import jax

jax.config.update("jax_enable_x64", True)  # float64 truths; the data and estimates stay float32

import numpy as np  # noqa: E402

from offrl_jax.envs.suite import PROBLEMS, make_problem  # noqa: E402
from offrl_jax.experiments import accuracy as acc  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

TASKS = {  # task: (gamma, behaviour epsilon, candidate epsilons, target epsilon)
    "CartPole-v1": (0.99, 0.5, (0.1, 0.3, 0.5, 0.7, 1.0), 0.3),
    "Acrobot-v1": (0.99, 0.5, (0.1, 0.3, 0.5, 0.7, 1.0), 0.3),
}
# --quick proves the script runs and its tables are well formed: a few problems, one size each.
QUICK_PROBLEMS = ("model_fail", "model_win", "gridworld", "CartPole-v1")


def sizes(size: str) -> dict:
    """Sizes of ``quick`` (a smoke run), ``medium`` (every problem, ≲30 min on 2 CPU cores) and ``full``
    (an accelerator). FQE of the gymnax rows: MLP ``fqe_hidden``, ``fqe_steps`` Adam steps (1e-3),
    batch 256, a target copy every ``fqe_period`` steps."""
    if size == "quick":
        return dict(datasets=4, n_factors=(1.0,), t_factors=(1.0,), resamples=10, num_mismatch=3,
                    num_selection=4, control_n=(16,), control_t=50, control_datasets=4, mc_episodes=200,
                    fqe_hidden=(16,), fqe_steps=200, fqe_period=10, fqe_batch=128)
    if size == "medium":
        return dict(datasets=8, n_factors=(0.25, 0.5, 1.0), t_factors=(1.0,), resamples=50, num_mismatch=5,
                    num_selection=6, control_n=(32, 128), control_t=200, control_datasets=4, mc_episodes=5000,
                    fqe_hidden=(32, 32), fqe_steps=600, fqe_period=4, fqe_batch=256)
    return dict(datasets=100, n_factors=(0.125, 0.25, 0.5, 1.0, 2.0), t_factors=(0.5, 1.0), resamples=200,
                num_mismatch=5, num_selection=8, control_n=(32, 128, 512), control_t=200, control_datasets=100,
                mc_episodes=20000,
                fqe_hidden=(64, 64), fqe_steps=3000, fqe_period=10, fqe_batch=256)


def run_once(run, *args):
    """(estimates as numpy, compile seconds, run seconds) of one jitted K-policy x D-dataset call."""
    compiled, compile_s = harness.compile_jit(jax.jit(run), *args)
    out, run_s = harness.timed_call(compiled, *args)
    return {k: np.asarray(v, np.float64) for k, v in out.items()}, compile_s, run_s


def rmse_over_target(est: dict, truth: np.ndarray, target: int) -> dict:
    """{estimator: [K] RMSE over datasets / |J(pi_e)|} (one denominator per problem: finite where J_k = 0)."""
    return {k: np.sqrt(np.mean((v - truth[None]) ** 2, axis=0)) / abs(truth[target]) for k, v in est.items()}


def tabular_problem(name: str, cfg: dict, key) -> dict:
    p = make_problem(name)
    cands = acc.candidate_policies(p, cfg["num_mismatch"], cfg["num_selection"])
    target = int(np.flatnonzero(cands.mismatch)[-1])  # alpha = 1: the problem's target
    keys = jax.random.split(key, cfg["datasets"])
    conditions, timing, selection = [], [], None
    n0, t0 = p.num_episodes, p.horizon
    grid = [(max(2, int(round(f * n0))), t0) for f in cfg["n_factors"]]
    grid += [(n0, max(1, int(round(f * t0)))) for f in cfg["t_factors"] if f != 1.0]
    for n, t in grid:
        truth = acc.tabular_true_values(p, cands.policies, t)
        est, c_s, r_s = run_once(
            acc.make_tabular_run(n, t, num_resamples=cfg["resamples"]), keys, p.mdp, p.behavior, cands.policies
        )
        rel = rmse_over_target(est, truth, target)
        conditions.append({"N": n, "T": t, "truth": truth.tolist(), "rel_rmse": {k: v.tolist() for k, v in rel.items()}})
        timing.append({"N": n, "T": t, "compile_s": c_s, "run_s": r_s})
        if (n, t) == (n0, t0):
            selection = acc.selection_scores(est, truth, cands.selection)
    return {
        "kind": "tabular", "N0": n0, "T0": t0, "gamma": float(p.mdp.gamma), "labels": list(cands.labels),
        "alpha": cands.alpha.tolist(), "mismatch": np.flatnonzero(cands.mismatch).tolist(),
        "selection_members": np.flatnonzero(cands.selection).tolist(), "target": target,
        "conditions": conditions, "selection": selection, "timing": timing, "estimators": list(acc.TABULAR_ESTIMATORS),
    }


def control_task(task: str, cfg: dict, key) -> dict:
    gamma, beh, eps, target_eps = TASKS[task]
    t = cfg["control_t"]
    truth, se = acc.control_true_values(jax.random.key(10_000), task, eps, t, gamma, cfg["mc_episodes"])
    target = eps.index(target_eps)
    keys = jax.random.split(key, cfg["control_datasets"])
    fqe = acc.control_fqe_config(task, gamma, hidden_sizes=cfg["fqe_hidden"], num_steps=cfg["fqe_steps"],
                                 batch_size=cfg["fqe_batch"], target_update_period=cfg["fqe_period"])
    conditions, timing, selection = [], [], None
    for n in cfg["control_n"]:
        run = acc.make_control_run(task, beh, eps, n, t, gamma, fqe=fqe, num_resamples=cfg["resamples"])
        est, c_s, r_s = run_once(run, keys)
        rel = rmse_over_target(est, truth, target)
        conditions.append({"N": n, "T": t, "truth": truth.tolist(), "rel_rmse": {k: v.tolist() for k, v in rel.items()}})
        timing.append({"N": n, "T": t, "compile_s": c_s, "run_s": r_s})
        selection = acc.selection_scores(est, truth, np.ones(len(eps), bool))
    return {
        "kind": "control", "N0": cfg["control_n"][-1], "T0": t, "gamma": gamma, "behavior_epsilon": beh,
        "labels": [f"eps {e:.2f}" for e in eps], "alpha": list(eps), "mismatch": list(range(len(eps))),
        "selection_members": list(range(len(eps))), "target": target, "truth_standard_error": se.tolist(),
        "conditions": conditions, "selection": selection, "timing": timing, "estimators": list(acc.CONTROL_ESTIMATORS),
        "fqe": {"hidden_sizes": list(fqe.hidden_sizes), "num_steps": fqe.num_steps, "batch_size": fqe.batch_size,
                "learning_rate": fqe.learning_rate, "target_update_period": fqe.target_update_period,
                "cross_fitting": "trajectory halves"},
    }


# ------------------------------------------------------------------------------------------------
# Tables, figure and findings.
# ------------------------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    return "—" if not np.isfinite(x) else (f"{x:.3f}" if x < 10 else f"{x:.1f}")


def _bold_best(values: list) -> list:
    finite = [v for v in values if np.isfinite(v)]
    best = min(finite) if finite else None
    return [f"**{_fmt(v)}**" if best is not None and v == best else _fmt(v) for v in values]


def problem_table(name: str, r: dict) -> list:
    """Rows: estimators; columns: target at each (N, T), then the mismatch sweep at (N0, T0)."""
    cols, cells = [], []
    for c in r["conditions"]:
        cols.append(f"N={c['N']} T={c['T']}")
        cells.append([c["rel_rmse"][e][r["target"]] for e in r["estimators"]])
    std = next(c for c in r["conditions"] if c["N"] == r["N0"] and c["T"] == r["T0"])
    for k in r["mismatch"]:
        if k == r["target"]:
            continue
        cols.append(r["labels"][k] if r["kind"] == "control" else f"α={r['alpha'][k]:.2f}")
        cells.append([std["rel_rmse"][e][k] for e in r["estimators"]])
    columns = [_bold_best(col) for col in cells]
    rows = [[e] + [columns[j][i] for j in range(len(cols))] for i, e in enumerate(r["estimators"])]
    return harness.markdown_table(["estimator"] + cols, rows, "l" + "r" * len(cols))


def summary(results: dict) -> tuple:
    ests = list(acc.TABULAR_ESTIMATORS)
    rows, wins = [], {e: 0 for e in ests}
    for name, r in results.items():
        std = next(c for c in r["conditions"] if c["N"] == r["N0"] and c["T"] == r["T0"])
        vals = [std["rel_rmse"][e][r["target"]] if e in std["rel_rmse"] else float("nan") for e in ests]
        finite = [v for v in vals if np.isfinite(v)]
        if finite:
            wins[ests[vals.index(min(finite))]] += 1
        rows.append([f"{name} (N={r['N0']}, T={r['T0']})"] + _bold_best(vals))
    return harness.markdown_table(["problem"] + ests, rows, "l" + "r" * len(ests)), wins


def selection_table(results: dict) -> list:
    ests = list(acc.TABULAR_ESTIMATORS)
    rows = []
    for name, r in results.items():
        sel = r["selection"]
        rho = [sel[e][0] if e in sel else float("nan") for e in ests]
        reg = [sel[e][2] if e in sel else float("nan") for e in ests]
        best_rho = max([x for x in rho if np.isfinite(x)], default=None)
        best_reg = min([x for x in reg if np.isfinite(x)], default=None)
        cells = []
        for a, b in zip(rho, reg):
            if not np.isfinite(a) and not np.isfinite(b):
                cells.append("—")
                continue
            sa = f"**{a:.2f}**" if a == best_rho else f"{a:.2f}"
            sb = f"**{b:.2f}**" if b == best_reg else f"{b:.2f}"
            cells.append(f"{sa} / {sb}")
        rows.append([f"{name} (K={len(r['selection_members'])})"] + cells)
    return harness.markdown_table(["problem"] + ests, rows, "l" + "c" * len(ests))


def findings(results: dict, wins: dict) -> list:
    """Statements read off the numbers (no judgement beyond them)."""
    lines = []
    ranked = sorted((w, e) for e, w in wins.items() if w)
    lines.append(
        "- Lowest relative RMSE for the target at the standard size: "
        + ", ".join(f"{e} on {w} problem(s)" for w, e in reversed(ranked)) + "."
    )
    med = {}
    for e in acc.TABULAR_ESTIMATORS:
        vals = []
        for r in results.values():
            std = next(c for c in r["conditions"] if c["N"] == r["N0"] and c["T"] == r["T0"])
            if e in std["rel_rmse"] and np.isfinite(std["rel_rmse"][e][r["target"]]):
                vals.append(std["rel_rmse"][e][r["target"]])
        if vals:
            med[e] = float(np.median(vals))
    lines.append("- Median relative RMSE across problems: " + ", ".join(f"{e} {_fmt(v)}" for e, v in sorted(med.items(), key=lambda x: x[1])) + ".")
    dm_better = [n for n, r in results.items() if _std(r, "DM") < _std(r, "WDR")]
    wdr_better = [n for n, r in results.items() if _std(r, "WDR") <= _std(r, "DM")]
    lines.append(f"- The model alone (DM) beats WDR on: {', '.join(dm_better) or 'none'}; WDR is at least as good on: {', '.join(wdr_better) or 'none'}.")
    magic_close = [n for n, r in results.items() if _std(r, "MAGIC") <= 1.25 * min(_std(r, "DM"), _std(r, "WDR"))]
    lines.append(f"- MAGIC within 25% of the better of DM and WDR on {len(magic_close)} of {len(results)} problems.")
    wis_vs_is = [n for n, r in results.items() if _std(r, "WIS") < _std(r, "IS")]
    lines.append(f"- Self-normalisation (WIS < IS) helps on {len(wis_vs_is)} of {len(results)} problems.")
    best_sel = {}
    for n, r in results.items():
        finite = {e: v[2] for e, v in r["selection"].items() if np.isfinite(v[2])}
        if finite:
            b = min(finite.values())
            for e, v in finite.items():
                if v == b:
                    best_sel[e] = best_sel.get(e, 0) + 1
    lines.append("- Lowest regret@1 (ties counted for each): " + ", ".join(f"{e} {w}" for e, w in sorted(best_sel.items(), key=lambda x: -x[1])) + ".")
    return lines


def guidance(results: dict) -> list:
    """Which estimator to use when, each statement computed from the tables (COBS-style)."""
    tab = {n: r for n, r in results.items() if r["kind"] == "tabular"}
    is_family = ("IS", "PDIS", "WIS", "WPDIS")
    lines = []
    good_model, bad_model = [], []
    for n, r in tab.items():
        best = min(_std(r, e) for e in r["estimators"])
        best_is = min(_std(r, e) for e in is_family)
        if _std(r, "DM") <= 1.25 * best:
            good_model.append(n)
        elif _std(r, "DM") > 2 * best_is:
            bad_model.append(n)
    if good_model:
        lines.append(
            f"- **A model that fits (DM within 25% of the best: {', '.join(good_model)})**: use the model-based "
            "estimate (DM, i.e. FQE) or MAGIC; median relative RMSE there DM "
            f"{_fmt(np.median([_std(tab[n], 'DM') for n in good_model]))}, MAGIC "
            f"{_fmt(np.median([_std(tab[n], 'MAGIC') for n in good_model]))}, WDR "
            f"{_fmt(np.median([_std(tab[n], 'WDR') for n in good_model]))}, WPDIS "
            f"{_fmt(np.median([_std(tab[n], 'WPDIS') for n in good_model]))}."
        )
    if bad_model:
        lines.append(
            f"- **A misspecified model (DM over twice the best IS-family error: {', '.join(bad_model)})**: the "
            "weighted importance-sampling estimators win; "
            + "; ".join(
                f"{n}: DM {_fmt(_std(tab[n], 'DM'))}, WPDIS {_fmt(_std(tab[n], 'WPDIS'))}, "
                f"WDR {_fmt(_std(tab[n], 'WDR'))}, MAGIC {_fmt(_std(tab[n], 'MAGIC'))}"
                for n in bad_model
            ) + "."
        )
    long_h = [n for n, r in tab.items() if r["T0"] >= 100]
    if long_h:
        lines.append(
            "- **Long horizons (T ≥ 100)**: trajectory-wise IS collapses (its weights underflow or explode; "
            + ", ".join(f"{n}: IS {_fmt(_std(tab[n], 'IS'))} vs WPDIS {_fmt(_std(tab[n], 'WPDIS'))}" for n in long_h)
            + "); use per-decision, weighted or model-based estimators."
        )
    ctrl = [n for n, r in results.items() if r["kind"] == "control"]
    if ctrl:
        lines.append(
            "- **gymnax tasks (neural FQE, cross-fitted by trajectory halves, for DM/DR/WDR/MAGIC)**: "
            + "; ".join(f"{n}: " + ", ".join(f"{e} {_fmt(_std(results[n], e))}" for e in results[n]["estimators"])
                        for n in ctrl)
            + "."
        )
    hard = [n for n, r in tab.items() if min(_std(r, e) for e in r["estimators"]) > 0.5]
    if hard:
        lines.append(
            f"- **No estimator is accurate (best relative RMSE > 0.5)**: {', '.join(hard)}; there the best is "
            + "; ".join(f"{n}: " + min(tab[n]["estimators"], key=lambda e: _std(tab[n], e)) for n in hard) + "."
        )
    counts = []
    for e in acc.TABULAR_ESTIMATORS:
        rhos = [_num(r["selection"][e][0]) for r in results.values() if e in r["selection"]]
        rhos = [x for x in rhos if np.isfinite(x)]
        if rhos:
            counts.append((sum(x >= 0.9 for x in rhos), len(rhos), e))
    lines.append(
        "- **Selection** (problems with mean Spearman ρ ≥ 0.9, of those where ρ is defined): "
        + ", ".join(f"{e} {a}/{b}" for a, b, e in sorted(counts, key=lambda x: (-x[0] / x[1], x[2]))) + "."
    )
    return lines


def _num(x) -> float:
    """A float from a result (null in JSON reads back as None: NaN)."""
    return float("nan") if x is None else float(x)


def _std(r: dict, e: str) -> float:
    std = next(c for c in r["conditions"] if c["N"] == r["N0"] and c["T"] == r["T0"])
    return std["rel_rmse"][e][r["target"]] if e in std["rel_rmse"] else float("nan")


def figure(results: dict, out: str, quick: bool):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = list(results)
    cols = 4
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        r = results[name]
        conds = [c for c in r["conditions"] if c["T"] == r["T0"]]
        ns = [c["N"] for c in conds]
        for e in r["estimators"]:
            ax.loglog(ns, [c["rel_rmse"][e][r["target"]] for c in conds], marker="o", label=e)
        ax.set_title(f"{name} (T={r['T0']})", fontsize=9)
        ax.set_xlabel("N (trajectories)", fontsize=8)
        ax.set_ylabel("relative RMSE", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower right", ncol=3, fontsize=8)
    fig.tight_layout()
    name = harness.save_figure(fig, "ope_accuracy_rmse_vs_n", out, quick)
    plt.close(fig)
    return name


def _nulls_to_nan(x):
    """JSON null (a non-finite float when written) back to NaN, recursively."""
    if x is None:
        return float("nan")
    if isinstance(x, dict):
        return {k: _nulls_to_nan(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nulls_to_nan(v) for v in x]
    return x


def merge(paths: list) -> tuple:
    """``(results, settings, commands)`` of earlier runs' JSON files, problems in the suite's order."""
    results, settings, commands = {}, None, []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        results.update(_nulls_to_nan(doc["results"]))
        settings = settings or dict(doc.get("settings", {}))
        if any(r.get("kind") == "control" for r in doc["results"].values()):  # the gymnax settings come from here
            settings.update({k: v for k, v in doc.get("settings", {}).items() if k.startswith(("fqe_", "control_", "mc_"))})
        commands.append(doc.get("meta", {}).get("command", path))
    order = [n for n in list(PROBLEMS) + list(TASKS) if n in results]
    return {n: results[n] for n in order}, settings, commands


def report(results: dict, cfg: dict, size: str, meta: dict, out: str, quick: bool, total: float,
           sources: list = ()) -> None:
    """Writes the markdown (summary, selection, findings, guidance, per-problem tables), figure and JSON."""
    summ, wins = summary(results)
    fig = figure(results, out, quick)
    fq = cfg
    md = [
        "# OPE accuracy and selection (COBS-style)", "", harness.describe(meta), "",
        f"Size: {size}. D = {cfg['datasets']} datasets per condition ({cfg.get('control_datasets', cfg['datasets'])} "
        "on gymnax tasks); relative RMSE = sqrt(mean_d (Ĵ_d − J)²) / |J(π_e)| "
        "(bold: best in the column). Model-based rows use the certainty-equivalence model of each dataset "
        "(the fixed point of tabular FQE); MIS is pooled time-indexed tabular MIS; gymnax tasks: Monte-Carlo "
        f"truths over {cfg['mc_episodes']} episodes, DM/DR/WDR/MAGIC from neural FQE cross-fitted by trajectory "
        f"halves (MLP {'x'.join(map(str, fq['fqe_hidden']))}, {fq['fqe_steps']} Adam steps, batch {fq['fqe_batch']}, "
        f"target copy every {fq['fqe_period']} steps, input [standardised o, t/T], rewards x (1 − γ)).", "",
    ]
    if sources:
        md += ["Merged from the runs: " + "; ".join(f"`{c}`" for c in sources) + ".", ""]
    md += [
        "## Summary: the target policy at the standard size", "", *summ, "",
        "## Selection: mean Spearman ρ / mean regret@1 over datasets", "",
        "ρ against the true values of the K candidates (higher is better), regret@1 = (max J − J[argmax Ĵ]) / "
        "(max J − min J) (lower is better); bold: best in the row.", "", *selection_table(results), "",
        "## What the numbers show", "", *findings(results, wins), "", "## Which estimator to use when", "",
        *guidance(results), "",
    ]
    if fig:
        md += [f"![relative RMSE vs N]({fig})", ""]
    md += ["## Per problem", ""]
    for name, r in results.items():
        tim = ", ".join(f"N={t['N']} T={t['T']}: compile {t['compile_s']:.1f} s, run {t['run_s']:.2f} s" for t in r["timing"])
        md += [f"### {name}", "", *problem_table(name, r), "", f"Timing (one call for all D datasets and K policies): {tim}.", ""]
    if total:
        md.append(f"Total time of the problems (compiles included) {total:.0f} s.")
    settings = {**cfg, "size": size, "problems": list(results)}
    if sources:
        settings["merged_from"] = list(sources)
    harness.write_results("ope_accuracy", results, md, meta=meta, settings=settings, out=out, quick=quick)


def main() -> None:
    parser = harness.make_parser(__doc__, quick_repeats=1, repeats=1)
    parser.add_argument("--datasets", type=int, default=None, help="datasets D per condition")
    parser.add_argument("--problems", default=None,
                        help="comma-separated suite problems and gymnax tasks (default: all; --quick: a few)")
    parser.add_argument("--control-datasets", type=int, default=None, help="datasets D per condition of gymnax tasks")
    parser.add_argument("--medium", action="store_true", help="every problem, smaller sizes (≲30 min on 2 CPU cores)")
    parser.add_argument("--merge", nargs="+", metavar="JSON", default=None,
                        help="rebuild the tables, figure and JSON from earlier runs' JSON files (e.g. the suite "
                             "and the gymnax tasks run as two processes) instead of running anything")
    args = harness.parse_args(parser)
    if args.quick and args.medium:
        parser.error("--medium: expected at most one of --quick and --medium")
    meta = harness.metadata(dtype="float32")
    if args.merge:
        missing = [p for p in args.merge if not os.path.exists(p)]
        if missing:
            parser.error(f"--merge: expected JSON files of earlier runs, found no file {missing}")
        results, cfg, commands = merge(args.merge)
        report(results, cfg, cfg.get("size", "?"), meta, args.out, args.quick, 0.0, commands)
        return
    size = "quick" if args.quick else "medium" if args.medium else "full"
    cfg = sizes(size)
    if args.datasets is not None:
        if args.datasets < 2:
            parser.error(f"--datasets: expected an integer >= 2, found {args.datasets}")
        cfg["datasets"] = args.datasets
    if args.control_datasets is not None:
        if args.control_datasets < 2:
            parser.error(f"--control-datasets: expected an integer >= 2, found {args.control_datasets}")
        cfg["control_datasets"] = args.control_datasets
    names = list(PROBLEMS) + list(TASKS)
    if args.quick and not args.problems:
        names = list(QUICK_PROBLEMS)
    if args.problems:
        chosen = [x.strip() for x in args.problems.split(",") if x.strip()]
        bad = [x for x in chosen if x not in names]
        if bad:
            parser.error(f"--problems: unknown {bad}; expected names from {names}")
        names = chosen
    total = 0.0
    results = {}
    for i, name in enumerate(names):
        work = control_task if name in TASKS else tabular_problem
        # Programs that run once on small data: compiling is most of the cost, so XLA skips most optimisations
        # (as ``offrl-jax demo`` does; results agree to rounding), except for the FQE training of the gymnax
        # rows outside --quick, whose run time needs the optimised program.
        fast = size == "quick" or (size == "medium" and name not in TASKS)
        jax.config.update("jax_disable_most_optimizations", fast)
        results[name], seconds = harness.timed_call(work, name, cfg, jax.random.key(i))
        total += seconds
        print(f"# {name}: done ({total:.0f} s)", file=sys.stderr, flush=True)
        if len(names) > 1:  # the problems so far, for --merge should a long run be stopped
            harness.write_results("ope_accuracy_partial", results, [f"Problems done: {', '.join(results)}."], meta=meta,
                                  settings={**cfg, "size": size, "problems": list(results)}, out=args.out,
                                  quick=args.quick, echo=False)
    report(results, cfg, size, meta, args.out, args.quick, total)


if __name__ == "__main__":
    main()
