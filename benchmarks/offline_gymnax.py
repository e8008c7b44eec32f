"""Offline RL on gymnax control tasks: normalised return by method, dataset quality and task, and
choosing a checkpoint with the package's own OPE.

Datasets come from the hand-written controllers of offrl_jax.envs.control_policies mixed with
uniform random actions: expert (epsilon 0.1), medium (epsilon 0.5) and random (epsilon 1); each
holds the first M logged transitions of its episodes. Discrete tasks (CartPole, Acrobot,
MountainCar): BC, CQL, BCQ and IQL. Continuous task Pendulum-v1 (energy-shaping swing-up with
truncated-Gaussian torque noise, sigma 0.1; uniform torques on [-2, 2] for epsilon 1): Gaussian BC,
continuous IQL and TD3+BC, trained on rewards x 0.1 (evaluation uses the task's own rewards).
MLP 2x64, Adam 1e-3, minibatch 256. For every method, all seeds on all datasets of a task are one
jitted, vmapped program that trains and then evaluates each learned deterministic policy (greedy,
or the mean action) by Monte Carlo (undiscounted return, episodes to termination or the time
limit). Normalised return = 100 (R - R_random) / (R_controller - R_random), with R_controller
(epsilon 0) and R_random (epsilon 1: uniform random actions) measured in the same run.

Checkpoint selection (offrl_jax.experiments.checkpoint_selection): one method trained on one
dataset with its parameters kept every num_steps / K steps; each checkpoint scored from the
logged data alone by FQE (direct method) and, for discrete actions, DR with the known behaviour
log-probabilities, against its Monte-Carlo value (gamma 0.99): Spearman rho, regret@1, and the
value of the checkpoint each estimator picks next to the last and the best checkpoint.

Usage: python benchmarks/offline_gymnax.py [--quick] [--out DIR] [--tasks CartPole-v1,Pendulum-v1,...]
       [--steps N] [--transitions M] [--eval-episodes E] [--selection-tasks CartPole-v1,...]
       [--selection-steps N] [--fqe-steps N]
(--quick: the Pendulum rows and the CartPole checkpoint table at tiny sizes; add discrete rows with
--tasks CartPole-v1,Pendulum-v1. The full run is meant for an accelerator.)
Writes benchmarks/results/offline_gymnax[_quick].{json,md}.
"""

from __future__ import annotations

import os
import sys

import jax
import numpy as np

from offrl_jax import fitted
from offrl_jax.data import to_transitions
from offrl_jax.envs import control_returns, control_rollout, controller
from offrl_jax.experiments import checkpoint_selection as cs
from offrl_jax.experiments import fixing_shift as fs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

DATASETS = {"expert": 0.1, "medium": 0.5, "random": 1.0}
TASKS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "Pendulum-v1")
NUM_ACTIONS = {"CartPole-v1": 2, "Acrobot-v1": 3, "MountainCar-v0": 3}
CONTINUOUS = {"Pendulum-v1": (1, 2.0)}  # action_dim, max_action
REWARD_SCALE = {"Pendulum-v1": 0.1}  # training rewards only
# Checkpoint selection: (method, dataset epsilon) per task.
SELECTION = {"CartPole-v1": ("CQL", 1.0), "Pendulum-v1": ("TD3+BC", 0.5)}
GAMMA = 0.99


def _reference(env, epsilon, n):
    c = controller(env, epsilon)
    return float(np.mean(np.asarray(control_returns(jax.random.key(99), env, c.policy, c.params, n, None, 1.0))))


def _methods(env, steps):
    if env in CONTINUOUS:
        return fs.continuous_methods(*CONTINUOUS[env], GAMMA, num_steps=steps)
    return fs.control_methods(NUM_ACTIONS[env], GAMMA, num_steps=steps)


def _compiled_run(fn, *args):
    """(output, compile seconds, run seconds): compile ahead of time, then one timed call."""
    compiled, compile_s = harness.compile_jit(fn, *args)
    out, run_s = harness.timed_call(compiled, *args)
    return out, compile_s, run_s


