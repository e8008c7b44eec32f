"""Importance sampling with estimated vs true behaviour propensities: bias, variance, RMSE.

"Importance Sampling Policy Evaluation with an Estimated Behavior Policy" (Hanna, Niekum & Stone
2019) shows that replacing the true β by its maximum-likelihood estimate fitted on the same data
("regression importance sampling", RIS) can LOWER the variance and mean squared error of IS: the
estimated ratios correct for the sampling error in which actions happened to be logged. This
script measures it on suite problems with known β. For each N, M datasets of N trajectories
(one vmapped, jitted program per N); on each, trajectory-wise IS, PDIS and WIS with

* ``true``: the true β;
* ``same-data MLE``: tabular counts fitted on the same data, no smoothing (Hanna et al.'s RIS
  with the state as context, their "RIS(0)");
* ``cross-fitted``: tabular counts with α = 0.5 smoothing, 5-fold cross-fitted by trajectory
  (what :func:`offrl_jax.behavior.estimate_behavior` returns by default).

Against the exact J(π) of the tabular solver: bias, standard deviation over the M datasets,
RMSE, and the variance ratio var(estimated) / var(true). The bias column carries its own
Monte-Carlo standard error (sd / √M).

Usage: python benchmarks/estimated_propensity_variance.py [--quick] [--out DIR]
"""

from __future__ import annotations

import os
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from offrl_jax.behavior import action_counts, cross_fitted_tabular, smoothed_policy  # noqa: E402
from offrl_jax.core import fold_indices, log_importance_ratios  # noqa: E402
from offrl_jax.envs import rollout  # noqa: E402
from offrl_jax.envs.suite import make_problem, problem_value  # noqa: E402
from offrl_jax.ope import per_decision_is, trajectory_is, weighted_is  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SOURCES = ("true", "same-data MLE", "cross-fitted")
ESTIMATORS = {"IS": trajectory_is, "PDIS": per_decision_is, "WIS": weighted_is}
K = 5


def make_run(problem, num_episodes):
    mdp, horizon = problem.mdp, problem.horizon
    gamma = float(mdp.gamma)
    o, a = mdp.num_observations, mdp.num_actions
    log_pi = jnp.log(problem.target)
    folds = np.concatenate([np.full(len(f), k) for k, f in enumerate(fold_indices(num_episodes, K))])

    def one(key):
        d = rollout(key, mdp, problem.behavior, num_episodes, horizon)
        real = d.mask > 0
        tlp = jnp.where(real, log_pi[d.observations, d.actions], 0.0)
        mle = smoothed_policy(action_counts(d.observations, d.actions, d.mask, o, a), 0.0)
        lp_same = jnp.where(real, jnp.log(jnp.where(real, mle[d.observations, d.actions], 1.0)), 0.0)
        lp_cross, _ = cross_fitted_tabular(d.observations, d.actions, d.mask, folds, o, a, K, 0.5)
        out = []
        for blp in (d.behavior_log_probs, lp_same, lp_cross):
            lr = log_importance_ratios(tlp, blp, d.mask)
            out.append(jnp.stack([fn(d.rewards, lr, d.mask, gamma) for fn in ESTIMATORS.values()]))
        return jnp.stack(out)  # [source, estimator]

    return jax.jit(jax.vmap(one))


def main():
    args = harness.parse_args(harness.make_parser(__doc__, quick_repeats=1, repeats=1))
    meta = harness.metadata("float64")
    problems = ("stitching_gridworld",) if args.quick else ("stitching_gridworld", "gridworld")
    sizes = (50, 200) if args.quick else (50, 200, 800)
    m = 64 if args.quick else 400
    results, table = [], []
    for name in problems:
        problem = make_problem(name, dtype=jnp.float64)
        truth = float(problem_value(problem))
        for n in sizes:
            run = make_run(problem, n)
            keys = jax.random.split(jax.random.key(n), m)
            timing, est, _ = harness.time_jit(run, keys, repeats=args.repeats)
            est = np.asarray(est)  # [M, source, estimator]
            for j, est_name in enumerate(ESTIMATORS):
                var_true = est[:, 0, j].var(ddof=1)
                for i, source in enumerate(SOURCES):
                    x = est[:, i, j]
                    row = dict(problem=name, num_episodes=n, estimator=est_name, propensities=source,
                               mean=float(x.mean()), bias=float(x.mean() - truth), bias_se=float(x.std(ddof=1) / np.sqrt(m)),
                               sd=float(x.std(ddof=1)), rmse=float(np.sqrt(np.mean((x - truth) ** 2))),
                               variance_ratio=float(x.var(ddof=1) / var_true) if var_true > 0 else float("nan"),
                               truth=truth, run_s=timing.run_s, compile_s=timing.compile_s)
                    results.append(row)
                    table.append([name, n, est_name, source, f"{row['bias']:+.4f} ± {row['bias_se']:.4f}",
                                  f"{row['sd']:.4f}", f"{row['rmse']:.4f}", f"{row['variance_ratio']:.3f}"])
    lines = [
        "# IS with estimated vs true behaviour propensities (Hanna, Niekum & Stone 2019)", "",
        f"M = {m} datasets per N; tabular β̂ (same-data MLE, α = 0; cross-fitted, α = 0.5, K = {K}). "
        f"{harness.describe(meta)}.", "",
    ]
    lines += harness.markdown_table(
        ["problem", "N", "estimator", "propensities", "bias ± s.e.", "sd", "RMSE", "var / var(true β)"], table)
    summary = []
    for r in results:
        if r["propensities"] != "true":
            summary.append(r["variance_ratio"])
    lines += ["", f"Variance ratio estimated/true: median {np.median(summary):.3f}, "
              f"range [{np.min(summary):.3f}, {np.max(summary):.3f}] over all rows with estimated propensities."]
    settings = dict(problems=problems, sizes=sizes, datasets=m, folds=K)
    harness.write_results("estimated_propensity_variance", results, lines, meta=meta, settings=settings,
                          out=args.out, quick=args.quick)


if __name__ == "__main__":
    main()
