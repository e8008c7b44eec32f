"""Tabular marginalised importance sampling: state-action density ratios w = d^pi / d^D.

The ratio w(s, a) = d^pi(s, a) / d^D(s, a) is estimated from counts: :func:`tabular_ratios`
solves the empirical Bellman-flow equations (the GenDICE form)

    d^D(s', a') w(s', a') = (1 - gamma) mu0(s') pi(a'|s')
                            + gamma pi(a'|s') sum_{s,a} P(s'|s,a) d^D(s,a) w(s,a),

which in counts reads (diag(n) - gamma Pbar^T) w = (1 - gamma) M dbar0, with n(s, a) the visit
counts over M logged transitions, Pbar[(s,a),(s',a')] = sum_m 1[s_m=s, a_m=a, s'_m=s'] pi(a'|s')
(transitions with discount 0 carry no flow) and dbar0 = mu0_hat pi from the initial states.
:func:`tabular_average_ratios` is the average-reward limit gamma -> 1, where the flow equation
is homogeneous and the normalisation E_D[w] = 1 pins the solution. :func:`tabular_mis` runs
counts, solve and estimate on a :class:`~offrl_jax.data.Trajectories` or
:class:`~offrl_jax.data.Transitions` container, validated on the host. The exact ratios of the
model (the ground truth) are in :mod:`offrl_jax.envs.ratios`.

The solution equals the certainty-equivalence model estimate: d_hat^pi = n w / M is the occupancy
of pi in the empirical MDP, so J_hat = (1 / (1 - gamma)) mean_m w(s_m, a_m) r_m is the value of pi
in that MDP (an estimate of the infinite-horizon discounted J even when the data come from
truncated trajectories, as long as every logged transition's successor is recorded).

Pairs never logged (n = 0) have no equation: their rows and columns are replaced by the identity
with right-hand side 0, so w = 0 there. Pairs the target reaches in the empirical model but that
were never logged are reported in ``unsupported`` with the target mass they would carry
(``unsupported_mass``), instead of dividing by zero.

All cores are pure and jit/vmap-safe; sizes come from the ``target_policy`` shape ``[S, A]``
(static). Argument order: the transition arrays (``states, actions, next_states, discounts,
mask``), the initial-state arrays, then ``target_policy``, then ``gamma``, then keyword-only
options. Host-side checks run in :func:`tabular_mis`.

See "GenDICE: Generalized Offline Estimation of Stationary Values", Zhang, Dai, Li & Schuurmans
2020, and "Breaking the Curse of Horizon: Infinite-Horizon Off-Policy Estimation", Liu, Li, Tang
& Zhou 2018.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.core.dtypes import as_float
from offrl_jax.core.validation import check_finite, check_mask, is_concrete
from offrl_jax.data import Trajectories, Transitions
from offrl_jax.mis.estimators import mis_average_reward, ratios_at

Array = Any

__all__ = [
    "FlowCounts",
    "TabularRatios",
    "TabularMISResult",
    "flow_counts",
    "tabular_ratios",
    "tabular_average_ratios",
    "tabular_mis",
]


class TabularRatios(NamedTuple):
    """Estimated tabular density ratios.

    Attributes:
      weights: ``[S, A]`` w_hat(s, a); 0 where n(s, a) = 0.
      counts: ``[S, A]`` n(s, a), the (mask-weighted) number of logged transitions from (s, a).
      supported: ``[S, A]`` bool, n(s, a) > 0.
      unsupported: ``[S, A]`` bool, pairs the target reaches in the empirical model but with no
        logged transition (the ill-posed pairs; their ratio is undefined).
      unsupported_mass: scalar, target occupancy mass that falls on unsupported pairs. Mass
        balance in the empirical model: unsupported_mass = (1 - gamma) + gamma E_D[discount w]
        - E_D[w], i.e. (1 - gamma)(1 - data_mass) without terminal transitions (ridge = 0).
      data_mass: scalar E_D[w_hat] = sum n w_hat / M; 1 when no mass leaks (no terminal
        transitions, no unsupported pairs).
      finite: scalar bool, every weight is finite (the linear solve succeeded).
    """

    weights: Array
    counts: Array
    supported: Array
    unsupported: Array
    unsupported_mass: Array
    data_mass: Array
    finite: Array


class FlowCounts(NamedTuple):
    """Empirical flow statistics, normalised by the number of transitions M.

    Attributes:
      data: ``[S, A]`` d_hat^D = n / M.
      flow: ``[S, A, S, A]`` Pbar / M, Pbar[s, a, s', a'] = sum_m 1[(s_m, a_m, s'_m) = (s, a, s')]
        discount_m pi(a'|s').
      initial: ``[S, A]`` dbar0 = mu0_hat(s) pi(a|s).
      num_transitions: scalar M (mask-weighted).
    """

    data: Array
    flow: Array
    initial: Array
    num_transitions: Array


# ----------------------------------------------------------------------------------------------
# Jit-able cores.
# ----------------------------------------------------------------------------------------------
def flow_counts(
    states: Array,
    actions: Array,
    next_states: Array,
    discounts: Array,
    mask: Optional[Array],
    initial_states: Array,
    target_policy: Array,
    *,
    initial_mask: Optional[Array] = None,
) -> FlowCounts:
    """Counts of the empirical Bellman-flow equations (one pass of scatter-adds).

    Args:
      states: ``[M]`` int s_m (any shape, flattened; padded ``[N, T]`` works with ``mask``).
      actions: ``[M]`` int a_m.
      next_states: ``[M]`` int s'_m.
      discounts: ``[M]`` 0 where s'_m is terminal (no flow), else 1.
      mask: ``[M]`` sample weights (1 real, 0 padding), or ``None`` for all ones.
      initial_states: ``[N0]`` int samples of s_0 ~ mu0.
      target_policy: ``[S, A]`` pi(a|s).
      initial_mask: optional ``[N0]`` weights of the initial samples.

    Returns:
      :class:`FlowCounts`.
    """
    pi = jnp.asarray(target_policy)
    dtype = pi.dtype if jnp.issubdtype(pi.dtype, jnp.floating) else jnp.float32
    pi = pi.astype(dtype)
    ns, na = pi.shape
    s = jnp.ravel(states).astype(jnp.int32)
    a = jnp.ravel(actions).astype(jnp.int32)
    s2 = jnp.ravel(next_states).astype(jnp.int32)
    m = jnp.ones(s.shape, dtype) if mask is None else jnp.ravel(mask).astype(dtype)
    d = jnp.ravel(discounts).astype(dtype) * m
    total = jnp.sum(m)
    n = jnp.zeros((ns, na), dtype).at[s, a].add(m)
    trans = jnp.zeros((ns, na, ns), dtype).at[s, a, s2].add(d)
    s0 = jnp.ravel(initial_states).astype(jnp.int32)
    m0 = jnp.ones(s0.shape, dtype) if initial_mask is None else jnp.ravel(initial_mask).astype(dtype)
    mu0 = jnp.zeros((ns,), dtype).at[s0].add(m0) / jnp.sum(m0)
    safe_total = jnp.where(total > 0, total, 1.0)
    flow = trans[..., None] * pi[None, None] / safe_total
    return FlowCounts(n / safe_total, flow, mu0[:, None] * pi, total)


def _finish(w, counts: FlowCounts, gamma) -> TabularRatios:
    ns, na = counts.data.shape
    supported = counts.data > 0
    w = jnp.where(supported, w, 0.0)
    # Target mass arriving at each pair of the empirical model: (1 - gamma) dbar0(s', a') +
    # gamma sum_{s,a} P_hat(s'|s,a) pi(a'|s') d_hat^pi(s, a), with d_hat^pi = d_hat^D w and
    # P_hat = trans / n, i.e. gamma sum_{s,a} (Pbar / M)[s, a, s', a'] w(s, a) (``flow`` already
    # carries the 1/M and the data frequency of each source pair).
    inflow = (1.0 - gamma) * counts.initial + gamma * jnp.einsum("saxy,sa->xy", counts.flow, w)
    unsupported = (~supported) & (inflow > 0)
    lost = jnp.sum(jnp.where(unsupported, inflow, 0.0))
    data_mass = jnp.sum(counts.data * w)
    n = counts.data * counts.num_transitions
    return TabularRatios(w, n, supported, unsupported, lost, data_mass, jnp.all(jnp.isfinite(w)))


def _flow_matrix(counts: FlowCounts, gamma, ridge):
    """(diag(d_hat) - gamma Pbar^T / M + ridge I) on supported pairs, identity elsewhere."""
    ns, na = counts.data.shape
    k = ns * na
    dvec = counts.data.reshape(k)
    sup = dvec > 0
    flow_t = counts.flow.reshape(k, k).T
    a = jnp.diag(dvec) - gamma * flow_t + ridge * jnp.diag(sup.astype(dvec.dtype))
    keep = sup[:, None] & sup[None, :]
    eye = jnp.eye(k, dtype=dvec.dtype)
    return jnp.where(keep, a, eye), sup


def tabular_ratios(
    states: Array,
    actions: Array,
    next_states: Array,
    discounts: Array,
    mask: Optional[Array],
    initial_states: Array,
    target_policy: Array,
    gamma: float,
    *,
    initial_mask: Optional[Array] = None,
    ridge: float = 0.0,
) -> TabularRatios:
    """Density ratios from counts by solving the empirical discounted Bellman-flow equations.

    (diag(n) - gamma Pbar^T + ridge M I) w = (1 - gamma) M dbar0 on logged pairs, with
    Pbar[(s,a),(s',a')] = sum_m 1[s_m=s, a_m=a, s'_m=s'] discount_m pi(a'|s') and dbar0(s, a) =
    mu0_hat(s) pi(a|s) (solved in the equivalent form divided by M). The result equals
    d_hat^pi / d_hat^D, where d_hat^pi = (1 - gamma)(I - gamma P_hat_pi^T)^{-1} dbar0 is the
    occupancy of pi in the empirical MDP (certainty equivalence). Transitions with discount 0
    carry no flow, so with terminal states E_D[w] < 1 (see ``data_mass``).

    See "GenDICE: Generalized Offline Estimation of Stationary Values", Zhang, Dai, Li &
    Schuurmans 2020 (the Bellman-flow form), and "Asymptotically Efficient Off-Policy
    Evaluation for Tabular Reinforcement Learning", Yin & Wang 2020 (the tabular estimator).

    Args:
      states: ``[M]`` (or padded ``[N, T]`` with ``mask``) int states s_m in [0, S).
      actions: ``[M]`` int actions a_m in [0, A).
      next_states: ``[M]`` int successor states s'_m.
      discounts: ``[M]`` 0 where s'_m is terminal, else 1.
      mask: ``[M]`` 1 on real steps, 0 on padding (any non-negative sample weights), or
        ``None`` for all ones.
      initial_states: ``[N0]`` int initial states s_0 (e.g. each trajectory's first state).
      target_policy: ``[S, A]`` pi(a|s); its shape sets S and A.
      gamma: discount in [0, 1).
      initial_mask: optional ``[N0]`` 1 on real initial samples.
      ridge: Tikhonov term added to the diagonal on logged pairs (relative to d_hat^D, so
        ``ridge`` = 1e-3 shrinks weights of pairs with d_hat^D ~ 1e-3 by about half).

    Returns:
      :class:`TabularRatios` with ``weights`` ``[S, A]``.
    """
    _check_core_inputs(states, actions, next_states, mask, target_policy, discounts=discounts,
                       initial_states=initial_states, initial_mask=initial_mask, gamma=gamma)
    counts = flow_counts(
        states, actions, next_states, discounts, mask, initial_states, target_policy, initial_mask=initial_mask
    )
    ns, na = counts.data.shape
    a, sup = _flow_matrix(counts, gamma, ridge)
    b = jnp.where(sup, (1.0 - gamma) * counts.initial.reshape(-1), 0.0)
    w = jnp.linalg.solve(a, b[:, None])[:, 0].reshape(ns, na)
    return _finish(w, counts, gamma)


def tabular_average_ratios(
    states: Array,
    actions: Array,
    next_states: Array,
    discounts: Optional[Array],
    mask: Optional[Array],
    target_policy: Array,
    *,
    ridge: float = 0.0,
) -> TabularRatios:
    """Average-reward (gamma -> 1) ratios: the stationary flow with E_D[w] = 1.

    Solves, in the least-squares sense on logged pairs,
    [diag(d_hat) - Pbar^T / M; d_hat^T] w = [0; 1], i.e. d_hat^pi = d_hat^D w is a stationary
    distribution of pi in the empirical model, normalised to sum 1. The system is consistent
    (and the solution exact) when the data come from a continuing process and every pair the
    target reaches was logged; otherwise the residual mass is reported in ``unsupported_mass``.

    See "Breaking the Curse of Horizon: Infinite-Horizon Off-Policy Estimation", Liu, Li, Tang &
    Zhou 2018, and "GenDICE", Zhang, Dai, Li & Schuurmans 2020 (average-reward case).

    Args:
      states: ``[M]`` int s_m.
      actions: ``[M]`` int a_m.
      next_states: ``[M]`` int s'_m.
      discounts: ``[M]`` (transitions with discount 0 carry no flow), or ``None`` for all ones.
      mask: ``[M]`` 1 on real steps, 0 on padding, or ``None`` for all ones.
      target_policy: ``[S, A]`` pi(a|s).
      ridge: Tikhonov term (rows sqrt(ridge) I appended to the least-squares system).

    Returns:
      :class:`TabularRatios`; ``data_mass`` is 1 up to round-off when the system is consistent.
    """
    _check_core_inputs(states, actions, next_states, mask, target_policy, discounts=discounts)
    disc = jnp.ones(jnp.shape(states), jnp.asarray(target_policy).dtype) if discounts is None else discounts
    s_first = jnp.ravel(states)[:1]
    counts = flow_counts(states, actions, next_states, disc, mask, s_first, target_policy)
    ns, na = counts.data.shape
    k = ns * na
    a, sup = _flow_matrix(counts, 1.0, 0.0)
    dvec = counts.data.reshape(k)
    # Unlogged pairs: identity rows keep w = 0 there; the normalisation row fixes the scale.
    rows = [a, dvec[None, :]]
    rhs = [jnp.zeros((k,), dvec.dtype), jnp.ones((1,), dvec.dtype)]
    if ridge:
        rows.append(jnp.sqrt(jnp.asarray(ridge, dvec.dtype)) * jnp.eye(k, dtype=dvec.dtype))
        rhs.append(jnp.zeros((k,), dvec.dtype))
    w = jnp.linalg.lstsq(jnp.concatenate(rows, 0), jnp.concatenate(rhs, 0))[0].reshape(ns, na)
    counts = counts._replace(initial=jnp.zeros_like(counts.initial))
    return _finish(w, counts, 1.0)


# ----------------------------------------------------------------------------------------------
# Container entry point (host-validated, then one jitted solve per shape).
# ----------------------------------------------------------------------------------------------
_ratios_jit = jax.jit(tabular_ratios)
_average_ratios_jit = jax.jit(tabular_average_ratios, static_argnames=("ridge",))

class TabularMISResult(NamedTuple):
    """Tabular MIS estimate and its ratios.

    Attributes:
      estimate: scalar J_hat (discounted: (1/(1-gamma)) E_D[w r]; average reward: E_D[w r]).
      self_normalized: scalar self-normalised estimate (divided by E_D[w] instead of 1).
      ratios: :class:`TabularRatios` (``weights`` ``[S, A]``).
    """

    estimate: Array
    self_normalized: Array
    ratios: TabularRatios


def _indices(data: Union[Trajectories, Transitions], use_states: bool):
    if use_states:
        if data.states is None or data.next_states is None:
            raise ValueError("data: use_states=True needs the states/next_states fields, found None")
        return data.states, data.next_states
    return data.observations, data.next_observations


def _field_names(use_states: bool, prefix: str) -> tuple:
    s = ("states", "next_states") if use_states else ("observations", "next_observations")
    return (f"{prefix}.{s[0]}", f"{prefix}.actions", f"{prefix}.{s[1]}")


def _where_real(x: Array, mask: Optional[Array]) -> Array:
    """Indices on real steps, 0 on padding (padding may hold any value; it is never counted)."""
    if mask is None:
        return x
    return np.where(np.broadcast_to(np.asarray(mask) > 0, np.shape(x)), np.asarray(x), 0)


def _index_array(x: Array, mask: Optional[Array]) -> Array:
    """Validated indices as int32 (integral floats converted; padding set to 0)."""
    return jnp.asarray(np.asarray(_where_real(x, mask)).astype(np.int32))


def _check_core_inputs(states, actions, next_states, mask, target_policy, *, discounts=None, initial_states=None,
                       initial_mask=None, gamma=None) -> None:
    """Eager calls of the array cores: the host checks of :func:`_validate_tabular_inputs`
    (indices in range, policy on the simplex, discounts in [0, 1]) on the real steps, and
    ``mask`` finite and non-negative (any sample weights). Skipped under ``jit``/``vmap``."""
    if not is_concrete(states, actions, next_states, mask, target_policy, discounts, initial_states, initial_mask,
                       gamma):
        return
    if mask is not None:
        m = check_finite(mask, "mask")
        if m.shape != np.shape(states):
            raise ValueError(f"mask: expected shape {list(np.shape(states))} (as states), found {list(m.shape)}")
        if np.any(m < 0):
            raise ValueError("mask: expected non-negative sample weights (1 real, 0 padding)")
    m0 = initial_mask
    if m0 is not None and np.any(check_finite(m0, "initial_mask") < 0):
        raise ValueError("initial_mask: expected non-negative weights")
    _validate_tabular_inputs(
        _where_real(states, mask), _where_real(actions, mask), _where_real(next_states, mask), target_policy,
        gamma, None if discounts is None else _where_real(discounts, mask),
        None if initial_states is None else _where_real(initial_states, m0), None, m0,
    )


def tabular_mis(
    data: Union[Trajectories, Transitions],
    target_policy: Array,
    gamma: Optional[float],
    *,
    initial_states: Optional[Array] = None,
    use_states: bool = False,
    ridge: float = 0.0,
) -> TabularMISResult:
    """Tabular marginalised importance sampling from a dataset (host-validated).

    With w(s, a) = d^pi(s, a) / d^D(s, a), the ratio of the target's normalised discounted
    occupancy d^pi = (1 - gamma) sum_t gamma^t Pr_pi(s_t = s, a_t = a) to the data distribution,

        J(pi) = E_{d^pi}[r] / (1 - gamma) = (1 / (1 - gamma)) E_D[w(s, a) r],
        J_hat = (1 / (1 - gamma)) (1/M) sum_m w_hat(s_m, a_m) r_m,

    (and the self-normalised form with sum_m w_hat_m in place of M), where w_hat solves the
    empirical Bellman-flow equations of :func:`tabular_ratios`
    d_hat^D w = (1 - gamma) dbar0 + gamma Pbar^T (d_hat^D w) / M from the counts. The estimate is
    the value of pi in the empirical MDP (certainty equivalence) and targets the
    infinite-horizon discounted value even when the trajectories are truncated.
    ``gamma=None``: the average-reward ratios of :func:`tabular_average_ratios` (d^pi the
    stationary distribution) and the average reward per step E_D[w r].

    See "Breaking the Curse of Horizon: Infinite-Horizon Off-Policy Estimation", Liu, Li, Tang &
    Zhou 2018 (the stationary-ratio estimator; here w is solved from counts rather than learned
    by a minimax loss), "GenDICE", Zhang, Dai, Li & Schuurmans 2020 (the flow equations), and
    "Asymptotically Efficient Off-Policy Evaluation for Tabular Reinforcement Learning", Yin &
    Wang 2020 (the tabular estimator). The finite-horizon, time-indexed estimator of Xie, Ma &
    Wang 2019 is :func:`~offrl_jax.mis.tabular_time_mis`.

    Args:
      data: :class:`~offrl_jax.data.Trajectories` (padded steps excluded through ``mask``; the
        initial states are each trajectory's first state) or
        :class:`~offrl_jax.data.Transitions` (then ``initial_states`` is required when
        discounted). Observations (states) and actions are table indices: integers, or floats
        with integral values (converted); anything else, or an index outside the policy table,
        raises ``ValueError`` naming the field. Rewards follow the dtype policy of
        :mod:`offrl_jax.core.dtypes`.
      target_policy: ``[S, A]`` pi(a|s) over the indices used (observations, or true states
        with ``use_states=True``).
      gamma: discount in [0, 1), or ``None`` for the average-reward limit.
      initial_states: ``[N0]`` int initial states (overrides the trajectories' first states).
      use_states: index by the true ``states``/``next_states`` fields instead of observations.
      ridge: Tikhonov term of the solve.

    Returns:
      :class:`TabularMISResult`.

    Raises:
      ValueError: naming the argument, for invalid data, policy, gamma or ridge.
    """
    s, s2 = _indices(data, use_states)
    mask = data.mask if isinstance(data, Trajectories) else None
    init_mask = None
    if initial_states is None and isinstance(data, Trajectories):
        initial_states, init_mask = s[:, 0], data.mask[:, 0]
    if initial_states is None and gamma is not None:
        raise ValueError("initial_states: Transitions carry no initial states; pass initial_states=[N0] ints")
    if mask is not None:
        check_mask(mask)
    _validate_tabular_inputs(
        _where_real(s, mask), _where_real(data.actions, mask), _where_real(s2, mask), target_policy, gamma,
        data.discounts, initial_states, None, init_mask, ridge, names=_field_names(use_states, "data"),
    )
    rewards = as_float(data.rewards, "data.rewards")
    check_finite(rewards, "data.rewards")
    pi = jnp.asarray(target_policy).astype(rewards.dtype)
    s, s2, actions = (_index_array(x, mask) for x in (s, s2, data.actions))
    if initial_states is not None:
        initial_states = _index_array(initial_states, init_mask)
    if gamma is None:
        ratios = _average_ratios_jit(s, actions, s2, data.discounts, mask, pi, ridge=float(ridge))
        scale = 1.0
    else:
        ratios = _ratios_jit(
            s, actions, s2, data.discounts, mask, initial_states, pi, gamma, initial_mask=init_mask, ridge=ridge
        )
        scale = 1.0 / (1.0 - gamma)
    w = ratios_at(ratios.weights, s, actions)
    est = mis_average_reward(w, rewards, mask) * scale
    sn = mis_average_reward(w, rewards, mask, self_normalize=True) * scale
    return TabularMISResult(est, sn, ratios)


# ----------------------------------------------------------------------------------------------
# Host-side validation.
# ----------------------------------------------------------------------------------------------
def _check_index(x: Array, name: str, size: int, shape=None, what: str = "") -> np.ndarray:
    """Host check of table indices: integers, or floats with integral values (accepted and
    converted), in [0, size)."""
    try:
        a = check_finite(x, name)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected integer indices, could not read them ({exc})") from None
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected integer indices, found dtype {a.dtype}")
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {list(shape)}, found {list(a.shape)}")
    if a.size == 0:
        raise ValueError(f"{name}: empty dataset; expected at least one entry")
    if a.dtype.kind == "f" and not np.all(a == np.round(a)):
        bad = a[a != np.round(a)][0]
        raise ValueError(f"{name}: expected integer indices (or integral floats), found {bad} (dtype {a.dtype})")
    if np.any(a < 0) or np.any(a >= size):
        raise ValueError(f"{name}: expected indices in [0, {size}){what}, found range [{a.min()}, {a.max()}]")
    return a


def _validate_tabular_inputs(
    states: Array,
    actions: Array,
    next_states: Array,
    target_policy: Array,
    gamma: Optional[float] = None,
    discounts: Optional[Array] = None,
    initial_states: Optional[Array] = None,
    mask: Optional[Array] = None,
    initial_mask: Optional[Array] = None,
    ridge: float = 0.0,
    names: tuple = ("states", "actions", "next_states"),
) -> None:
    """Host-side checks for :func:`tabular_ratios` / :func:`tabular_average_ratios` inputs.

    Raises:
      ValueError: naming the argument, for a policy that is not ``[S, A]`` rows on the simplex,
        indices out of range, mismatched shapes, NaNs, discounts outside [0, 1], masks not 0/1,
        an empty dataset, gamma outside [0, 1), or a negative ridge.
    """
    pi = check_finite(target_policy, "target_policy")
    if pi.ndim != 2 or pi.shape[0] == 0 or pi.shape[1] == 0:
        raise ValueError(f"target_policy: expected shape [S, A] with S, A >= 1, found {list(pi.shape)}")
    if np.any(pi < 0) or np.any(pi > 1) or not np.allclose(pi.sum(-1), 1.0, atol=1e-5):
        raise ValueError("target_policy: expected rows of probabilities in [0, 1] summing to 1")
    ns, na = pi.shape
    rows, cols = " (the rows of target_policy [S, A])", " (the columns of target_policy [S, A])"
    s = _check_index(states, names[0], ns, what=rows)
    _check_index(actions, names[1], na, s.shape, what=cols)
    _check_index(next_states, names[2], ns, s.shape, what=rows)
    if discounts is not None:
        d = check_finite(discounts, "discounts")
        if d.shape != s.shape:
            raise ValueError(f"discounts: expected shape {list(s.shape)} (as states), found {list(d.shape)}")
        if np.any((d < 0) | (d > 1)):
            raise ValueError("discounts: expected values in [0, 1]")
    if mask is not None:
        m = check_finite(mask, "mask")
        if m.shape != s.shape:
            raise ValueError(f"mask: expected shape {list(s.shape)} (as states), found {list(m.shape)}")
        if not np.all((m == 0) | (m == 1)):
            raise ValueError("mask: expected values in {0, 1}")
        if not np.any(m):
            raise ValueError("mask: empty dataset, no step has mask 1")
    if initial_states is not None:
        s0 = _check_index(initial_states, "initial_states", ns)
        if initial_mask is not None:
            m0 = check_finite(initial_mask, "initial_mask")
            if m0.shape != s0.shape:
                raise ValueError(f"initial_mask: expected shape {list(s0.shape)}, found {list(m0.shape)}")
            if not np.any(m0 > 0):
                raise ValueError("initial_mask: no initial sample has weight > 0")
    if gamma is not None and not (0.0 <= float(gamma) < 1.0):
        raise ValueError(f"gamma: expected a discount in [0, 1) (use the average-reward form for gamma = 1), found {gamma}")
    if not (float(ridge) >= 0.0):
        raise ValueError(f"ridge: expected a non-negative float, found {ridge}")
