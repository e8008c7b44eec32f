"""Throughput of vectorised tabular data collection (episodes x steps per second).

Usage: python benchmarks/rollout_speed.py [--quick]
Writes benchmarks/results/rollout_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.envs import TabularMDP, rollout


def chain(num_states: int = 20) -> TabularMDP:
    p = np.zeros((num_states, 2, num_states))
    for s in range(num_states):
        left, right = max(s - 1, 0), min(s + 1, num_states - 1)
        p[s, 0, left] += 0.9
        p[s, 0, right] += 0.1
        p[s, 1, right] += 0.9
        p[s, 1, left] += 0.1
    r = np.zeros((num_states, 2))
    r[[0, -1]] = 1.0
    return TabularMDP.create(p, r, np.full(num_states, 1 / num_states), 0.9)


def garnet_like(num_states: int, num_actions: int, seed: int = 0) -> TabularMDP:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(num_states) * 0.1, size=(num_states, num_actions))
    return TabularMDP.create(p, rng.normal(size=(num_states, num_actions)), np.full(num_states, 1 / num_states), 0.95)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = ap.parse_args()
    sizes = [(10_000, 100)] if args.quick else [(10_000, 100), (100_000, 100), (10_000, 1000)]
    envs = {"chain_walk_20": chain(20), "random_100x4": garnet_like(100, 4)}
    fn = jax.jit(rollout, static_argnums=(3, 4, 5))
    rows = []
    for env_name, mdp in envs.items():
        pi = jnp.full((mdp.num_states, mdp.num_actions), 1.0 / mdp.num_actions)
        for n, t in sizes:
            t0 = time.perf_counter()
            jax.block_until_ready(fn(jax.random.key(0), mdp, pi, n, t, None))
            first = time.perf_counter() - t0
            times = []
            for i in range(args.repeats):
                t0 = time.perf_counter()
                jax.block_until_ready(fn(jax.random.key(i + 1), mdp, pi, n, t, None))
                times.append(time.perf_counter() - t0)
            run = statistics.median(times)
            rows.append(dict(env=env_name, episodes=n, steps=t, compile_s=first - run, run_s=run,
                             steps_per_s=n * t / run))
            print(rows[-1], flush=True)
    meta = dict(device=str(jax.devices()[0]), backend=jax.default_backend(), jax=jax.__version__,
                dtype="float32", cpu=platform.processor() or platform.machine(), cores=os.cpu_count())
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "rollout_speed.json"), "w") as f:
        json.dump(dict(meta=meta, rows=rows), f, indent=2)
    lines = [f"# Tabular rollout throughput ({meta['backend']}, {meta['cores']} cores, jax {meta['jax']}, float32)", "",
             "| env | episodes | steps | compile (s) | run (s) | steps/s |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['env']} | {r['episodes']:,} | {r['steps']} | {r['compile_s']:.2f} | {r['run_s']:.3f} | {r['steps_per_s']:.3g} |")
    with open(os.path.join(args.out, "rollout_speed.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
