"""``offrl-jax evaluate``: a user's own logs and target policy in, estimates and diagnostics out.

The steps (progress on stderr for the long ones):

1. read the logs (:func:`offrl_jax.formats.load_logs`: our ``.npz`` layout, or d3rlpy, Minari,
   SCOPE-RL and OBP exports);
2. read the target policy as per-step action probabilities π(·|s_t) ``[N, T, A]``, from an
   ``.npy``/``.npz`` file or a ``module:function`` called on the observations ``[N, T, ...]``;
3. the behaviour propensities β(a_t|s_t): a file (``[N, T]`` at the logged actions or
   ``[N, T, A]``), else those the logs carry, else estimated and cross-fitted by trajectory
   (:func:`offrl_jax.behavior.estimate_behavior`) with their diagnostics;
4. optionally a model Q̂ for DM/DR/WDR/MAGIC, cross-fitted over two folds of trajectories
   (:mod:`offrl_jax.experiments.cross_fit`, integer observations): the certainty-equivalence
   tabular model or horizon-aware tabular FQE; or a Q̂ table file ``[N, T, A]``;
5. every estimator with its interval (:func:`offrl_jax.ope.evaluate`) and the importance-weight
   diagnostics (:func:`offrl_jax.core.weight_diagnostics`), with warnings in words when they say
   importance sampling cannot be trusted;
6. JSON and markdown reports (written atomically) and, when matplotlib is installed, a figure
   (estimates with intervals; the distribution of the trajectory weights).

User errors raise ``ValueError`` naming the field; the CLI prints them on one line (exit 2).
"""

from __future__ import annotations

import importlib
import json
import math
import os
import sys
import time
from typing import Any, List, Optional

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.behavior import DEFAULT_SUPPORT_THRESHOLD, estimate_behavior
from offrl_jax.core import ModelTerms, model_terms, weight_diagnostics
from offrl_jax.core.files import atomic_write
from offrl_jax.core.validation import check_mask
from offrl_jax.data import Trajectories
from offrl_jax.ope import evaluate

Array = Any

__all__ = ["BEHAVIOR_MODELS", "run_evaluate", "report_markdown", "warnings_for"]

BEHAVIOR_MODELS = ("auto", "tabular", "linear", "mlp")
# Thresholds of the warnings (documented in the README section "Evaluating your own logs").
MIN_ESS = 10.0
MIN_ESS_FRACTION = 0.01
MAX_WEIGHT_SHARE = 0.5
MAX_OFF_SUPPORT = 0.05
MIN_PROPENSITY = 1e-3


_weight_diagnostics = jax.jit(lambda log_ratios, mask: weight_diagnostics(log_ratios, mask, validate=False))


