"""The curse of horizon, measured: RMSE of IS, PDIS, WPDIS, DR and MIS against the exact J as T grows.

One environment family: a Garnet(5 states, 2 actions, branching 3) MDP with the horizon T as its
only varying parameter, undiscounted (gamma = 1, as in Xie, Ma & Wang 2019). Behaviour: uniform;
target: 0.4-greedy on the T-step optimal first-step Q (per-step ratios 1.6 / 0.4). For each T,
``--seeds`` datasets of ``--episodes`` trajectories are drawn (vmapped), every estimator runs on
every dataset, and the RMSE against the exact finite-horizon J_T (backward induction) is
reported, with the relative RMSE = RMSE / |J_T|.

Estimators: trajectory-wise IS, per-decision IS, weighted per-decision IS (offrl_jax.ope),
doubly robust with Q-hat from the certainty-equivalence model fitted on the same data, the
model-based estimate itself (DM), and time-indexed tabular MIS (offrl_jax.mis, which estimates
the same finite-horizon J_T), with per-step and with pooled (time-homogeneous) transition models.

Writes benchmarks/results/horizon_variance[_quick].{json,md,png}; the
.png is a log-log plot of relative RMSE vs T (if matplotlib is installed).
Compile time (``lower().compile()`` at each T) is reported apart from run time (median over the
chunks of seeds after the first, each under ``jax.block_until_ready``; ``--repeats`` is unused:
every chunk is a different set of datasets).

Usage: python benchmarks/horizon_variance.py [--quick] [--seeds 200] [--episodes 100] [--chunk 20] [--out DIR]
"""

from __future__ import annotations

