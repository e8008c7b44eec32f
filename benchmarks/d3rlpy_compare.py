"""Discrete CQL and BCQ: offrl_jax against d3rlpy on the same data, network and settings, in one run.

Data: gymnax CartPole-v1 from the hand-written controller with epsilon 0.5 (the "medium"
dataset of benchmarks/offline_gymnax.py). Network: MLP 2x256 (ReLU) on the 4 observations, Adam,
learning rate 3e-4, minibatch 256, gamma 0.99, Huber TD loss, double-Q targets, hard target copy
every 1000 steps. CQL: alpha 1 (d3rlpy DiscreteCQL, whose targets are double DQN's; offrl_jax
``CQLConfig(double_q=True)``). BCQ: threshold 0.3 on the relative behaviour probability, separate
Q and behaviour networks and no logit penalty (d3rlpy DiscreteBCQ with ``action_flexibility=0.3,
share_encoder=False, beta=0``). Only the initial weights differ (torch's and flax's default
initialisers).

Speed: training steps per second end to end. d3rlpy: ``fit()`` of each seed's whole run
(dataset set-up and logging included; progress bar and logging off; the per-checkpoint weight
copies excluded). offrl_jax: one jitted ``train`` of a single seed (compile time reported apart),
and the per-seed-equivalent rate of the vmapped program that trains every seed at once
(seeds x steps / run time, compile apart). Each library gets the same number of threads
(``--threads``, default 1: torch ``set_num_threads`` and XLA's single-threaded CPU flags), so the
ratio is per core and does not depend on how busy a shared machine is. With ``--peer-jobs 2`` the
two d3rlpy workers run at the same time as the offrl_jax side, so all three see the same load.

Returns: each library trains ``--seeds`` seeds for ``--train-steps`` steps; after every
``train_steps / --checkpoints`` steps the greedy policy (BCQ: greedy among the allowed actions;
d3rlpy's weights copied into the same flax network and policy rule) is scored by Monte Carlo on
gymnax CartPole (undiscounted score, the same start states for every policy). Verdict on the
final returns: "within spread" when |mean_ours - mean_d3rlpy| <= 2 sqrt(sd_ours^2/n + sd_d3rlpy^2/n)
(two standard errors of the difference of the means, n seeds each).

Usage: python benchmarks/d3rlpy_compare.py [--quick] [--out DIR] [--peer-python PATH]
       [--train-steps N] [--seeds N] [--checkpoints K] [--speed-steps N] [--threads N] [--peer-jobs N]
       [--algos cql bcq] [--eval-episodes N]
Writes benchmarks/results/d3rlpy_compare[_quick].{json,md}.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

ENV = "CartPole-v1"
WIDTH, BATCH, LR, GAMMA, PERIOD = 256, 256, 3e-4, 0.99, 1000
CQL_ALPHA, BCQ_THRESHOLD = 1.0, 0.3
LABELS = {"cql": "DiscreteCQL", "bcq": "DiscreteBCQ"}


def _single_thread_xla(threads: int) -> None:
    """XLA CPU flags for ``threads`` == 1 (set before jax is imported)."""
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()


# ------------------------------------------------------------------------------------------
# d3rlpy worker (peer interpreter).
# ------------------------------------------------------------------------------------------
def d3rlpy_worker(npz_path: str, algo_name: str, train_steps: int, checkpoints: int, seeds: int, threads: int,
                  weights_path: str) -> dict:
    """Trains ``seeds`` d3rlpy runs, times each ``fit`` and saves the weights at every checkpoint."""
    import d3rlpy
    import torch
    from d3rlpy.logging import NoopAdapterFactory
    from d3rlpy.models.encoders import VectorEncoderFactory

    torch.set_num_threads(threads)
    z = np.load(npz_path)
    dataset = d3rlpy.dataset.MDPDataset(
        observations=z["observations"], actions=z["actions"][:, None], rewards=z["rewards"],
        terminals=z["terminals"], timeouts=z["timeouts"], action_space=d3rlpy.ActionSpace.DISCRETE, action_size=2,
    )
    enc = VectorEncoderFactory(hidden_units=[WIDTH, WIDTH])
    common = dict(encoder_factory=enc, batch_size=BATCH, learning_rate=LR, gamma=GAMMA, target_update_interval=PERIOD)
    if algo_name == "cql":
        config = d3rlpy.algos.DiscreteCQLConfig(alpha=CQL_ALPHA, **common)
    else:
        config = d3rlpy.algos.DiscreteBCQConfig(action_flexibility=BCQ_THRESHOLD, share_encoder=False, beta=0.0,
                                                **common)

    def snapshot(algo):
        mods = {"q": algo.impl.modules.q_funcs[0]}
        if algo_name == "bcq":
            mods["imitator"] = algo.impl.modules.imitator
        return {k: [v.detach().numpy().copy() for v in m.state_dict().values()] for k, m in mods.items()}

    fit_s, arrays = [], {}
    for s in range(seeds):
        d3rlpy.seed(s)
        algo = config.create(device="cpu:0")
        fitter = algo.fitter(dataset, n_steps=train_steps, n_steps_per_epoch=train_steps // checkpoints,
                             show_progress=False, logger_adapter=NoopAdapterFactory(), with_timestamp=False,
                             save_interval=10**9)
        seconds = 0.0
        for k in range(checkpoints):  # one epoch per checkpoint; the weight copies are not timed
            _, dt = harness.timed_call(next, fitter)
            seconds += dt
            for net, values in snapshot(algo).items():
                for i, v in enumerate(values):
                    arrays[f"s{s}_k{k}_{net}_{i}"] = v
        _, dt = harness.timed_call(next, fitter, None)  # runs fit()'s end (the generator is done)
        fit_s.append(seconds + dt)
    np.savez(weights_path, **arrays)
    return {"d3rlpy_version": d3rlpy.__version__, "torch_version": torch.__version__,
            "torch_threads": torch.get_num_threads(), "fit_s": fit_s,
            "steps_per_s": [train_steps / t for t in fit_s]}


def _d3rlpy_params(weights_path: str, algo_name: str, seeds: int, checkpoints: int) -> list:
    """``[seed][checkpoint]`` flax parameters of d3rlpy's saved weights."""
    z = np.load(weights_path)

    def net(s, k, name):
        return _flax_params([z[f"s{s}_k{k}_{name}_{i}"] for i in range(6)])

    if algo_name == "cql":
        return [[net(s, k, "q") for k in range(checkpoints)] for s in range(seeds)]
    return [[{"q": net(s, k, "q"), "imitator": net(s, k, "imitator")} for k in range(checkpoints)]
            for s in range(seeds)]


