"""The report of ``offrl-jax evaluate``: warnings in words, markdown, JSON and the figure.

The warnings and their thresholds (module constants, documented in the README section
"Evaluating your own logs"):

* the effective sample size of the trajectory weights is below max(``MIN_ESS``,
  ``MIN_ESS_FRACTION`` N);
* one trajectory carries more than ``MAX_WEIGHT_SHARE`` of the total weight;
* discrete actions: the target puts more than ``MAX_OFF_SUPPORT`` of its mass (mean over logged
  steps) on actions the behaviour takes with probability below the support threshold; a
  behaviour propensity at a logged action is below ``MIN_PROPENSITY``;
* continuous actions (densities): the per-step density ratios ρ_t = π(a_t|s_t) / β(a_t|s_t)
  average, over trajectories, significantly less than 1 − ``MAX_OFF_SUPPORT`` (E_β[ρ_t] is the
  target's probability mass where the behaviour has density, 1 when β covers π, so a small mean
  says the target acts where the data do not go); one step's ratio exceeds
  1 / ``MIN_PROPENSITY``.
"""

from __future__ import annotations

import json
import math
import os
from typing import List, Optional

import numpy as np

from offrl_jax.core.files import atomic_write

__all__ = ["MAX_OFF_SUPPORT", "MAX_WEIGHT_SHARE", "MIN_ESS", "MIN_ESS_FRACTION", "MIN_PROPENSITY",
           "report_markdown", "warnings_for", "write_report"]

MIN_ESS = 10.0
MIN_ESS_FRACTION = 0.01
MAX_WEIGHT_SHARE = 0.5
MAX_OFF_SUPPORT = 0.05
MIN_PROPENSITY = 1e-3


def warnings_for(weights: dict, behavior: dict) -> List[str]:
    """The warnings, in words, that the diagnostics call for (thresholds at the module's top)."""
    out = []
    n = weights["num_trajectories"]
    if weights["ess"] < max(MIN_ESS, MIN_ESS_FRACTION * n):
        out.append(
            f"importance sampling cannot be trusted: the effective sample size of the trajectory weights is "
            f"{weights['ess']:.1f} of {n} trajectories; IS/WIS rest on a handful of trajectories"
        )
    if weights["max_weight_share"] > MAX_WEIGHT_SHARE:
        out.append(f"one trajectory carries {100 * weights['max_weight_share']:.0f}% of the total importance weight")
    off = behavior.get("target_mass_off_support")
    if off is not None and math.isfinite(off) and off > MAX_OFF_SUPPORT:
        out.append(
            f"the target puts {100 * off:.1f}% of its mass (mean over logged steps) on actions the behaviour policy "
            f"takes with probability < {behavior['support_threshold']:g}: those actions are barely in the data"
        )
    if behavior.get("min_propensity", 1.0) < MIN_PROPENSITY:
        out.append(
            f"the smallest behaviour propensity at a logged action is {behavior['min_propensity']:.2g}: "
            "single importance ratios can be huge"
        )
    mean, se = behavior.get("mean_step_ratio"), behavior.get("mean_step_ratio_se")
    if mean is not None and math.isfinite(mean) and mean + 2.0 * (se or 0.0) < 1.0 - MAX_OFF_SUPPORT:
        out.append(
            f"the per-step density ratios pi/beta average {mean:.3f} (+- {se:.3f}) instead of 1: about "
            f"{100 * (1 - mean):.0f}% of the target's mass lies where the behaviour policy hardly acts, "
            "so those actions are barely in the data"
        )
    big = behavior.get("max_step_log_ratio")
    if big is not None and math.isfinite(big) and big > -math.log(MIN_PROPENSITY):
        out.append(
            f"one step's density ratio pi/beta reaches {math.exp(min(big, 700.0)):.3g}: "
            "single importance ratios can be huge"
        )
    return out


