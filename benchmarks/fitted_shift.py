"""Distribution shift in fitted Q iteration: narrow vs broad data (the lecture's figure).

A Garnet(20 states, 4 actions, branching 3, gamma 0.9, reward noise std 1) MDP. Behaviour
policies are epsilon-mixtures of a fixed random deterministic policy with the uniform policy:
narrow data epsilon = 0.02 (near-deterministic), broad data epsilon = 0.5. Each dataset holds 50
episodes of 40 steps. Outer/inner FQI (MLP 2x64 on one-hot states, Adam, warm start) runs K
iterations; after each, the value it thinks of its own greedy policy at the start states,
sum_s d0(s) max_a Q_k(s, a), is set against that policy's exact value J(pi_k) (linear solve).

Usage: python benchmarks/fitted_shift.py [--quick] [--out DIR]
Writes benchmarks/results/fitted_shift[_quick].{json,md} and .png (with matplotlib).
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
from offrl_jax.experiments.shift import fitted_distribution_shift
from offrl_jax.fitted import FittedQConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

S, A = 20, 4
DATASETS = {"narrow (epsilon 0.02)": 0.02, "broad (epsilon 0.5)": 0.5}


def main() -> None:
    args = harness.parse_args(harness.make_parser(__doc__, quick_repeats=1, repeats=1))
    iters = 20 if args.quick else 50
    inner = 300 if args.quick else 500
    meta = harness.metadata()
    mdp = garnet(0, S, A, 3, gamma=0.9, reward_std=1.0)
    base = policies.deterministic(jnp.asarray(np.random.default_rng(0).integers(0, A, S)), A)
    cfg = FittedQConfig(
        num_actions=A, num_observations=S, hidden_sizes=(64, 64), gamma=0.9, batch_size=256,
        learning_rate=1e-3, num_steps=inner, method="fqi",
    )
    curves, timing = {}, {}
    for name, eps in DATASETS.items():
        beh = policies.mixture(base, policies.uniform(S, A), 1.0 - eps)
        ds = to_transitions(rollout(jax.random.key(1), mdp, beh, 50, 40))
        # One call (compile included): the curves are the measurement, the time a by-product.
        c, timing[name] = harness.timed_call(fitted_distribution_shift, jax.random.key(2), ds, mdp, cfg, iters)
        curves[name] = c
    optimal = float(next(iter(curves.values())).optimal)
    settings = {
        "mdp": "garnet(seed 0, 20 states, 4 actions, branching 3, gamma 0.9, reward_std 1)",
        "iterations": iters,
        "inner_steps": inner,
        "quick": args.quick,
    }
    res = {
        "optimal_value": optimal,
        "seconds_incl_compile": timing,
        "curves": {
            n: {"thinks": np.asarray(c.thinks).tolist(), "does": np.asarray(c.does).tolist()}
            for n, c in curves.items()
        },
    }
    names = list(DATASETS)
    lines = [
        "# fitted_shift",
        "",
        f"{settings['mdp']}; J(pi*) = {optimal:.3f}. Per FQI iteration k: thinks = sum_s d0(s) max_a Q_k(s, a), "
        "does = exact J(greedy(Q_k)).",
        "",
        f"{harness.describe(meta)}; seconds per dataset (one call, compile included): "
        + ", ".join(f"{n} {t:.1f}" for n, t in timing.items()) + ".",
        "",
    ]
    ks = sorted(set(list(range(0, iters, max(1, iters // 10))) + [iters - 1]))
    lines += harness.markdown_table(
        ["k"] + [f"{n}: {what}" for n in names for what in ("thinks", "does")],
        [[k + 1] + [f"{float(getattr(curves[n], what)[k]):.2f}" for n in names for what in ("thinks", "does")]
         for k in ks],
    )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(names), figsize=(10, 3.8), sharey=True)
        ks = np.arange(1, iters + 1)
        for ax, n in zip(axes, names):
            ax.plot(ks, curves[n].thinks, label="thinks (FQI's own estimate)")
            ax.plot(ks, curves[n].does, label="does (exact J of its greedy policy)")
            ax.axhline(optimal, color="gray", ls="--", lw=1, label="J(pi*)")
            ax.set_title(n)
            ax.set_xlabel("FQI iteration k")
        axes[0].set_ylabel("value at start states")
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        lines += ["", f"Plot: {harness.save_figure(fig, 'fitted_shift', args.out, args.quick)}"]
    except ImportError:
        lines += ["", "(matplotlib not installed: no plot)"]
    harness.write_results("fitted_shift", res, lines, meta=meta, settings=settings, out=args.out, quick=args.quick)


if __name__ == "__main__":
    main()