# ------------------------------------------------------------------------------------------
# offrl_jax side.
# ------------------------------------------------------------------------------------------
def _data(episodes: int):
    import jax

    from offrl_jax.data import to_transitions
    from offrl_jax.envs.control import control_rollout
    from offrl_jax.envs.control_policies import controller

    beh = controller(ENV, epsilon=0.5)
    traj = control_rollout(jax.random.key(0), ENV, beh.policy, beh.params, episodes)
    return traj, to_transitions(traj)


def _npz(traj, path):
    mask = np.asarray(traj.mask) > 0
    disc = np.asarray(traj.discounts)
    term, tout = np.zeros_like(disc), np.zeros_like(disc)
    for n, length in enumerate(mask.sum(1)):
        (term if disc[n, length - 1] == 0 else tout)[n, length - 1] = 1.0
    np.savez(path, observations=np.asarray(traj.observations)[mask].astype(np.float32),
             actions=np.asarray(traj.actions)[mask].astype(np.int64),
             rewards=np.asarray(traj.rewards)[mask].astype(np.float32),
             terminals=term[mask].astype(np.float32), timeouts=tout[mask].astype(np.float32))


def _flax_params(torch_values):
    """[W0, b0, W1, b1, W2, b2] (torch [out, in]) as the flax QNetwork's params (kernel [in, out])."""
    import jax.numpy as jnp

    vals = [np.asarray(v, np.float32) for v in torch_values]
    return {"params": {f"Dense_{i}": {"kernel": jnp.asarray(vals[2 * i].T), "bias": jnp.asarray(vals[2 * i + 1])}
                       for i in range(3)}}