class _Progress:
    """One line per stage on stderr with its elapsed time."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def __call__(self, what: str):
        self.what = what
        return self

    def __enter__(self):
        if not self.quiet:
            print(f"{self.what} ...", end="", file=sys.stderr, flush=True)
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        if not self.quiet:
            status = "done" if exc[0] is None else "failed"
            print(f" {status} ({time.perf_counter() - self.t0:.1f} s)", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# Inputs.
# ----------------------------------------------------------------------------------------------
def load_data(path: str, format: str = "auto", unknown_next: str = "keep") -> Trajectories:
    """The logs as :class:`Trajectories` (any format :func:`offrl_jax.formats.load_logs` reads)."""
    from offrl_jax.formats import load_logs

    return load_logs(path, format=format, unknown_next=unknown_next)


def _load_array(path: str, name: str, keys: tuple) -> np.ndarray:
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"{name}: cannot read {path} as .npy/.npz ({e})") from None
    if isinstance(z, np.ndarray):
        return z
    with z:
        for k in keys:
            if k in z.files:
                return z[k]
        if len(z.files) == 1:
            return z[z.files[0]]
        raise ValueError(f"{name}: {path} holds {z.files}; expected one array or one named {keys}")


def load_target(spec: str, traj: Trajectories) -> np.ndarray:
    """π(·|s_t) ``[N, T, A]`` from an ``.npy``/``.npz`` file or a ``module:function``."""
    if os.path.isfile(spec):
        probs = _load_array(spec, "target", ("target_probs", "probs", "evaluation_policy_action_dist"))
    elif ":" in spec and not spec.endswith((".npy", ".npz")):
        module, _, fn = spec.partition(":")
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            func = getattr(importlib.import_module(module), fn)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"target: cannot import {spec!r} ({e})") from None
        try:
            probs = func(np.asarray(traj.observations))
        except Exception as e:  # the user's function failed: say where, in one line
            raise ValueError(f"target: {spec}(observations) raised {type(e).__name__}: {e}") from None
    else:
        raise ValueError(f"target: expected an .npy/.npz file or module:function, found {spec!r} (no such file)")
    return check_probs(probs, "target", np.asarray(traj.mask))


def check_probs(probs: Any, name: str, mask: np.ndarray, num_actions: Optional[int] = None) -> np.ndarray:
    """Per-step action probabilities ``[N, T, A]``: shape, range and sums checked on real steps."""
    try:
        p = np.asarray(probs, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected an array of probabilities [N, T, A]") from None
    if p.ndim != 3 or p.shape[:2] != mask.shape:
        raise ValueError(f"{name}: expected shape [N, T, A] with [N, T] = {list(mask.shape)} (as the logs), found {list(p.shape)}")
    if num_actions is not None and p.shape[2] != num_actions:
        raise ValueError(f"{name}: expected A = {num_actions} actions, found {p.shape[2]}")
    real = p[mask > 0]
    if not np.all(np.isfinite(real)) or np.any(real < 0) or np.any(real > 1 + 1e-6):
        raise ValueError(f"{name}: expected probabilities in [0, 1] on real steps")
    sums = real.sum(-1)
    if np.any(np.abs(sums - 1) > 1e-3):
        raise ValueError(f"{name}: expected each step's probabilities to sum to 1, found a sum of {sums[np.argmax(np.abs(sums - 1))]:.4g}")
    return p


def _taken(probs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    return np.take_along_axis(probs, actions[..., None].astype(np.int64), -1)[..., 0]


def load_propensities(path: str, traj: Trajectories, num_actions: int) -> tuple:
    """(log β(a_t|s_t) ``[N, T]``, β(·|s_t) ``[N, T, A]`` or None) from a file."""
    mask = np.asarray(traj.mask)
    p = _load_array(path, "propensities", ("propensities", "pscore", "behavior_probs"))
    if p.ndim == 3:
        full = check_probs(p, "propensities", mask, num_actions)
        p = _taken(full, np.asarray(traj.actions))
    else:
        full = None
        if p.shape != mask.shape:
            raise ValueError(f"propensities: expected shape [N, T] = {list(mask.shape)} or [N, T, A], found {list(p.shape)}")
    real = p[mask > 0]
    if not np.all(np.isfinite(real)) or np.any(real <= 0) or np.any(real > 1 + 1e-6):
        bad = real[~(np.isfinite(real) & (real > 0) & (real <= 1 + 1e-6))][0]
        raise ValueError(f"propensities: expected probabilities in (0, 1] at the logged actions, found {bad}")
    return np.where(mask > 0, np.log(np.where(mask > 0, p, 1.0)), 0.0), full


def _check_actions(traj: Trajectories, num_actions: int) -> np.ndarray:
    a = np.asarray(traj.actions)
    mask = np.asarray(traj.mask)
    if a.shape != mask.shape:
        raise ValueError(f"actions: expected discrete actions [N, T] = {list(mask.shape)}, found shape {list(a.shape)}")
    real = a[mask > 0]
    if a.dtype.kind == "f" and np.any(real != np.round(real)):
        raise ValueError("actions: expected integer (discrete) actions")
    if real.size and (real.min() < 0 or real.max() >= num_actions):
        raise ValueError(f"actions: expected actions in [0, {num_actions}) (the target's A), found {int(real.max())}")
    return a.astype(np.int32)


def _stationary_table(probs: np.ndarray, obs: np.ndarray, mask: np.ndarray, num_obs: int) -> tuple:
    """[O, A] mean of π(·|s_t) per observation over logged steps, and whether it is stationary."""
    real = mask > 0
    o = obs[real]
    p = probs[real]
    table = np.full((num_obs, probs.shape[-1]), 1.0 / probs.shape[-1])
    sums = np.zeros_like(table)
    np.add.at(sums, o, p)
    counts = np.bincount(o, minlength=num_obs)[:, None]
    table = np.where(counts > 0, sums / np.maximum(counts, 1), table)
    stationary = bool(np.all(np.abs(p - table[o]) < 1e-6))
    return table, stationary


def _tabular_q_terms(kind: str, key, traj: Trajectories, target: np.ndarray, gamma: float,
                     num_steps: Optional[int], notes: List[str]) -> ModelTerms:
    """Cross-fitted Q̂ terms of a tabular model: ``fqe`` (horizon-aware FQE) or ``model``
    (the certainty-equivalence MDP's exact Q^π over the data's horizon)."""
    from offrl_jax.experiments.cross_fit import cross_fitted_fqe_terms, cross_fitted_model_terms

    obs, mask = np.asarray(traj.observations), np.asarray(traj.mask)
    if obs.ndim != 2 or obs.dtype.kind not in "iu":
        raise ValueError(
            f"q-hat: {kind!r} fits a tabular Q-hat and needs integer observations [N, T], found {obs.dtype} "
            f"{list(obs.shape)}; pass a Q-hat file [N, T, A] instead"
        )
    if mask.shape[0] < 2:
        raise ValueError("q-hat: cross-fitting needs at least 2 trajectories")
    num_obs = int(max(obs[mask > 0].max(), np.asarray(traj.next_observations)[mask > 0].max())) + 1
    table, stationary = _stationary_table(target, obs, mask, num_obs)
    if not stationary:
        notes.append("the target's probabilities differ between visits of one observation; "
                     "the Q-hat model used their average per observation")
    pi = jnp.asarray(table, traj.rewards.dtype)
    if kind == "fqe":
        return cross_fitted_fqe_terms(key, traj, num_obs, target.shape[-1], pi, gamma, num_steps=num_steps)
    return cross_fitted_model_terms(traj, num_obs, target.shape[-1], pi, gamma, mask.shape[1])


# ----------------------------------------------------------------------------------------------
# The run.
# ----------------------------------------------------------------------------------------------
def run_evaluate(
    data: str,
    target: str,
    *,
    gamma: float = 1.0,
    propensities: Optional[str] = None,
    behavior_model: str = "auto",
    num_folds: int = 5,
    q_hat: str = "none",
    fqe_steps: Optional[int] = None,
    confidence: float = 0.95,
    seed: int = 0,
    out: Optional[str] = "evaluation",
    figure: bool = True,
    quiet: bool = False,
    format: str = "auto",
    unknown_next: str = "keep",
    estimators: Optional[str] = None,
) -> dict:
    """Evaluates a target policy on a user's logs; returns the report (see the module docstring).

    Args:
      data: the logs file.
      target: ``.npy``/``.npz`` file of π(·|s_t) ``[N, T, A]``, or ``module:function`` returning
        it from the observations ``[N, T, ...]``.
      gamma: discount in [0, 1].
      propensities: optional file of β(a_t|s_t) ``[N, T]`` or β(·|s_t) ``[N, T, A]``.
      behavior_model: when β is estimated: ``auto`` (``tabular`` for integer observations, else
        ``mlp``), ``tabular``, ``linear`` or ``mlp``.
      num_folds: K folds of trajectories for cross-fitting β̂.
      q_hat: ``none``, ``model`` (cross-fitted certainty-equivalence tabular model, exact Q^π of
        the MDP estimated from counts), ``fqe`` (cross-fitted horizon-aware tabular FQE; slower)
        or a Q̂ file ``[N, T, A]``.
      fqe_steps: FQE gradient steps per fold (default: the FQE's own).
      confidence: interval level in (0, 1).
      seed: PRNG seed (β̂ training, bootstrap, MAGIC, FQE).
      out: path prefix of ``.json``/``.md``/``.png``; ``None`` writes nothing.
      figure: draw the figure when matplotlib is installed.
      quiet: no progress on stderr.
      format, unknown_next: as :func:`offrl_jax.formats.load_logs` (``keep``: a time-out's last
        step stays, with its own observation standing in for the unrecorded s').
      estimators: comma-separated names (``is,pdis,wis,wpdis,dm,dr,wdr,magic``); default: the
        importance-sampling four, and the model-based four with a Q̂.

    Returns:
      a dict: ``estimates`` (rows), ``weights``, ``behavior``, ``warnings``, ``notes``,
      ``settings`` and ``files`` (paths written).

    Raises:
      ValueError: naming the field or option, for any user error.
    """
    if behavior_model not in BEHAVIOR_MODELS:
        raise ValueError(f"behavior-model: expected one of {BEHAVIOR_MODELS}, found {behavior_model!r}")
    if not (isinstance(gamma, (int, float)) and 0.0 <= gamma <= 1.0):
        raise ValueError(f"gamma: expected a discount in [0, 1], found {gamma!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: expected a level in (0, 1), found {confidence}")
    if estimators is not None:
        _estimator_names(estimators, q_hat != "none")
    progress = _Progress(quiet)
    key = jax.random.key(seed)
    notes: List[str] = []
    with progress(f"reading {data}"):
        traj = load_data(data, format, unknown_next)
        mask = check_mask(traj.mask)
    n = mask.shape[0]
    with progress("target policy"):
        pi = load_target(target, traj)
        num_actions = pi.shape[-1]
        actions = _check_actions(traj, num_actions)
    beta_probs, behavior = None, {"source": None}
    if propensities is not None:
        with progress(f"reading propensities {propensities}"):
            blp, beta_probs = load_propensities(propensities, traj, num_actions)
        behavior["source"] = f"file {propensities}"
    elif traj.behavior_log_probs is not None:
        blp = np.asarray(traj.behavior_log_probs)
        behavior["source"] = "the logs"
    else:
        if not 2 <= num_folds <= n:
            raise ValueError(f"folds: expected 2 <= folds <= N = {n}, found {num_folds}")
        obs = np.asarray(traj.observations)
        model = behavior_model
        if model == "auto":
            model = "tabular" if obs.ndim == 2 and obs.dtype.kind in "iu" else "mlp"
        with progress(f"estimating the behaviour policy ({model}, {num_folds}-fold cross-fitting)"):
            est = estimate_behavior(jax.random.fold_in(key, 1), traj, model, num_folds=int(num_folds),
                                    num_actions=num_actions, target_probs=pi)
        blp, beta_probs = np.asarray(est.log_probs), None if est.probs is None else np.asarray(est.probs)
        d = est.diagnostics
        behavior.update(
            source=f"estimated ({model}, {num_folds}-fold cross-fitted by trajectory)",
            heldout_log_likelihood=float(d.heldout_log_likelihood),
            calibration_error=float(d.calibration_error),
            min_propensity=float(d.min_propensity),
            target_mass_off_support=float(d.target_mass_off_support),
            max_target_mass_off_support=float(d.max_target_mass_off_support),
            support_threshold=d.support_threshold,
        )
    if "min_propensity" not in behavior:
        behavior["min_propensity"] = float(np.exp(np.min(np.where(mask > 0, blp, np.inf))))
        if beta_probs is not None:
            off = np.sum(np.where(beta_probs < DEFAULT_SUPPORT_THRESHOLD, pi, 0.0), -1)[mask > 0]
            behavior.update(target_mass_off_support=float(off.mean()), max_target_mass_off_support=float(off.max()),
                            support_threshold=DEFAULT_SUPPORT_THRESHOLD)
    tp = _taken(pi, actions)
    tlp = np.where(mask > 0, np.log(np.where(tp > 0, tp, 1.0)) + np.where(tp > 0, 0.0, -np.inf), 0.0)
    dtype = traj.rewards.dtype
    traj = traj.replace(behavior_log_probs=jnp.asarray(blp, dtype), target_log_probs=jnp.asarray(tlp, dtype))
    terms = None
    if q_hat in ("fqe", "model"):
        what = "tabular FQE" if q_hat == "fqe" else "certainty-equivalence tabular model"
        with progress(f"fitting Q-hat (cross-fitted {what})"):
            terms = _tabular_q_terms(q_hat, jax.random.fold_in(key, 2), traj, pi, float(gamma), fqe_steps, notes)
    elif q_hat != "none":
        if not os.path.isfile(q_hat):
            raise ValueError(f"q-hat: expected none, model, fqe or an .npy/.npz file [N, T, A], found {q_hat!r} (no such file)")
        q = _load_array(q_hat, "q-hat", ("q_hat", "state_action_value_prediction"))
        if q.shape != pi.shape or not np.all(np.isfinite(q[mask > 0])):
            raise ValueError(f"q-hat: expected finite values of shape [N, T, A] = {list(pi.shape)}, found {list(q.shape)}")
        terms = model_terms(jnp.asarray(q, dtype), jnp.asarray(pi, dtype), jnp.asarray(actions), jnp.asarray(mask, dtype))
    names = ("is", "pdis", "wis", "wpdis") + (("dm", "dr", "wdr", "magic") if terms is not None else ())
    if estimators is not None:
        names = _estimator_names(estimators, terms is not None)
    with progress(f"estimators ({', '.join(names)})"):
        table = evaluate(traj, None, float(gamma), estimators=names, q_hat=terms, key=jax.random.fold_in(key, 3),
                         confidence=float(confidence))
        log_ratios = np.asarray(traj.log_ratios())
        wd = _weight_diagnostics(jnp.asarray(log_ratios), jnp.asarray(mask, dtype))  # inputs checked by evaluate
    final_log_w = np.sum(np.where(mask > 0, log_ratios, 0.0), axis=1)
    weights = dict(
        ess=float(wd.ess), ess_fraction=float(wd.ess_fraction), max_weight_share=float(wd.max_weight_share),
        max_log_weight=float(wd.max_log_weight), min_log_weight=float(wd.min_log_weight),
        final_step_ess=float(np.asarray(wd.per_step_ess)[-1]), num_trajectories=int(n),
    )
    rows = [dict(name=r.name, label=r.label, estimate=r.estimate, lower=r.lower, upper=r.upper, interval=r.interval)
            for r in table.rows]
    report = dict(
        estimates=rows, weights=weights, behavior=behavior, warnings=warnings_for(weights, behavior), notes=notes,
        settings=dict(data=data, target=target, gamma=float(gamma), confidence=float(confidence), seed=int(seed),
                      q_hat=q_hat, propensities=propensities, num_trajectories=int(n), max_length=int(mask.shape[1]),
                      num_actions=int(num_actions), num_steps=int(mask.sum())),
        files=[],
    )
    if out is not None:
        report["files"] = write_report(report, out, final_log_w if figure else None)
    return report


def _estimator_names(text: str, with_model: bool) -> tuple:
    from offrl_jax.ope import ESTIMATORS

    names = tuple(x.strip().lower() for x in text.split(",") if x.strip())
    if not names:
        raise ValueError("estimators: expected comma-separated names, found none")
    for name in names:
        if name not in ESTIMATORS:
            raise ValueError(f"estimators: unknown name {name!r}; expected names from {sorted(ESTIMATORS)}")
        if ESTIMATORS[name][0] and not with_model:
            raise ValueError(f"estimators: {name!r} needs a Q-hat; pass --q-hat model, fqe or a file")
    return names


def warnings_for(weights: dict, behavior: dict) -> List[str]:
    """The warnings, in words, that the diagnostics call for (thresholds at the module's top)."""
    out = []
    n = weights["num_trajectories"]
    if weights["ess"] < max(MIN_ESS, MIN_ESS_FRACTION * n):
        out.append(
            f"importance sampling cannot be trusted: the effective sample size of the trajectory weights is "
            f"{weights['ess']:.1f} of {n} trajectories; IS/WIS rest on a handful of trajectories"
        )
    if weights["max_weight_share"] > MAX_WEIGHT_SHARE:
        out.append(f"one trajectory carries {100 * weights['max_weight_share']:.0f}% of the total importance weight")
    off = behavior.get("target_mass_off_support")
    if off is not None and math.isfinite(off) and off > MAX_OFF_SUPPORT:
        out.append(
            f"the target puts {100 * off:.1f}% of its mass (mean over logged steps) on actions the behaviour policy "
            f"takes with probability < {behavior['support_threshold']:g}: those actions are barely in the data"
        )
    if behavior.get("min_propensity", 1.0) < MIN_PROPENSITY:
        out.append(
            f"the smallest behaviour propensity at a logged action is {behavior['min_propensity']:.2g}: "
            "single importance ratios can be huge"
        )
    return out


def report_markdown(report: dict) -> str:
    """The report as markdown: estimates with intervals, weight and behaviour diagnostics, warnings."""
    s = report["settings"]
    level = f"{100 * s['confidence']:g}%"
    lines = [f"# offrl-jax evaluate: {s['data']}", "",
             f"N = {s['num_trajectories']} trajectories, T = {s['max_length']}, {s['num_steps']} steps, "
             f"A = {s['num_actions']}, gamma = {s['gamma']:g}; target: {s['target']}", "",
             f"| estimator | estimate | {level} lower | {level} upper | interval |", "|---|---|---|---|---|"]
    for r in report["estimates"]:
        lines.append(f"| {r['label']} | {r['estimate']:.4f} | {r['lower']:.4f} | {r['upper']:.4f} | {r['interval']} |")
    w = report["weights"]
    lines += ["", "## Importance weights", "",
              f"- effective sample size: {w['ess']:.1f} of {w['num_trajectories']} ({100 * w['ess_fraction']:.1f}%)",
              f"- largest weight share: {w['max_weight_share']:.3f}",
              f"- log weights: min {w['min_log_weight']:.2f}, max {w['max_log_weight']:.2f}"]
    b = report["behavior"]
    lines += ["", "## Behaviour policy", "", f"- propensities: {b['source']}"]
    if "heldout_log_likelihood" in b:
        lines += [f"- held-out log-likelihood: {b['heldout_log_likelihood']:.4f} per step",
                  f"- expected calibration error: {b['calibration_error']:.4f}"]
    lines.append(f"- smallest propensity at a logged action: {b['min_propensity']:.4g}")
    if "target_mass_off_support" in b:
        lines.append(f"- target mass on actions with behaviour probability < {b['support_threshold']:g}: "
                     f"{100 * b['target_mass_off_support']:.2f}% on average, {100 * b['max_target_mass_off_support']:.1f}% at most")
    if report["warnings"]:
        lines += ["", "## Warnings", ""] + [f"- {x}" for x in report["warnings"]]
    if report["notes"]:
        lines += ["", "## Notes", ""] + [f"- {x}" for x in report["notes"]]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out: str, final_log_weights: Optional[np.ndarray]) -> List[str]:
    """Writes ``<out>.json``, ``<out>.md`` and (matplotlib installed) ``<out>.png``; returns the paths."""
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise ValueError(f"out: folder {folder} does not exist")
    paths = [out + ".json", out + ".md"]

    text = json.dumps(_finite(json.loads(json.dumps(report, default=float))), indent=1, allow_nan=False) + "\n"
    _write_text(paths[0], text)
    _write_text(paths[1], report_markdown(report))
    if final_log_weights is not None:
        png = _figure(report, final_log_weights, out + ".png")
        if png:
            paths.append(png)
    return paths


def _write_text(path: str, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)

    atomic_write(path, write)


def _finite(x):
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _figure(report: dict, final_log_weights: np.ndarray, path: str) -> Optional[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = report["estimates"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    y = np.arange(len(rows))
    est = np.array([r["estimate"] for r in rows])
    err = np.array([[r["estimate"] - r["lower"], r["upper"] - r["estimate"]] for r in rows]).T
    ax1.errorbar(est, y, xerr=np.maximum(err, 0), fmt="o", capsize=3)
    ax1.set_yticks(y, [r["label"] for r in rows])
    ax1.invert_yaxis()
    ax1.set_xlabel(f"estimate of J(target) ({100 * report['settings']['confidence']:g}% interval)")
    finite = final_log_weights[np.isfinite(final_log_weights)] / np.log(10.0)
    ax2.hist(finite, bins=40)
    ax2.set_xlabel("log10 trajectory importance weight")
    ax2.set_ylabel("trajectories")
    ax2.set_title(f"ESS {report['weights']['ess']:.1f} of {report['weights']['num_trajectories']}")
    fig.tight_layout()

    def write(tmp: str) -> None:
        fig.savefig(tmp, format="png", dpi=110)

    atomic_write(path, write)
    plt.close(fig)
    return path
