"""``offrl-jax evaluate``: a user's own logs and target policy in, estimates and diagnostics out.

The steps (progress on stderr for the long ones):

1. read the logs (:func:`offrl_jax.formats.load_logs`: our ``.npz`` layout, or d3rlpy, Minari,
   SCOPE-RL and OBP exports);
2. read the target policy (:mod:`.evaluate_inputs`): for discrete actions its per-step action
   probabilities π(·|s_t) ``[N, T, A]``, from an ``.npy``/``.npz`` file or a ``module:function``
   called on the observations ``[N, T, ...]``; for continuous actions (float ``[N, T, d]``) the
   log-densities log π(a_t|s_t) ``[N, T]`` of the logged actions, from a file or a
   ``module:function`` called on ``(observations, actions)``;
3. the behaviour propensities: a file (discrete: β(a_t|s_t) ``[N, T]`` or β(·|s_t)
   ``[N, T, A]``; continuous: log-densities ``[N, T]``), else those the logs carry, else estimated
   and cross-fitted by trajectory (:func:`offrl_jax.behavior.estimate_behavior`: smoothed counts,
   a softmax classifier, or the state-dependent diagonal Gaussian for continuous actions) with
   their diagnostics;
4. optionally Q̂ for DM/DR/WDR/MAGIC, cross-fitted over two folds of trajectories
   (:mod:`.evaluate_q`): tabular models for integer observations, neural FQE for vector
   observations (discrete actions), or a file;
5. every estimator with its interval (:func:`offrl_jax.ope.evaluate`) and the importance-weight
   diagnostics (:func:`offrl_jax.core.weight_diagnostics`), with warnings in words when they say
   importance sampling cannot be trusted (:mod:`.evaluate_report`);
6. JSON and markdown reports (written atomically) and, when matplotlib is installed, a figure
   (estimates with intervals; the distribution of the trajectory weights).

Continuous actions: the estimators read only the ratios π(a_t|s_t)/β(a_t|s_t), which do not
depend on the units of the actions; log-densities can be positive, so both are shifted per step
by max(log π, log β) before they enter the estimators (the ratio is unchanged). DM/DR/WDR/MAGIC
need Q̂ under the target, which FQE for continuous actions gets from actions sampled from the
target at every next observation: ``--target-sampler module:function`` names a JAX function
``sample(key, observations [B, D]) -> actions [B, d]`` (traced inside the jitted FQE loop); without
one, Q̂ for continuous actions comes only from a file of ``q_taken`` and ``v_hat`` ``[N, T]``.

User errors raise ``ValueError`` naming the field; the CLI prints them on one line (exit 2).
"""

from __future__ import annotations

import math
import os
from typing import List, Optional

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.behavior import DEFAULT_SUPPORT_THRESHOLD, estimate_behavior
from offrl_jax.core import weight_diagnostics
from offrl_jax.core.validation import check_mask
from offrl_jax.data import Trajectories
from offrl_jax.experiments import evaluate_inputs as inputs
from offrl_jax.experiments.evaluate_q import (
    check_sampler,
    continuous_fqe_terms,
    load_q_file,
    tabular_q_terms,
    target_next_probs,
    vector_fqe_terms,
)
from offrl_jax.experiments.evaluate_report import report_markdown, warnings_for, write_report
from offrl_jax.ope import evaluate

__all__ = ["BEHAVIOR_MODELS", "run_evaluate", "report_markdown", "warnings_for"]

BEHAVIOR_MODELS = ("auto", "tabular", "linear", "mlp")