def returns_table(tasks, seeds, steps, m, episodes, n_eval):
    results, timing = {}, {}
    for env in tasks:
        data = fs.stack_datasets([fs.control_dataset(jax.random.key(i), env, e, episodes, m)
                                  for i, e in enumerate(DATASETS.values())])
        if env in REWARD_SCALE:
            data = data.replace(rewards=data.rewards * REWARD_SCALE[env])
        ref = {"controller": _reference(env, 0.0, 100), "random": _reference(env, 1.0, 100)}
        keys = jax.random.split(jax.random.key(7), seeds)
        results[env] = {"reference": ref, "methods": {}}
        for name, method in _methods(env, steps).items():
            fn = jax.jit(lambda k, ek, d, method=method, env=env: fs.train_and_evaluate(k, ek, d, env, method, n_eval))
            ret, c_s, r_s = _compiled_run(fn, keys, jax.random.key(123), data)
            timing[f"{env} {name}"] = {"compile_s": c_s, "run_s": r_s}
            per_seed = np.asarray(ret).mean(-1)  # [D, S]
            norm = 100 * (per_seed - ref["random"]) / (ref["controller"] - ref["random"])
            results[env]["methods"][name] = {
                d: {"return": float(per_seed[i].mean()), "normalised": float(norm[i].mean()),
                    "normalised_se": float(norm[i].std(ddof=1) / np.sqrt(seeds)), "per_seed": norm[i].tolist()}
                for i, d in enumerate(DATASETS)
            }
    return results, timing


def selection_table(tasks, seeds, steps, fqe_steps, episodes, checkpoints, n_eval):
    results, timing = {}, {}
    for env in tasks:
        name, eps = SELECTION[env]
        c = controller(env, eps)
        traj = control_rollout(jax.random.key(0), env, c.policy, c.params, episodes, None)
        longest = int(np.max(np.asarray(traj.lengths)))  # drop the all-padding tail (DR is a no-op there)
        traj = jax.tree.map(lambda x: x[:, :longest], traj)
        data = to_transitions(traj)
        if env in REWARD_SCALE:  # the learner trains on scaled rewards; OPE and Monte Carlo use the task's
            train_data = data.replace(rewards=data.rewards * REWARD_SCALE[env])
        else:
            train_data = data
        method = _methods(env, steps)[name]
        cont = env in CONTINUOUS
        fq = fitted.FittedQConfig(
            **({"action_dim": CONTINUOUS[env][0]} if cont else {"num_actions": NUM_ACTIONS[env]}),
            method="fqe", gamma=GAMMA, hidden_sizes=(64, 64), num_steps=fqe_steps, batch_size=256,
            learning_rate=1e-3, target_update_period=50, loss="huber")
        keys = jax.random.split(jax.random.key(1), seeds)

        def fn(k, ek, d, td, tr, env=env, method=method, fq=fq):
            return cs.checkpoint_values(k, ek, d, tr, env, method, fq, checkpoints, n_eval,
                                        reward_scale=1 - GAMMA, train_data=td)

        vals, c_s, r_s = _compiled_run(jax.jit(fn), keys, jax.random.key(2), data, train_data, traj)
        timing[f"{env} {name}"] = {"compile_s": c_s, "run_s": r_s}
        results[env] = {"method": name, "epsilon": eps, "transitions": int(data.size),
                        "values": {k: np.asarray(v).tolist() for k, v in vals._asdict().items()},
                        "summary": cs.selection_summary(vals)}
    return results, timing


