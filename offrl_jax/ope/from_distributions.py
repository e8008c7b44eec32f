"""Estimators from action distributions: π(·|s_t) ``[N, T, A]``, logged actions and propensities.

Researchers often hold the target policy as per-step action distributions and the model as a Q̂
table along the trajectories, not as ``[N, T]`` log ratios. The dataset-level entry points here
take

* ``rewards`` ``[N, T]``, ``actions`` ``[N, T]`` (int, the logged a_t), ``mask`` ``[N, T]``;
* ``target_probs`` ``[N, T, A]``: π(a|s_t) for every action;
* the behaviour propensities at the logged actions, ``behavior_probs`` β(a_t|s_t) ``[N, T]`` or
  ``behavior_log_probs`` log β(a_t|s_t) ``[N, T]`` (exactly one);
* optionally ``q_values`` ``[N, T, A]``: Q̂(s_t, a) for every action (DM, DR, WDR, MAGIC);

and form, in one fused pass over the rows (blocks of rows, as :mod:`offrl_jax.core.blocking`
does), the terms every estimator shares,

    log ρ_t = log π(a_t|s_t) − log β(a_t|s_t),   Q̂_t = Q̂(s_t, a_t),   V̂_t = Σ_a π(a|s_t) Q̂(s_t, a),

selecting the logged action by a comparison against the action index (no gather), then the
estimators themselves from cumulative log weights log w_{0:t} = Σ_{k≤t} log ρ_k (the conventions
of :mod:`offrl_jax.ope.importance_sampling` and :mod:`offrl_jax.ope.doubly_robust`):

* IS   (1/N) Σ_n w^n_{0:L−1} G_n;  PDIS (1/N) Σ_n Σ_t γ^t w^n_{0:t} r^n_t
  ("Eligibility Traces for Off-Policy Policy Evaluation", Precup, Sutton & Singh 2000);
* WIS, WPDIS: the self-normalised forms (per step for WPDIS);
* DM   (1/N) Σ_n V̂(s^n_0);  DR (1/N) Σ_n Σ_t γ^t [w_{0:t}(r_t − Q̂_t) + w_{0:t−1} V̂_t]
  ("Doubly Robust Off-policy Value Evaluation for Reinforcement Learning", Jiang & Li 2016);
* WDR with per-step normalised weights, and MAGIC ("Data-Efficient Off-Policy Policy Evaluation
  for Reinforcement Learning", Thomas & Brunskill 2016).

:func:`estimate_all` returns any subset of them from one compiled program; the single-estimator
functions are that program with one estimator. Values equal the ``[N, T]`` log-ratio
estimators of :mod:`offrl_jax.ope` on :func:`distribution_terms`'s output.

Checks (``validate=True``, on concrete inputs): shapes and ``gamma`` on the host before
anything runs; the value checks (a mask of 0/1 with a prefix of ones per row; on real steps,
actions in [0, A), target probabilities summing to 1 within ``1e-3``, behaviour probabilities
in (0, 1] (log-probabilities in (-inf, 0]), finite rewards and Q̂; target probabilities in
[0, 1] everywhere) are counted in the same compiled pass as the estimates (a status count, as
lineax reports a failed solve), so they cost no extra read of the data; if the count is
non-zero or the pass is not finite, vectorised numpy checks find the first bad entry and
``ValueError`` names the argument and index, and no estimate is returned.
:func:`distribution_terms` and :func:`magic_from_distributions` run the numpy checks before
their pass.

Inputs: on the CPU backend, C-contiguous numpy arrays are read in place, without a copy
(:mod:`offrl_jax.core.host_arrays`: JAX wraps only 64-byte aligned buffers, numpy aligns to 16
bytes, so each array is passed as an aligned view plus the few elements around it); the call
returns once the program that reads them has finished. Other inputs (JAX arrays, lists,
non-contiguous arrays, dtypes JAX does not hold) are converted as usual. Where the linear pass
is not finite, the log-space pass runs as a second program.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.core.dtypes import float_dtype, input_dtype
from offrl_jax.core.host_arrays import RowView, aligned_copy, row_view
from offrl_jax.core.validation import check_mask, is_concrete, validate_gamma
from offrl_jax.ope._distribution_passes import SUM_TOL, _pick, fused_estimates, linear_block_rows
from offrl_jax.ope.magic import MagicResult, magic

Array = Any

__all__ = [
    "ESTIMATORS_FROM_DISTRIBUTIONS",
    "DistributionEstimates",
    "DistributionTerms",
    "distribution_terms",
    "estimate_all",
    "estimate_all_from_distributions",
    "trajectory_is_from_distributions",
    "per_decision_is_from_distributions",
    "weighted_is_from_distributions",
    "weighted_per_decision_is_from_distributions",
    "direct_method_from_distributions",
    "doubly_robust_from_distributions",
    "weighted_doubly_robust_from_distributions",
    "magic_from_distributions",
]

ESTIMATORS_FROM_DISTRIBUTIONS = ("is", "pdis", "wis", "wpdis", "dm", "dr", "wdr")
_NEEDS_Q = ("dm", "dr", "wdr")


class DistributionEstimates(NamedTuple):
    """Estimates of J(π) from one fused pass; an estimator not asked for is ``None``.

    ``ess`` is the effective sample size (Σ w)² / Σ w² of the final trajectory weights, and
    ``zero_weight_sum`` is True where a self-normalised estimator met a zero normaliser.
    """

    is_: Optional[Array] = None
    pdis: Optional[Array] = None
    wis: Optional[Array] = None
    wpdis: Optional[Array] = None
    dm: Optional[Array] = None
    dr: Optional[Array] = None
    wdr: Optional[Array] = None
    ess: Optional[Array] = None
    zero_weight_sum: Optional[Array] = None

    def as_dict(self) -> dict:
        """``{"is": ..., "pdis": ..., ...}`` of the estimators computed."""
        names = ("is",) + self._fields[1:7]
        return {k: v for k, v in zip(names, self[:7]) if v is not None}


class DistributionTerms(NamedTuple):
    """The ``[N, T]`` inputs of the log-ratio estimators: log ρ_t, Q̂(s_t, a_t), V̂(s_t)."""

    log_ratios: Array
    q_taken: Optional[Array]
    v_hat: Optional[Array]


# ----------------------------------------------------------------------------------------------
# Host checks (vectorised numpy; skipped under tracing).
# ----------------------------------------------------------------------------------------------
def _first_bad(bad: np.ndarray) -> tuple:
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape))


def _check_finite(x: np.ndarray, name: str) -> None:
    # One fast reduction; only a non-finite sum needs the elementwise pass.
    if not np.isfinite(np.sum(x, dtype=np.float64)):
        bad = ~np.isfinite(x)
        if np.any(bad):
            idx = _first_bad(bad)
            raise ValueError(f"{name}: expected finite values, found {x[idx]} at index {idx}")


def _check_shapes(rewards, actions, mask, target_probs, behavior, behavior_is_log, gamma, q_values) -> None:
    """Shapes (always) and gamma (when concrete)."""
    shape = np.shape(mask)
    if len(shape) != 2 or 0 in shape:
        raise ValueError(f"mask: expected a non-empty [N, T] array, found shape {list(shape)}")
    p_shape = np.shape(target_probs)
    if len(p_shape) != 3 or p_shape[:2] != shape or p_shape[2] == 0:
        raise ValueError(f"target_probs: expected shape [N, T, A] = {list(shape)} + [A], found {list(p_shape)}")
    bname = "behavior_log_probs" if behavior_is_log else "behavior_probs"
    for name, x in (("rewards", rewards), ("actions", actions), (bname, behavior)):
        if np.shape(x) != shape:
            raise ValueError(f"{name}: expected shape {list(shape)} (as mask), found {list(np.shape(x))}")
    if q_values is not None and np.shape(q_values) != p_shape:
        raise ValueError(f"q_values: expected shape {list(p_shape)} (as target_probs), found {list(np.shape(q_values))}")
    if is_concrete(gamma):
        validate_gamma(gamma)


def _validate(rewards, actions, mask, target_probs, behavior, behavior_is_log, gamma, q_values) -> None:
    """The value checks on the host, naming the argument and the first bad index."""
    _check_shapes(rewards, actions, mask, target_probs, behavior, behavior_is_log, gamma, q_values)
    m = np.asarray(mask)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"mask: expected a non-empty [N, T] array, found shape {list(m.shape)}")
    shape = m.shape
    p = np.asarray(target_probs)
    n_actions = p.shape[2]
    bname = "behavior_log_probs" if behavior_is_log else "behavior_probs"
    mf = m if m.dtype == bool else m.astype(np.float32, copy=False)
    if not (np.all((mf == 0) | (mf == 1)) and not np.any(mf[:, 1:] > mf[:, :-1])):
        check_mask(m)  # names the problem
    if not np.any(mf):
        raise ValueError("mask: empty dataset, no step has mask 1")
    real = mf > 0
    a = np.asarray(actions)
    if a.dtype.kind not in "iu":
        raise ValueError(f"actions: expected integer action indices, found dtype {a.dtype}")
    if a.min() < 0 or a.max() >= n_actions:
        bad = real & ((a < 0) | (a >= n_actions))
        if np.any(bad):
            idx = _first_bad(bad)
            raise ValueError(f"actions: expected indices in [0, {n_actions}), found {a[idx]} at {idx}")
    lo, hi = np.min(p), np.max(p)  # NaN propagates into both
    if not (lo >= 0 and hi <= 1 + 1e-6):
        bad = ~((p >= 0) & (p <= 1 + 1e-6))
        idx = _first_bad(bad)
        raise ValueError(f"target_probs: expected probabilities in [0, 1], found {p[idx]} at {idx}")
    sums = p.reshape(-1, n_actions) @ np.ones(n_actions, p.dtype)
    off = np.abs(sums.reshape(shape) - 1) > SUM_TOL
    if np.any(off & real):
        idx = _first_bad(off & real)
        raise ValueError(
            f"target_probs: expected each row π(·|s_t) to sum to 1, found sum {sums.reshape(shape)[idx]} at step {idx}"
        )
    b = np.asarray(behavior)
    if behavior_is_log:
        ok = (b <= 1e-6) & (b > -np.inf)
        what = "log-probabilities in (-inf, 0] (probabilities in (0, 1])"
    else:
        ok = (b > 0) & (b <= 1 + 1e-6)
        what = "probabilities in (0, 1]"
    bad = ~ok & real
    if np.any(bad):
        idx = _first_bad(bad)
        zero = b[idx] == (-np.inf if behavior_is_log else 0)
        if zero:
            raise ValueError(
                f"{bname}: behaviour probability 0 at logged step {idx}; a logged action must have "
                "positive behaviour probability (where the target acts, the importance ratio would be +inf)"
            )
        raise ValueError(f"{bname}: expected {what} at the logged actions, found {b[idx]} at {idx}")
    _check_finite(np.where(real, rewards, 0) if not np.all(real) else np.asarray(rewards), "rewards")
    if q_values is not None:
        _check_finite(np.where(real[..., None], q_values, 0), "q_values")


def _to_device(x: Array, dtype) -> jax.Array:
    """A JAX array of ``dtype`` (integers stay integral, as int32, when ``dtype`` is None); a
    numpy array is copied once, into an aligned buffer (:func:`~offrl_jax.core.host_arrays.aligned_copy`)."""
    if not isinstance(x, np.ndarray):
        x = jnp.asarray(x)
        return x if dtype is None else x.astype(dtype)
    if dtype is None:
        dtype = np.int32 if x.dtype.kind in "iu" else x.dtype
    dtype = np.dtype(jax.dtypes.canonicalize_dtype(dtype))
    if x.dtype == dtype and x.flags.c_contiguous and x.ctypes.data % 64 == 0:
        return jax.device_put(x)
    return aligned_copy(x, dtype)


def _prepare(rewards, actions, mask, target_probs, behavior_probs, behavior_log_probs, gamma, q_values, validate):
    if (behavior_probs is None) == (behavior_log_probs is None):
        raise ValueError("behavior_probs/behavior_log_probs: pass exactly one of them")
    behavior = behavior_log_probs if behavior_probs is None else behavior_probs
    is_log = behavior_probs is None
    _check_shapes(rewards, actions, mask, target_probs, behavior, is_log, gamma, q_values)
    names = ("rewards", "mask", "target_probs", "behavior", "q_values")
    floats = (rewards, mask, target_probs, behavior, q_values)
    dt = float_dtype(*(input_dtype(x, n) for x, n in zip(floats, names) if x is not None))
    cast = lambda x: None if x is None else _to_device(x, dt)
    acts = _to_device(actions, None)
    if not jnp.issubdtype(acts.dtype, jnp.integer):
        raise ValueError(f"actions: expected integer action indices, found dtype {acts.dtype}")
    return cast(rewards), acts.astype(jnp.int32), cast(mask), cast(target_probs), cast(behavior), is_log, cast(q_values), dt


def _check_behavior_args(behavior_probs, behavior_log_probs):
    if (behavior_probs is None) == (behavior_log_probs is None):
        raise ValueError("behavior_probs/behavior_log_probs: pass exactly one of them")
    return (behavior_log_probs, True) if behavior_probs is None else (behavior_probs, False)


def _views(rewards, actions, mask, target_probs, behavior, is_log, gamma, q_values, block_rows):
    """The inputs as the linear pass reads them: JAX arrays unchanged, numpy arrays wrapped in
    place where the backend allows (:func:`~offrl_jax.core.host_arrays.row_view`)."""
    _check_shapes(rewards, actions, mask, target_probs, behavior, is_log, gamma, q_values)
    names = ("rewards", "mask", "target_probs", "behavior", "q_values")
    floats = (rewards, mask, target_probs, behavior, q_values)
    dt = float_dtype(*(input_dtype(x, n) for x, n in zip(floats, names) if x is not None))
    a_dt = actions.dtype if hasattr(actions, "dtype") else np.asarray(actions).dtype
    if np.dtype(a_dt).kind not in "iu":
        raise ValueError(f"actions: expected integer action indices, found dtype {a_dt}")
    view = lambda x, d: None if x is None else row_view(x, d, block_rows)
    r, m, p, b, q = (view(x, dt) for x in floats)
    return r, view(actions, jnp.int32), m, p, b, q, dt


def _estimates(r, a, m, p, b, q, gamma, *, is_log, estimators, dtype, block_rows, chunk_rows, method, checks):
    out, counts, ok = fused_estimates(
        r, a, m, p, b, q, gamma, is_log=is_log, estimators=estimators, dtype=dtype, block_rows=block_rows,
        chunk_rows=chunk_rows, method=method, checks=checks,
    )
    return DistributionEstimates(**out), counts, ok


_estimates_jit = jax.jit(
    _estimates, static_argnames=("is_log", "estimators", "dtype", "block_rows", "chunk_rows", "method", "checks")
)


def _terms(a, m, p, b, q, *, is_log):
    real = m > 0
    pa, qa, v = _pick(a, p, q)
    one, zero = jnp.ones_like(m), jnp.zeros_like(m)
    log_b = b if is_log else jnp.log(jnp.where(real, b, one))
    log_rho = jnp.where(real, jnp.log(jnp.where(real, pa, one)) - jnp.where(real, log_b, zero), zero)
    if q is None:
        return DistributionTerms(log_rho, None, None)
    return DistributionTerms(log_rho, jnp.where(real, qa, zero), jnp.where(real, v, zero))


_terms_jit = jax.jit(_terms, static_argnames=("is_log",))


# ----------------------------------------------------------------------------------------------
# Public entry points.
# ----------------------------------------------------------------------------------------------
def estimate_all(
    rewards: Array,
    actions: Array,
    mask: Array,
    target_probs: Array,
    gamma: Any,
    *,
    behavior_probs: Optional[Array] = None,
    behavior_log_probs: Optional[Array] = None,
    q_values: Optional[Array] = None,
    estimators: Optional[Sequence[str]] = None,
    validate: bool = True,
    chunk_rows: Optional[int] = None,
    method: str = "auto",
) -> DistributionEstimates:
    """Several estimators of J(π) from action distributions in one fused, compiled pass.

    Equations: the module docstring (IS, PDIS, WIS, WPDIS of Precup, Sutton & Singh 2000; DM and
    DR of Jiang & Li 2016; WDR of Thomas & Brunskill 2016). Dataset level.

    Args:
      rewards: ``[N, T]`` r_t.
      actions: ``[N, T]`` int logged actions a_t in [0, A).
      mask: ``[N, T]`` 1 on real steps, 0 on padding (a prefix of ones per row).
      target_probs: ``[N, T, A]`` π(a|s_t).
      gamma: discount in [0, 1].
      behavior_probs: ``[N, T]`` β(a_t|s_t) at the logged actions, in (0, 1] on real steps.
      behavior_log_probs: ``[N, T]`` log β(a_t|s_t) instead (pass exactly one of the two).
      q_values: optional ``[N, T, A]`` Q̂(s_t, a); needed for ``dm``, ``dr`` and ``wdr``.
      estimators: names among ``is, pdis, wis, wpdis, dm, dr, wdr`` (default: all that the
        inputs allow).
      validate: run the host checks (module docstring) when the inputs are concrete.
      chunk_rows: rows per block (default automatic).
      method: ``"auto"`` (the pass over ratios, falling back to log-space weights where
        products of ratios over- or underflow), ``"linear"`` or ``"log"`` (force one pass; both
        give the same numbers up to rounding where the linear one is finite).

    Returns:
      :class:`DistributionEstimates` (scalars; ``None`` for estimators not computed).

    Raises:
      ValueError: naming the argument, on bad input.
    """
    if estimators is None:
        estimators = tuple(e for e in ESTIMATORS_FROM_DISTRIBUTIONS if q_values is not None or e not in _NEEDS_Q)
    if isinstance(estimators, str) or not estimators or any(e not in ESTIMATORS_FROM_DISTRIBUTIONS for e in estimators):
        raise ValueError(f"estimators: expected names among {ESTIMATORS_FROM_DISTRIBUTIONS}, found {estimators!r}")
    estimators = tuple(e for e in ESTIMATORS_FROM_DISTRIBUTIONS if e in estimators)
    if method not in ("auto", "linear", "log"):
        raise ValueError(f"method: expected 'auto', 'linear' or 'log', found {method!r}")
    if q_values is None and any(e in _NEEDS_Q for e in estimators):
        raise ValueError(f"q_values: required for {[e for e in estimators if e in _NEEDS_Q]}")
    behavior, is_log = _check_behavior_args(behavior_probs, behavior_log_probs)
    block = linear_block_rows(np.shape(mask)[0], np.shape(mask)[-1], chunk_rows)
    r, a, m, p, b, q, dt = _views(rewards, actions, mask, target_probs, behavior, is_log, gamma, q_values, block)
    concrete = is_concrete(rewards, actions, mask, target_probs, behavior, q_values, gamma)
    checks = bool(validate) and concrete
    g = jnp.asarray(gamma, dt)
    static = dict(is_log=is_log, estimators=estimators, dtype=np.dtype(dt), block_rows=block, chunk_rows=chunk_rows)
    args = (r, a, m, p, b, q, g)
    in_place = any(isinstance(x, RowView) for x in (r, a, m, p, b, q))
    if not concrete or not (checks or in_place):  # one program: linear pass, log-space fallback
        return _estimates_jit(*args, method=method, checks=False, **static)[0]
    host_args = (rewards, actions, mask, target_probs, behavior, is_log, gamma, q_values)
    if method == "log":
        if checks:
            _validate(*host_args)
        res = _estimates_jit(*args, method="log", checks=False, **static)[0]
    else:
        # The linear pass, counting bad values as it goes (a non-finite value makes it
        # non-finite); where the count is non-zero or the pass not finite, the host checks name
        # a bad argument, and otherwise the log-space pass runs as a second program (inside
        # the first it would reserve a copy of numpy inputs read in place).
        res, info, ok = _estimates_jit(*args, method="linear", checks=checks, **static)
        if checks and not float(info["any_real"]) > 0:
            _validate(*host_args)
        if not bool(ok):
            if checks:
                _validate(*host_args)
            if method == "auto":
                res = _estimates_jit(*args, method="log", checks=False, **static)[0]
    # The programs may read the caller's numpy buffers: done before they are returned.
    return jax.block_until_ready(res)


def distribution_terms(
    actions: Array,
    mask: Array,
    target_probs: Array,
    *,
    behavior_probs: Optional[Array] = None,
    behavior_log_probs: Optional[Array] = None,
    q_values: Optional[Array] = None,
    validate: bool = True,
) -> DistributionTerms:
    """``[N, T]`` log ρ_t, Q̂(s_t, a_t) and V̂(s_t) = Σ_a π(a|s_t) Q̂(s_t, a) (0 on padding), the
    inputs of every ``[N, T]`` log-ratio estimator (intervals, bootstrap, MAGIC).

    Args: as :func:`estimate_all` (without rewards and gamma).

    Returns:
      :class:`DistributionTerms` (``q_taken``/``v_hat`` are ``None`` without ``q_values``).
    """
    zeros = np.zeros(np.shape(mask), np.float32)
    behavior = behavior_log_probs if behavior_probs is None else behavior_probs
    if validate and behavior is not None and is_concrete(actions, mask, target_probs, behavior, q_values):
        _validate(zeros, actions, mask, target_probs, behavior, behavior_probs is None, 0.0, q_values)
    _, a, m, p, b, is_log, q, _ = _prepare(
        zeros, actions, mask, target_probs, behavior_probs, behavior_log_probs, 0.0, q_values, validate
    )
    return _terms_jit(a, m, p, b, q, is_log=is_log)


def _one(name: str, doc_equation: str):
    def estimator(
        rewards: Array,
        actions: Array,
        mask: Array,
        target_probs: Array,
        gamma: Any,
        *,
        behavior_probs: Optional[Array] = None,
        behavior_log_probs: Optional[Array] = None,
        q_values: Optional[Array] = None,
        validate: bool = True,
        chunk_rows: Optional[int] = None,
    ) -> Array:
        res = estimate_all(
            rewards, actions, mask, target_probs, gamma, behavior_probs=behavior_probs,
            behavior_log_probs=behavior_log_probs, q_values=q_values, estimators=(name,),
            validate=validate, chunk_rows=chunk_rows,
        )
        return res.as_dict()[name]

    estimator.__doc__ = (
        f"{doc_equation}\n\n    Dataset level, from action distributions: arguments as :func:`estimate_all` "
        "(``q_values`` where the estimator uses Q̂).\n\n    Returns:\n      scalar estimate of J(π).\n"
    )
    return estimator


trajectory_is_from_distributions = _one(
    "is", "Trajectory-wise IS, J = (1/N) Σ_n w^n_{0:L−1} G_n (Precup, Sutton & Singh 2000)."
)
per_decision_is_from_distributions = _one(
    "pdis", "Per-decision IS, J = (1/N) Σ_n Σ_t γ^t w^n_{0:t} r^n_t (Precup, Sutton & Singh 2000)."
)
weighted_is_from_distributions = _one(
    "wis", "Weighted IS, J = Σ_n w^n_{0:L−1} G_n / Σ_n w^n_{0:L−1} (Precup, Sutton & Singh 2000)."
)
weighted_per_decision_is_from_distributions = _one(
    "wpdis", "Weighted per-decision IS, J = Σ_t γ^t Σ_n w^n_{0:t} r^n_t / Σ_n w^n_{0:t} (Precup, Sutton & Singh 2000)."
)
direct_method_from_distributions = _one(
    "dm", "Direct method, J = (1/N) Σ_n Σ_a π(a|s^n_0) Q̂(s^n_0, a) (Jiang & Li 2016)."
)
doubly_robust_from_distributions = _one(
    "dr", "Doubly robust, J = (1/N) Σ_n Σ_t γ^t [w_{0:t}(r_t − Q̂_t) + w_{0:t−1} V̂_t] (Jiang & Li 2016)."
)
weighted_doubly_robust_from_distributions = _one(
    "wdr", "Weighted DR with per-step normalised weights (Thomas & Brunskill 2016)."
)
for _f, _n in (
    (trajectory_is_from_distributions, "trajectory_is_from_distributions"),
    (per_decision_is_from_distributions, "per_decision_is_from_distributions"),
    (weighted_is_from_distributions, "weighted_is_from_distributions"),
    (weighted_per_decision_is_from_distributions, "weighted_per_decision_is_from_distributions"),
    (direct_method_from_distributions, "direct_method_from_distributions"),
    (doubly_robust_from_distributions, "doubly_robust_from_distributions"),
    (weighted_doubly_robust_from_distributions, "weighted_doubly_robust_from_distributions"),
):
    _f.__name__ = _f.__qualname__ = _n


def magic_from_distributions(
    key: Array,
    rewards: Array,
    actions: Array,
    mask: Array,
    target_probs: Array,
    gamma: Any,
    *,
    q_values: Array,
    behavior_probs: Optional[Array] = None,
    behavior_log_probs: Optional[Array] = None,
    validate: bool = True,
    **magic_options: Any,
) -> MagicResult:
    """MAGIC (Thomas & Brunskill 2016) from action distributions: :func:`distribution_terms`
    then :func:`~offrl_jax.ope.magic.magic` (options such as ``j_steps``, ``num_resamples`` pass
    through). Returns its :class:`~offrl_jax.ope.magic.MagicResult`."""
    if q_values is None:
        raise ValueError("q_values: required for MAGIC")
    if validate and is_concrete(rewards, actions, mask, target_probs, q_values, gamma):
        behavior = behavior_log_probs if behavior_probs is None else behavior_probs
        if (behavior_probs is None) == (behavior_log_probs is None):
            raise ValueError("behavior_probs/behavior_log_probs: pass exactly one of them")
        _validate(rewards, actions, mask, target_probs, behavior, behavior_probs is None, gamma, q_values)
    terms = distribution_terms(
        actions, mask, target_probs, behavior_probs=behavior_probs, behavior_log_probs=behavior_log_probs,
        q_values=q_values, validate=False,
    )
    r = jnp.asarray(rewards, terms.log_ratios.dtype)
    m = jnp.asarray(mask, terms.log_ratios.dtype)
    if "j_steps" in magic_options and magic_options["j_steps"] is not None:
        magic_options["j_steps"] = tuple(int(j) for j in magic_options["j_steps"])
    static = {k: v for k, v in magic_options.items() if k != "model_value"}
    bad = set(static) - set(_MAGIC_STATIC)
    if bad:
        raise ValueError(f"magic_options: unknown options {sorted(bad)}; expected among {_MAGIC_STATIC + ('model_value',)}")
    return _magic_jit(
        key, r, terms.log_ratios, m, gamma, terms.q_taken, terms.v_hat, model_value=magic_options.get("model_value"), **static
    )


_MAGIC_STATIC = ("j_steps", "num_resamples", "delta", "eps", "scale_covariance", "centred_covariance")
_magic_jit = jax.jit(magic, static_argnames=_MAGIC_STATIC)


# The name under which :mod:`offrl_jax.ope` exports :func:`estimate_all`.
estimate_all_from_distributions = estimate_all