_weight_diagnostics = jax.jit(lambda log_ratios, mask: weight_diagnostics(log_ratios, mask, validate=False))


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
    target_sampler: Optional[str] = None,
) -> dict:
    """Evaluates a target policy on a user's logs; returns the report (see the module docstring).

    Args:
      data: the logs file.
      target: discrete actions: ``.npy``/``.npz`` file of π(·|s_t) ``[N, T, A]``, or
        ``module:function`` returning it from the observations ``[N, T, ...]``; continuous
        actions: a file of log π(a_t|s_t) ``[N, T]``, or ``module:function`` returning it from
        ``(observations [N, T, ...], actions [N, T, d])``.
      gamma: discount in [0, 1].
      propensities: optional file: discrete, β(a_t|s_t) ``[N, T]`` or β(·|s_t) ``[N, T, A]``;
        continuous, log β(a_t|s_t) ``[N, T]``.
      behavior_model: when β is estimated: ``auto`` (``tabular`` for integer observations and
        discrete actions, else ``mlp``), ``tabular``, ``linear`` or ``mlp``.
      num_folds: K folds of trajectories for cross-fitting β̂.
      q_hat: ``none``; ``model`` (integer observations: the cross-fitted certainty-equivalence
        tabular model); ``fqe`` (discrete actions: cross-fitted horizon-aware FQE, tabular for
        integer observations, neural for vector ones); or a file (Q̂ ``[N, T, A]``, or an
        ``.npz`` with ``q_taken`` and ``v_hat`` ``[N, T]``).
      fqe_steps: FQE gradient steps per fold (default 50 (2T + 20)).
      confidence: interval level in (0, 1).
      seed: PRNG seed (β̂ training, bootstrap, MAGIC, FQE).
      out: path prefix of ``.json``/``.md``/``.png``; ``None`` writes nothing.
      figure: draw the figure when matplotlib is installed.
      quiet: no progress on stderr.
      format, unknown_next: as :func:`offrl_jax.formats.load_logs` (``keep``: a time-out's last
        step stays, with its own observation standing in for the unrecorded s').
      estimators: comma-separated names (``is,pdis,wis,wpdis,dm,dr,wdr,magic``); default: the
        importance-sampling four, and the model-based four with a Q̂.
      target_sampler: continuous actions with ``q_hat="fqe"``: ``module:function`` naming a JAX
        function ``sample(key, observations [B, D]) -> actions [B, d]``, one draw from π(·|s)
        per row (traced inside the jitted FQE loop).

    Returns:
      a dict: ``estimates`` (rows), ``weights``, ``behavior``, ``warnings``, ``notes``,
      ``settings`` and ``files`` (paths written).

    Raises:
      ValueError: naming the field or option, for any user error.
    """
    if behavior_model not in BEHAVIOR_MODELS:
        raise ValueError(f"behavior-model: expected one of {BEHAVIOR_MODELS}, found {behavior_model!r}")
    if isinstance(gamma, bool) or not (isinstance(gamma, (int, float)) and 0.0 <= gamma <= 1.0):
        raise ValueError(f"gamma: expected a discount in [0, 1], found {gamma!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: expected a level in (0, 1), found {confidence}")
    if estimators is not None:
        _estimator_names(estimators, q_hat != "none")
    progress = inputs.Progress(quiet)
    key = jax.random.key(seed)
    notes: List[str] = []
    with progress(f"reading {data}"):
        traj = inputs.load_data(data, format, unknown_next)
        mask = check_mask(traj.mask)
    n = mask.shape[0]
    if q_hat not in ("none", "fqe", "model") and not os.path.isfile(q_hat):
        raise ValueError(f"q-hat: expected none, model, fqe or an .npy/.npz file, found {q_hat!r} (no such file)")
    continuous = inputs.continuous_actions(traj)
    _check_q_hat(q_hat, continuous, np.asarray(traj.observations), n, target_sampler, float(gamma))
    if target_sampler is not None:  # before any fitting: it must trace, with the right shapes
        act = np.asarray(traj.actions)
        check_sampler(inputs.user_function(target_sampler, "target-sampler"), target_sampler,
                      int(np.prod(np.asarray(traj.observations).shape[2:])), act.shape[-1] if act.ndim == 3 else 1)
    args = (traj, mask, target, propensities, behavior_model, int(num_folds), jax.random.fold_in(key, 1), progress)
    if continuous:
        tlp, blp, behavior, pi, actions, kind = _continuous(*args)
    else:
        tlp, blp, behavior, pi, actions, kind = _discrete(*args)
    dtype = traj.rewards.dtype
    traj = traj.replace(behavior_log_probs=jnp.asarray(blp, dtype), target_log_probs=jnp.asarray(tlp, dtype))
    terms = _q_terms(q_hat, jax.random.fold_in(key, 2), traj, target, pi, actions, mask, float(gamma), fqe_steps,
                     notes, progress, target_sampler)
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
                      num_steps=int(mask.sum()), **kind),
        files=[],
    )
    if out is not None:
        report["files"] = write_report(report, out, final_log_w if figure else None)
    return report


