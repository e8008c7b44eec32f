"""One call that runs a set of OPE estimators on :class:`~offrl_jax.data.Trajectories`.

``evaluate(trajectories, target_policy, gamma, ...)`` validates the inputs once on the host,
builds the log importance ratios (:func:`offrl_jax.core.log_importance_ratios`) and (optionally)
the model terms Q-hat(s_t, a_t) and V-hat(s_t) (:func:`offrl_jax.core.model_terms`), runs every
requested estimator and its interval in one jitted program (one compile) and returns an
:class:`EvaluationTable` of rows (name, estimate, lower, upper, error) that prints as a table.

Intervals (both approximate, see :mod:`offrl_jax.ope.intervals` and
:mod:`offrl_jax.ope.bootstrap`): the unbiased estimators
(IS, PDIS, DR, DM) are means of i.i.d. per-trajectory terms and get a Student-t interval over
those terms; the self-normalised estimators (WIS, WPDIS, WDR) are ratios, not means, and get a
percentile bootstrap interval over whole trajectories (weights renormalised in each resample).
MAGIC gets no interval (``lower = upper = estimate``, ``interval = "n/a"``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.core.model_terms import ModelTerms, model_terms
from offrl_jax.core.validation import check_distribution_rows, is_concrete, validate_log_probs, validate_ope_inputs
from offrl_jax.core.weights import log_importance_ratios
from offrl_jax.data import Trajectories
from offrl_jax.ope._common import check_prng_key, ope_arrays
from offrl_jax.ope.bootstrap import bootstrap_interval
from offrl_jax.ope.doubly_robust import doubly_robust_returns, weighted_doubly_robust_with_info
from offrl_jax.ope.importance_sampling import (
    per_decision_is_returns,
    trajectory_is_returns,
    weighted_is_with_info,
    weighted_per_decision_is_with_info,
)
from offrl_jax.ope.intervals import student_t_interval
from offrl_jax.ope.magic import magic

Array = Any

__all__ = ["ESTIMATORS", "EvaluationRow", "EvaluationTable", "evaluate"]

# name -> (needs a model, has an i.i.d. per-trajectory decomposition)
ESTIMATORS = {
    "is": (False, True),
    "pdis": (False, True),
    "wis": (False, False),
    "wpdis": (False, False),
    "dm": (True, True),
    "dr": (True, True),
    "wdr": (True, False),
    "magic": (True, False),
}
_LABELS = {
    "is": "IS (trajectory-wise)",
    "pdis": "PDIS (per-decision)",
    "wis": "WIS (self-normalised)",
    "wpdis": "WPDIS (self-normalised)",
    "dm": "DM (direct method)",
    "dr": "DR (doubly robust)",
    "wdr": "WDR (weighted DR)",
    "magic": "MAGIC",
}


@dataclasses.dataclass(frozen=True)
class EvaluationRow:
    """One estimator's result.

    Attributes:
      name: estimator key (``"is"``, ``"pdis"``, ``"wis"``, ``"wpdis"``, ``"dm"``, ``"dr"``,
        ``"wdr"``).
      estimate: the point estimate of J(pi).
      lower: lower end of the two-sided interval (``estimate`` when none is available).
      upper: upper end of the interval (``estimate`` when none is available).
      interval: how the interval was made: ``"student-t"``, ``"bootstrap"`` or ``"n/a"``.
      error: ``estimate - true_value`` when a true value was given, else None.
      zero_weight_sum: True if a self-normalised estimator met an all-zero normaliser (that term
        was set to 0).
      overflow: True if the estimate is not finite: its true value exceeds the float range
        (e.g. a product of importance ratios beyond e^88 in float32); the estimate is then
        +-inf (never NaN) and the interval ``"n/a"``.
    """

    name: str
    estimate: float
    lower: float
    upper: float
    interval: str
    error: Optional[float] = None
    zero_weight_sum: bool = False
    overflow: bool = False

    @property
    def label(self) -> str:
        """A human-readable name, e.g. ``"DR (doubly robust)"`` for ``"dr"``."""
        return _LABELS.get(self.name, self.name)


@dataclasses.dataclass(frozen=True)
class EvaluationTable:
    """Rows of :class:`EvaluationRow` plus the settings; ``print(table)`` shows a markdown table.

    ``table["dr"]`` is the row of one estimator, :meth:`to_dict` the rows as plain data and
    :meth:`to_markdown` (also ``str(table)``) their rendering.
    """

    rows: tuple
    confidence: float
    num_trajectories: int
    true_value: Optional[float] = None

    def __getitem__(self, name: str) -> EvaluationRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    def to_dict(self) -> dict:
        """``{name: {estimate, lower, upper, interval, error, zero_weight_sum}}``."""
        return {r.name: {k: v for k, v in dataclasses.asdict(r).items() if k != "name"} for r in self.rows}

    def __str__(self) -> str:
        return self.to_markdown()

    def to_markdown(self) -> str:
        """The rows as a markdown table (estimate, interval ends, interval kind, error), plus N."""
        pct = f"{100 * self.confidence:g}%"
        head = ["estimator", "estimate", f"{pct} lower", f"{pct} upper", "interval"]
        if self.true_value is not None:
            head.append("error")
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            cells = [r.label, f"{r.estimate:.4f}", f"{r.lower:.4f}", f"{r.upper:.4f}", r.interval]
            if self.true_value is not None:
                cells.append(f"{r.error:+.4f}")
            lines.append("| " + " | ".join(cells) + " |")
        foot = f"N = {self.num_trajectories} trajectories"
        if self.true_value is not None:
            foot += f"; true J = {self.true_value:.4f}"
        return "\n".join(lines + [foot])


def _check_policy_table(target_policy, observations) -> None:
    """An ``[O, A]`` policy must hold distributions and have a row for every observation."""
    if target_policy is None or callable(target_policy) or not is_concrete(target_policy):
        return
    table = check_distribution_rows(target_policy, "target_policy")
    if table.ndim != 2:
        raise ValueError(f"target_policy: expected [O, A] probabilities or a callable, found shape {list(table.shape)}")
    _check_index_range(observations, table.shape[0], "target_policy")


def _check_index_range(observations, num_rows: int, name: str) -> None:
    obs = np.asarray(observations)
    if obs.dtype.kind not in "iu":
        raise ValueError(f"{name}: a table needs integer observations, found dtype {obs.dtype}")
    if obs.size and (obs.min() < 0 or obs.max() >= num_rows):
        raise ValueError(
            f"{name}: has {num_rows} rows but the observations range over [{obs.min()}, {obs.max()}]"
        )


def _target_probs(target_policy, observations) -> Array:
    if callable(target_policy):
        probs = jnp.asarray(target_policy(observations))
        if is_concrete(probs):
            check_distribution_rows(probs, "target_policy")
        return probs
    return jnp.asarray(target_policy)[jnp.asarray(observations)]


def _q_all(q_hat, observations, horizon: int) -> Array:
    if callable(q_hat):
        return jnp.asarray(q_hat(observations))
    q = jnp.asarray(q_hat)
    obs = jnp.asarray(observations)
    if q.ndim in (2, 3) and is_concrete(q, obs):
        _check_index_range(obs, q.shape[-2], "q_hat")
        if not np.all(np.isfinite(np.asarray(q, np.float64))):
            raise ValueError("q_hat: expected finite values, found NaN or inf")
    if q.ndim == 2:
        return q[obs]
    if q.ndim == 3:  # time-indexed [H, O, A]
        if q.shape[0] < horizon:
            raise ValueError(f"q_hat: time-indexed Q-hat has {q.shape[0]} steps, fewer than T = {horizon}")
        t = jnp.arange(horizon)[None, :]
        return q[t, obs]
    raise ValueError(f"q_hat: expected [O, A], [H, O, A], a callable or ModelTerms, found shape {list(q.shape)}")


def _log_ratios(trajectories: Trajectories, target_policy) -> Array:
    """log pi - log pi_beta at the logged actions (host-validated), from the data or the policy."""
    mask = trajectories.mask
    if trajectories.behavior_log_probs is None:
        raise ValueError("trajectories: behavior_log_probs are required for importance sampling")
    _check_policy_table(target_policy, trajectories.observations)
    target_lp = trajectories.target_log_probs
    if target_lp is None:
        if target_policy is None:
            raise ValueError("target_policy: needed because trajectories has no target_log_probs")
        probs = _target_probs(target_policy, trajectories.observations)
        taken = jnp.take_along_axis(probs, jnp.asarray(trajectories.actions)[..., None].astype(jnp.int32), -1)[..., 0]
        target_lp = jnp.log(jnp.where(taken > 0, taken, 1.0)) + jnp.where(taken > 0, 0.0, -jnp.inf)
    validate_log_probs(target_lp, trajectories.behavior_log_probs, mask)
    return log_importance_ratios(target_lp, trajectories.behavior_log_probs, mask)


def _model_inputs(trajectories: Trajectories, q_hat, target_policy) -> ModelTerms:
    """``(q_taken, v_hat)`` ``[N, T]`` from any accepted ``q_hat`` (zeros without a model)."""
    rewards = ope_arrays(trajectories.rewards, trajectories.rewards, trajectories.mask)[0]
    dtype = rewards.dtype
    if q_hat is None:
        return ModelTerms(jnp.zeros_like(rewards), jnp.zeros_like(rewards))
    if isinstance(q_hat, ModelTerms):
        real = trajectories.mask > 0
        q_taken, v_hat = jnp.asarray(q_hat.q_taken, dtype), jnp.asarray(q_hat.v_hat, dtype)
        return ModelTerms(jnp.where(real, q_taken, 0.0), jnp.where(real, v_hat, 0.0))
    if target_policy is None:
        raise ValueError("target_policy: needed to form V-hat(s) = sum_a pi(a|s) Q-hat(s, a) from q_hat")
    _check_policy_table(target_policy, trajectories.observations)
    q_all = _q_all(q_hat, trajectories.observations, rewards.shape[1]).astype(dtype)
    probs = _target_probs(target_policy, trajectories.observations).astype(dtype)
    if q_all.shape != probs.shape or q_all.shape[:2] != rewards.shape:
        raise ValueError(
            f"q_hat: expected Q-hat values [N, T, A] matching the policy's {list(probs.shape)}, "
            f"found {list(q_all.shape)}"
        )
    return model_terms(q_all, probs, trajectories.actions, trajectories.mask)


_WEIGHTED = {
    "wis": lambda d, g: weighted_is_with_info(d[0], d[1], d[2], g, validate=False),
    "wpdis": lambda d, g: weighted_per_decision_is_with_info(d[0], d[1], d[2], g, validate=False),
    "wdr": lambda d, g: weighted_doubly_robust_with_info(*d[:3], g, *d[3:], validate=False),
}


def _per_trajectory_terms(name, rewards, log_ratios, mask, gamma, q_taken, v_hat):
    """``[N]`` i.i.d. terms whose mean is the estimate (the unbiased estimators)."""
    if name == "is":
        return trajectory_is_returns(rewards, log_ratios, mask, gamma)
    if name == "pdis":
        return per_decision_is_returns(rewards, log_ratios, mask, gamma)
    if name == "dr":
        return doubly_robust_returns(rewards, log_ratios, mask, gamma, q_taken, v_hat)
    return v_hat[:, 0]  # dm


def _run(key, rewards, log_ratios, mask, gamma, q_taken, v_hat, names, confidence, num_resamples, batch_size):
    """All requested estimators and intervals in one program: name -> (estimate, lo, hi, flag).

    ``flag`` is "terms all finite" for the Student-t rows and ``zero_weight_sum`` otherwise.
    """
    data = (rewards, log_ratios, mask, q_taken, v_hat)
    keys = jax.random.split(key, len(names))
    out = {}
    for name, k in zip(names, keys):
        if ESTIMATORS[name][1]:
            terms = _per_trajectory_terms(name, *data[:3], gamma, *data[3:])
            ci = student_t_interval(terms, confidence)
            out[name] = (ci.estimate, ci.lower, ci.upper, jnp.all(jnp.isfinite(terms)))
        elif name == "magic":
            res = magic(k, rewards, log_ratios, mask, gamma, q_taken, v_hat)
            out[name] = (res.estimate, res.estimate, res.estimate, res.zero_weight_sum)
        else:
            fn = _WEIGHTED[name]
            res = fn(data, gamma)
            ci = bootstrap_interval(
                k, data, lambda d: fn(d, gamma).estimate, num_resamples, confidence, batch_size=batch_size
            )
            out[name] = (res.estimate, ci.lower, ci.upper, res.zero_weight_sum)
    return out


_run_jit = jax.jit(_run, static_argnames=("names", "confidence", "num_resamples", "batch_size"))


def _check_options(estimators, q_hat, confidence, num_resamples) -> tuple:
    """Host checks of the options; returns the estimator names to run."""
    if not (0.0 < float(confidence) < 1.0):
        raise ValueError(f"confidence: expected a level in (0, 1), found {confidence}")
    if int(num_resamples) != num_resamples or num_resamples < 2:
        raise ValueError(f"num_resamples: expected an int >= 2, found {num_resamples}")
    names = tuple(estimators) if estimators is not None else tuple(
        n for n, (needs_model, _) in ESTIMATORS.items() if (q_hat is not None or not needs_model) and n != "magic"
    )
    if len(names) == 0:
        raise ValueError("estimators: expected at least one estimator name")
    for n in names:
        if n not in ESTIMATORS:
            raise ValueError(f"estimators: unknown name {n!r}; expected names from {sorted(ESTIMATORS)}")
        if ESTIMATORS[n][0] and q_hat is None:
            raise ValueError(f"q_hat: estimator {n!r} needs a model Q-hat; pass q_hat")
    return names


def _row(name: str, raw: tuple, true_value: Optional[float]) -> EvaluationRow:
    est, lo, hi, flag = (np.asarray(x).item() for x in raw)
    if ESTIMATORS[name][1]:
        how = "student-t" if flag else "n/a"
        lo, hi, flag = (lo, hi, False) if flag else (est, est, False)
    else:
        how = "n/a" if name == "magic" else "bootstrap"
    err = None if true_value is None else float(est) - float(true_value)
    overflow = not np.isfinite(est)
    if overflow:
        lo, hi, how = est, est, "n/a"
    return EvaluationRow(name, float(est), float(lo), float(hi), how, err, bool(flag), overflow)


def evaluate(
    trajectories: Trajectories,
    target_policy: Union[None, Array, Callable[[Array], Array]],
    gamma: float,
    *,
    estimators: Optional[Sequence[str]] = None,
    q_hat: Union[None, Array, Callable[[Array], Array], ModelTerms] = None,
    key: Optional[Array] = None,
    confidence: float = 0.95,
    true_value: Optional[float] = None,
    num_resamples: int = 1000,
) -> EvaluationTable:
    """Runs several OPE estimators on one dataset and returns a printable table.

    Estimators (see their functions for equations and papers): ``"is"`` trajectory-wise IS and
    ``"pdis"`` per-decision IS (Precup, Sutton & Singh 2000), ``"wis"``/``"wpdis"`` their
    self-normalised forms, ``"dm"`` the direct method, ``"dr"`` doubly robust (Jiang & Li 2016),
    ``"wdr"`` weighted doubly robust and ``"magic"`` (Thomas & Brunskill 2016). Unbiased
    estimators get a Student-t interval X-bar +- t_{(1+c)/2, N-1} s / sqrt(N) over their i.i.d.
    per-trajectory terms; self-normalised ones a percentile bootstrap interval over whole
    trajectories; MAGIC none (``interval = "n/a"``, ``lower = upper = estimate``). Everything
    requested runs in one jitted program (one compile per set of names and data shapes).

    Args:
      trajectories: ``[N, T]`` data with ``behavior_log_probs`` and either ``target_log_probs``
        or a ``target_policy`` to compute them.
      target_policy: the evaluated policy pi, ``[O, A]`` probabilities or a callable
        ``observations -> [N, T, A]``; needed for V-hat = sum_a pi Q-hat unless ``q_hat`` is
        :class:`ModelTerms`, and for the ratios when ``target_log_probs`` is missing; else None.
      gamma: discount in [0, 1].
      estimators: names to run; default: all, the model-based ones only when ``q_hat`` is given.
      q_hat: the model: :class:`ModelTerms` (``q_taken``, ``v_hat`` ``[N, T]``), a tabular
        ``[O, A]`` array or a time-indexed ``[H, O, A]`` array (indexed by
        ``trajectories.observations``), or a callable ``observations [N, T, ...] -> [N, T, A]``.
      key: PRNG key for the bootstrap and MAGIC (default ``jax.random.key(0)``, deterministic);
        anything else than a PRNG key is a ``ValueError``.
      confidence: two-sided interval level in (0, 1).
      true_value: optional exact J(pi); fills each row's ``error``.
      num_resamples: bootstrap resamples B for the self-normalised estimators.

    Returns:
      :class:`EvaluationTable`.

    Raises:
      ValueError: naming the argument, for bad data, gamma, confidence, unknown estimator names,
        a model estimator requested without ``q_hat``, a ``target_policy`` whose rows are not
        probability distributions (negative entries, rows not summing to 1) or that has no row
        for some observation, a tabular ``q_hat`` with too few rows or NaN entries, or a ``key``
        that is not a PRNG key. Numeric data follow :mod:`offrl_jax.core.dtypes` (integer
        rewards give the float answer).
    """
    if not isinstance(trajectories, Trajectories):
        raise ValueError(f"trajectories: expected a Trajectories container, found {type(trajectories).__name__}")
    names = _check_options(estimators, q_hat, confidence, num_resamples)
    if key is not None:
        check_prng_key(key)
    log_ratios = _log_ratios(trajectories, target_policy)
    terms = _model_inputs(trajectories, q_hat, target_policy)
    rewards, log_ratios, mask, *terms = ope_arrays(trajectories.rewards, log_ratios, trajectories.mask, *terms)
    validate_ope_inputs(rewards, log_ratios, mask, gamma, *terms)
    n, t = rewards.shape
    if n < 2:
        raise ValueError(f"trajectories: intervals need at least 2 trajectories, found {n}")
    key = jax.random.key(0) if key is None else key
    batch = int(max(1, min(num_resamples, 2**24 // (n * t))))
    raw = _run_jit(
        key, rewards, log_ratios, mask, jnp.asarray(gamma, rewards.dtype), *terms,
        names=names, confidence=float(confidence), num_resamples=int(num_resamples), batch_size=batch,
    )
    raw = jax.device_get(raw)
    rows = tuple(_row(name, raw[name], true_value) for name in names)
    return EvaluationTable(rows, float(confidence), n, None if true_value is None else float(true_value))
