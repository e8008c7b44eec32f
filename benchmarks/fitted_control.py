"""FQE of target controllers on gymnax CartPole-v1, Acrobot-v1 and MountainCar-v0 vs Monte-Carlo.

For each task: a dataset of episodes of an epsilon-mixed behaviour controller
(``offrl_jax.envs.control_policies.controller``), FQE (MLP, in-jit ``make_train``, seeds
vmapped, ``offrl_jax.experiments.control_fqe.fqe_value``) of a *different* target controller, and its
estimate Ĵ = mean over the dataset's initial observations of Σ_a π(a|s_0) Q̂(s_0, a) against the
target's Monte-Carlo value with standard error (independent key, 1000 episodes).

Time limits. The tasks cut episodes at T (CartPole 500, Acrobot 500, MountainCar 200 steps), so
the Monte-Carlo value is the truncated one, E[Σ_{t < min(L, T)} γ^t r_t]. FQE here learns that
same quantity: the network reads [o, t / T] and the time-out step is terminal (discount 0)
(``time_aware_transitions``; "Time Limits in Reinforcement Learning", Pardo et al. 2018).
Bootstrapping through time-outs instead would estimate the value without the limit; the table
shows that value too (Monte-Carlo with the limit lifted to 3000 steps, γ^3000 ≈ 1e-13), to show
how far apart the two quantities are at γ = 0.99 (MountainCar: far; the others: close).

Scale. Rewards are ±1 per step, so values are up to 1/(1 − γ) = 100: FQE trains on rewards
scaled by c = 1 − γ (the fixed point is linear in r; estimates are divided by c), on
standardised observations (per-feature dataset mean and standard deviation).

Usage: python benchmarks/fitted_control.py [--quick] [--repeats R] [--tasks CartPole-v1 ...] [--out DIR]
Writes benchmarks/results/fitted_control{,_quick}.{json,md}.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

GAMMA = 0.99
MC_EPISODES = 1000
LIFTED_LIMIT = 3000
# task: (num_actions, behaviour epsilon, target epsilon, dataset episodes (full))
TASKS = {
    "CartPole-v1": (2, 0.5, 0.3, 500),
    "Acrobot-v1": (3, 0.3, 0.1, 850),
    "MountainCar-v0": (3, 0.3, 0.1, 600),
}


def settings(quick: bool, repeats: int) -> dict:
    if quick:  # a smoke run: proves the script and its table, not FQE's accuracy
        return dict(hidden=(32, 32), steps=600, seeds=2, episodes_div=15, repeats=repeats, mc_episodes=200)
    return dict(hidden=(256, 256), steps=12000, seeds=3, episodes_div=1, repeats=repeats, mc_episodes=MC_EPISODES)


def run_task(env_name: str, s: dict) -> dict:
    import jax
    import numpy as np

    from offrl_jax.envs.control import control_rollout, make_env, monte_carlo_value
    from offrl_jax.envs.control_policies import controller
    from offrl_jax.fitted import FittedQConfig
    from offrl_jax.experiments.control_fqe import controller_probs, fqe_value
    from offrl_jax.fitted import time_aware_transitions, with_time

    num_actions, beh_eps, tgt_eps, episodes = TASKS[env_name]
    episodes = max(episodes // s["episodes_div"], 10)
    env, env_params = make_env(env_name)
    limit = int(env_params.max_steps_in_episode)

    beh = controller(env_name, beh_eps)
    roll = jax.jit(control_rollout, static_argnames=("env", "policy", "num_episodes", "horizon"))
    traj = roll(jax.random.key(0), env_name, beh.policy, beh.params, num_episodes=episodes)
    data = time_aware_transitions(traj, limit)
    s0 = with_time(traj.observations[:, 0], 0, limit)
    obs_dim = traj.observations.shape[-1]
    frac_timeout = float(np.mean(np.asarray(traj.lengths) >= limit))

    tgt = controller(env_name, tgt_eps)
    policy = controller_probs(tgt, num_actions, obs_dim)
    mc_fn = jax.jit(monte_carlo_value, static_argnames=("env", "policy", "num_episodes", "horizon", "gamma"))
    mc = mc_fn(jax.random.key(123), env_name, tgt.policy, tgt.params, num_episodes=s["mc_episodes"], horizon=None,
               gamma=GAMMA)
    lifted = env_params.replace(max_steps_in_episode=LIFTED_LIMIT)
    mc_inf = mc_fn(
        jax.random.key(124), env_name, tgt.policy, tgt.params, num_episodes=s["mc_episodes"],
        horizon=LIFTED_LIMIT, gamma=GAMMA, env_params=lifted,
    )

    cfg = FittedQConfig(
        num_actions=num_actions, gamma=GAMMA, hidden_sizes=s["hidden"], num_steps=s["steps"],
        batch_size=256, learning_rate=1e-3, target_update_period=10,
    )
    keys = jax.random.split(jax.random.key(1), s["seeds"])
    f = lambda k, d, o, c: fqe_value(k, d, o, policy, cfg, reward_scale=c)  # noqa: E731  (policy, config static)
    timing, res, _ = harness.time_jit(f, keys, data, s0, 1.0 - GAMMA, repeats=s["repeats"])
    run_s = timing.run_s

    est, se = float(res.estimate), float(res.standard_error)
    m, m_se = float(mc.mean), float(mc.standard_error)
    return {
        "task": env_name,
        "gamma": GAMMA,
        "time_limit": limit,
        "behaviour_epsilon": beh_eps,
        "target_epsilon": tgt_eps,
        "episodes": episodes,
        "transitions": int(data.rewards.shape[0]),
        "behaviour_timeout_fraction": frac_timeout,
        "hidden": list(s["hidden"]),
        "steps": s["steps"],
        "seeds": s["seeds"],
        "fqe_mean": est,
        "fqe_se_over_seeds": se,
        "fqe_seed_estimates": [float(x) for x in np.asarray(res.seed_estimates)],
        "final_loss": [float(x) for x in np.asarray(res.final_loss)],
        "mc_mean": m,
        "mc_se": m_se,
        "mc_episodes": s["mc_episodes"],
        "mc_no_time_limit": float(mc_inf.mean),
        "mc_no_time_limit_se": float(mc_inf.standard_error),
        "error": est - m,
        "error_in_mc_se": (est - m) / m_se,
        "relative_error": abs(est - m) / abs(m),
        "compile_s": timing.compile_s,
        "train_s": run_s,
        "timing": timing.as_dict(),
        "seed_steps_per_s": s["seeds"] * s["steps"] / run_s,
    }


def main() -> None:
    ap = harness.make_parser(__doc__, quick_repeats=1, repeats=1)
    ap.add_argument("--tasks", nargs="*", default=list(TASKS))
    args = harness.parse_args(ap)

    s = settings(args.quick, args.repeats)
    meta = harness.metadata("float32")
    rows = []
    for name in args.tasks:
        row = run_task(name, s)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    run_settings = {**s, "hidden": list(s["hidden"]), "batch_size": 256, "learning_rate": 1e-3, "optimizer": "adam",
                    "target_update_period": 10, "reward_scale": "1 - gamma",
                    "observations": "standardised, plus t / T; time-outs terminal", "quick": args.quick}
    lines = [
        "# fitted_control: FQE of target controllers vs Monte-Carlo",
        "",
        f"{harness.describe(meta)}. "
        f"gamma {GAMMA}; FQE: MLP {'x'.join(map(str, s['hidden']))}, Adam 1e-3, batch 256, hard "
        f"target copy every 10 steps, {s['steps']} steps, {s['seeds']} seeds vmapped; rewards x (1 - gamma), "
        "standardised observations. Compared quantity: the value of episodes cut at the task's time limit T "
        f"(network input [o, t/T], time-out = terminal); Monte-Carlo: {s['mc_episodes']} episodes of the target, key 123.",
        "",
    ]
    lines += harness.markdown_table(
        ["task", "behaviour eps", "target eps", "transitions (episodes)", "FQE ± SE (seeds)", "MC ± SE",
         "error / MC SE", "relative error", "MC without time limit", "compile s", "train s"],
        [[r["task"], r["behaviour_epsilon"], r["target_epsilon"], f"{r['transitions']} ({r['episodes']})",
          f"{r['fqe_mean']:.2f} ± {r['fqe_se_over_seeds']:.2f}", f"{r['mc_mean']:.2f} ± {r['mc_se']:.2f}",
          f"{r['error_in_mc_se']:+.1f}", f"{100 * r['relative_error']:.1f}%",
          f"{r['mc_no_time_limit']:.2f} ± {r['mc_no_time_limit_se']:.2f}", f"{r['compile_s']:.1f}",
          f"{r['train_s']:.1f}"] for r in rows],
    )
    lines += [
        "",
        "FQE ± SE: mean and standard error over seeds (network init and minibatch noise; the dataset is fixed). "
        "error / MC SE: (FQE − MC) / MC SE. Train time: one jitted, vmapped call for all seeds, after compilation.",
    ]
    harness.write_results("fitted_control", rows, lines, meta=meta, settings=run_settings, out=args.out,
                          quick=args.quick)


if __name__ == "__main__":
    main()