import os
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from offrl_jax.envs import TabularMDP, policy_value, q_values, rollout, value_iteration  # noqa: E402
from offrl_jax.envs.suite import garnet  # noqa: E402
from offrl_jax.mis import mis_finite_horizon, tabular_time_ratios  # noqa: E402
from offrl_jax.ope import (  # noqa: E402
    doubly_robust,
    log_importance_ratios,
    per_decision_is,
    trajectory_is,
    weighted_per_decision_is,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

S, A, BRANCHING, EPS = 5, 2, 3, 0.4
ESTIMATORS = ("IS", "PDIS", "WPDIS", "DR", "DM (model)", "MIS (time-indexed)", "MIS (pooled model)")


def make_family(horizon: int):
    mdp = garnet(0, S, A, BRANCHING, gamma=1.0, horizon=horizon, dtype=jnp.float64)
    behavior = jnp.full((S, A), 1.0 / A)
    q_star = value_iteration(mdp).q_star[0]
    target = EPS / A + (1 - EPS) * jax.nn.one_hot(jnp.argmax(q_star, -1), A, dtype=jnp.float64)
    return mdp, behavior, target


def empirical_model(tr, mdp: TabularMDP) -> TabularMDP:
    """Certainty-equivalence model from counts (unseen pairs: uniform next state, reward 0)."""
    m = tr.mask
    n = jnp.zeros((S, A)).at[tr.states, tr.actions].add(m)
    trans = jnp.zeros((S, A, S)).at[tr.states, tr.actions, tr.next_states].add(m)
    rsum = jnp.zeros((S, A)).at[tr.states, tr.actions].add(m * tr.rewards)
    seen = n > 0
    p_hat = jnp.where(seen[..., None], trans / jnp.where(seen, n, 1.0)[..., None], 1.0 / S)
    r_hat = jnp.where(seen, rsum / jnp.where(seen, n, 1.0), 0.0)
    return mdp.replace(transitions=p_hat, rewards=r_hat, reward_table=None, reward_std=None)


def make_estimate(mdp, behavior, target, episodes: int, horizon: int):
    gamma = mdp.gamma

    def one(key):
        tr = rollout(key, mdp, behavior, episodes, horizon, target_policy=target)
        lr = log_importance_ratios(tr.target_log_probs, tr.behavior_log_probs, tr.mask)
        model = empirical_model(tr, mdp)
        q = q_values(model, target)  # [T, S, A]
        t_idx = jnp.arange(horizon)[None, :]
        q_taken = q[t_idx, tr.states, tr.actions] * tr.mask
        v_hat = jnp.sum(target[tr.states] * q[t_idx, tr.states], -1) * tr.mask
        mis = tabular_time_ratios(tr.states, tr.actions, tr.next_states, tr.discounts, tr.mask, target)
        pooled = tabular_time_ratios(tr.states, tr.actions, tr.next_states, tr.discounts, tr.mask, target, pooled=True)
        return jnp.stack([
            trajectory_is(tr.rewards, lr, tr.mask, gamma, validate=False),
            per_decision_is(tr.rewards, lr, tr.mask, gamma, validate=False),
            weighted_per_decision_is(tr.rewards, lr, tr.mask, gamma, validate=False),
            doubly_robust(tr.rewards, lr, tr.mask, gamma, q_taken, v_hat, validate=False),
            policy_value(model, target),
            mis_finite_horizon(mis.weights, tr.rewards, tr.mask, gamma),
            mis_finite_horizon(pooled.weights, tr.rewards, tr.mask, gamma),
        ])

    return jax.jit(jax.vmap(one))


def run(horizons, seeds: int, episodes: int, chunk: int):
    rows = []
    for horizon in horizons:
        mdp, behavior, target = make_family(horizon)
        truth = float(policy_value(mdp, target))
        fn = make_estimate(mdp, behavior, target, episodes, horizon)
        keys = jax.random.split(jax.random.key(horizon), seeds).reshape(seeds // chunk, chunk)
        compiled, compile_s = harness.compile_jit(fn, keys[0])
        outs, times = [], []
        for k in keys:  # every chunk is a different set of datasets: all of them are kept
            out, seconds = harness.timed_call(compiled, k)
            outs.append(np.asarray(out))
            times.append(seconds)
        timing = harness.summarize(times[1:] or times, times[0], compile_s)  # first chunk = warm-up
        est = np.concatenate(outs)  # [seeds, estimators]
        err = est - truth
        finite = np.isfinite(err)
        rmse = np.sqrt(np.nanmean(np.where(finite, err, np.nan) ** 2, axis=0))
        rows.append({
            "horizon": horizon,
            "truth": truth,
            "rmse": dict(zip(ESTIMATORS, rmse.tolist())),
            "relative_rmse": dict(zip(ESTIMATORS, (rmse / abs(truth)).tolist())),
            "bias": dict(zip(ESTIMATORS, np.nanmean(np.where(finite, err, np.nan), 0).tolist())),
            "non_finite": dict(zip(ESTIMATORS, (~finite).sum(0).tolist())),
            "compile_s": compile_s,
            "run_s_per_chunk_median": timing.run_s,
            "timing": timing.as_dict(),
        })
        print(f"T={horizon:5d} J={truth:9.4f} " + " ".join(f"{n}={r:.3g}" for n, r in zip(ESTIMATORS, rmse)), flush=True)
    return rows


def write(rows, meta, settings, out_dir):
    lines = [
        "# Horizon vs error: RMSE (relative RMSE) against the exact J_T",
        "",
        f"Garnet({S}, {A}, {BRANCHING}), gamma = 1, behaviour uniform, target {EPS}-greedy; "
        f"{settings['seeds']} datasets x {settings['episodes']} episodes per T; {harness.describe(meta)}.",
        "",
    ]
    lines += harness.markdown_table(
        ["T", "J_T", *ESTIMATORS, "compile s", "run s / chunk"],
        [[r["horizon"], f"{r['truth']:.3f}", *[f"{r['rmse'][n]:.3g} ({r['relative_rmse'][n]:.2g})" for n in ESTIMATORS],
          f"{r['compile_s']:.1f}", f"{r['run_s_per_chunk_median']:.2f}"] for r in rows],
    )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        plt = None
    if plt is not None:
        fig, ax = plt.subplots(figsize=(6, 4))
        hs = [r["horizon"] for r in rows]
        for n in ESTIMATORS:
            ax.loglog(hs, [r["relative_rmse"][n] for r in rows], marker="o", label=n)
        ax.set_xlabel("horizon T")
        ax.set_ylabel("RMSE / |J_T|")
        ax.set_title("Error vs horizon (Garnet, gamma = 1)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        lines += ["", f"Plot: {harness.save_figure(fig, 'horizon_variance', out_dir, settings['quick'])}"]
    harness.write_results("horizon_variance", rows, lines, meta=meta, settings=settings, out=out_dir,
                          quick=settings["quick"])


def main():
    parser = harness.make_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=20, help="datasets per vmapped call")
    args = harness.parse_args(parser)
    if args.quick:
        horizons, seeds, episodes, chunk = (10, 100), 20, 50, 10
    else:
        horizons, seeds, episodes, chunk = (10, 30, 100, 300, 1000), args.seeds, args.episodes, args.chunk
    if seeds % chunk:
        raise ValueError(f"--seeds: expected a multiple of --chunk ({chunk}), found {seeds}")
    settings = {"seeds": seeds, "episodes": episodes, "chunk": chunk, "horizons": list(horizons), "quick": args.quick}
    meta = harness.metadata("float64")
    rows = run(horizons, seeds, episodes, chunk)
    write(rows, meta, settings, args.out)


if __name__ == "__main__":
    main()
