"""Fixing distribution shift against exact truth: thinks vs does (Garnet) and stitching (gridworld).

Table 1, thinks vs does. A Garnet(20 states, 4 actions, branching 3, gamma 0.9, reward noise std
1) MDP; behaviour policies are epsilon-mixtures of a fixed random deterministic policy with the
uniform policy: narrow data epsilon = 0.02, broad data epsilon = 0.5; 50 episodes of 40 steps
each (as benchmarks/fitted_shift.py). FQI, CQL, BCQ, IQL and BC train tabular networks (one-hot
states, no hidden layer, Adam) for the same number of steps; for each method's final policy pi
(greedy in Q for FQI/CQL, greedy among allowed actions for BCQ, mode of the extracted policy for
IQL, the clone itself for BC): thinks = sum_s d0(s) sum_a pi(a|s) Q(s, a), does = exact J(pi).
Mean and standard error over seeds, every seed of a method one vmapped program.

Table 2, stitching. The two-room gridworld of offrl_jax.envs.suite_stitching (gamma 0.95): half
the episodes from each epsilon-soft behaviour policy (one leaves the start room the short way then
idles; the other detours, then walks to the goal); exact J of each method's policy against J(pi*).

Usage: python benchmarks/offline_exact.py [--quick] [--out DIR]
Writes benchmarks/results/offline_exact[_quick].{json,md} (and .png with matplotlib).
"""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax import policies
from offrl_jax.data import to_transitions
from offrl_jax.envs import rollout
from offrl_jax.envs.suite import garnet
from offrl_jax.experiments import fixing_shift as fs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

S, A = 20, 4
DATASETS = {"narrow (eps 0.02)": 0.02, "broad (eps 0.5)": 0.5}


def _fmt(x, se=None):
    if x is None or not np.isfinite(x):
        return "-"
    return f"{x:.2f}" if se is None or not np.isfinite(se) else f"{x:.2f} ± {se:.2f}"


def main() -> None:
    args = harness.parse_args(harness.make_parser(__doc__, quick_repeats=1, repeats=1))
    seeds = 3 if args.quick else 5
    steps = 1000 if args.quick else 4000
    meta = harness.metadata()
    mdp = garnet(0, S, A, 3, gamma=0.9, reward_std=1.0)
    base = policies.deterministic(jnp.asarray(np.random.default_rng(0).integers(0, A, S)), A)
    data = {n: to_transitions(rollout(jax.random.key(1), mdp, policies.mixture(base, policies.uniform(S, A), 1 - e),
                                      50, 40)) for n, e in DATASETS.items()}
    methods = fs.tabular_methods(S, A, 0.9, num_steps=steps, cql_alpha=1.0)
    shift, t_shift = harness.timed_call(fs.shift_table, jax.random.key(2), mdp, data, methods,
                                        num_seeds=seeds, num_chunks=10)
    behavior = {n: float(policies_value(mdp, base, e)) for n, e in DATASETS.items()}

    smdp, sdata, spols = fs.stitching_data(jax.random.key(3), num_episodes=100, epsilon=0.1)
    smethods = fs.tabular_methods(smdp.num_observations, 4, 0.95, num_steps=steps, cql_alpha=0.1)
    stitch, t_stitch = harness.timed_call(fs.stitching_table, jax.random.key(4), smethods, smdp, sdata, spols,
                                          num_seeds=seeds)

    settings = {
        "garnet": "garnet(seed 0, 20 states, 4 actions, branching 3, gamma 0.9, reward_std 1); 50 x 40 steps",
        "stitching": f"stitching_gridworld(3, 3, gamma 0.95); {sdata.size} transitions, eps 0.1, 100 episodes",
        "steps": steps, "seeds": seeds, "networks": "tabular (one-hot, no hidden layer), Adam 0.05, batch 256",
        "cql_alpha": {"garnet": 1.0, "stitching": 0.1}, "bcq_threshold": 0.3, "iql": "expectile 0.9, beta 3",
        "quick": args.quick,
    }
    res = {
        "shift": {"optimal": shift["optimal"], "behavior": behavior, "rows": shift["rows"],
                  "curves": {f"{m} | {d}": {"thinks": np.asarray(c.thinks).mean(0).tolist(),
                                            "does": np.asarray(c.does).mean(0).tolist()}
                             for (m, d), c in shift["curves"].items()}},
        "stitching": stitch,
        "seconds_incl_compile": {"shift": t_shift, "stitching": t_stitch},
    }
    lines = [
        "# offline_exact",
        "",
        f"{harness.describe(meta)}; {seeds} seeds, {steps} steps per run; seconds (compile included): "
        f"thinks-vs-does {t_shift:.0f}, stitching {t_stitch:.0f}.",
        "",
        f"## Thinks vs does on {settings['garnet']}",
        "",
        f"J(pi*) = {shift['optimal']:.2f}; behaviour J: "
        + ", ".join(f"{n} {v:.2f}" for n, v in behavior.items())
        + ". thinks = the method's own value of its policy at the start states, does = exact J of that "
        "policy; mean ± standard error over seeds.",
        "",
    ]
    lines += harness.markdown_table(
        ["method", "data", "thinks", "does", "thinks - does"],
        [[r["method"], r["data"], _fmt(r["thinks"], r["thinks_se"]), _fmt(r["does"], r["does_se"]),
          _fmt(r["overestimate"], r["overestimate_se"])] for r in shift["rows"]],
    )
    lines += [
        "",
        f"## Stitching: {settings['stitching']}",
        "",
        f"J(pi*) = {stitch['optimal']:.3f}; behaviour policies: first {stitch['behavior_first']:.3f}, "
        f"second {stitch['behavior_second']:.3f}.",
        "",
    ]
    lines += harness.markdown_table(
        ["method", "exact J of its policy", "fraction of J(pi*)", "thinks"],
        [[r["method"], _fmt(r["value"], r["value_se"]), f"{r['fraction_of_optimal']:.2f}", _fmt(r["thinks"])]
         for r in stitch["rows"]],
    )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = list(DATASETS)
        fig, axes = plt.subplots(1, len(names), figsize=(11, 4), sharey=True)
        ks = np.arange(1, 11) * steps // 10
        for ax, d in zip(axes, names):
            for i, m in enumerate(["FQI", "CQL", "BCQ", "IQL"]):
                c = shift["curves"][(m, d)]
                ax.plot(ks, np.asarray(c.thinks).mean(0), color=f"C{i}", label=f"{m} thinks")
                ax.plot(ks, np.asarray(c.does).mean(0), color=f"C{i}", ls="--", label=f"{m} does")
            ax.axhline(shift["optimal"], color="gray", lw=1, label="J(pi*)")
            ax.set_title(d)
            ax.set_xlabel("training step")
        axes[0].set_ylabel("value at start states")
        axes[0].legend(fontsize=7, ncol=2)
        fig.tight_layout()
        lines += ["", f"Plot: {harness.save_figure(fig, 'offline_exact', args.out, args.quick)}"]
    except ImportError:
        lines += ["", "(matplotlib not installed: no plot)"]
    harness.write_results("offline_exact", res, lines, meta=meta, settings=settings, out=args.out, quick=args.quick)


def policies_value(mdp, base, eps):
    """Exact discounted J of the behaviour mixture."""
    from offrl_jax.envs import policy_value

    return policy_value(mdp, policies.mixture(base, policies.uniform(S, A), 1 - eps))


if __name__ == "__main__":
    main()
