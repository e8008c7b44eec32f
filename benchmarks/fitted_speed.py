"""Speed (and a Monte-Carlo accuracy check) of jitted fitted Q evaluation on CartPole data.

Measures, in one run on this machine:
  * fp32 matmul GFLOP/s (the machine's reference rate);
  * gradient steps/s of the jitted FQE loop (``lax.scan`` with in-jit minibatch sampling),
    MLP 2x256, batch 256, and the step's FLOP rate as a fraction of the matmul rate;
  * seed-steps/s with 1, 4, 16 vmapped seeds (and 16 as vmapped groups side by side,
    `core.make_train_seeds` with `fitted.default_seeds_per_group`'s CPU default: groups of 1 for 2x256, of 4 for 2x64), for 2x64 and 2x256 networks;
  * d3rlpy's DiscreteFQE (optional; in the interpreter named by ``--peer-python`` or
    ``$OFFRL_JAX_PEER_PYTHON``, run as a subprocess) on the same data and network size:
    ``update()`` alone and ``fit()`` end to end;
  * FQE's estimate of the target controller's value vs its Monte-Carlo value (± SE).

Data: gymnax CartPole-v1 episodes from the hand-written controller mixed with epsilon = 0.3
uniform actions (``offrl_jax.envs.control``); the evaluated policy is the same controller with
epsilon = 0.1. Compile time is reported apart from run time; run times are medians of repeats
around ``jax.block_until_ready``.

Usage: python benchmarks/fitted_speed.py [--quick] [--repeats R] [--peer-python PYTHON]
Writes benchmarks/results/fitted_speed[_quick].{json,md}.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

ENV = "CartPole-v1"
GAMMA = 0.95


# ------------------------------------------------------------------------------------------
# d3rlpy worker (runs inside the peer interpreter; imports numpy, torch, d3rlpy and the harness).
# ------------------------------------------------------------------------------------------
def d3rlpy_worker(npz_path: str, steps: int, repeats: int, width: int, batch: int) -> dict:
    import d3rlpy
    import torch
    from d3rlpy.logging import NoopAdapterFactory
    from d3rlpy.models.encoders import VectorEncoderFactory
    from d3rlpy.ope import DiscreteFQE, FQEConfig

    torch.set_num_threads(os.cpu_count() or 1)
    z = np.load(npz_path)
    dataset = d3rlpy.dataset.MDPDataset(
        observations=z["observations"],
        actions=z["actions"][:, None],
        rewards=z["rewards"],
        terminals=z["terminals"],
        timeouts=z["timeouts"],
        action_space=d3rlpy.ActionSpace.DISCRETE,
        action_size=2,
    )
    enc = VectorEncoderFactory(hidden_units=[width, width])
    algo = d3rlpy.algos.DQNConfig(encoder_factory=enc, batch_size=batch).create(device="cpu:0")
    algo.build_with_dataset(dataset)
    fqe = DiscreteFQE(
        algo=algo,
        config=FQEConfig(
            batch_size=batch, gamma=GAMMA, learning_rate=3e-4, encoder_factory=enc, target_update_interval=100
        ),
        device="cpu:0",
    )
    fqe.build_with_dataset(dataset)
    mb = dataset.sample_transition_batch(batch)

    def updates():
        for _ in range(steps):
            fqe.update(mb)

    def fit():
        fqe.fit(
            dataset, n_steps=steps, n_steps_per_epoch=steps, show_progress=False,
            logger_adapter=NoopAdapterFactory(), with_timestamp=False,
        )

    upd, _ = harness.time_calls(updates, repeats=repeats)
    fits, _ = harness.time_calls(fit, repeats=max(1, repeats // 2))
    return {
        "d3rlpy_version": d3rlpy.__version__,
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "update": upd.as_dict(),
        "fit": fits.as_dict(),
        "update_steps_per_s": steps / upd.run_s,
        "fit_steps_per_s": steps / fits.run_s,
    }


# ------------------------------------------------------------------------------------------
# Main benchmark (offrl_jax environment).
# ------------------------------------------------------------------------------------------
def matmul_gflops(n: int = 1024, repeats: int = 7) -> float:
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    timing, _, _ = harness.time_jit(lambda x, y: x @ y, a, b, repeats=repeats)
    return 2 * n**3 / timing.run_s / 1e9


def cartpole_data(num_episodes: int):
    import jax

    from offrl_jax.data import to_transitions
    from offrl_jax.envs.control import control_rollout
    from offrl_jax.envs.control_policies import controller

    beh = controller(ENV, epsilon=0.3)
    roll = jax.jit(control_rollout, static_argnames=("env", "policy", "num_episodes", "horizon"))
    traj = roll(jax.random.key(0), ENV, beh.policy, beh.params, num_episodes=num_episodes)
    return traj, to_transitions(traj)


def target_probs_fn():
    import jax
    import jax.numpy as jnp

    from offrl_jax.envs.control_policies import controller

    tgt = controller(ENV, epsilon=0.1)
    actions = jnp.arange(2)

    def probs(obs):
        lp = jax.vmap(lambda o: jax.vmap(lambda a: tgt.policy.log_prob(tgt.params, o, a))(actions))(obs)
        return jnp.exp(lp)

    return tgt, probs


def fqe_speed(data, policy, hidden, batch, steps, repeats, seeds=1, grouped=False):
    """``(timing, steps/s)`` of ``seeds`` runs: one vmap over all seeds, or (``grouped``) vmapped
    groups side by side in one program, sized by ``fitted.default_seeds_per_group`` (``make_train_seeds``)."""
    import jax

    from offrl_jax.fitted import FittedQConfig, make_learner

    cfg = FittedQConfig(
        num_actions=2, hidden_sizes=hidden, batch_size=batch, gamma=GAMMA, learning_rate=3e-4,
        target_update_period=100,
    )
    learner = make_learner(cfg, policy)
    run = learner.run
    keys = jax.random.split(jax.random.key(0), seeds)
    init = jax.jit(jax.vmap(lambda k: learner.init(k, data)))
    states = init(keys)
    vrun = jax.vmap(run, in_axes=(0, None, None))
    if grouped:
        from offrl_jax.fitted import default_seeds_per_group

        def f(states, data):
            g = default_seeds_per_group(seeds, cfg)
            part = lambda i: jax.tree_util.tree_map(lambda x: x[i : i + g], states)
            return [vrun(part(i), data, steps) for i in range(0, seeds, g)]
    else:
        def f(states, data):
            return vrun(states, data, steps)

    timing, _, _ = harness.time_jit(f, states, data, repeats=repeats)
    return timing, steps / timing.run_s


def fqe_accuracy(traj, data, policy, tgt, steps, mc_episodes):
    import jax
    import jax.numpy as jnp

    from offrl_jax.envs.control import monte_carlo_value
    from offrl_jax.fitted import FittedQConfig, initial_value, make_train

    cfg = FittedQConfig(
        num_actions=2, hidden_sizes=(256, 256), batch_size=256, gamma=GAMMA, learning_rate=3e-4,
        target_update_period=25, num_steps=steps,
    )
    res = jax.jit(make_train(cfg, policy))(jax.random.key(1), data)
    obs0 = traj.observations[:, 0]
    est = float(initial_value(res.state.apply_fn, res.state.params, obs0, policy))
    mc = jax.jit(monte_carlo_value, static_argnames=("env", "policy", "num_episodes", "horizon", "gamma"))(
        jax.random.key(123), ENV, tgt.policy, tgt.params, num_episodes=mc_episodes, horizon=None, gamma=GAMMA
    )
    return est, float(mc.mean), float(mc.standard_error), float(jnp.mean(res.metrics.loss[-100:]))


def run_d3rlpy(peer_python, traj, steps, repeats):
    """d3rlpy's DiscreteFQE in the peer interpreter: ``(result, None)`` or ``(None, reason)``."""
    mask = np.asarray(traj.mask) > 0
    disc = np.asarray(traj.discounts)
    lengths = mask.sum(1)
    term = np.zeros_like(disc)
    tout = np.zeros_like(disc)
    for n, length in enumerate(lengths):
        if disc[n, length - 1] == 0:
            term[n, length - 1] = 1.0
        else:
            tout[n, length - 1] = 1.0
    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, "data.npz")
        np.savez(
            npz,
            observations=np.asarray(traj.observations)[mask].astype(np.float32),
            actions=np.asarray(traj.actions)[mask].astype(np.int64),
            rewards=np.asarray(traj.rewards)[mask].astype(np.float32),
            terminals=term[mask].astype(np.float32),
            timeouts=tout[mask].astype(np.float32),
        )
        worker = ["--d3rlpy-worker", npz, "--steps", str(steps), "--repeats", str(repeats)]
        return harness.run_peer(peer_python, os.path.abspath(__file__), worker)


