"""Direct method, doubly robust (DR) and weighted doubly robust (WDR) estimators.

Model terms: ``q_taken[n, t] = Q-hat(s_t, a_t)`` and ``v_hat[n, t] = sum_a pi(a|s_t) Q-hat(s_t, a)``,
both ``[N, T]`` (0 on padding). DR is unbiased for any fixed Q-hat independent of the data only
with this V-hat. For a finite horizon, Q-hat must be horizon-aware (Q-hat_t estimates the
remaining T - t steps).

DR is the backward recursion of Jiang & Li, one trajectory at a time,

    V_DR(T) = 0,   V_DR(t) = V-hat(s_t) + rho_t (r_t + gamma V_DR(t+1) - Q-hat(s_t, a_t)),

run as ``lax.scan(..., reverse=True)``; the recursion is affine in V_DR(t+1), so
``method="associative"`` runs the same recursion as a ``lax.associative_scan`` over affine maps
(log-depth, for long horizons on accelerators), and ``method="weights"`` uses the unrolled form
(1/N) sum_n sum_t gamma^t [w_{0:t} (r_t - Q-hat_t) + w_{0:t-1} V-hat_t] with the weights in log
space. All three agree. The one-step (bandit) DR of Dudik, Langford & Li 2011 is the T = 1 case.

Overflow. A ratio rho_t = e^100 followed by e^-100 is a product that comes back down: neither
factor fits in float32, their product does. The recursions run in plain floats when that is safe
(no non-finite value, no single ratio above e^B and the log of the product of the factors
gamma d_t rho_t over any run of consecutive steps never above B, half the log of the float range;
the plain scan tracks that largest run sum in its carry, Kadane's maximum-subarray recursion, so
the check costs a few scalar operations per step). Otherwise the scaled scan below runs instead:
chosen on the host when the inputs are concrete (so an eager call compiles the scaled form only
when it is needed) and by ``lax.cond`` under ``jit`` (under ``vmap`` both branches run). The
scaled scan carries every value as a mantissa and a separate integer power of two, x = m 2^e (exponent
bits read and written directly, so exact), with rho_t = e^{log rho_t} split as
2^k e^{log rho_t - k ln 2}: nothing over- or underflows inside it, its rounding is that of
ordinary float arithmetic, and a zero reward, TD term or ratio contributes exactly 0. The
``"weights"`` form sums its terms in the same scaled form. Only the returned values are converted
back to floats: an estimate whose true value exceeds the float range comes back as +-inf (never
NaN); test it with ``jnp.isfinite`` (:func:`~offrl_jax.ope.evaluate.evaluate` reports it as the
row's ``overflow`` flag).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Optional, Union

import chex
import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.core.blocking import map_rows, scan_rows
from offrl_jax.core.diagnostics import effective_sample_size
from offrl_jax.core.dtypes import as_float, float_inputs
from offrl_jax.core.model_terms import ModelTerms  # noqa: F401  (still imported from here by fitted.horizon)
from offrl_jax.core.validation import is_concrete, validate_ope_inputs
from offrl_jax.core.weights import cumulative_log_weights, log_discounts, safe_ratio
from offrl_jax.ope._common import check_shapes, ope_arrays
from offrl_jax.ope._common import masked as _masked
from offrl_jax.ope.importance_sampling import WeightedEstimate

Array = Any

__all__ = [
    "direct_method",
    "direct_method_from_q",
    "doubly_robust_values",
    "doubly_robust_returns",
    "doubly_robust",
    "weighted_doubly_robust",
    "weighted_doubly_robust_with_info",
]

_METHODS = ("scan", "associative", "weights")


def direct_method(v_hat_initial: Array) -> Array:
    """Direct method (model-based) estimate: the mean of V-hat(s_0) over trajectories.

    J_DM = (1/N) sum_n V-hat(s^n_0), with V-hat(s) = sum_a pi(a|s) Q-hat(s, a). Its accuracy is
    entirely the model's: biased when Q-hat is wrong (see "Doubly Robust Off-policy Value
    Evaluation for Reinforcement Learning", Jiang & Li 2016, and "Data-Efficient Off-Policy
    Policy Evaluation for Reinforcement Learning", Thomas & Brunskill 2016, where it is g^(-1)).

    Args:
      v_hat_initial: ``[N]`` V-hat(s^n_0).

    Returns:
      scalar estimate of J(pi).

    Raises:
      ValueError: for an empty or non-finite ``v_hat_initial`` (checked when concrete).
    """
    v_hat_initial = as_float(v_hat_initial, "v_hat_initial")
    if is_concrete(v_hat_initial):
        a = np.asarray(v_hat_initial)
        if a.ndim != 1 or a.shape[0] == 0:
            raise ValueError(f"v_hat_initial: expected a non-empty [N] array, found shape {list(a.shape)}")
        if not np.all(np.isfinite(a)):
            raise ValueError("v_hat_initial: expected finite values, found NaN or inf")
    chex.assert_rank(v_hat_initial, 1)
    return jnp.mean(v_hat_initial)


def direct_method_from_q(
    q_hat: Union[Array, Callable[[Array], Array]],
    target_probs: Array,
    initial_observations: Optional[Array] = None,
) -> Array:
    """Direct method from Q-hat at the initial states: (1/N) sum_n sum_a pi(a|s^n_0) Q-hat(s^n_0, a).

    See ``direct_method`` (Jiang & Li 2016; Thomas & Brunskill 2016).

    Args:
      q_hat: ``[N, A]`` Q-hat(s^n_0, a), or a callable mapping ``initial_observations`` to it.
      target_probs: ``[N, A]`` pi(a | s^n_0).
      initial_observations: ``[N, ...]`` s^n_0, needed when ``q_hat`` is a callable.

    Returns:
      scalar estimate of J(pi).
    """
    if callable(q_hat):
        if initial_observations is None:
            raise ValueError("initial_observations: required when q_hat is a callable")
        q_hat = q_hat(initial_observations)
    q_hat, target_probs = float_inputs([q_hat, target_probs], ["q_hat", "target_probs"])
    if q_hat.shape != target_probs.shape or q_hat.ndim != 2:
        raise ValueError(
            f"q_hat: expected shape [N, A] equal to target_probs {list(target_probs.shape)}, "
            f"found {list(q_hat.shape)}"
        )
    return direct_method(jnp.sum(target_probs * q_hat, axis=-1))


# ----------------------------------------------------------------------------------------------
# Per-trajectory core.
# ----------------------------------------------------------------------------------------------
def doubly_robust_values(
    rewards: Array,
    log_ratios: Array,
    mask: Array,
    gamma: Array,
    q_taken: Array,
    v_hat: Array,
    discounts: Optional[Array] = None,
    *,
    method: str = "scan",
) -> Array:
    """Per-step DR values V_DR(t) of one trajectory by the backward recursion (per-trajectory core).

    V_DR(T) = 0,  V_DR(t) = V-hat_t + rho_t (r_t + gamma d_t V_DR(t+1) - Q-hat_t),

    with d_t = ``discounts[t]`` (0 where s_{t+1} is terminal, default 1), so one array may hold
    several episodes back to back: each episode's first step gets that episode's V_DR. Padded
    steps (mask 0) are exact no-ops: V_DR(t) = V_DR(t+1). Jiang & Li index steps 1..H and write
    V_DR^{H+1-t}; the content is the same.

    See "Doubly Robust Off-policy Value Evaluation for Reinforcement Learning", Jiang & Li 2016.

    Args:
      rewards: ``[T]`` r_t.
      log_ratios: ``[T]`` log rho_t.
      mask: ``[T]`` 1 on real steps, 0 on padding.
      gamma: scalar discount.
      q_taken: ``[T]`` Q-hat(s_t, a_t).
      v_hat: ``[T]`` V-hat(s_t) = sum_a pi(a|s_t) Q-hat(s_t, a).
      discounts: optional ``[T]`` d_t in [0, 1].
      method: ``"scan"`` (reverse ``lax.scan``) or ``"associative"`` (``lax.associative_scan``
        over the affine maps V -> c_t + a_t V).

    Returns:
      ``[T]`` V_DR(t); ``V_DR(0)`` is the trajectory's DR estimate.
    """
    if method not in ("scan", "associative"):
        raise ValueError(f"method: expected 'scan' or 'associative', found {method!r}")
    rewards, log_ratios, mask, q_taken, v_hat = ope_arrays(rewards, log_ratios, mask, q_taken, v_hat)
    chex.assert_rank([rewards, log_ratios, mask, q_taken, v_hat], 1)
    chex.assert_equal_shape([rewards, log_ratios, mask, q_taken, v_hat])
    real = jnp.asarray(mask) > 0
    r = _masked(rewards, mask)
    dtype = r.dtype
    q, v = _masked(q_taken, mask), _masked(v_hat, mask)
    d = jnp.ones_like(r) if discounts is None else jnp.asarray(discounts, dtype)
    g = jnp.asarray(gamma, dtype)
    # Plain floats first; where they could over- or underflow, the scaled scan (same recursion).
    plain, unsafe = _PLAIN[method](real, r, log_ratios, q, v, d, g)
    return _guarded(plain, unsafe, lambda: _scaled_scan(real, r, log_ratios, q, v, d, g))


def _guarded(plain: Any, unsafe: Array, scaled: Callable[[], Any]) -> Any:
    """``plain`` unless ``unsafe``, else ``scaled()``: decided on the host for a concrete flag
    (the scaled form is then traced and compiled only when needed), by ``lax.cond`` otherwise."""
    if is_concrete(unsafe):
        return scaled() if bool(unsafe) else plain
    return jax.lax.cond(unsafe, scaled, lambda: plain)


def _scaled_scan(real, r, log_ratios, q, v, d, g) -> Array:
    """V(t) = v_t + rho_t (td_t + gamma d_t V(t+1)) by a reverse scan in mantissa/exponent form."""
    rho = _exp_scaled(jnp.where(real, log_ratios, jnp.zeros_like(log_ratios)))
    td, vs, gd = _scaled(r - q), _scaled(v), _scaled(g * d)

    def step(v_next, x):
        real_t, td_t, v_t, gd_t, rho_t = x
        v_now = _add(v_t, _mul(rho_t, _add(td_t, _mul(gd_t, v_next))))
        v_now = jax.tree_util.tree_map(lambda a, b: jnp.where(real_t, a, b), v_now, v_next)
        return v_now, v_now

    _, values = jax.lax.scan(step, _scaled(jnp.zeros((), r.dtype)), (real, td, vs, gd, rho), reverse=True)
    return _unscaled(values)


def _affine(real, r, log_ratios, q, v, d, g) -> tuple:
    """c_t = v_t + rho_t td_t, a_t = gamma d_t rho_t of V(t) = c_t + a_t V(t+1) (padding: 0, 1)."""
    rho = jnp.exp(jnp.where(real, log_ratios, jnp.zeros_like(log_ratios)))
    c = jnp.where(real, v + jnp.where(r == q, jnp.zeros_like(r), rho * (r - q)), jnp.zeros_like(r))
    return c, jnp.where(real, g * d * rho, jnp.ones_like(r))


def _bound(dtype) -> float:
    """B = half the log of the largest float: a product of factors of at most e^B is safe."""
    return 0.5 * float(np.log(jnp.finfo(dtype).max))


def _log_factors(real, log_ratios, d, g) -> tuple:
    """log rho_t (0 on padding, -inf clamped to -1e4) and log(gamma d_t rho_t) (gamma d_t = 0 as 1e-30)."""
    lr = jnp.where(real, jnp.maximum(log_ratios, -1e4), jnp.zeros_like(log_ratios))
    return lr, lr + jnp.log(jnp.maximum(g * d, jnp.asarray(1e-30, lr.dtype)))


def _plain_scan(real, r, log_ratios, q, v, d, g, all_values: bool = True) -> tuple:
    """``(values [T] (or V(0) if not all_values), unsafe)``: the plain recursion, and in the same
    reverse scan the safety check of :func:`_unsafe` (Kadane: the largest sum of log(gamma d_t
    rho_t) over a run of steps is max_t M_t with M_t = max(0, x_t + M_{t+1}))."""
    c, a = _affine(real, r, log_ratios, q, v, d, g)
    lr, x = _log_factors(real, log_ratios, d, g)
    bound = _bound(c.dtype)

    def step(carry, inputs):
        v_next, run, unsafe = carry
        c_t, a_t, lr_t, x_t = inputs
        v_t = c_t + a_t * v_next
        run = jnp.maximum(run + x_t, jnp.zeros_like(run))
        unsafe = unsafe | (run > bound) | (lr_t > bound) | ~jnp.isfinite(v_t)
        return (v_t, run, unsafe), (v_t if all_values else None)

    zero = jnp.zeros((), c.dtype)
    (first, _, unsafe), values = jax.lax.scan(step, (zero, zero, jnp.zeros((), bool)), (c, a, lr, x), reverse=True)
    return (values if all_values else first), unsafe


def _plain_associative(real, r, log_ratios, q, v, d, g) -> tuple:
    """``(values [T], unsafe)`` by ``lax.associative_scan`` over the affine maps (log depth)."""
    c, a = _affine(real, r, log_ratios, q, v, d, g)

    def compose(later, earlier):
        # earlier o later: c_e + a_e (c_l + a_l V).
        c_l, a_l = later
        c_e, a_e = earlier
        return c_e + a_e * c_l, a_e * a_l

    values, _ = jax.lax.associative_scan(compose, (c, a), reverse=True)
    return values, _unsafe(values, log_ratios, real, g * d)


_PLAIN = {"scan": _plain_scan, "associative": _plain_associative}


def _unsafe(values: Array, log_ratios: Array, real: Array, gamma_d: Array) -> Array:
    """True where plain floats may have over- or underflowed inside the recursion.

    V(t) = sum_{k>=t} exp(S_{k-1} - S_{t-1}) c_k with S the cumulative sum of log(gamma d_t rho_t):
    a plain float can only overflow, or lose a significant term to underflow, where S rises by
    more than B = half the log of the float range between two steps, or where one ratio exceeds
    e^B; a non-finite value is also sent to the scaled path. (The scan form computes the same
    test inside its scan, :func:`_plain_scan`.)
    """
    lr, x = _log_factors(real, log_ratios, jnp.ones_like(values), gamma_d)
    s = jnp.cumsum(x, axis=-1)
    s = jnp.concatenate([jnp.zeros_like(s[..., :1]), s], axis=-1)
    rise = jnp.max(s - jax.lax.cummin(s, axis=s.ndim - 1), axis=-1)
    bound = _bound(values.dtype)
    return jnp.any(~jnp.isfinite(values)) | jnp.any(rise > bound) | jnp.any(lr > bound)


# Values as m 2^e (float mantissa in [0.5, 1) or 0, int32 exponent): exact zeros, no over- or
# underflow inside. Exponent bits are read and written directly (the mantissas stay normal numbers;
# an alignment shift past the smallest normal exponent flushes that addend to 0, a change below
# one unit in the last place of the larger addend).
_LN2_HI, _LN2_LO = 0.693145751953125, 1.42860682030941723212e-06  # Cody-Waite split of ln 2


def _bits(dtype):
    info = jnp.finfo(dtype)
    uint = jnp.uint64 if info.bits == 64 else jnp.uint32
    return uint, int(info.nmant), int(info.maxexp) - 1  # (unsigned type, mantissa bits, bias)


def _scaled(x: Array) -> tuple:
    """frexp for normal numbers and 0: x = m 2^e, |m| in [0.5, 1)."""
    uint, nmant, bias = _bits(x.dtype)
    b = jax.lax.bitcast_convert_type(x, uint)
    expo_mask = uint((2 * bias + 1) << nmant)
    e = ((b & expo_mask) >> uint(nmant)).astype(jnp.int32) - (bias - 1)
    m = jax.lax.bitcast_convert_type((b & ~expo_mask) | uint((bias - 1) << nmant), x.dtype)
    zero = x == 0
    return jnp.where(zero, jnp.zeros_like(x), m), jnp.where(zero, 0, e)


def _pow2(k: Array, dtype) -> Array:
    """2^k for int k <= the largest exponent; 0 below the smallest normal exponent."""
    uint, nmant, bias = _bits(dtype)
    kk = jnp.clip(k, 1 - bias, bias)
    p = jax.lax.bitcast_convert_type((kk + bias).astype(uint) << uint(nmant), dtype)
    return jnp.where(k < 1 - bias, jnp.zeros_like(p), p)


def _exp_scaled(log_x: Array) -> tuple:
    """e^{log_x} as m 2^e without forming e^{log_x}: 2^k e^{log_x - k ln 2}; 0 for -inf."""
    zero = jnp.isneginf(log_x)
    safe = jnp.where(zero, jnp.zeros_like(log_x), log_x)
    k = jnp.round(safe / math.log(2.0))
    f = jnp.exp((safe - k * _LN2_HI) - k * _LN2_LO)
    m, e = _scaled(jnp.where(zero, jnp.zeros_like(f), f))
    return m, jnp.where(m == 0, 0, e + k.astype(jnp.int32))


def _mul(x: tuple, y: tuple) -> tuple:
    m, e = _scaled(x[0] * y[0])
    return m, jnp.where(m == 0, 0, e + x[1] + y[1])


def _add(x: tuple, y: tuple) -> tuple:
    (mx, ex), (my, ey) = x, y
    e = jnp.where(mx == 0, ey, jnp.where(my == 0, ex, jnp.maximum(ex, ey)))
    m, de = _scaled(mx * _pow2(jnp.minimum(ex - e, 0), mx.dtype) + my * _pow2(jnp.minimum(ey - e, 0), my.dtype))
    return m, jnp.where(m == 0, 0, e + de)


def _scaled_sum(*xs: tuple) -> Array:
    """sum over the last axis (and over ``xs``) of m 2^e, as a float (+-inf beyond its range)."""
    m = jnp.concatenate([x[0] for x in xs], axis=-1)
    e = jnp.concatenate([x[1] for x in xs], axis=-1)
    low = jnp.iinfo(jnp.int32).min
    top = jnp.max(jnp.where(m == 0, low, e), axis=-1, keepdims=True)
    top = jnp.where(top == low, 0, top)
    total = jnp.sum(m * _pow2(e - top, m.dtype), axis=-1)
    return _unscaled(_mul(_scaled(total), (jnp.ones_like(total) * 0.5, top[..., 0] + 1)))


def _where(cond: Array, x: tuple, y: tuple) -> tuple:
    return jnp.where(cond, x[0], y[0]), jnp.where(cond, x[1], y[1])


def _unscaled(x: tuple) -> Array:
    """m 2^e as a float: +-inf where it exceeds the float range, exact 0 for m = 0."""
    m, e = x
    return jnp.where(m == 0, jnp.zeros_like(m), jnp.ldexp(m, e))



def doubly_robust_returns(
    rewards: Array,
    log_ratios: Array,
    mask: Array,
    gamma: Any,
    q_taken: Array,
    v_hat: Array,
    *,
    method: str = "scan",
    chunk_rows: Optional[int] = None,
) -> Array:
    """``[N]`` per-trajectory DR values V^n_DR(0) (dataset level, no reduction).

    Their mean is :func:`doubly_robust`; they are i.i.d. across trajectories (t-intervals,
    bootstrap). ``method``: ``"scan"``, ``"associative"`` or ``"weights"`` (unrolled form with
    log-space weights). Shapes: ``[N, T]`` inputs, ``[N]`` output. Rows are processed in blocks
    of ``chunk_rows`` (see :func:`~offrl_jax.core.blocking.map_rows`).
    """
    if method not in _METHODS:
        raise ValueError(f"method: expected one of {_METHODS}, found {method!r}")
    rewards, log_ratios, mask, q_taken, v_hat = _arrays(rewards, log_ratios, mask, q_taken, v_hat)
    if method == "weights":
        log_disc = log_discounts(gamma, rewards.shape[-1], rewards.dtype)[None, :]

        def rows(r, lr, m, q, v):
            real = m > 0
            log_w = cumulative_log_weights(lr, m)
            log_w_prev = jnp.concatenate([jnp.zeros_like(log_w[:, :1]), log_w[:, :-1]], axis=1)
            # Each term as m 2^e (zero factors give exact 0, no weight is formed as a float),
            # then one sum per row at the row's largest exponent.
            zero = jnp.zeros_like(r)
            td = _mul(_exp_scaled(log_w + log_disc), _scaled(jnp.where(real, r - q, zero)))
            vt = _mul(_exp_scaled(log_w_prev + log_disc), _scaled(jnp.where(real, v, zero)))
            return _scaled_sum(td, vt)

        return map_rows(rows, (rewards, log_ratios, mask, q_taken, v_hat), chunk_rows)

    def prepare(r, lr, m, q, v):
        real = m > 0
        q, v, r = (jnp.where(real, x, jnp.zeros_like(x)) for x in (q, v, r))
        return real, r, lr, q, v, jnp.ones_like(r), jnp.asarray(gamma, r.dtype)

    def plain_rows(*arrays):  # [B] V(0) and [B] flags
        args = prepare(*arrays)
        if method == "scan":
            return jax.vmap(functools.partial(_plain_scan, all_values=False), _ROW_AXES)(*args)
        values, unsafe = jax.vmap(_plain_associative, _ROW_AXES)(*args)
        return values[:, 0], unsafe

    def scaled_rows(*arrays):
        return jax.vmap(_scaled_scan, _ROW_AXES)(*prepare(*arrays))[:, 0]

    arrays = (rewards, log_ratios, mask, q_taken, v_hat)
    if is_concrete(arrays, gamma):
        # Eager: plain floats for every row, the scaled form only if some row needs it.
        plain, unsafe = map_rows(plain_rows, arrays, chunk_rows)
        return map_rows(scaled_rows, arrays, chunk_rows) if bool(jnp.any(unsafe)) else plain

    def rows(*arrays):  # under jit: the plain/scaled choice once per block, outside the vmap
        plain, unsafe = plain_rows(*arrays)
        return _guarded(plain, jnp.any(unsafe), lambda: scaled_rows(*arrays))

    return map_rows(rows, arrays, chunk_rows)


_ROW_AXES = (0, 0, 0, 0, 0, 0, None)


def _arrays(rewards, log_ratios, mask, q_taken, v_hat):
    """The dtype policy and the ``[N, T]`` shape check (named ``ValueError``)."""
    arrays = ope_arrays(rewards, log_ratios, mask, q_taken, v_hat)
    check_shapes(*zip(("rewards", "log_ratios"), arrays[:2]), *zip(("q_taken", "v_hat"), arrays[3:]), mask=arrays[2])
    return arrays


def _check(rewards, log_ratios, mask, gamma, q_taken, v_hat, validate):
    """Dtype policy, shapes and (when concrete) the host checks; returns the converted arrays."""
    arrays = _arrays(rewards, log_ratios, mask, q_taken, v_hat)
    if validate and is_concrete(arrays, gamma):
        validate_ope_inputs(*arrays[:3], gamma, *arrays[3:])
    return arrays


def doubly_robust(
    rewards: Array,
    log_ratios: Array,
    mask: Array,
    gamma: Any,
    q_taken: Array,
    v_hat: Array,
    *,
    method: str = "scan",
    validate: bool = True,
    chunk_rows: Optional[int] = None,
) -> Array:
    """Doubly robust off-policy evaluation (dataset level).

    J_DR = (1/N) sum_n V^n_DR(0), with V_DR from the backward recursion
    V_DR(t) = V-hat(s_t) + rho_t (r_t + gamma V_DR(t+1) - Q-hat(s_t, a_t)), V_DR(T) = 0.
    Unbiased for any fixed Q-hat (with V-hat = E_pi Q-hat); Q-hat = V-hat = 0 gives per-decision
    IS exactly; T = 1 gives the bandit DR V-hat(x) + rho (r - r-hat(x, a)) of Dudik, Langford & Li
    2011.

    See "Doubly Robust Off-policy Value Evaluation for Reinforcement Learning", Jiang & Li 2016.

    Args:
      rewards: ``[N, T]`` r_t.
      log_ratios: ``[N, T]`` log rho_t.
      mask: ``[N, T]`` 1 on real steps, 0 on padding.
      gamma: discount in [0, 1].
      q_taken: ``[N, T]`` Q-hat(s_t, a_t).
      v_hat: ``[N, T]`` V-hat(s_t).
      method: ``"scan"`` (default), ``"associative"`` or ``"weights"``; all give the same value.
      validate: run the host checks when the inputs are concrete.
      chunk_rows: rows per block (default automatic, see
        :func:`~offrl_jax.core.blocking.map_rows`).

    Returns:
      scalar estimate of J(pi).
    """
    rewards, log_ratios, mask, q_taken, v_hat = _check(rewards, log_ratios, mask, gamma, q_taken, v_hat, validate)
    returns = doubly_robust_returns(rewards, log_ratios, mask, gamma, q_taken, v_hat, method=method, chunk_rows=chunk_rows)
    return jnp.mean(returns)


def weighted_doubly_robust_with_info(
    rewards: Array,
    log_ratios: Array,
    mask: Array,
    gamma: Any,
    q_taken: Array,
    v_hat: Array,
    *,
    validate: bool = True,
    chunk_rows: Optional[int] = None,
) -> WeightedEstimate:
    """Weighted doubly robust with status (dataset level).

    With per-step normalised weights w-bar^n_t = w^n_{0:t} / sum_j w^j_{0:t} (a softmax of the
    log weights over n) and w-bar^n_{-1} = 1/N,

    J_WDR = sum_n sum_t gamma^t [w-bar^n_t (r^n_t - Q-hat^n_t) + w-bar^n_{t-1} V-hat^n_t].

    Finished trajectories keep their frozen weight in later normalisers. A step whose normaliser
    is 0 contributes 0 and sets ``zero_weight_sum``. Q-hat = V-hat = 0 gives weighted
    per-decision IS exactly. Biased, consistent.

    See "Data-Efficient Off-Policy Policy Evaluation for Reinforcement Learning", Thomas &
    Brunskill 2016 (their Eq. 1 with normalised weights).

    Args: as :func:`weighted_doubly_robust`.

    Returns:
      :class:`WeightedEstimate` (scalar estimate, bool flag, scalar ESS of the final weights).
    """
    rewards, log_ratios, mask, q_taken, v_hat = _check(rewards, log_ratios, mask, gamma, q_taken, v_hat, validate)
    disc = jnp.exp(log_discounts(gamma, rewards.shape[-1], rewards.dtype))

    def rows(r, lr, m, q, v):
        log_w = cumulative_log_weights(lr, m)
        real = m > 0
        td = jnp.where(real, r - q, jnp.zeros_like(r))
        v = jnp.where(real, v, jnp.zeros_like(v))
        # w-bar_{t-1} multiplies V-hat_t: pair column t's weights with V-hat_{t+1}.
        v_next = jnp.concatenate([v[:, 1:], jnp.zeros_like(v[:, :1])], axis=1)
        return (log_w[:, -1], v[:, 0]), ((log_w, jnp.stack([td, v_next])),)

    (log_w_final, v_first), (sums,) = scan_rows(rows, (rewards, log_ratios, mask, q_taken, v_hat), chunk_rows)
    now = safe_ratio(sums.sums[0], sums.total)
    # w-bar_{-1} = 1/N: the first V-hat term is the plain mean of V-hat(s_0).
    prev = jnp.concatenate([jnp.mean(v_first)[None], safe_ratio(sums.sums[1], sums.total)[:-1]])
    ess = effective_sample_size(log_w_final)
    return WeightedEstimate(jnp.sum(disc * (now + prev)), jnp.any(sums.total <= 0), ess)


def weighted_doubly_robust(
    rewards: Array,
    log_ratios: Array,
    mask: Array,
    gamma: Any,
    q_taken: Array,
    v_hat: Array,
    *,
    validate: bool = True,
    chunk_rows: Optional[int] = None,
) -> Array:
    """Weighted doubly robust (dataset level).

    J_WDR = sum_n sum_t gamma^t [w-bar^n_t (r^n_t - Q-hat^n_t) + w-bar^n_{t-1} V-hat^n_t] with
    per-step self-normalised weights (w-bar_{-1} = 1/N); a 0/0 step contributes 0 (see
    :func:`weighted_doubly_robust_with_info` for the flag).

    See "Data-Efficient Off-Policy Policy Evaluation for Reinforcement Learning", Thomas &
    Brunskill 2016.

    Args:
      rewards: ``[N, T]`` r_t.
      log_ratios: ``[N, T]`` log rho_t.
      mask: ``[N, T]`` 1 on real steps, 0 on padding.
      gamma: discount in [0, 1].
      q_taken: ``[N, T]`` Q-hat(s_t, a_t).
      v_hat: ``[N, T]`` V-hat(s_t).
      validate: run the host checks when the inputs are concrete.
      chunk_rows: rows per block (default automatic, see
        :func:`~offrl_jax.core.blocking.map_rows`).

    Returns:
      scalar estimate of J(pi).
    """
    return weighted_doubly_robust_with_info(
        rewards, log_ratios, mask, gamma, q_taken, v_hat, validate=validate, chunk_rows=chunk_rows
    ).estimate
