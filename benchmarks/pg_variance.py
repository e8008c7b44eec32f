"""Variance of offline policy-gradient estimates and ESS as the horizon T grows, per weighting.

A Garnet(10 states, 3 actions, branching 3, gamma 0.95) MDP run for T steps (finite horizon).
Behaviour: uniform. Target: tabular softmax π_θ with θ = log(½ (0.2-greedy on Q*) + ½ uniform).
For each T, M datasets of N behaviour trajectories; on each dataset every estimator gives a
gradient; against the exact ∇J(π_θ) (``jax.grad`` of the exact finite-horizon value) we report
relative bias ‖mean − ∇J‖/‖∇J‖, relative standard deviation sqrt(tr Cov)/‖∇J‖ (one dataset of N
trajectories), relative RMSE, and the mean effective sample size (Σw)²/Σw² of the weights the
estimator uses (trajectory: w_{0:T−1}; per-decision: w_{0:t} averaged over t; first order: ρ_t;
state marginal: ŵ_t ρ_t; averaged over t). Q̂ = exact Q^π_t and baseline V^π_t where an
estimator takes a critic; "state_marginal_exact" uses exact ratios d^π_t/d^β_t,
"state_marginal_mis" ratios estimated from the same data (:func:`offrl_jax.pg.tabular_state_weights`).

Compile time (``lower().compile()``) is reported apart from run time (median of ``--repeats``
calls under ``jax.block_until_ready``).

Usage: python benchmarks/pg_variance.py [--quick] [--repeats R] [--out DIR]
Writes benchmarks/results/pg_variance[_quick].{json,md} and .png (with matplotlib).
"""

from __future__ import annotations

