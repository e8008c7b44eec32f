"""One call that runs a set of OPE estimators on :class:`~offrl_jax.data.Trajectories`.

``evaluate(trajectories, gamma, ...)`` validates the inputs once on the host, builds the log
importance ratios and (optionally) the model terms Q-hat(s_t, a_t) and V-hat(s_t), runs every
requested estimator in one jitted program and returns an :class:`EvaluationTable` of rows
(name, estimate, lower, upper, error) that prints as a table.

Intervals (both approximate, see :mod:`offrl_jax.ope.confidence`): the unbiased estimators
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

from offrl_jax.data import Trajectories
from offrl_jax.ope.confidence import bootstrap_interval, student_t_interval
from offrl_jax.ope.doubly_robust import ModelTerms, doubly_robust_returns, weighted_doubly_robust_with_info
from offrl_jax.ope.estimators import (
    per_decision_is_returns,
    trajectory_is_returns,
    weighted_is_with_info,
    weighted_per_decision_is_with_info,
)
from offrl_jax.core.validation import validate_log_probs, validate_ope_inputs
from offrl_jax.core.weights import log_importance_ratios
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
    """

    name: str
    estimate: float
    lower: float
    upper: float
    interval: str
    error: Optional[float] = None
    zero_weight_sum: bool = False


@dataclasses.dataclass(frozen=True)
class EvaluationTable:
    """Rows of :class:`EvaluationRow` plus the settings; ``print(table)`` shows a table."""

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
        pct = f"{100 * self.confidence:g}%"
        head = ["estimator", "estimate", f"{pct} lower", f"{pct} upper", "interval"]
        if self.true_value is not None:
            head.append("error")
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            cells = [_LABELS.get(r.name, r.name), f"{r.estimate:.4f}", f"{r.lower:.4f}", f"{r.upper:.4f}", r.interval]
            if self.true_value is not None:
                cells.append(f"{r.error:+.4f}")
            lines.append("| " + " | ".join(cells) + " |")
        foot = f"N = {self.num_trajectories} trajectories"
        if self.true_value is not None:
            foot += f"; true J = {self.true_value:.4f}"
        return "\n".join(lines + [foot])


def _target_probs(policy, observations) -> Array:
    if callable(policy):
        return jnp.asarray(policy(observations))
    return jnp.asarray(policy)[jnp.asarray(observations)]


def _q_all(q_hat, observations, horizon: int) -> Array:
    if callable(q_hat):
        return jnp.asarray(q_hat(observations))
    q = jnp.asarray(q_hat)
    obs = jnp.asarray(observations)
    if q.ndim == 2:
        return q[obs]
    if q.ndim == 3:  # time-indexed [H, O, A]
        if q.shape[0] < horizon:
            raise ValueError(f"q_hat: time-indexed Q-hat has {q.shape[0]} steps, fewer than T = {horizon}")
        t = jnp.arange(horizon)[None, :]
        return q[t, obs]
    raise ValueError(f"q_hat: expected [O, A], [H, O, A], a callable or ModelTerms, found shape {list(q.shape)}")


_WEIGHTED = {
    "wis": lambda d, g: weighted_is_with_info(d[0], d[1], d[2], g, validate=False),
    "wpdis": lambda d, g: weighted_per_decision_is_with_info(d[0], d[1], d[2], g, validate=False),
    "wdr": lambda d, g: weighted_doubly_robust_with_info(*d[:3], g, *d[3:], validate=False),
}


def _run(key, rewards, log_ratios, mask, gamma, q_taken, v_hat, names, confidence, num_resamples, batch_size):
    """All requested estimators in one program: per-trajectory terms, or (estimate, lo, hi, flag)."""
    data = (rewards, log_ratios, mask, q_taken, v_hat)
    keys = jax.random.split(key, len(names))
    out = {}
    for name, k in zip(names, keys):
        if name == "is":
            out[name] = trajectory_is_returns(rewards, log_ratios, mask, gamma)
        elif name == "pdis":
            out[name] = per_decision_is_returns(rewards, log_ratios, mask, gamma)
        elif name == "dr":
            out[name] = doubly_robust_returns(rewards, log_ratios, mask, gamma, q_taken, v_hat)
        elif name == "dm":
            out[name] = v_hat[:, 0]
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


