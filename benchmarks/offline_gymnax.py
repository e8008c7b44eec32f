"""Offline RL on gymnax control tasks: normalised return by method, dataset quality and task.

Datasets come from the hand-written controllers of offrl_jax.envs.control_policies mixed with
uniform random actions: expert (epsilon 0.1), medium (epsilon 0.5) and random (epsilon 1); each
holds the first M logged transitions of its episodes. BC, CQL, BCQ and IQL (MLP 2x64, Adam,
minibatch 256) train on each; for every method, all seeds on all datasets of a task are one
jitted, vmapped program that trains and then evaluates each learned deterministic policy by
Monte Carlo (undiscounted return, episodes to termination or the time limit). Normalised return
= 100 (R - R_random) / (R_controller - R_random), with R_controller (epsilon 0) and R_random
(epsilon 1) measured in the same run.

Usage: python benchmarks/offline_gymnax.py [--quick] [--out DIR] [--tasks CartPole-v1,...] [--steps N]
(--quick: CartPole only, fewer steps; the full run is meant for an accelerator.)
Writes benchmarks/results/offline_gymnax[_quick].{json,md}.
"""

from __future__ import annotations

import os
import sys

import jax
import numpy as np

from offrl_jax.envs import control_returns, controller
from offrl_jax.experiments import fixing_shift as fs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

DATASETS = {"expert": 0.1, "medium": 0.5, "random": 1.0}
TASKS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0")
NUM_ACTIONS = {"CartPole-v1": 2, "Acrobot-v1": 3, "MountainCar-v0": 3}


def _reference(env, epsilon, n):
    c = controller(env, epsilon)
    return float(np.mean(np.asarray(control_returns(jax.random.key(99), env, c.policy, c.params, n, None, 1.0))))


def main() -> None:
    parser = harness.make_parser(__doc__, quick_repeats=1, repeats=1)
    parser.add_argument("--tasks", default=None, help="comma-separated gymnax ids")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 1000 quick, 20000 full)")
    args = harness.parse_args(parser)
    tasks = tuple(args.tasks.split(",")) if args.tasks else (("CartPole-v1",) if args.quick else TASKS)
    seeds = 5
    steps = args.steps or (1000 if args.quick else 20_000)
    m = 5000 if args.quick else 50_000
    episodes = 300 if args.quick else 2000
    n_eval = 10 if args.quick else 50
    meta = harness.metadata()
    results, timing = {}, {}
    for env in tasks:
        data = fs.stack_datasets([fs.control_dataset(jax.random.key(i), env, e, episodes, m)
                                  for i, e in enumerate(DATASETS.values())])
        ref = {"controller": _reference(env, 0.0, 100), "random": _reference(env, 1.0, 100)}
        methods = fs.control_methods(NUM_ACTIONS[env], num_steps=steps)
        keys = jax.random.split(jax.random.key(7), seeds)
        results[env] = {"reference": ref, "methods": {}}
        for name, method in methods.items():
            fn = jax.jit(lambda k, ek, d, method=method, env=env: fs.train_and_evaluate(k, ek, d, env, method, n_eval))
            ret, timing[f"{env} {name}"] = harness.timed_call(fn, keys, jax.random.key(123), data)
            ret = np.asarray(ret)  # [D, S, E]
            per_seed = ret.mean(-1)  # [D, S]
            norm = 100 * (per_seed - ref["random"]) / (ref["controller"] - ref["random"])
            results[env]["methods"][name] = {
                d: {"return": float(per_seed[i].mean()), "normalised": float(norm[i].mean()),
                    "normalised_se": float(norm[i].std(ddof=1) / np.sqrt(seeds)), "per_seed": norm[i].tolist()}
                for i, d in enumerate(DATASETS)
            }
    settings = {"tasks": tasks, "datasets": DATASETS, "seeds": seeds, "steps": steps, "transitions": m,
                "eval_episodes": n_eval, "networks": "MLP 2x64, Adam 1e-3, batch 256, target period 500",
                "cql_alpha": 1.0, "bcq_threshold": 0.3, "iql": "expectile 0.7, beta 3", "quick": args.quick}
    lines = [
        "# offline_gymnax",
        "",
        f"{harness.describe(meta)}; {seeds} seeds per cell trained as one vmapped program per method and task; "
        f"{steps} steps, {m} transitions per dataset, {n_eval} evaluation episodes per seed.",
        "",
        "Normalised return (100 = the epsilon-0 controller, 0 = uniform random), mean ± standard error over seeds.",
        "",
    ]
    header = ["task", "method"] + list(DATASETS)
    rows = []
    for env, r in results.items():
        for name, cells in r["methods"].items():
            cells_txt = [f"{cells[d]['normalised']:.0f} ± {cells[d]['normalised_se']:.0f}" for d in DATASETS]
            rows.append([env, name] + cells_txt)
    lines += harness.markdown_table(header, rows)
    lines += ["", "Reference returns: " + "; ".join(
        f"{env} controller {r['reference']['controller']:.1f}, random {r['reference']['random']:.1f}"
        for env, r in results.items()) + ".",
        "", "Seconds per method and task (train + evaluate, compile included): "
        + ", ".join(f"{k} {v:.0f}" for k, v in timing.items()) + "."]
    harness.write_results("offline_gymnax", {"results": results, "seconds_incl_compile": timing}, lines, meta=meta,
                          settings=settings, out=args.out, quick=args.quick)


if __name__ == "__main__":
    main()
