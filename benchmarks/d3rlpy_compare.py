"""Discrete CQL and BCQ: offrl_jax against d3rlpy on the same data and network, in one run.

Data: gymnax CartPole-v1 from the hand-written controller with epsilon 0.5 (the "medium"
dataset of benchmarks/offline_gymnax.py). Network: MLP 2x256 (ReLU) on the 4 observations, one
Q-network, Adam, learning rate 3e-4, minibatch 256, gamma 0.99, Huber TD loss, hard target copy
every 1000 steps; CQL alpha 1; BCQ threshold 0.3 (d3rlpy: action_flexibility 0.3, its default
imitation regulariser beta 0.5 and shared encoder kept). d3rlpy runs in the interpreter named by
--peer-python (or $OFFRL_JAX_PEER_PYTHON) with its own torch threads.

Speed: end-to-end training steps per second of fit() (d3rlpy, median of repeats, progress bar
and logging off) against one jitted ``train`` (offrl_jax; compile time reported apart).
Returns: each library trains several seeds for the same number of steps; the learned greedy
policies (d3rlpy's weights copied into the same flax network and policy rule) are evaluated by
Monte Carlo on gymnax CartPole (undiscounted score).

Usage: python benchmarks/d3rlpy_compare.py [--quick] [--out DIR] [--peer-python PATH]
       [--speed-steps N] [--train-steps N] [--seeds N]
Writes benchmarks/results/d3rlpy_compare[_quick].{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

ENV = "CartPole-v1"
WIDTH, BATCH, LR, GAMMA, PERIOD = 256, 256, 3e-4, 0.99, 1000


# ------------------------------------------------------------------------------------------
# d3rlpy worker (peer interpreter).
# ------------------------------------------------------------------------------------------
def d3rlpy_worker(npz_path: str, algo_name: str, speed_steps: int, repeats: int, train_steps: int,
                  seeds: int) -> dict:
    import d3rlpy
    import torch
    from d3rlpy.logging import NoopAdapterFactory
    from d3rlpy.models.encoders import VectorEncoderFactory

    torch.set_num_threads(os.cpu_count() or 1)
    z = np.load(npz_path)
    dataset = d3rlpy.dataset.MDPDataset(
        observations=z["observations"], actions=z["actions"][:, None], rewards=z["rewards"],
        terminals=z["terminals"], timeouts=z["timeouts"], action_space=d3rlpy.ActionSpace.DISCRETE, action_size=2,
    )
    enc = VectorEncoderFactory(hidden_units=[WIDTH, WIDTH])
    common = dict(encoder_factory=enc, batch_size=BATCH, learning_rate=LR, gamma=GAMMA, target_update_interval=PERIOD)
    if algo_name == "cql":
        config = d3rlpy.algos.DiscreteCQLConfig(alpha=1.0, **common)
    else:
        config = d3rlpy.algos.DiscreteBCQConfig(action_flexibility=0.3, **common)

    def fit(algo, steps):
        algo.fit(dataset, n_steps=steps, n_steps_per_epoch=steps, show_progress=False,
                 logger_adapter=NoopAdapterFactory(), with_timestamp=False)

    algo = config.create(device="cpu:0")
    algo.build_with_dataset(dataset)
    timing, _ = harness.time_calls(lambda: fit(algo, speed_steps), repeats=repeats)
    weights = []
    for s in range(seeds):
        d3rlpy.seed(s)
        algo = config.create(device="cpu:0")
        algo.build_with_dataset(dataset)
        fit(algo, train_steps)
        mods = {"q": algo.impl.modules.q_funcs[0]}
        if algo_name == "bcq":
            mods["imitator"] = algo.impl.modules.imitator
        weights.append({k: [v.detach().numpy().tolist() for v in m.state_dict().values()] for k, m in mods.items()})
    return {"d3rlpy_version": d3rlpy.__version__, "torch_version": torch.__version__,
            "torch_threads": torch.get_num_threads(), "fit": timing.as_dict(),
            "fit_steps_per_s": speed_steps / timing.run_s, "weights": weights}


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


def _evaluate(act, params_list, episodes):
    """Mean undiscounted CartPole return of the greedy policy of each parameter set."""
    import jax
    import jax.numpy as jnp

    from offrl_jax.envs.control import control_returns

    def sample(p, obs, key):
        return act(p, obs[None])[0], jnp.zeros((), jnp.float32)

    params = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *params_list)
    fn = jax.jit(jax.vmap(lambda p: control_returns(jax.random.key(5), ENV, sample, p, episodes, None, 1.0)))
    return np.asarray(fn(params)).mean(-1)


def main() -> None:
    ap = harness.make_parser(__doc__, quick_repeats=2, repeats=3)
    ap.add_argument("--worker", nargs=6, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--speed-steps", type=int, default=None, help="steps per timed fit (default 300 quick, 2000)")
    ap.add_argument("--train-steps", type=int, default=None, help="steps per seed for returns (default 1000, 10000)")
    ap.add_argument("--seeds", type=int, default=None, help="seeds for returns (default 3 quick, 5)")
    args = harness.parse_args(ap)
    if args.worker:
        path, algo, speed, reps, train, seeds = args.worker
        harness.emit_peer_result(d3rlpy_worker(path, algo, int(speed), int(reps), int(train), int(seeds)))
        return

    import jax
    import jax.numpy as jnp

    from offrl_jax.fitted import QNetwork
    from offrl_jax.offline import BCQConfig, CQLConfig, bcq, cql
    from offrl_jax.offline.bcq import allowed_actions

    quick = args.quick
    speed_steps = args.speed_steps or (300 if quick else 2000)
    train_steps = args.train_steps or (1000 if quick else 10_000)
    seeds = args.seeds or (3 if quick else 5)
    episodes = 100 if quick else 400
    eval_episodes = 20 if quick else 100
    meta = harness.metadata("float32")
    traj, data = _data(episodes)
    net = QNetwork(num_actions=2, hidden_sizes=(WIDTH, WIDTH))
    common = dict(num_actions=2, hidden_sizes=(WIDTH, WIDTH), gamma=GAMMA, batch_size=BATCH, learning_rate=LR,
                  loss="huber", target_update_period=PERIOD)
    ours = {"cql": (CQLConfig(alpha=1.0, **common), cql), "bcq": (BCQConfig(threshold=0.3, **common), bcq)}

    def greedy(p, obs):
        return jnp.argmax(net.apply(p, obs), -1)

    def restricted(p, obs):
        allowed = allowed_actions(net.apply(p["imitator"], obs), 0.3)
        return jnp.argmax(jnp.where(allowed, net.apply(p["q"], obs), -jnp.inf), -1)

    results, rows = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, "data.npz")
        _npz(traj, npz)
        for name, (cfg, module) in ours.items():
            speed_cfg = cfg.replace(num_steps=speed_steps)
            t, _, _ = harness.time_jit(module.make_train(speed_cfg), jax.random.key(0), data, repeats=args.repeats)
            sps = speed_steps / t.run_s
            train = jax.jit(jax.vmap(module.make_train(cfg.replace(num_steps=train_steps)), in_axes=(0, None)))
            states = train(jax.random.split(jax.random.key(1), seeds), data).state
            if name == "cql":
                plist = [jax.tree_util.tree_map(lambda x, i=i: x[i], states.params) for i in range(seeds)]
                our_ret = _evaluate(greedy, plist, eval_episodes)
            else:
                plist = [{"q": jax.tree_util.tree_map(lambda x, i=i: x[i], states.params),
                          "imitator": jax.tree_util.tree_map(lambda x, i=i: x[i], states.behavior.params)}
                         for i in range(seeds)]
                our_ret = _evaluate(restricted, plist, eval_episodes)
            worker = ["--worker", npz, name, str(speed_steps), str(args.repeats), str(train_steps), str(seeds)]
            d3, reason = harness.run_peer(args.peer_python, os.path.abspath(__file__), worker)
            entry = {"offrl_jax": {**t.as_dict(), "steps_per_s": sps, "returns": our_ret.tolist()}}
            if d3 is not None:
                if name == "cql":
                    d3_params = [_flax_params(w["q"]) for w in d3["weights"]]
                    d3_ret = _evaluate(greedy, d3_params, eval_episodes)
                else:
                    d3_params = [{"q": _flax_params(w["q"]), "imitator": _flax_params(w["imitator"])}
                                 for w in d3["weights"]]
                    d3_ret = _evaluate(restricted, d3_params, eval_episodes)
                d3 = {k: v for k, v in d3.items() if k != "weights"}
                entry["d3rlpy"] = {**d3, "returns": d3_ret.tolist()}
                entry["speedup_fit"] = sps / d3["fit_steps_per_s"]
            else:
                entry["d3rlpy_error"] = reason
            results[name] = entry
            print(json.dumps({name: {k: v for k, v in entry.items()}}, default=str)[:400], file=sys.stderr)

    def ret(r):
        r = np.asarray(r)
        return f"{r.mean():.1f} ± {r.std(ddof=1) / np.sqrt(len(r)):.1f} (seeds: {', '.join(f'{x:.0f}' for x in r)})"

    for name, e in results.items():
        label = {"cql": "DiscreteCQL", "bcq": "DiscreteBCQ"}[name]
        rows.append([f"{label}: offrl_jax train steps/s (compile {e['offrl_jax']['compile_s']:.1f} s apart)",
                     f"{e['offrl_jax']['steps_per_s']:.0f}"])
        if "d3rlpy" in e:
            rows.append([f"{label}: d3rlpy {e['d3rlpy']['d3rlpy_version']} fit() steps/s",
                         f"{e['d3rlpy']['fit_steps_per_s']:.0f}"])
            rows.append([f"{label}: speed-up end to end", f"{e['speedup_fit']:.1f}x"])
            rows.append([f"{label}: d3rlpy return after {train_steps} steps", ret(e["d3rlpy"]["returns"])])
        else:
            rows.append([f"{label}: d3rlpy", f"skipped: {e['d3rlpy_error']}"])
        rows.append([f"{label}: offrl_jax return after {train_steps} steps", ret(e["offrl_jax"]["returns"])])
    settings = {"env": ENV, "behavior": "controller epsilon 0.5", "episodes": episodes,
                "transitions": int(data.size), "network": f"MLP 2x{WIDTH}", "batch": BATCH, "lr": LR,
                "gamma": GAMMA, "target_update_period": PERIOD, "speed_steps": speed_steps,
                "train_steps": train_steps, "seeds": seeds, "eval_episodes": eval_episodes, "quick": quick}
    lines = ["# d3rlpy_compare", "",
             f"{harness.describe(meta)}; {settings['behavior']} on {ENV}, {settings['transitions']} transitions; "
             f"MLP 2x{WIDTH}, batch {BATCH}, Adam {LR}, Huber loss, target copy every {PERIOD}. Returns: "
             f"undiscounted CartPole score of the greedy policy, {eval_episodes} episodes per seed, mean ± se over "
             f"{seeds} seeds.", ""]
    lines += harness.markdown_table(["measure", "value"], rows)
    harness.write_results("d3rlpy_compare", results, lines, meta=meta, settings=settings, out=args.out, quick=quick)


if __name__ == "__main__":
    main()