def _policies():
    """``{algo: (config, module, params_of(state), act(params, obs))}`` of the offrl_jax side."""
    import jax.numpy as jnp

    from offrl_jax.fitted import QNetwork
    from offrl_jax.offline import BCQConfig, CQLConfig, bcq, cql
    from offrl_jax.offline.bcq import allowed_actions

    net = QNetwork(num_actions=2, hidden_sizes=(WIDTH, WIDTH))
    common = dict(num_actions=2, hidden_sizes=(WIDTH, WIDTH), gamma=GAMMA, batch_size=BATCH, learning_rate=LR,
                  loss="huber", target_update_period=PERIOD)

    def greedy(p, obs):
        return jnp.argmax(net.apply(p, obs), -1)

    def restricted(p, obs):
        allowed = allowed_actions(net.apply(p["imitator"], obs), BCQ_THRESHOLD)
        return jnp.argmax(jnp.where(allowed, net.apply(p["q"], obs), -jnp.inf), -1)

    return {
        "cql": (CQLConfig(alpha=CQL_ALPHA, double_q=True, **common), cql, lambda st: st.params, greedy),
        "bcq": (BCQConfig(threshold=BCQ_THRESHOLD, **common), bcq,
                lambda st: {"q": st.params, "imitator": st.behavior.params}, restricted),
    }


def _checkpoint_program(module, config, params_of, checkpoints: int):
    """``(keys [S], data) -> params [S, K, ...]``: every seed trained as one vmapped program, the
    evaluation parameters read after each of ``checkpoints`` equal chunks (one scan of the
    learner's ``run``: the same steps as ``train``)."""
    import jax

    learner = module.make_learner(config)
    chunk = config.num_steps // checkpoints

    def one(key, data):
        def body(state, _):
            state, _ = learner.run(state, data, chunk)
            return state, params_of(state)

        return jax.lax.scan(body, learner.init(key, data), None, length=checkpoints)[1]

    return jax.jit(jax.vmap(one, in_axes=(0, None)))


def _evaluate(act, params, episodes):
    """Mean undiscounted CartPole return of each policy of a stacked ``params`` ``[P, ...]``."""
    import jax
    import jax.numpy as jnp

    from offrl_jax.envs.control import control_returns

    def sample(p, obs, key):
        return act(p, obs[None])[0], jnp.zeros((), jnp.float32)

    fn = jax.jit(jax.vmap(lambda p: control_returns(jax.random.key(5), ENV, sample, p, episodes, None, 1.0)))
    return np.asarray(fn(params)).mean(-1)


def _verdict(ours, theirs):
    """(difference of means, 2 x its standard error, within?) of two seed samples."""
    a, b = np.asarray(ours, float), np.asarray(theirs, float)
    diff = float(a.mean() - b.mean())
    bound = float(2 * np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))) if min(len(a), len(b)) > 1 else np.nan
    return diff, bound, bool(abs(diff) <= bound)


def _mean_sd(r):
    r = np.asarray(r, float)
    return f"{r.mean():.1f} ± {r.std(ddof=1):.1f}" if len(r) > 1 else f"{r.mean():.1f}"


