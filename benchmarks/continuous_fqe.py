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

Usage: python benchmarks/continuous_fqe.py [--quick]
Writes benchmarks/results/continuous_fqe[_quick].{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

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
from offrl_jax.fitted.continuous import ContinuousFQEConfig, continuous_initial_value, make_continuous_train  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
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
        cfg = ContinuousFQEConfig(
            action_dim=1, gamma=gamma, features="quadratic", num_action_samples=4, num_steps=steps,
            batch_size=256, learning_rate=1e-2, tau=0.05, dtype="float64",
        )
    else:
        cfg = ContinuousFQEConfig(
            action_dim=1, gamma=gamma, features="mlp", hidden_sizes=(64, 64), num_action_samples=4,
            num_steps=steps, batch_size=256, learning_rate=3e-3, tau=0.05, dtype="float32",
        )
        ds = jax.tree.map(lambda x: x.astype(jnp.float32), ds)
    train = jax.jit(jax.vmap(make_continuous_train(cfg, TARGET.sample_actions), in_axes=(0, None)))
    keys = jax.random.split(jax.random.key(0), seeds)
    t = time.perf_counter()
    compiled = train.lower(keys, ds).compile()
    compile_s = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        res = jax.block_until_ready(compiled(keys, ds))
        times.append(time.perf_counter() - t)
    run_s = statistics.median(times)
    s0 = jnp.asarray(
        np.random.default_rng(5).multivariate_normal(SYSTEM.initial_mean, SYSTEM.initial_cov, size=50000),
        ds.observations.dtype,
    )
    estimate = jax.jit(
        jax.vmap(lambda p: continuous_initial_value(res.state.apply_fn, p, jax.random.key(3), s0, TARGET.sample_actions, 8))
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
        "compile_s": compile_s,
        "run_s": run_s,
        "seed_steps_per_s": seeds * steps / run_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    args = parser.parse_args()
    if args.quick:
        settings = [(0.8, "near")]
        steps, seeds, repeats = 300, 2, 2
    else:
        settings = [(0.8, "near"), (0.8, "far"), (0.9, "near"), (0.9, "far")]
        steps, seeds, repeats = 3000, 4, 2
    rows = []
    for gamma, behaviour in settings:
        for features in ("quadratic", "mlp"):
            row = run_setting(gamma, behaviour, features, steps, seeds, repeats)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "fqe_J_per_seed"}))
    meta = {
        "device": str(jax.devices()[0]),
        "platform": platform.platform(),
        "jax": jax.__version__,
        "dataset": "1000 behaviour episodes x 20 steps (M = 20000)",
        "batch_size": 256,
        "num_action_samples": 4,
    }
    suffix = "_quick" if args.quick else ""
    out = os.path.join(HERE, "results", f"continuous_fqe{suffix}")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".json", "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2)
    lines = [
        f"# Continuous-action FQE on LQR ({meta['device']}, jax {meta['jax']})",
        "",
        f"Data: {meta['dataset']}; batch 256, K = 4 sampled next actions; {seeds} vmapped seeds, "
        f"{steps} steps; Ĵ from 50 000 start states x 8 actions. Relative error (Ĵ − J)/|J|: mean ± sd over seeds.",
        "",
        "| γ | behaviour | Q model | exact J | FQE Ĵ (mean) | rel. error | compile s | seed-steps/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        model = "quadratic (f64)" if r["features"] == "quadratic" else "MLP 2x64 (f32)"
        lines.append(
            f"| {r['gamma']} | {r['behaviour']} | {model} | {r['exact_J']:.4f} | {r['fqe_J_mean']:.4f} | "
            f"{100 * r['rel_err_mean']:+.2f}% ± {100 * r['rel_err_sd']:.2f}% | {r['compile_s']:.1f} | "
            f"{r['seed_steps_per_s']:.0f} |"
        )
    with open(out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