def evaluate(
    trajectories: Trajectories,
    gamma: float,
    estimators: Optional[Sequence[str]] = None,
    q_hat: Union[None, Array, Callable[[Array], Array], ModelTerms] = None,
    policy: Union[None, Array, Callable[[Array], Array]] = None,
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
    trajectories; MAGIC none (``interval = "n/a"``, ``lower = upper = estimate``).

    Args:
      trajectories: ``[N, T]`` data with ``behavior_log_probs`` and either ``target_log_probs``
        or a ``policy`` to compute them.
      gamma: discount in [0, 1].
      estimators: names to run; default: all, the model-based ones only when ``q_hat`` is given.
      q_hat: the model: :class:`ModelTerms` (``q_taken``, ``v_hat`` ``[N, T]``), a tabular
        ``[O, A]`` array or a time-indexed ``[H, O, A]`` array (indexed by
        ``trajectories.observations``), or a callable ``observations [N, T, ...] -> [N, T, A]``.
      policy: the target policy pi, ``[O, A]`` probabilities or a callable
        ``observations -> [N, T, A]``; needed for V-hat = sum_a pi Q-hat unless ``q_hat`` is
        :class:`ModelTerms`, and for the ratios when ``target_log_probs`` is missing.
      key: PRNG key for the bootstrap and MAGIC (default ``jax.random.key(0)``, deterministic).
      confidence: two-sided interval level in (0, 1).
      true_value: optional exact J(pi); fills each row's ``error``.
      num_resamples: bootstrap resamples B for the self-normalised estimators.

    Returns:
      :class:`EvaluationTable`.

    Raises:
      ValueError: naming the argument, for bad data, gamma, confidence, unknown estimator names
        or a model estimator requested without ``q_hat``.
    """
    if not isinstance(trajectories, Trajectories):
        raise ValueError(f"trajectories: expected a Trajectories container, found {type(trajectories).__name__}")
    if not (0.0 < float(confidence) < 1.0):
        raise ValueError(f"confidence: expected a level in (0, 1), found {confidence}")
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
    mask = trajectories.mask
    if trajectories.behavior_log_probs is None:
        raise ValueError("trajectories: behavior_log_probs are required for importance sampling")
    target_lp = trajectories.target_log_probs
    if target_lp is None:
        if policy is None:
            raise ValueError("policy: needed because trajectories has no target_log_probs")
        probs = _target_probs(policy, trajectories.observations)
        taken = jnp.take_along_axis(probs, jnp.asarray(trajectories.actions)[..., None].astype(jnp.int32), -1)[..., 0]
        target_lp = jnp.log(jnp.where(taken > 0, taken, 1.0)) + jnp.where(taken > 0, 0.0, -jnp.inf)
    validate_log_probs(target_lp, trajectories.behavior_log_probs, mask)
    log_ratios = log_importance_ratios(target_lp, trajectories.behavior_log_probs, mask)
    rewards = trajectories.rewards
    dtype = rewards.dtype
    if q_hat is None:
        q_taken = v_hat = jnp.zeros_like(rewards)
    elif isinstance(q_hat, ModelTerms):
        q_taken, v_hat = jnp.asarray(q_hat.q_taken, dtype), jnp.asarray(q_hat.v_hat, dtype)
    else:
        if policy is None:
            raise ValueError("policy: needed to form V-hat(s) = sum_a pi(a|s) Q-hat(s, a) from q_hat")
        q_all = _q_all(q_hat, trajectories.observations, rewards.shape[1]).astype(dtype)
        probs = _target_probs(policy, trajectories.observations).astype(dtype)
        if q_all.shape != probs.shape or q_all.shape[:2] != rewards.shape:
            raise ValueError(
                f"q_hat: expected Q-hat values [N, T, A] matching the policy's {list(probs.shape)}, "
                f"found {list(q_all.shape)}"
            )
        q_taken = jnp.take_along_axis(q_all, jnp.asarray(trajectories.actions)[..., None].astype(jnp.int32), -1)[..., 0]
        v_hat = jnp.sum(probs * q_all, axis=-1)
    real = mask > 0
    q_taken = jnp.where(real, q_taken, 0.0)
    v_hat = jnp.where(real, v_hat, 0.0)
    validate_ope_inputs(rewards, log_ratios, mask, gamma, q_taken, v_hat)
    n, t = rewards.shape
    if n < 2:
        raise ValueError(f"trajectories: intervals need at least 2 trajectories, found {n}")
    if int(num_resamples) != num_resamples or num_resamples < 2:
        raise ValueError(f"num_resamples: expected an int >= 2, found {num_resamples}")
    key = jax.random.key(0) if key is None else key
    batch = int(max(1, min(num_resamples, 2**24 // (n * t))))
    raw = _run_jit(
        key, rewards, log_ratios, mask, jnp.asarray(gamma, dtype), q_taken, v_hat,
        names=names, confidence=float(confidence), num_resamples=int(num_resamples), batch_size=batch,
    )
    raw = jax.device_get(raw)
    rows = []
    for name in names:
        if ESTIMATORS[name][1]:
            terms = np.asarray(raw[name])
            if np.all(np.isfinite(terms)):
                ci = student_t_interval(terms, float(confidence))
                est, lo, hi, how = float(ci.estimate), float(ci.lower), float(ci.upper), "student-t"
            else:
                est = float(np.mean(terms))
                lo, hi, how = est, est, "n/a"
            flag = False
        else:
            est, lo, hi, flag = (float(x) for x in raw[name])
            how = "n/a" if name == "magic" else "bootstrap"
        err = None if true_value is None else est - float(true_value)
        rows.append(EvaluationRow(name, est, lo, hi, how, err, bool(flag)))
    return EvaluationTable(tuple(rows), float(confidence), n, None if true_value is None else float(true_value))
