"""Throughput of gymnax control rollouts: episodes x steps per second, compile time apart.

For each task (CartPole-v1, Acrobot-v1, MountainCar-v0) and the epsilon = 0.1 controller:

* ``control_rollout``: full :class:`~offrl_jax.data.Trajectories` with behaviour and target
  log-probabilities (N x T x obs_dim observations are written);
* ``control_returns``: the lean Monte-Carlo path (only the discounted return is carried);
* a reference: a vmapped ``lax.scan`` of gymnax's public, auto-resetting ``env.step`` with the same
  controller, keeping only rewards and episode ends (the plain cost of simulating the task).

Throughput counts simulated steps, N x T per second (T = the task's time limit); ``real steps/s``
counts only steps before each episode's end. Compile time (``lower().compile()``) is reported
apart; the run time is the median of ``--repeats`` calls, each under ``jax.block_until_ready``.

Usage: ``python benchmarks/control_rollout_speed.py [--quick] [--episodes N] [--repeats R] [--out DIR]``.
Writes ``benchmarks/results/control_rollout_speed[_quick].{json,md}``.
"""

from __future__ import annotations

import os
import sys

import jax

from offrl_jax.envs.control import control_returns, control_rollout, make_env
from offrl_jax.envs.control_policies import controller

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

ENVS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0")


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
        timing, out, _ = harness.time_jit(fn, *args, repeats=repeats)
        run_s = timing.run_s
        real = float(out.mask.sum()) if hasattr(out, "mask") else None
        rows.append(
            dict(
                env=name,
                method=label,
                episodes=num_episodes,
                horizon=horizon,
                **timing.as_dict(),
                steps_per_s=num_episodes * horizon / run_s,
                episodes_per_s=num_episodes / run_s,
                real_steps_per_s=None if real is None else real / run_s,
            )
        )
        print(f"{name:15s} {label:45s} compile {timing.compile_s:6.2f}s  run {run_s:7.3f}s  "
              f"{num_episodes * horizon / run_s / 1e6:7.2f} M steps/s", flush=True)
    return rows


def main() -> None:
    parser = harness.make_parser(__doc__, quick_repeats=2, repeats=5)
    parser.add_argument("--episodes", type=int, default=None, help="episodes per call")
    args = harness.parse_args(parser)
    episodes = args.episodes or (64 if args.quick else 10_000)
    repeats = args.repeats
    meta = harness.metadata()
    rows = []
    for name in ENVS:
        rows += bench(name, episodes, repeats)
    lines = [
        "# gymnax control rollout throughput",
        "",
        f"{harness.describe(meta)}; epsilon = 0.1 controllers, T = time limit, median of {repeats} calls.",
        "",
    ]
    table = []
    for r in rows:
        real = "" if r["real_steps_per_s"] is None else f"{r['real_steps_per_s'] / 1e6:.2f}"
        table.append([
            r["env"], r["method"], f"{r['episodes']} x {r['horizon']}", f"{r['compile_s']:.2f}", f"{r['run_s']:.3f}",
            f"{r['steps_per_s'] / 1e6:.2f}", f"{r['episodes_per_s']:.0f}", real,
        ])
    lines += harness.markdown_table(
        ["env", "method", "N x T", "compile (s)", "run (s)", "M steps/s", "episodes/s", "M real steps/s"], table
    )
    settings = dict(episodes=episodes, repeats=repeats, quick=args.quick, envs=list(ENVS), epsilon=0.1)
    harness.write_results("control_rollout_speed", rows, lines, meta=meta, settings=settings, out=args.out,
                          quick=args.quick)


if __name__ == "__main__":
    main()