def main() -> None:
    ap = harness.make_parser(__doc__, quick_repeats=1, repeats=2)
    ap.add_argument("--worker", nargs=7, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--train-steps", type=int, default=None, help="steps per seed (default 200 quick, 10000)")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per library (default 2 quick, 5)")
    ap.add_argument("--checkpoints", type=int, default=None, help="evaluations per run (default 2 quick, 4)")
    ap.add_argument("--speed-steps", type=int, default=None,
                    help="steps of the timed single-seed offrl_jax train (default 100 quick, train_steps / 4)")
    ap.add_argument("--algos", nargs="+", choices=sorted(LABELS), default=["cql", "bcq"],
                    help="algorithms to compare (default: cql bcq)")
    ap.add_argument("--eval-episodes", type=int, default=None, help="Monte-Carlo episodes per policy (5 quick, 100)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads of each library (default 1)")
    ap.add_argument("--peer-jobs", type=int, default=2,
                    help="d3rlpy workers run at once, beside the offrl_jax side (default 2; 0: after it, one by one)")
    args = harness.parse_args(ap)
    if args.worker:
        path, algo, steps, ckpts, seeds, threads, out = args.worker
        harness.emit_peer_result(d3rlpy_worker(path, algo, int(steps), int(ckpts), int(seeds), int(threads), out))
        return
    _single_thread_xla(args.threads)

    import jax

    quick = args.quick
    train_steps = args.train_steps or (200 if quick else 10_000)
    seeds = args.seeds or (2 if quick else 5)
    checkpoints = args.checkpoints or (2 if quick else 4)
    speed_steps = args.speed_steps or (100 if quick else train_steps // 4)
    episodes = 30 if quick else 400
    eval_episodes = args.eval_episodes or (5 if quick else 100)
    for name, v in (("train_steps", train_steps), ("seeds", seeds), ("checkpoints", checkpoints),
                    ("speed_steps", speed_steps), ("threads", args.threads), ("eval_episodes", eval_episodes)):
        if v < 1:
            ap.error(f"--{name.replace('_', '-')}: expected an integer >= 1, found {v}")
    if train_steps % checkpoints:
        ap.error(f"--checkpoints: expected a divisor of --train-steps = {train_steps}, found {checkpoints}")
    meta = harness.metadata("float32")
    traj, data = _data(episodes)
    policies = {k: v for k, v in _policies().items() if k in args.algos}

    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, "data.npz")
        _npz(traj, npz)

        def peer(name):
            w = os.path.join(tmp, f"weights_{name}.npz")
            worker = ["--worker", npz, name, str(train_steps), str(checkpoints), str(seeds), str(args.threads), w]
            out, reason = harness.run_peer(args.peer_python, os.path.abspath(__file__), worker)
            return out, reason, w

        pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(args.peer_jobs, 1))
        futures = {n: pool.submit(peer, n) for n in policies} if args.peer_jobs > 0 else {}

        results = {}
        for name, (cfg, module, params_of, act) in policies.items():
            t, _, _ = harness.time_jit(module.make_train(cfg.replace(num_steps=speed_steps)), jax.random.key(0), data,
                                       repeats=args.repeats)
            program = _checkpoint_program(module, cfg.replace(num_steps=train_steps), params_of, checkpoints)
            keys = jax.random.split(jax.random.key(1), seeds)
            compiled, compile_s = harness.compile_jit(program, keys, data)
            params, run_s = harness.timed_call(compiled, keys, data)
            flat = jax.tree_util.tree_map(lambda x: x.reshape((seeds * checkpoints,) + x.shape[2:]), params)
            results[name] = {
                "offrl_jax": {"single_seed": {**t.as_dict(), "steps": speed_steps, "steps_per_s": speed_steps / t.run_s},
                              "vmapped": {"compile_s": compile_s, "run_s": run_s, "seeds": seeds,
                                          "seed_steps_per_s": seeds * train_steps / run_s},
                              "flat_params": flat},
            }
            print(f"{name}: offrl_jax {speed_steps / t.run_s:.0f} steps/s single seed, "
                  f"{seeds * train_steps / run_s:.0f} seed-steps/s vmapped", file=sys.stderr, flush=True)

        if args.peer_jobs == 0:
            futures = {n: pool.submit(peer, n) for n in policies}
        for name, (cfg, module, params_of, act) in policies.items():
            entry = results[name]
            d3, reason, wpath = futures[name].result()
            sets = [entry["offrl_jax"].pop("flat_params")]
            if d3 is not None:
                per_seed = _d3rlpy_params(wpath, name, seeds, checkpoints)
                sets.append(jax.tree_util.tree_map(lambda *xs: jax.numpy.stack(xs), *[p for s in per_seed for p in s]))
            stacked = jax.tree_util.tree_map(lambda *xs: jax.numpy.concatenate(xs), *sets)
            returns = _evaluate(act, stacked, eval_episodes).reshape(len(sets), seeds, checkpoints)
            entry["offrl_jax"]["returns"] = returns[0].tolist()
            if d3 is not None:
                entry["d3rlpy"] = {**d3, "returns": returns[1].tolist()}
                ours_sps = entry["offrl_jax"]["single_seed"]["steps_per_s"]
                d3_sps = float(np.median(d3["steps_per_s"]))
                entry["speedup_single_seed"] = ours_sps / d3_sps
                entry["speedup_vmapped_per_seed"] = entry["offrl_jax"]["vmapped"]["seed_steps_per_s"] / d3_sps
                diff, bound, ok = _verdict(returns[0][:, -1], returns[1][:, -1])
                entry["final_returns"] = {"difference": diff, "two_se": bound, "within_spread": ok}
            else:
                entry["d3rlpy_error"] = reason
        pool.shutdown()

    settings = {"env": ENV, "behavior": "controller epsilon 0.5", "episodes": episodes,
                "transitions": int(data.size), "network": f"MLP 2x{WIDTH}", "batch": BATCH, "lr": LR,
                "gamma": GAMMA, "target_update_period": PERIOD, "cql_alpha": CQL_ALPHA, "bcq_threshold": BCQ_THRESHOLD,
                "train_steps": train_steps, "speed_steps": speed_steps, "seeds": seeds, "checkpoints": checkpoints,
                "eval_episodes": eval_episodes, "threads": args.threads, "peer_jobs": args.peer_jobs, "quick": quick}
    harness.write_results("d3rlpy_compare", results, _markdown(results, settings, meta), meta=meta,
                          settings=settings, out=args.out, quick=quick)


