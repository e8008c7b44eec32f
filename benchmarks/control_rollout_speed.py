"""Throughput of gymnax control rollouts: episodes x steps per second, compile time apart.

For each task (CartPole-v1, Acrobot-v1, MountainCar-v0) and the epsilon = 0.1 controller:

* ``control_rollout``: full :class:`~offrl_jax.data.Trajectories` with behaviour and target
  log-probabilities (N x T x obs_dim observations are written);
* ``control_returns``: the lean Monte-Carlo path (only the discounted return is carried);
* a reference: a vmapped ``lax.scan`` of gymnax's public, auto-resetting ``env.step`` with the same
  controller, keeping only rewards and episode ends (the plain cost of simulating the task).

Throughput counts simulated steps, N x T per second (T = the task's time limit); ``real steps/s``
counts only steps before each episode's end. The first call is reported as compile time; the run
time is the median of ``--repeats`` calls, each under ``jax.block_until_ready``.

Usage: ``python benchmarks/control_rollout_speed.py [--quick] [--episodes N] [--repeats R]``.
Writes ``benchmarks/results/control_rollout_speed.{json,md}``.
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

from offrl_jax.envs.control import control_returns, control_rollout, make_env
from offrl_jax.envs.control_policies import controller

ENVS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0")
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _gymnax_reference(name: str, num_episodes: int, horizon: int):
    """Vmapped scan of the public ``env.step`` (auto-reset): rewards and episode ends only."""
    env, env_params = make_env(name)
    policy, _ = controller(name, 0.1)

    def run(key, params):
        def episode(k):
            k0, k1 = jax.random.split(k)
            obs, state = env.reset(k0, env_params)

            def step(carry, kt):
                state, obs = carry
                kp, ke = jax.random.split(kt)
                action, _ = policy.sample(params, obs, kp)
                obs, state, reward, terminated, truncated, _ = env.step(ke, state, action, env_params)
                # Episode ends are returned too: a reward alone can be constant (MountainCar),
                # which would let XLA fold the whole simulation away.
                return (state, obs), (reward, terminated | truncated)

            return jax.lax.scan(step, (state, obs), jax.random.split(k1, horizon))[1]

        return jax.vmap(episode)(jax.random.split(key, num_episodes))

    return jax.jit(run)


def _time(fn, args, repeats: int):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - t0
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        runs.append(time.perf_counter() - t0)
    return out, compile_s, statistics.median(runs)


def bench(name: str, num_episodes: int, repeats: int) -> list[dict]:
    env, env_params = make_env(name)
    horizon = int(env_params.max_steps_in_episode)
    policy, params = controller(name, 0.1)
    target, target_params = controller(name, 0.0)
    key = jax.random.key(0)
    rollout = jax.jit(
        lambda k, p, tp: control_rollout(k, name, policy, p, num_episodes, horizon, target, tp)
    )
    returns = jax.jit(lambda k, p: control_returns(k, name, policy, p, num_episodes, horizon, 0.99))
    reference = _gymnax_reference(name, num_episodes, horizon)
    rows = []
    for label, fn, args in (
        ("control_rollout (Trajectories + log-probs)", rollout, (key, params, target_params)),
        ("control_returns (Monte-Carlo path)", returns, (key, params)),
        ("gymnax env.step scan (reference)", reference, (key, params)),
    ):
        out, compile_s, run_s = _time(fn, args, repeats)
        real = float(out.mask.sum()) if hasattr(out, "mask") else None
        rows.append(
            dict(
                env=name,
                method=label,
                episodes=num_episodes,
                horizon=horizon,
                compile_s=round(compile_s, 3),
                run_s=round(run_s, 4),
                steps_per_s=num_episodes * horizon / run_s,
                episodes_per_s=num_episodes / run_s,
                real_steps_per_s=None if real is None else real / run_s,
            )
        )
        print(f"{name:15s} {label:45s} compile {compile_s:6.2f}s  run {run_s:7.3f}s  "
              f"{num_episodes * horizon / run_s / 1e6:7.2f} M steps/s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    parser.add_argument("--episodes", type=int, default=None, help="episodes per call")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls (median)")
    args = parser.parse_args()
    episodes = args.episodes or (200 if args.quick else 10_000)
    repeats = args.repeats or (2 if args.quick else 5)
    rows = []
    for name in ENVS:
        rows += bench(name, episodes, repeats)
    meta = dict(
        device=str(jax.devices()[0]),
        platform=jax.default_backend(),
        cpu=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        jax_version=jax.__version__,
        dtype=str(jnp.zeros(()).dtype),
        episodes=episodes,
        repeats=repeats,
        quick=args.quick,
        load_average_1min=round(os.getloadavg()[0], 2),  # other processes sharing the CPU
    )
    os.makedirs(RESULTS, exist_ok=True)
    stem = os.path.join(RESULTS, "control_rollout_speed" + ("_quick" if args.quick else ""))
    with open(stem + ".json", "w") as f:
        json.dump(dict(meta=meta, results=rows), f, indent=2)
    lines = [
        "# gymnax control rollout throughput",
        "",
        f"device {meta['device']} ({meta['cpu_count']} CPU cores), jax {meta['jax_version']}, "
        f"{meta['dtype']}, epsilon = 0.1 controllers, T = time limit, median of {repeats} calls; "
        f"load average {meta['load_average_1min']} when done.",
        "",
        "| env | method | N x T | compile (s) | run (s) | M steps/s | episodes/s | M real steps/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        real = "" if r["real_steps_per_s"] is None else f"{r['real_steps_per_s'] / 1e6:.2f}"
        lines.append(
            f"| {r['env']} | {r['method']} | {r['episodes']} x {r['horizon']} | {r['compile_s']:.2f} "
            f"| {r['run_s']:.3f} | {r['steps_per_s'] / 1e6:.2f} | {r['episodes_per_s']:.0f} | {real} |"
        )
    with open(stem + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
