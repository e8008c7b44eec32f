"""The ``offrl-jax demo`` experiment: log data on a suite problem, evaluate its target, compare.

A standard problem of :mod:`offrl_jax.envs.suite` is rolled out under its behaviour policy; the
target policy is then evaluated from the logged data by the importance-sampling family, by
DM/DR/WDR/MAGIC with a cross-fitted Q-hat (the certainty-equivalence tabular model or
horizon-aware FQE, :mod:`offrl_jax.experiments.cross_fit`) and by tabular marginalised IS
(:mod:`offrl_jax.experiments.mis_table`), and every estimate is compared with the exact J(pi) of
the tabular solver.

Speed (the demo is mostly compile time): the rollout, the exact values, the behaviour-return
interval and the cross-fitted model terms are one jitted program, and every estimator with its
interval is a second one (:func:`offrl_jax.ope.evaluate`), compiled in a worker thread (on
placeholder data of the right shapes) while the first one compiles and runs and the MIS rows,
which validate on the host and run eagerly, are computed.
"""

from __future__ import annotations

import concurrent.futures
import sys
import time
from functools import partial
from typing import Any, List, NamedTuple, Optional, Sequence

import jax
import numpy as np

from offrl_jax.envs import policy_value, rollout
from offrl_jax.envs.suite import make_problem
from offrl_jax.experiments.cross_fit import cross_fitted_fqe_terms, cross_fitted_model_terms
from offrl_jax.experiments.mis_table import mis_rows
from offrl_jax.ope import ModelTerms, evaluate, student_t_interval

Array = Any

__all__ = ["DEMO_ESTIMATORS", "Q_HAT_SOURCES", "run_demo", "format_table", "demo_table"]

DEMO_ESTIMATORS = ("is", "pdis", "wis", "wpdis", "dm", "dr", "wdr", "magic")
# --q-hat choice -> the label of the model-based rows.
Q_HAT_SOURCES = {"model": "cross-fitted tabular model", "fqe": "cross-fitted FQE"}
_MODEL_ROWS = ("dm", "dr", "wdr", "magic")


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
            what = "done" if exc[0] is None else "failed"
            print(f" {what} ({time.perf_counter() - self.t0:.1f} s)", file=sys.stderr, flush=True)


class _Simulation(NamedTuple):
    data: Any  # Trajectories [N, T]
    j_target: Array
    j_behavior: Array
    behavior_ci: Any  # ConfidenceInterval of the on-policy mean return
    terms: Optional[ModelTerms]


@partial(jax.jit, static_argnames=("num_episodes", "horizon", "gamma", "with_model"))
def _simulate(key, mdp, behavior, target, confidence, *, num_episodes, horizon, gamma, with_model):
    """Rollout, exact values, behaviour-return interval and (optionally) model terms: one program."""
    data = rollout(key, mdp, behavior, num_episodes, horizon, target)
    mdp_t = mdp.replace(horizon=horizon)
    terms = None
    if with_model:
        terms = cross_fitted_model_terms(data, mdp.num_observations, mdp.num_actions, target, gamma, horizon)
    ci = student_t_interval(data.returns(gamma), confidence)
    return _Simulation(data, policy_value(mdp_t, target), policy_value(mdp_t, behavior), ci, terms)