import os
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from offrl_jax import core, policies  # noqa: E402
from offrl_jax.envs import policy_value, q_values, rollout, state_distributions, state_values, value_iteration  # noqa: E402
from offrl_jax.envs.suite import garnet  # noqa: E402
from offrl_jax.pg import (  # noqa: E402
    first_order_surrogate,
    per_decision_surrogate,
    returns_to_go,
    state_marginal_surrogate,
    tabular_state_weights,
    trajectory_surrogate,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

S, A, GAMMA = 10, 3, 0.95
ESTIMATORS = (
    "trajectory",
    "trajectory_rtg",
    "per_decision",
    "per_decision_clip10",
    "per_decision_sn",
    "per_decision_q",
    "state_marginal_exact",
    "state_marginal_mis",
    "first_order_q",
    "first_order_rtg",
)


_ess = core.effective_sample_size  # per-column ESS over axis 0 of [N, ...] log-weights


def make_estimates(mdp, beta, policy, theta, horizon, num_episodes):
    """Returns ``f(keys) -> ({name: [M, S, A]}, {name: [M]} ESS)`` for this horizon."""
    obs = jnp.arange(S)
    pi = policy.probs(theta, obs)
    q = q_values(mdp, pi)
    v = state_values(mdp, pi)
    ratio = state_distributions(mdp, pi, horizon) / state_distributions(mdp, beta, horizon)
    ratio = jnp.where(jnp.isfinite(ratio), ratio, 0.0)

    def one(key):
        tr = rollout(key, mdp, beta, num_episodes, horizon)
        t = jnp.arange(horizon)[None, :]
        q_hat = q[t, tr.states, tr.actions] * tr.mask
        base = v[t, tr.states] * tr.mask
        w_exact = ratio[t, tr.states]
        w_mis = tabular_state_weights(tr.states, tr.actions, tr.next_states, tr.discounts, tr.mask, pi).weights
        rtg = returns_to_go(tr.rewards, tr.mask, GAMMA)
        b, r, m = tr.behavior_log_probs, tr.rewards, tr.mask
        fs = {
            "trajectory": lambda lp: trajectory_surrogate(lp, b, r, m, GAMMA),
            "trajectory_rtg": lambda lp: trajectory_surrogate(lp, b, r, m, GAMMA, baseline=base, reward_to_go=True),
            "per_decision": lambda lp: per_decision_surrogate(lp, b, r, m, GAMMA),
            "per_decision_clip10": lambda lp: per_decision_surrogate(lp, b, r, m, GAMMA, max_log_weight=float(np.log(10.0))),
            "per_decision_sn": lambda lp: per_decision_surrogate(lp, b, r, m, GAMMA, self_normalize=True),
            "per_decision_q": lambda lp: per_decision_surrogate(lp, b, r, m, GAMMA, q_hat=q_hat, baseline=base),
            "state_marginal_exact": lambda lp: state_marginal_surrogate(lp, b, q_hat, w_exact, m, GAMMA, baseline=base),
            "state_marginal_mis": lambda lp: state_marginal_surrogate(lp, b, q_hat, w_mis, m, GAMMA, baseline=base),
            "first_order_q": lambda lp: first_order_surrogate(lp, b, q_hat, m, GAMMA, baseline=base),
            "first_order_rtg": lambda lp: first_order_surrogate(lp, b, rtg, m, GAMMA),
        }
        grads = {k: jax.grad(lambda th: f(policy.log_prob(th, tr.observations, tr.actions)))(theta) for k, f in fs.items()}
        lr = core.log_importance_ratios(policy.log_prob(theta, tr.observations, tr.actions), b, m)
        cum = core.cumulative_log_weights(lr, m)
        ess = {
            "trajectory": _ess(cum[:, -1]),
            "per_decision": jnp.mean(_ess(cum)),
            "first_order": jnp.mean(_ess(lr)),
            "state_marginal": jnp.mean(_ess(jnp.log(w_exact) + lr)),
        }
        return grads, ess

    return jax.jit(jax.vmap(one))


def main() -> None:
    args = harness.parse_args(harness.make_parser(__doc__, quick_repeats=3, repeats=3))
    meta = harness.metadata("float64")
    horizons = (2, 4, 8) if args.quick else (2, 4, 8, 16, 32)
    num_datasets = 100 if args.quick else 500
    num_episodes = 20 if args.quick else 50
    repeats = args.repeats
    base_mdp = garnet(0, S, A, 3, gamma=GAMMA, dtype=jnp.float64)
    q_star, _ = value_iteration(base_mdp)
    beta = policies.uniform(S, A, jnp.float64)
    target = policies.mixture(policies.epsilon_greedy(q_star, 0.2), beta, 0.5)
    theta = jnp.log(target)
    policy = policies.tabular_softmax(S, A)
    rows, timing = [], []
    for horizon in horizons:
        mdp = base_mdp.replace(horizon=horizon)
        g_true = np.asarray(jax.grad(lambda th: policy_value(mdp, policy.probs(th, jnp.arange(S))))(theta))
        f = make_estimates(mdp, beta, policy, theta, horizon, num_episodes)
        keys = jax.random.split(jax.random.key(horizon), num_datasets)
        t, out, _ = harness.time_jit(f, keys, repeats=repeats)
        run = t.run_s
        timing.append({"T": horizon, **t.as_dict()})
        grads, ess = jax.device_get(out)
        norm = float(np.linalg.norm(g_true))
        for name in ESTIMATORS:
            g = grads[name].reshape(num_datasets, -1)
            mean = g.mean(0)
            bias = float(np.linalg.norm(mean - g_true.ravel())) / norm
            std = float(np.sqrt(np.sum(g.var(0, ddof=1)))) / norm
            rmse = float(np.sqrt(np.mean(np.sum((g - g_true.ravel()) ** 2, 1)))) / norm
            bias_se = float(np.sqrt(np.sum(g.var(0, ddof=1)) / num_datasets)) / norm
            kind = next(k for k in ("trajectory", "per_decision", "first_order", "state_marginal") if name.startswith(k))
            rows.append({
                "T": horizon, "estimator": name, "rel_bias": bias, "rel_bias_se": bias_se, "rel_std": std,
                "rel_rmse": rmse, "mean_ess": float(np.mean(ess[kind])), "grad_norm": norm,
            })
        print(f"T={horizon}: |grad J| = {norm:.4f}, compile {timing[-1]['compile_s']:.2f}s, run {run:.3f}s")
    settings = {
        "mdp": f"garnet(seed 0, {S} states, {A} actions, branching 3, gamma {GAMMA}), finite horizon T",
        "behavior": "uniform",
        "target": "softmax, theta = log(0.5 * 0.2-greedy(Q*) + 0.5 * uniform)",
        "num_datasets": num_datasets,
        "num_episodes": num_episodes,
        "horizons": list(horizons),
        "repeats": repeats,
        "quick": args.quick,
    }
    res = {"rows": rows, "timing": timing}
    lines = [
        "# pg_variance",
        "",
        f"{settings['mdp']}; behaviour {settings['behavior']}; target {settings['target']}. M = {num_datasets} "
        f"datasets of N = {num_episodes} trajectories per T; {harness.describe(meta)}.",
        "Relative to ‖∇J‖: bias of the mean (± its standard error), std of one dataset's estimate, RMSE. "
        "ESS: mean (Σw)²/Σw² of the weights the estimator family uses (out of N; state-marginal rows use the "
        "exact ratios).",
        "",
    ]
    lines += harness.markdown_table(
        ["T", "estimator", "rel. bias (± SE)", "rel. std", "rel. RMSE", "mean ESS"],
        [[r["T"], r["estimator"], f"{r['rel_bias']:.3f} (± {r['rel_bias_se']:.3f})", f"{r['rel_std']:.3f}",
          f"{r['rel_rmse']:.3f}", f"{r['mean_ess']:.1f}"] for r in rows],
    )
    lines += [""]
    lines += harness.markdown_table(
        ["T", "compile (s)", f"run, median of {repeats} (s)"],
        [[t["T"], f"{t['compile_s']:.2f}", f"{t['run_s']:.3f}"] for t in timing],
    )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for name in ESTIMATORS:
            rs = [r for r in rows if r["estimator"] == name]
            axes[0].plot([r["T"] for r in rs], [r["rel_rmse"] for r in rs], marker="o", label=name)
        for kind, name in (("trajectory", "trajectory"), ("per_decision", "per_decision"),
                           ("first_order", "first_order_q"), ("state_marginal", "state_marginal_exact")):
            rs = [r for r in rows if r["estimator"] == name]
            axes[1].plot([r["T"] for r in rs], [r["mean_ess"] for r in rs], marker="o", label=kind)
        for ax, lab in ((axes[0], "relative RMSE of the gradient"), (axes[1], f"mean ESS (of N = {num_episodes})")):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("horizon T")
            ax.set_ylabel(lab)
        axes[0].legend(fontsize=7)
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        lines += ["", f"Plot: {harness.save_figure(fig, 'pg_variance', args.out, args.quick)}"]
    except ImportError:
        pass
    harness.write_results("pg_variance", res, lines, meta=meta, settings=settings, out=args.out, quick=args.quick)


if __name__ == "__main__":
    main()
