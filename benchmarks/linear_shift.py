"""Distribution shift in LSPI and linear FQI: what they think their policy is worth vs what it does.

A Garnet(20 states, 4 actions, branching 3, gamma 0.9, reward noise std 1) MDP from the suite,
tabular one-hot state-action features (replicated per action), ridge 1e-3. Behaviour policies
are epsilon-mixtures of a fixed random deterministic policy with the uniform policy: narrow
epsilon = 0.02, medium 0.5, broad 1.0 (uniform). Each dataset holds 50 episodes of 40 steps.
LSPI runs 20 iterations (epsilon = 0), linear FQI 50. After each iteration k, "thinks" =
sum_s d0(s) max_a Q_k(s, a) (the learned value of its own greedy policy) is set against "does" =
the exact J(greedy(Q_k)) (linear solve). Curves are means over 10 data seeds, computed in one
jitted call vmapped over seeds and behaviour policies (:func:`offrl_jax.experiments.shift.linear_distribution_shift`).

Usage: python benchmarks/linear_shift.py [--quick] [--repeats R] [--out DIR]
Writes benchmarks/results/linear_shift[_quick].{json,md} and .png (with matplotlib).
"""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax import linear as L
from offrl_jax import policies
from offrl_jax.envs.suite import garnet
from offrl_jax.experiments.shift import linear_distribution_shift

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

S, A = 20, 4
DATASETS = {"narrow (epsilon 0.02)": 0.02, "medium (epsilon 0.5)": 0.5, "broad (uniform)": 1.0}


def main() -> None:
    args = harness.parse_args(harness.make_parser(__doc__, quick_repeats=1, repeats=1))
    meta = harness.metadata()
    seeds = 3 if args.quick else 10
    lspi_it, fqi_it = (10, 20) if args.quick else (20, 50)
    mdp = garnet(0, S, A, 3, gamma=0.9, reward_std=1.0)
    table = L.all_action_features(L.one_hot_state_action(S, A), jnp.arange(S), A)  # [S, A, S*A]
    base = policies.deterministic(jnp.asarray(np.random.default_rng(0).integers(0, A, S)), A)
    behaviors = jnp.stack([policies.mixture(base, policies.uniform(S, A), 1.0 - e) for e in DATASETS.values()])
    keys = jax.random.split(jax.random.key(1), seeds)

    def one(key, behavior):
        return linear_distribution_shift(key, mdp, table, behavior, 50, 40, ridge=1e-3, lspi_iterations=lspi_it,
                                    fqi_iterations=fqi_it)

    run = jax.jit(jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None)))
    timing, rep, _ = harness.time_jit(run, keys, behaviors, repeats=args.repeats)
    compile_s, run_s = timing.compile_s, timing.run_s
    optimal = float(rep.optimal[0, 0])
    names = list(DATASETS)
    curves = {}
    for method in ("lspi", "fqi"):
        c = getattr(rep, method)
        curves[method] = {
            name: dict(thinks=np.asarray(c.thinks[:, i]).mean(0).tolist(), does=np.asarray(c.does[:, i]).mean(0).tolist(),
                       thinks_se=(np.asarray(c.thinks[:, i]).std(0, ddof=1) / np.sqrt(seeds)).tolist(),
                       does_se=(np.asarray(c.does[:, i]).std(0, ddof=1) / np.sqrt(seeds)).tolist())
            for i, name in enumerate(names)
        }
    settings = dict(
        mdp="garnet(seed 0, 20 states, 4 actions, branching 3, gamma 0.9, reward_std 1)",
        features="one-hot (s, a)", ridge=1e-3, episodes=50, horizon=40, seeds=seeds, lspi_iterations=lspi_it,
        fqi_iterations=fqi_it, repeats=args.repeats, quick=args.quick,
    )
    res = dict(
        optimal=optimal,
        behavior_value={n: float(rep.behavior[0, i]) for i, n in enumerate(names)},
        coverage={n: float(np.mean(rep.coverage[:, i])) for i, n in enumerate(names)},
        compile_s=compile_s, run_s=run_s, timing=timing.as_dict(), curves=curves,
    )
    lines = [
        "# linear_shift",
        "",
        f"{settings['mdp']}; one-hot (s, a) features, ridge 1e-3; 50 episodes x 40 steps; means over {seeds} data "
        f"seeds. J(pi*) = {optimal:.3f}. thinks = sum_s d0(s) max_a Q_k(s, a); does = exact J(greedy(Q_k)). "
        f"One jitted call for all seeds x behaviours: compile {compile_s:.1f} s, run {run_s:.2f} s.",
        "",
        f"{harness.describe(meta)}.",
        "",
    ]
    lines += harness.markdown_table(
        ["data", "coverage of (s, a)", "J(behaviour)"],
        [[n, f"{res['coverage'][n]:.2f}", f"{res['behavior_value'][n]:.3f}"] for n in names],
    )
    for method, its in (("lspi", lspi_it), ("fqi", fqi_it)):
        lines += ["", f"## {method.upper()}: thinks / does per iteration", ""]
        step = 1 if its <= 20 else 5
        ks = list(range(0, its + 1, step)) + ([its] if its % step else [])
        lines += harness.markdown_table(
            ["k"] + [f"{n}: {what}" for n in names for what in ("thinks", "does")],
            [[k] + [f"{curves[method][n][what][k]:.2f}" for n in names for what in ("thinks", "does")] for k in ks],
        )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        for ax, method in zip(axes, ("lspi", "fqi")):
            for i, n in enumerate(names):
                c = curves[method][n]
                ax.plot(c["thinks"], color=f"C{i}", ls="--", label=f"{n}: thinks")
                ax.plot(c["does"], color=f"C{i}", label=f"{n}: does")
            ax.axhline(optimal, color="k", lw=0.8, label="J(pi*)")
            ax.set_title(method.upper())
            ax.set_xlabel("iteration k")
        axes[0].set_ylabel("value")
        axes[1].legend(fontsize=7)
        fig.tight_layout()
        lines += ["", f"Plot: {harness.save_figure(fig, 'linear_shift', args.out, args.quick)}"]
    except ImportError:
        pass
    harness.write_results("linear_shift", res, lines, meta=meta, settings=settings, out=args.out, quick=args.quick)


if __name__ == "__main__":
    main()