def main() -> None:
    ap = harness.make_parser(__doc__, quick_repeats=3, repeats=5)
    ap.add_argument("--d3rlpy-worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    args = harness.parse_args(ap)
    if args.d3rlpy_worker:
        harness.emit_peer_result(d3rlpy_worker(args.d3rlpy_worker, args.steps, args.repeats, 256, 256))
        return

    from offrl_jax.fitted import mlp_flops

    quick = args.quick
    episodes = 40 if quick else 200
    steps = 200 if quick else 1000
    repeats = args.repeats
    meta = harness.metadata("float32")
    traj, data = cartpole_data(episodes)
    tgt, policy = target_probs_fn()
    gflops = matmul_gflops()

    print(f"matmul {gflops:.1f} GFLOP/s", file=sys.stderr, flush=True)
    timing, sps = fqe_speed(data, policy, (256, 256), 256, steps, repeats)
    print(f"fqe 2x256: {sps:.0f} steps/s (compile {timing.compile_s:.1f} s)", file=sys.stderr, flush=True)
    step_flops = 4 * mlp_flops(4, (256, 256), 2, 256)  # fwd+bwd on s (3x) + target fwd on s'
    frac = step_flops * sps / 1e9 / gflops

    vm = []
    for hidden in ((64, 64), (256, 256)):
        base = None
        for seeds, grouped in ((1, False), (4, False), (16, False), (16, True)):
            t, s = fqe_speed(data, policy, hidden, 256, max(steps // 2, 100), repeats, seeds, grouped)
            ss = s * seeds
            base = ss if base is None else base
            mode = "make_train_seeds groups" if grouped else "one vmap"
            vm.append({"hidden": list(hidden), "seeds": seeds, "mode": mode, **t.as_dict(),
                       "seed_steps_per_s": ss, "vs_one_seed": ss / base})
            print(f"{mode} {hidden} x{seeds}: {ss:.0f} seed-steps/s", file=sys.stderr, flush=True)

    d3, d3_reason = run_d3rlpy(args.peer_python, traj, steps=100 if quick else 400, repeats=repeats)
    print(f"d3rlpy: {d3 or d3_reason}", file=sys.stderr, flush=True)
    acc_steps = 600 if quick else 10000  # quick: proves the script, not FQE's accuracy
    est, mc_mean, mc_se, final_loss = fqe_accuracy(traj, data, policy, tgt, acc_steps, 200 if quick else 2000)

    desc = f"gymnax {ENV}, controller epsilon=0.3, {episodes} episodes, {int(data.rewards.shape[0])} transitions"
    res = {
        "matmul_gflops": gflops,
        "fqe_2x256_b256": {"steps": steps, **timing.as_dict(), "steps_per_s": sps,
                           "step_flops": step_flops, "fraction_of_matmul": frac},
        "vmap": vm,
        "d3rlpy": d3,
        "d3rlpy_error": d3_reason,
        "accuracy": {"gamma": GAMMA, "train_steps": acc_steps, "fqe_estimate": est, "mc_mean": mc_mean,
                     "mc_se": mc_se, "z": (est - mc_mean) / mc_se if mc_se > 1e-6 * abs(mc_mean) else None,
                     "relative_error": abs(est - mc_mean) / abs(mc_mean), "final_loss": final_loss},
    }
    rows = [
        ["fp32 matmul 1024^3", f"{gflops:.1f} GFLOP/s"],
        [f"offrl_jax FQE 2x256, batch 256: steps/s (jitted scan of {steps})", f"{sps:.0f}"],
        ["compile time", f"{timing.compile_s:.2f} s"],
        ["step FLOPs / rate",
         f"{step_flops / 1e6:.1f} MFLOP, {step_flops * sps / 1e9:.1f} GFLOP/s = {100 * frac:.0f}% of matmul"],
    ]
    if d3:
        rows += [
            [f"d3rlpy {d3['d3rlpy_version']} DiscreteFQE update() alone: steps/s", f"{d3['update_steps_per_s']:.0f}"],
            ["d3rlpy DiscreteFQE fit() end to end: steps/s", f"{d3['fit_steps_per_s']:.0f}"],
            ["speed-up vs d3rlpy fit() (end to end)", f"{sps / d3['fit_steps_per_s']:.1f}x"],
            ["speed-up vs d3rlpy update()", f"{sps / d3['update_steps_per_s']:.1f}x"],
        ]
    else:
        rows.append(["d3rlpy", f"skipped: {d3_reason}"])
    lines = ["# fitted_speed", "", f"{harness.describe(meta)}; data: {desc}.", ""]
    lines += harness.markdown_table(["measurement", "value"], rows)
    lines += [""]
    lines += harness.markdown_table(
        ["hidden", "seeds", "batching", "seed-steps/s", "vs 1 seed", "compile s"],
        [[v["hidden"], v["seeds"], v["mode"], f"{v['seed_steps_per_s']:.0f}", f"{v['vs_one_seed']:.2f}",
          f"{v['compile_s']:.2f}"] for v in vm],
    )
    a = res["accuracy"]
    lines += [
        "",
        f"FQE accuracy (gamma {GAMMA}, {acc_steps} steps, target controller epsilon=0.1): "
        f"FQE {est:.3f} vs Monte-Carlo {mc_mean:.3f} ± {mc_se:.3f} (SE); "
        f"relative error {100 * a['relative_error']:.2f}%"
        + (f", z = {a['z']:.1f}." if a["z"] is not None else " (SE 0: every Monte-Carlo episode reaches the 500-step limit)."),
    ]
    settings = {"quick": quick, "data": desc, "episodes": episodes, "steps": steps, "repeats": repeats,
                "peer_python": harness.resolve_peer_python(args.peer_python)[0]}
    harness.write_results("fitted_speed", res, lines, meta=meta, settings=settings, out=args.out, quick=quick)


if __name__ == "__main__":
    main()
