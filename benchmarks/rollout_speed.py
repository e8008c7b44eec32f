"""Throughput of vectorised tabular data collection (episodes x steps per second).

Compile time (``lower().compile()``) is reported apart from run time (median of ``--repeats``
calls under ``jax.block_until_ready``, the same key each call).

Usage: python benchmarks/rollout_speed.py [--quick] [--repeats R] [--out DIR]
Writes benchmarks/results/rollout_speed[_quick].{json,md}.
"""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.envs import TabularMDP, rollout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


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
    args = harness.parse_args(harness.make_parser(__doc__, quick_repeats=5, repeats=5))
    sizes = [(10_000, 100)] if args.quick else [(10_000, 100), (100_000, 100), (10_000, 1000)]
    envs = {"chain_walk_20": chain(20), "random_100x4": garnet_like(100, 4)}
    meta = harness.metadata("float32")
    rows = []
    for env_name, mdp in envs.items():
        pi = jnp.full((mdp.num_states, mdp.num_actions), 1.0 / mdp.num_actions)
        for n, t in sizes:
            fn = jax.jit(lambda key, mdp, pi, n=n, t=t: rollout(key, mdp, pi, n, t, None))
            timing, _, _ = harness.time_jit(fn, jax.random.key(0), mdp, pi, repeats=args.repeats)
            rows.append(dict(env=env_name, episodes=n, steps=t, **timing.as_dict(), steps_per_s=n * t / timing.run_s))
            print({k: rows[-1][k] for k in ("env", "episodes", "steps", "compile_s", "run_s", "steps_per_s")}, flush=True)
    lines = [f"# Tabular rollout throughput ({harness.describe(meta)})", ""]
    lines += harness.markdown_table(
        ["env", "episodes", "steps", "compile (s)", "run (s)", "steps/s"],
        [[r["env"], f"{r['episodes']:,}", r["steps"], f"{r['compile_s']:.2f}", f"{r['run_s']:.3f}",
          f"{r['steps_per_s']:.3g}"] for r in rows],
    )
    settings = dict(sizes=[list(s) for s in sizes], repeats=args.repeats, quick=args.quick, policy="uniform")
    harness.write_results("rollout_speed", rows, lines, meta=meta, settings=settings, out=args.out, quick=args.quick)


if __name__ == "__main__":
    main()