def _check_folds(num_folds: int, n: int) -> None:
    if not 2 <= num_folds <= n:
        raise ValueError(f"folds: expected 2 <= folds <= N = {n}, found {num_folds}")


def _discrete(traj: Trajectories, mask, target, propensities, behavior_model, num_folds, key, progress):
    """(log π, log β at the logged actions ``[N, T]``, behaviour report, π ``[N, T, A]``, actions, kind)."""
    with progress("target policy"):
        pi = inputs.load_target(target, traj)
        num_actions = pi.shape[-1]
        actions = inputs.discrete_actions(traj, num_actions)
    beta_probs, behavior = None, {"source": None}
    if propensities is not None:
        with progress(f"reading propensities {propensities}"):
            blp, beta_probs = inputs.load_propensities(propensities, traj, num_actions)
        behavior["source"] = f"file {propensities}"
    elif traj.behavior_log_probs is not None:
        blp = np.asarray(traj.behavior_log_probs)
        behavior["source"] = "the logs"
    else:
        _check_folds(num_folds, mask.shape[0])
        obs = np.asarray(traj.observations)
        model = behavior_model
        if model == "auto":
            model = "tabular" if obs.ndim == 2 and obs.dtype.kind in "iu" else "mlp"
        with progress(f"estimating the behaviour policy ({model}, {num_folds}-fold cross-fitting)"):
            est = estimate_behavior(key, traj, model, num_folds=num_folds, num_actions=num_actions, target_probs=pi)
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
    tp = inputs.taken(pi, actions)
    tlp = np.where(mask > 0, np.log(np.where(tp > 0, tp, 1.0)) + np.where(tp > 0, 0.0, -np.inf), 0.0)
    return tlp, blp, behavior, pi, actions, dict(num_actions=int(num_actions))


def _continuous(traj: Trajectories, mask, target, propensities, behavior_model, num_folds, key, progress):
    """As :func:`_discrete` for continuous actions: log-densities, shifted per step so both are
    ≤ 0 (the ratio unchanged); π and the actions are None (no action table)."""
    act = np.asarray(traj.actions)
    if act.ndim == 2:
        traj = traj.replace(actions=jnp.asarray(act[..., None]))
    d = int(np.asarray(traj.actions).shape[-1])
    with progress("target policy (log-densities of the logged actions)"):
        tlp = inputs.load_target_log_densities(target, traj)
    behavior = {"source": None}
    if propensities is not None:
        with progress(f"reading behaviour log-densities {propensities}"):
            blp = inputs.load_log_densities(propensities, traj)
        behavior["source"] = f"file {propensities} (log-densities)"
    elif traj.behavior_log_probs is not None:
        blp = np.asarray(traj.behavior_log_probs)
        behavior["source"] = "the logs"
    else:
        _check_folds(num_folds, mask.shape[0])
        if behavior_model == "tabular":
            raise ValueError("behavior-model: 'tabular' needs discrete actions; for continuous actions use auto, linear "
                             "or mlp (a state-dependent diagonal Gaussian)")
        model = "mlp" if behavior_model == "auto" else behavior_model
        with progress(f"estimating the behaviour policy (Gaussian {model}, {num_folds}-fold cross-fitting)"):
            est = estimate_behavior(key, traj, model, num_folds=num_folds)
        blp = np.asarray(est.log_probs, np.float64)
        behavior.update(
            source=f"estimated (diagonal Gaussian, {model}, {num_folds}-fold cross-fitted by trajectory)",
            heldout_log_likelihood=float(est.diagnostics.heldout_log_likelihood),
            calibration_error=float(est.diagnostics.calibration_error),
        )
    behavior.update(_ratio_diagnostics(tlp, blp, mask))
    shift = np.where(mask > 0, np.maximum(tlp, blp), 0.0)
    return tlp - shift, blp - shift, behavior, None, None, dict(num_actions=None, action_dim=d)


