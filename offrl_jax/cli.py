"""Command line: ``offrl-jax demo`` (the main job), ``offrl-jax envs``, ``offrl-jax bench``."""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import time
from typing import List, Optional, Sequence


class _Progress:
    """One line per stage on stderr, with its elapsed time (JAX compiles can take seconds)."""

    def __init__(self, total: int, quiet: bool = False):
        self.total, self.i, self.quiet = total, 0, quiet

    def __call__(self, what: str):
        self.i += 1
        if not self.quiet:
            print(f"[{self.i}/{self.total}] {what} ...", end="", file=sys.stderr, flush=True)
        self.t0 = time.perf_counter()
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.quiet:
            print(f" done ({time.perf_counter() - self.t0:.1f} s)", file=sys.stderr, flush=True)


def format_table(rows: Sequence[dict], columns: Sequence[str], headers: Optional[Sequence[str]] = None) -> str:
    """A plain aligned text table of dict rows (floats to 4 decimals, missing cells blank)."""
    headers = list(headers or columns)

    def cell(v):
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:+.4f}"
        return str(v)

    body = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    sep = "  ".join("-" * w for w in widths)
    out = [line, sep] + ["  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(b, widths))) for b in body]
    return "\n".join(out)


def run_demo(env: str, num_episodes: Optional[int], horizon: Optional[int], seed: int,
             confidence: float, quiet: bool = False, q_hat: str = "model") -> List[dict]:
    """Builds a standard problem, logs data under its behaviour policy and evaluates its target.

    Returns the table rows (dicts with ``method``, ``estimate``, ``lower``, ``upper``, ``error``).
    """
    import jax
    import jax.numpy as jnp

    from offrl_jax.envs import policy_value, rollout
    from offrl_jax.envs.suite import make_problem

    progress = _Progress(4, quiet)
    with progress(f"building problem {env!r}"):
        problem = make_problem(env)
        n = num_episodes or problem.num_episodes
        t = horizon or problem.horizon
        if n < 2 or t < 1:
            raise ValueError(f"num_episodes/horizon: expected N >= 2 and T >= 1, found N={n}, T={t}")
        mdp_t = problem.mdp.replace(horizon=t)
        gamma = float(problem.mdp.gamma)
    with progress(f"collecting {n} episodes of at most {t} steps (compiles once)"):
        collect = jax.jit(rollout, static_argnums=(3, 4))
        data = collect(jax.random.key(seed), problem.mdp, problem.behavior, n, t, problem.target)
        jax.block_until_ready(data)
    with progress("exact values from the model"):
        j_target = float(policy_value(mdp_t, problem.target))
        j_behavior = float(policy_value(mdp_t, problem.behavior))
    rows = [
        dict(method="exact J(target)", estimate=j_target),
        dict(method="exact J(behaviour)", estimate=j_behavior),
    ]
    with progress("estimators"):
        from offrl_jax.ope import student_t_interval

        ci = student_t_interval(data.returns(gamma), confidence=confidence)
        rows.append(dict(method="behaviour returns (on-policy mean)", estimate=float(ci.estimate),
                         lower=float(ci.lower), upper=float(ci.upper)))
        rows.extend(_estimator_rows(problem, data, gamma, t, confidence, seed, j_target, q_hat))
    for r in rows[2:]:
        r["error"] = r["estimate"] - j_target
    return rows


def cross_fitted_model_terms(data, num_observations: int, num_actions: int, policy, gamma: float, horizon: int):
    """Q-hat terms from the certainty-equivalence model, cross-fitted over two halves.

    The model estimated on one half of the trajectories gives ``q_taken``/``v_hat`` for the other
    half (and vice versa), so Q-hat is independent of the trajectories it corrects, which keeps DR
    unbiased (Jiang & Li 2016 assume an independent Q-hat).
    """
    import jax
    import jax.numpy as jnp

    from offrl_jax.envs.empirical import estimate_mdp, model_q_hat
    from offrl_jax.ope import ModelTerms

    n = data.rewards.shape[0]
    half = n // 2
    parts = [jax.tree_util.tree_map(lambda x: x[:half], data), jax.tree_util.tree_map(lambda x: x[half:], data)]
    terms = []
    for fit, apply in ((parts[1], parts[0]), (parts[0], parts[1])):
        model = estimate_mdp(fit, num_observations, num_actions, gamma, horizon)
        terms.append(model_q_hat(model, policy, apply))
    return ModelTerms(q_taken=jnp.concatenate([terms[0][0], terms[1][0]]),
                      v_hat=jnp.concatenate([terms[0][1], terms[1][1]]))


def _estimator_rows(problem, data, gamma, horizon, confidence, seed, true_value, q_hat="model") -> List[dict]:
    """OPE rows: IS family, DM/DR/WDR/MAGIC with a cross-fitted Q-hat (tabular model or FQE)."""
    import jax

    from offrl_jax.ope import evaluate

    mdp = problem.mdp
    if q_hat == "fqe":
        from offrl_jax.fitted.horizon import cross_fitted_fqe_terms

        terms = cross_fitted_fqe_terms(jax.random.key(seed + 2), data, mdp.num_observations, mdp.num_actions,
                                       problem.target, gamma)
        source = "cross-fitted FQE"
    else:
        terms = cross_fitted_model_terms(data, mdp.num_observations, mdp.num_actions, problem.target, gamma, horizon)
        source = "cross-fitted tabular model"
    table = evaluate(data, gamma, estimators=("is", "pdis", "wis", "wpdis", "dm", "dr", "wdr", "magic"),
                     q_hat=terms, key=jax.random.key(seed + 1), confidence=confidence, true_value=true_value)
    labels = {k: f"{k.upper()} ({source})" for k in ("dm", "dr", "wdr", "magic")}
    from offrl_jax.ope.evaluate import _LABELS

    rows = []
    for r in table.rows:
        has_interval = r.interval != "n/a"
        rows.append(dict(method=labels.get(r.name, _LABELS.get(r.name, r.name)) + ("" if has_interval else " (no interval)"),
                         estimate=float(r.estimate), lower=float(r.lower) if has_interval else None,
                         upper=float(r.upper) if has_interval else None))
    from offrl_jax.mis import mis_rows

    finite = problem.mdp.horizon is not None
    for name, value in mis_rows(data, problem.target, gamma, finite_horizon=finite):
        suffix = "" if finite else " (infinite-horizon target)"
        rows.append(dict(method=name + suffix, estimate=float(value)))
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    from offrl_jax.envs.suite import PROBLEMS

    ap = argparse.ArgumentParser(prog="offrl-jax", description="JAX offline RL and off-policy evaluation.")
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="evaluate a target policy from logged data against the exact value")
    d.add_argument("--env", default="graph", choices=PROBLEMS, help="standard problem (default: graph, the COBS toy graph)")
    d.add_argument("--num-episodes", "-n", type=int, default=None, help="N (default: the problem's)")
    d.add_argument("--horizon", "-t", type=int, default=None, help="T (default: the problem's)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--confidence", type=float, default=0.95)
    d.add_argument("--quiet", action="store_true", help="no progress lines")
    d.add_argument("--q-hat", default="model", choices=("model", "fqe"),
                   help="Q-hat of DM/DR/WDR/MAGIC: cross-fitted tabular model (default) or horizon-aware FQE")
    sub.add_parser("envs", help="list the standard problems")
    b = sub.add_parser("bench", help="run a script from ./benchmarks (e.g. ope_speed --quick)")
    b.add_argument("name", nargs="?", help="script name without .py; omit to list")
    b.add_argument("args", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)

    if args.command == "envs":
        for name in PROBLEMS:
            print(name)
        return 0
    if args.command == "bench":
        folder = os.path.join(os.getcwd(), "benchmarks")
        scripts = sorted(f[:-3] for f in os.listdir(folder) if f.endswith(".py") and not f.startswith("_")) if os.path.isdir(folder) else []
        if not args.name:
            print("\n".join(scripts) if scripts else "no ./benchmarks folder here (run from the repository root)")
            return 0
        if args.name not in scripts:
            print(f"name: expected one of {scripts}, found {args.name!r}", file=sys.stderr)
            return 2
        sys.argv = [args.name] + list(args.args)
        runpy.run_path(os.path.join(folder, args.name + ".py"), run_name="__main__")
        return 0
    if not 0.0 < args.confidence < 1.0:
        ap.error(f"--confidence: expected a level in (0, 1), found {args.confidence}")
    rows = run_demo(args.env, args.num_episodes, args.horizon, args.seed, args.confidence, args.quiet, args.q_hat)
    level = f"{round(100 * args.confidence)}%"
    print(f"\noffrl-jax demo: {args.env}")
    cols = ["method", "estimate", "lower", "upper", "error"]
    print(format_table(rows, cols, ["method", "estimate", f"{level} lower", f"{level} upper", "error vs exact"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