def run_demo(
    env: str = "graph",
    num_episodes: Optional[int] = None,
    horizon: Optional[int] = None,
    seed: int = 0,
    confidence: float = 0.95,
    *,
    q_hat: str = "model",
    quiet: bool = False,
) -> List[dict]:
    """Builds a suite problem, logs data under its behaviour policy and evaluates its target.

    Args:
      env: a name from :data:`offrl_jax.envs.suite.PROBLEMS`.
      num_episodes: N >= 2 (default: the problem's).
      horizon: T >= 1 (default: the problem's).
      seed: PRNG seed of the rollout (the bootstrap and MAGIC use seed + 1, FQE seed + 2).
      confidence: two-sided interval level in (0, 1).
      q_hat: Q-hat of DM/DR/WDR/MAGIC: ``"model"`` (cross-fitted certainty-equivalence model)
        or ``"fqe"`` (cross-fitted horizon-aware FQE).
      quiet: no progress lines on stderr.

    Returns:
      Table rows, dicts with ``method``, ``estimate`` and, where available, ``lower``,
      ``upper`` and ``error`` (estimate minus the exact J(target)); the first two rows are the
      exact J(target) and J(behaviour).

    Raises:
      ValueError: naming the argument, for an unknown problem or ``q_hat``, N < 2, T < 1 or a
        confidence outside (0, 1).
    """
    if q_hat not in Q_HAT_SOURCES:
        raise ValueError(f"q_hat: expected one of {tuple(Q_HAT_SOURCES)}, found {q_hat!r}")
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence: expected a level in (0, 1), found {confidence}")
    progress = _Progress(3, quiet)
    with progress(f"building problem {env!r}"):
        problem = make_problem(env)
        n, t = num_episodes or problem.num_episodes, horizon or problem.horizon
        if n < 2 or t < 1:
            raise ValueError(f"num_episodes/horizon: expected N >= 2 and T >= 1, found N={n}, T={t}")
        gamma, finite = float(problem.mdp.gamma), problem.mdp.horizon is not None
        simulate = partial(_simulate, num_episodes=n, horizon=t, gamma=gamma, with_model=q_hat == "model")
        args = (jax.random.key(seed), problem.mdp, problem.behavior, problem.target, confidence)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        # The estimators' program compiles in the worker while this thread simulates.
        warm = pool.submit(_compile_estimators, jax.eval_shape(simulate, *args), gamma, confidence)
        with progress(f"collecting {n} episodes of at most {t} steps, exact values, model"):
            sim = jax.block_until_ready(simulate(*args))
        with progress("estimators"):
            mis_values = mis_rows(sim.data, problem.target, gamma, finite_horizon=finite)
            warm.result()
            table = _estimate(problem, sim, gamma, confidence, seed, q_hat)
    return _rows(sim, table, mis_values, Q_HAT_SOURCES[q_hat], finite)


def _compile_estimators(shapes: _Simulation, gamma: float, confidence: float) -> None:
    """Compiles :func:`_estimate`'s program by one call on placeholder data of the real shapes."""
    data = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes.data)
    data = data.replace(mask=np.ones_like(data.mask))
    zeros = np.zeros_like(data.rewards)
    evaluate(data, None, gamma, estimators=DEMO_ESTIMATORS, q_hat=ModelTerms(zeros, zeros),
             key=jax.random.key(0), confidence=confidence)


def _estimate(problem, sim: _Simulation, gamma: float, confidence: float, seed: int, q_hat: str):
    terms = sim.terms
    if q_hat == "fqe":
        mdp = problem.mdp
        terms = cross_fitted_fqe_terms(jax.random.key(seed + 2), sim.data, mdp.num_observations, mdp.num_actions,
                                       problem.target, gamma)
    return evaluate(sim.data, None, gamma, estimators=DEMO_ESTIMATORS, q_hat=terms,
                    key=jax.random.key(seed + 1), confidence=confidence, true_value=float(sim.j_target))


def _rows(sim: _Simulation, table, mis_values, source: str, finite: bool) -> List[dict]:
    j_target = float(sim.j_target)
    ci = sim.behavior_ci
    rows = [
        dict(method="exact J(target)", estimate=j_target),
        dict(method="exact J(behaviour)", estimate=float(sim.j_behavior)),
        dict(method="behaviour returns (on-policy mean)", estimate=float(ci.estimate),
             lower=float(ci.lower), upper=float(ci.upper)),
    ]
    for r in table.rows:
        label = f"{r.name.upper()} ({source})" if r.name in _MODEL_ROWS else r.label
        has_interval = r.interval != "n/a"
        rows.append(dict(method=label + ("" if has_interval else " (no interval)"), estimate=r.estimate,
                         lower=r.lower if has_interval else None, upper=r.upper if has_interval else None))
    suffix = "" if finite else " (infinite-horizon target)"
    rows.extend(dict(method=name + suffix, estimate=float(value)) for name, value in mis_values)
    for r in rows[2:]:
        r["error"] = r["estimate"] - j_target
    return rows


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


def demo_table(rows: Sequence[dict], env: str, confidence: float) -> str:
    """The demo's printed report: a title line and the aligned table of :func:`run_demo` rows."""
    level = f"{round(100 * confidence)}%"
    cols = ["method", "estimate", "lower", "upper", "error"]
    heads = ["method", "estimate", f"{level} lower", f"{level} upper", "error vs exact"]
    return f"\noffrl-jax demo: {env}\n" + format_table(rows, cols, heads)