def _ratio_diagnostics(tlp: np.ndarray, blp: np.ndarray, mask: np.ndarray) -> dict:
    """Per-step density ratios ρ_t = π(a_t|s_t)/β(a_t|s_t) at the logged actions: their largest
    and smallest values, and the mean over trajectories of each trajectory's mean ρ_t with its
    standard error (E_β[ρ_t] = the target's mass where β has density: 1 when β covers π)."""
    real = mask > 0
    lr = np.where(real, tlp - blp, 0.0)
    per_traj = np.sum(np.where(real, np.exp(np.minimum(lr, 700.0)), 0.0), 1) / np.maximum(real.sum(1), 1)
    per_traj = per_traj[real.sum(1) > 0]
    se = float(per_traj.std(ddof=1) / math.sqrt(per_traj.size)) if per_traj.size > 1 else float("nan")
    return dict(mean_step_ratio=float(per_traj.mean()), mean_step_ratio_se=se,
                max_step_log_ratio=float(lr[real].max()), min_step_log_ratio=float(lr[real].min()))


def _q_terms(q_hat, key, traj, target, pi, actions, mask, gamma, fqe_steps, notes, progress, target_sampler):
    """Cross-fitted Q̂ terms (see :mod:`.evaluate_q`), or None without a Q̂."""
    if q_hat == "none":
        return None
    if q_hat not in ("fqe", "model"):
        return load_q_file(q_hat, pi, actions, mask, traj.rewards.dtype)
    if pi is None:  # continuous actions, fqe with a sampler (checked by _check_q_hat)
        sampler = inputs.user_function(target_sampler, "target-sampler")
        act = np.asarray(traj.actions)
        traj = traj.replace(actions=jnp.asarray(act[..., None] if act.ndim == 2 else act))
        with progress("fitting Q-hat (cross-fitted neural FQE, actions sampled from the target)"):
            return continuous_fqe_terms(key, traj, sampler, target_sampler, gamma, fqe_steps)
    obs = np.asarray(traj.observations)
    if obs.ndim == 2 and obs.dtype.kind in "iu":
        what = "tabular FQE" if q_hat == "fqe" else "certainty-equivalence tabular model"
        with progress(f"fitting Q-hat (cross-fitted {what})"):
            return tabular_q_terms(q_hat, key, traj, pi, gamma, fqe_steps, notes)
    with progress("target policy at the next observations"):
        at_next = None
        if os.path.isfile(target):
            found = inputs.optional_array(target, "target_next_probs")
            at_next = None if found is None else inputs.check_probs(found, "target_next_probs", mask, pi.shape[-1])
        else:
            at_next = inputs.check_probs(inputs.call_target(target, traj.next_observations, what="next_observations"),
                                         "target", mask, pi.shape[-1])
        pi_next = target_next_probs(pi, traj, at_next, notes)
    with progress("fitting Q-hat (cross-fitted neural FQE)"):
        return vector_fqe_terms(key, traj, pi, pi_next, actions, gamma, fqe_steps)


def _check_q_hat(q_hat: str, continuous: bool, obs: np.ndarray, n: int, target_sampler: Optional[str],
                 gamma: float) -> None:
    """The ``--q-hat`` choice against the data, before any fitting."""
    if target_sampler is not None and not (continuous and q_hat == "fqe"):
        raise ValueError("target-sampler: only used by --q-hat fqe on continuous actions")
    if q_hat not in ("fqe", "model"):
        return
    if n < 2:
        raise ValueError("q-hat: cross-fitting needs at least 2 trajectories")
    tabular = obs.ndim == 2 and obs.dtype.kind in "iu"
    if continuous:
        if q_hat == "model" or target_sampler is None or tabular or obs.ndim != 3:
            raise ValueError(
                f"q-hat: {q_hat!r} for continuous actions needs vector observations [N, T, D] and --target-sampler "
                "module:function (a JAX function sample(key, observations [B, D]) -> actions [B, d]); or pass an .npz "
                "of q_taken and v_hat [N, T], or use the importance-sampling estimators (--q-hat none)"
            )
        if gamma >= 1.0:
            raise ValueError(f"gamma: FQE for continuous actions needs gamma < 1, found {gamma:g}")
        return
    if not tabular and (q_hat == "model" or obs.ndim != 3):
        raise ValueError(
            f"q-hat: {q_hat!r} needs integer observations [N, T] (a tabular model), found {obs.dtype} "
            f"{list(obs.shape)}; for vector observations [N, T, D] use --q-hat fqe (neural FQE) or a Q-hat file"
        )


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