def _markdown(results: dict, st: dict, meta: dict) -> list:
    lines = ["# d3rlpy_compare", "",
             f"{harness.describe(meta)}; {st['behavior']} on {ENV}, {st['transitions']} transitions; MLP 2x{WIDTH}, "
             f"batch {BATCH}, Adam {LR}, Huber loss, double-Q targets, target copy every {PERIOD}; "
             f"{st['threads']} thread(s) per library; {st['seeds']} seeds x {st['train_steps']} steps each.", "",
             "Speed (training steps per second, end to end; offrl_jax compile time apart):", ""]
    rows = []
    for name, e in results.items():
        o = e["offrl_jax"]
        d3 = e.get("d3rlpy")
        rows.append([LABELS[name], f"{o['single_seed']['steps_per_s']:.0f} (compile {o['single_seed']['compile_s']:.1f} s)",
                     f"{o['vmapped']['seed_steps_per_s']:.0f} (compile {o['vmapped']['compile_s']:.1f} s)",
                     f"{np.median(d3['steps_per_s']):.0f}" if d3 else "skipped",
                     f"{e['speedup_single_seed']:.1f}x" if d3 else "-",
                     f"{e['speedup_vmapped_per_seed']:.1f}x" if d3 else "-"])
    lines += harness.markdown_table(
        ["algorithm", "offrl_jax train, 1 seed", f"offrl_jax vmapped, per-seed equivalent ({st['seeds']} seeds)",
         "d3rlpy fit(), median of seeds", "ratio (1 seed)", "ratio (vmapped)"], rows)
    ckpt_steps = [st["train_steps"] // st["checkpoints"] * (k + 1) for k in range(st["checkpoints"])]
    lines += ["", f"Returns (undiscounted CartPole score of the learned policy, {st['eval_episodes']} episodes per "
              f"seed; mean ± sd over {st['seeds']} seeds) after each number of steps; verdict on the final returns: "
              "within spread when |mean_ours − mean_d3rlpy| ≤ 2·sqrt(sd_ours²/n + sd_d3rlpy²/n):", ""]
    rows = []
    for name, e in results.items():
        o = np.asarray(e["offrl_jax"]["returns"])
        d = np.asarray(e["d3rlpy"]["returns"]) if "d3rlpy" in e else None
        for k, steps in enumerate(ckpt_steps):
            last = k == len(ckpt_steps) - 1
            f = e.get("final_returns")
            verdict = "-"
            if last and f:
                verdict = f"{'yes' if f['within_spread'] else 'no'} (|{f['difference']:.1f}| vs {f['two_se']:.1f})"
            rows.append([LABELS[name], steps, _mean_sd(o[:, k]), _mean_sd(d[:, k]) if d is not None else "skipped",
                         verdict])
    lines += harness.markdown_table(["algorithm", "steps", "offrl_jax", "d3rlpy", "returns within spread"], rows)
    for name, e in results.items():
        if "d3rlpy_error" in e:
            lines += ["", f"{LABELS[name]}: d3rlpy skipped: {e['d3rlpy_error']}"]
        else:
            lines += ["", f"{LABELS[name]} final returns per seed: offrl_jax "
                      + ", ".join(f"{x:.0f}" for x in np.asarray(e["offrl_jax"]["returns"])[:, -1])
                      + "; d3rlpy " + ", ".join(f"{x:.0f}" for x in np.asarray(e["d3rlpy"]["returns"])[:, -1])]
    return lines


if __name__ == "__main__":
    main()