def main() -> None:
    parser = harness.make_parser(__doc__, quick_repeats=1, repeats=1)
    parser.add_argument("--tasks", default=None, help="comma-separated gymnax ids")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 200 quick, 20000 full)")
    parser.add_argument("--transitions", type=int, default=None, help="transitions per dataset")
    parser.add_argument("--eval-episodes", type=int, default=None, help="Monte-Carlo episodes per seed")
    parser.add_argument("--selection-tasks", default=None, help="tasks of the checkpoint table ('' for none)")
    parser.add_argument("--selection-steps", type=int, default=None, help="training steps of the checkpoint runs")
    parser.add_argument("--fqe-steps", type=int, default=None, help="FQE steps per checkpoint")
    args = harness.parse_args(parser)
    q = args.quick
    tasks = tuple(t for t in args.tasks.split(",") if t) if args.tasks is not None else (("Pendulum-v1",) if q else TASKS)
    sel = args.selection_tasks
    sel_tasks = tuple(t for t in sel.split(",") if t) if sel is not None else (("CartPole-v1",) if q else tuple(SELECTION))
    seeds = 5
    steps = args.steps or (200 if q else 20_000)
    m = args.transitions or (2000 if q else 50_000)
    episodes = 300 if q else 2000
    n_eval = args.eval_episodes or (5 if q else 50)
    sel_steps = args.selection_steps or (200 if q else 5000)
    fqe_steps = args.fqe_steps or (200 if q else 5000)
    sel_seeds, checkpoints = (2, 4) if q else (5, 10)
    sel_episodes = 100 if q else 500
    meta = harness.metadata()
    results, timing = returns_table(tasks, seeds, steps, m, episodes, n_eval)
    selection, sel_timing = selection_table(sel_tasks, sel_seeds, sel_steps, fqe_steps, sel_episodes, checkpoints,
                                            n_eval)
    settings = {"tasks": tasks, "datasets": DATASETS, "seeds": seeds, "steps": steps, "transitions": m,
                "eval_episodes": n_eval, "networks": "MLP 2x64, Adam 1e-3, batch 256, target period 500",
                "cql_alpha": 1.0, "bcq_threshold": 0.3, "iql": "expectile 0.7, beta 3",
                "td3_bc": "alpha 2.5, tau 0.005, policy noise 0.4, clip 1.0",
                "reward_scale_for_training": REWARD_SCALE, "gamma_training": GAMMA,
                "selection": {"tasks": sel_tasks, "runs": {t: SELECTION[t] for t in sel_tasks}, "seeds": sel_seeds,
                              "checkpoints": checkpoints, "steps": sel_steps, "fqe_steps": fqe_steps,
                              "episodes_logged": sel_episodes, "gamma": GAMMA,
                              "fqe": "MLP 2x64, Huber, target period 50, rewards x (1 - gamma), standardised inputs"},
                "quick": q}
    lines = [
        "# offline_gymnax",
        "",
        f"{harness.describe(meta)}; {seeds} seeds per cell trained as one vmapped program per method and task; "
        f"{steps} steps, {m} transitions per dataset, {n_eval} evaluation episodes per seed.",
        "",
        "Normalised return (100 = the epsilon-0 controller, 0 = uniform random actions), mean ± standard "
        "error over seeds.",
        "",
    ]
    header = ["task", "method"] + list(DATASETS)
    rows = []
    for env, r in results.items():
        for name, cells in r["methods"].items():
            rows.append([env, name] + [f"{cells[d]['normalised']:.0f} ± {cells[d]['normalised_se']:.0f}"
                                       for d in DATASETS])
    lines += harness.markdown_table(header, rows)
    lines += ["", "Reference returns: " + "; ".join(
        f"{env} controller {r['reference']['controller']:.1f}, random {r['reference']['random']:.1f}"
        for env, r in results.items()) + "."]
    if selection:
        lines += ["", "## Choosing a checkpoint with OPE", "",
                  f"{sel_seeds} seeds x {checkpoints} checkpoints (every {sel_steps // checkpoints} of {sel_steps} "
                  f"steps); FQE {fqe_steps} steps per checkpoint; values discounted (gamma {GAMMA}), Monte Carlo "
                  f"over {n_eval} episodes. Mean ± standard error over seeds.", ""]
        rows = []
        for env, r in selection.items():
            s = r["summary"]
            for est in ("FQE", "DR"):
                if est not in s:
                    continue
                e = s[est]
                rows.append([env, f"{r['method']} (ε = {r['epsilon']:g}, {r['transitions']} steps)", est,
                             f"{e['spearman'][0]:.2f} ± {e['spearman'][1]:.2f}",
                             f"{e['regret_at_1'][0]:.2f} ± {e['regret_at_1'][1]:.2f}",
                             f"{e['chosen_value'][0]:.1f} ± {e['chosen_value'][1]:.1f}",
                             f"{s['last'][0]:.1f} ± {s['last'][1]:.1f}", f"{s['best'][0]:.1f} ± {s['best'][1]:.1f}"])
        lines += harness.markdown_table(["task", "method (data)", "estimator", "Spearman ρ", "regret@1",
                                         "chosen", "last", "best"], rows)
    timing.update({f"selection {k}": v for k, v in sel_timing.items()})
    lines += ["", "Seconds per program (compile / run): "
              + ", ".join(f"{k} {v['compile_s']:.0f}/{v['run_s']:.0f}" for k, v in timing.items()) + "."]
    harness.write_results("offline_gymnax", {"results": results, "selection": selection, "seconds": timing}, lines,
                          meta=meta, settings=settings, out=args.out, quick=q)


if __name__ == "__main__":
    main()
