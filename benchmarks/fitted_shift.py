"""Distribution shift in fitted Q iteration: narrow vs broad data (the lecture's figure).

A Garnet(20 states, 4 actions, branching 3, gamma 0.9, reward noise std 1) MDP. Behaviour
policies are epsilon-mixtures of a fixed random deterministic policy with the uniform policy:
narrow data epsilon = 0.02 (near-deterministic), broad data epsilon = 0.5. Each dataset holds 50
episodes of 40 steps. Outer/inner FQI (MLP 2x64 on one-hot states, Adam, warm start) runs K
iterations; after each, the predicted value of its own greedy policy at the start states,
sum_s d0(s) max_a Q_k(s, a), is set against that policy's exact value J(pi_k) (linear solve).

Usage: python benchmarks/fitted_shift.py [--quick]
Writes benchmarks/results/fitted_shift.{json,md} and fitted_shift.png (with matplotlib).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax import policies
from offrl_jax.data import to_transitions
from offrl_jax.envs import rollout
from offrl_jax.envs.suite import garnet
from offrl_jax.fitted import FittedQConfig, distribution_shift_curves

HERE = os.path.dirname(os.path.abspath(__file__))
S, A = 20, 4
DATASETS = {"narrow (epsilon 0.02)": 0.02, "broad (epsilon 0.5)": 0.5}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    iters = 20 if args.quick else 50
    inner = 300 if args.quick else 500
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
        t = time.perf_counter()
        c = jax.block_until_ready(distribution_shift_curves(jax.random.key(2), ds, mdp, cfg, iters))
        timing[name] = time.perf_counter() - t
        curves[name] = c
    optimal = float(next(iter(curves.values())).optimal)
    res = {
        "mdp": "garnet(seed 0, 20 states, 4 actions, branching 3, gamma 0.9, reward_std 1)",
        "iterations": iters,
        "inner_steps": inner,
        "optimal_value": optimal,
        "jax_version": jax.__version__,
        "device": jax.devices()[0].device_kind,
        "seconds_incl_compile": timing,
        "curves": {
            n: {"predicted": np.asarray(c.predicted).tolist(), "actual": np.asarray(c.actual).tolist()}
            for n, c in curves.items()
        },
    }
    names = list(DATASETS)
    lines = [
        "# fitted_shift",
        "",
        f"{res['mdp']}; J(pi*) = {optimal:.3f}. Per FQI iteration k: predicted = sum_s d0(s) max_a Q_k(s, a), "
        "actual = exact J(greedy(Q_k)).",
        "",
        "| k | " + " | ".join(f"{n}: predicted | {n}: actual" for n in names) + " |",
        "|---" * (1 + 2 * len(names)) + "|",
    ]
    for k in sorted(set(list(range(0, iters, max(1, iters // 10))) + [iters - 1])):
        row = [f"{float(curves[n].predicted[k]):.2f} | {float(curves[n].actual[k]):.2f}" for n in names]
        lines.append(f"| {k + 1} | " + " | ".join(row) + " |")
    out = os.path.join(HERE, "results")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "fitted_shift.json"), "w") as f:
        json.dump(res, f, indent=2)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(names), figsize=(10, 3.8), sharey=True)
        ks = np.arange(1, iters + 1)
        for ax, n in zip(axes, names):
            ax.plot(ks, curves[n].predicted, label="predicted (FQI's own estimate)")
            ax.plot(ks, curves[n].actual, label="actual J(greedy policy)")
            ax.axhline(optimal, color="gray", ls="--", lw=1, label="J(pi*)")
            ax.set_title(n)
            ax.set_xlabel("FQI iteration k")
        axes[0].set_ylabel("value at start states")
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "fitted_shift.png"), dpi=120)
        lines += ["", "Plot: benchmarks/results/fitted_shift.png"]
    except ImportError:
        lines += ["", "(matplotlib not installed: no plot)"]
    with open(os.path.join(out, "fitted_shift.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
