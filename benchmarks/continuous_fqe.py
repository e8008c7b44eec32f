"""Continuous-action FQE on linear-quadratic systems: estimate vs the exact J(π), and loop speed.

For a few (γ, behaviour) settings, a 2-state / 1-action LQR system, a linear-Gaussian target
policy and a linear-Gaussian behaviour policy (near: a perturbed target; far: a zero gain with
wide noise), this trains FQE with the whole loop one jitted ``lax.scan`` (seeds vmapped) for

  * ``quadratic`` features (Q^π lies in the model class; float64), and
  * an MLP 2x64 (float32),

and reports Ĵ = mean_n mean_k Q̂(s_0^n, a_k) beside the exact J(π) of
:func:`offrl_jax.envs.lqr.lqr_initial_value` (mean ± sd over seeds of the relative error),
together with the compile time and the seed-steps/s of the jitted loop (median of repeats,
``jax.block_until_ready``).

Usage: python benchmarks/continuous_fqe.py [--quick] [--repeats R] [--out DIR]
Writes benchmarks/results/continuous_fqe[_quick].{json,md}.
"""

from __future__ import annotations

import json
import os
import sys

import jax

jax.config.update("jax_enable_x64", True)  # the quadratic runs are float64; the MLP runs float32

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from offrl_jax.envs.lqr import (  # noqa: E402
    LinearGaussianPolicy,
    LQRSystem,
    lqr_initial_value,
    lqr_policy_value,
    sample_lqr_transitions,
)
from offrl_jax.fitted import FittedQConfig, initial_value, make_train  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SYSTEM = LQRSystem.create(
    np.array([[0.9, 0.2], [0.0, 0.8]]), np.array([[0.0], [1.0]]), np.eye(2), 0.5 * np.eye(1),
    0.01 * np.eye(2), np.array([1.0, -0.5]), np.eye(2),
)
TARGET = LinearGaussianPolicy.create(np.array([[-0.2, -0.3]]), 0.1 * np.eye(1))
BEHAVIOURS = {
    "near": LinearGaussianPolicy.create(np.array([[-0.1, -0.1]]), 0.3 * np.eye(1)),
    "far": LinearGaussianPolicy.create(np.array([[0.0, 0.0]]), 1.0 * np.eye(1)),
}


def run_setting(gamma: float, behaviour: str, features: str, steps: int, seeds: int, repeats: int) -> dict:
    value = lqr_policy_value(SYSTEM, TARGET, gamma)
    j = float(lqr_initial_value(SYSTEM, value))
    ds = jax.jit(sample_lqr_transitions, static_argnums=(3, 4))(
        jax.random.key(1), SYSTEM, BEHAVIOURS[behaviour], 1000, 20
    )
    if features == "quadratic":
        cfg = FittedQConfig(
            action_dim=1, gamma=gamma, features="quadratic", num_action_samples=4, num_steps=steps,
            batch_size=256, learning_rate=1e-2, tau=0.05, dtype="float64",
        )
    else:
        cfg = FittedQConfig(
            action_dim=1, gamma=gamma, features="mlp", hidden_sizes=(64, 64), num_action_samples=4,
            num_steps=steps, batch_size=256, learning_rate=3e-3, tau=0.05, dtype="float32",
        )
        ds = jax.tree.map(lambda x: x.astype(jnp.float32), ds)
    train = jax.jit(jax.vmap(make_train(cfg, TARGET.sample_actions), in_axes=(0, None)))
    keys = jax.random.split(jax.random.key(0), seeds)
    timing, res, _ = harness.time_jit(train, keys, ds, repeats=repeats)
    s0 = jnp.asarray(
        np.random.default_rng(5).multivariate_normal(SYSTEM.initial_mean, SYSTEM.initial_cov, size=50000),
        ds.observations.dtype,
    )
    estimate = jax.jit(
        jax.vmap(lambda p: initial_value(res.state.apply_fn, p, s0, TARGET.sample_actions, key=jax.random.key(3), num_samples=8))
    )
    j_hat = np.asarray(estimate(res.state.params), np.float64)
    rel = (j_hat - j) / abs(j)
    return {
        "gamma": gamma,
        "behaviour": behaviour,
        "features": features,
        "steps": steps,
        "seeds": seeds,
        "exact_J": j,
        "fqe_J_mean": float(j_hat.mean()),
        "fqe_J_per_seed": j_hat.tolist(),
        "rel_err_mean": float(rel.mean()),
        "rel_err_sd": float(rel.std(ddof=1)) if seeds > 1 else 0.0,
        **timing.as_dict(),
        "seed_steps_per_s": seeds * steps / timing.run_s,
    }


def main() -> None:
    args = harness.parse_args(harness.make_parser(__doc__, quick_repeats=2, repeats=2))
    if args.quick:
        settings = [(0.8, "near")]
        steps, seeds = 300, 2
    else:
        settings = [(0.8, "near"), (0.8, "far"), (0.9, "near"), (0.9, "far")]
        steps, seeds = 3000, 4
    meta = harness.metadata("float64 (quadratic features), float32 (MLP)")
    rows = []
    for gamma, behaviour in settings:
        for features in ("quadratic", "mlp"):
            row = run_setting(gamma, behaviour, features, steps, seeds, args.repeats)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k not in ("fqe_J_per_seed", "times_s")}))
    dataset = "1000 behaviour episodes x 20 steps (M = 20000)"
    lines = [
        "# Continuous-action FQE on LQR",
        "",
        f"{harness.describe(meta)}.",
        "",
        f"Data: {dataset}; batch 256, K = 4 sampled next actions; {seeds} vmapped seeds, "
        f"{steps} steps; Ĵ from 50 000 start states x 8 actions. Relative error (Ĵ − J)/|J|: mean ± sd over seeds.",
        "",
    ]
    table = []
    for r in rows:
        model = "quadratic (f64)" if r["features"] == "quadratic" else "MLP 2x64 (f32)"
        table.append([
            r["gamma"], r["behaviour"], model, f"{r['exact_J']:.4f}", f"{r['fqe_J_mean']:.4f}",
            f"{100 * r['rel_err_mean']:+.2f}% ± {100 * r['rel_err_sd']:.2f}%", f"{r['compile_s']:.1f}",
            f"{r['seed_steps_per_s']:.0f}",
        ])
    lines += harness.markdown_table(
        ["γ", "behaviour", "Q model", "exact J", "FQE Ĵ (mean)", "rel. error", "compile s", "seed-steps/s"], table
    )
    run_settings = {"dataset": dataset, "batch_size": 256, "num_action_samples": 4, "steps": steps, "seeds": seeds,
                    "repeats": args.repeats, "quick": args.quick}
    harness.write_results("continuous_fqe", rows, lines, meta=meta, settings=run_settings, out=args.out,
                          quick=args.quick)


if __name__ == "__main__":
    main()