def report_markdown(report: dict) -> str:
    """The report as markdown: estimates with intervals, weight and behaviour diagnostics, warnings."""
    s = report["settings"]
    level = f"{100 * s['confidence']:g}%"
    lines = [f"# offrl-jax evaluate: {s['data']}", "",
             f"N = {s['num_trajectories']} trajectories, T = {s['max_length']}, {s['num_steps']} steps, "
             + (f"continuous actions of dimension d = {s['action_dim']}" if s.get("action_dim") else f"A = {s['num_actions']}")
             + f", gamma = {s['gamma']:g}; target: {s['target']}", "",
             f"| estimator | estimate | {level} lower | {level} upper | interval |", "|---|---|---|---|---|"]
    for r in report["estimates"]:
        lines.append(f"| {r['label']} | {r['estimate']:.4f} | {r['lower']:.4f} | {r['upper']:.4f} | {r['interval']} |")
    w = report["weights"]
    lines += ["", "## Importance weights", "",
              f"- effective sample size: {w['ess']:.1f} of {w['num_trajectories']} ({100 * w['ess_fraction']:.1f}%)",
              f"- largest weight share: {w['max_weight_share']:.3f}",
              f"- log weights: min {w['min_log_weight']:.2f}, max {w['max_log_weight']:.2f}"]
    b = report["behavior"]
    lines += ["", "## Behaviour policy", "", f"- propensities: {b['source']}"]
    if "heldout_log_likelihood" in b:
        per = "log-density per step (nats; compare models on the same data only)" if "mean_step_ratio" in b else "per step"
        ece = "calibration error of the probability integral transform" if "mean_step_ratio" in b else "expected calibration error"
        lines += [f"- held-out log-likelihood: {b['heldout_log_likelihood']:.4f} {per}",
                  f"- {ece}: {b['calibration_error']:.4f}"]
    if "min_propensity" in b:
        lines.append(f"- smallest propensity at a logged action: {b['min_propensity']:.4g}")
    if "mean_step_ratio" in b:
        lines += [f"- per-step density ratio pi/beta at the logged actions: mean {b['mean_step_ratio']:.4f} "
                  f"(+- {b['mean_step_ratio_se']:.4f}; 1 when the behaviour covers the target), "
                  f"largest {math.exp(min(b['max_step_log_ratio'], 700.0)):.4g}, smallest {math.exp(max(b['min_step_log_ratio'], -700.0)):.4g}"]
    if "target_mass_off_support" in b:
        lines.append(f"- target mass on actions with behaviour probability < {b['support_threshold']:g}: "
                     f"{100 * b['target_mass_off_support']:.2f}% on average, {100 * b['max_target_mass_off_support']:.1f}% at most")
    if report["warnings"]:
        lines += ["", "## Warnings", ""] + [f"- {x}" for x in report["warnings"]]
    if report["notes"]:
        lines += ["", "## Notes", ""] + [f"- {x}" for x in report["notes"]]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out: str, final_log_weights: Optional[np.ndarray]) -> List[str]:
    """Writes ``<out>.json``, ``<out>.md`` and (matplotlib installed) ``<out>.png``; returns the paths."""
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise ValueError(f"out: folder {folder} does not exist")
    paths = [out + ".json", out + ".md"]

    text = json.dumps(_finite(json.loads(json.dumps(report, default=float))), indent=1, allow_nan=False) + "\n"
    _write_text(paths[0], text)
    _write_text(paths[1], report_markdown(report))
    if final_log_weights is not None:
        png = _figure(report, final_log_weights, out + ".png")
        if png:
            paths.append(png)
    return paths


def _write_text(path: str, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)

    atomic_write(path, write)


def _finite(x):
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _figure(report: dict, final_log_weights: np.ndarray, path: str) -> Optional[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = report["estimates"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    y = np.arange(len(rows))
    est = np.array([r["estimate"] for r in rows])
    err = np.array([[r["estimate"] - r["lower"], r["upper"] - r["estimate"]] for r in rows]).T
    ax1.errorbar(est, y, xerr=np.maximum(err, 0), fmt="o", capsize=3)
    ax1.set_yticks(y, [r["label"] for r in rows])
    ax1.invert_yaxis()
    ax1.set_xlabel(f"estimate of J(target) ({100 * report['settings']['confidence']:g}% interval)")
    finite = final_log_weights[np.isfinite(final_log_weights)] / np.log(10.0)
    ax2.hist(finite, bins=40)
    ax2.set_xlabel("log10 trajectory importance weight")
    ax2.set_ylabel("trajectories")
    ax2.set_title(f"ESS {report['weights']['ess']:.1f} of {report['weights']['num_trajectories']}")
    fig.tight_layout()

    def write(tmp: str) -> None:
        fig.savefig(tmp, format="png", dpi=110)

    atomic_write(path, write)
    plt.close(fig)
    return path
