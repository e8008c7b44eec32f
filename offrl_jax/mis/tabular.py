"""Tabular marginalised importance sampling: state-action density ratios w = d^pi / d^D.

Two routes to the ratio w(s, a) = d^pi(s, a) / d^D(s, a):

* **Exact**, from the model: :func:`exact_ratios` divides a target distribution (the normalised
  discounted occupancy :func:`offrl_jax.envs.occupancy`, or :func:`stationary_distribution` for
  the average-reward case) by the data distribution (:func:`logged_distribution` for data logged
  by rollouts of a fixed length, or the behaviour occupancy).
* **Estimated**, from counts: :func:`tabular_ratios` solves the empirical Bellman-flow
  equations (the GenDICE form)

      d^D(s', a') w(s', a') = (1 - gamma) mu0(s') pi(a'|s')
                              + gamma pi(a'|s') sum_{s,a} P(s'|s,a) d^D(s,a) w(s,a),

  which in counts reads (diag(n) - gamma Pbar^T) w = (1 - gamma) M dbar0, with n(s, a) the visit
  counts over M logged transitions, Pbar[(s,a),(s',a')] = sum_m 1[s_m=s, a_m=a, s'_m=s'] pi(a'|s')
  (transitions with discount 0 carry no flow) and dbar0 = mu0_hat pi from the initial states.
  :func:`tabular_average_ratios` is the average-reward limit gamma -> 1, where the flow equation
  is homogeneous and the normalisation E_D[w] = 1 pins the solution.

The solution equals the certainty-equivalence model estimate: d_hat^pi = n w / M is the occupancy
of pi in the empirical MDP, so J_hat = (1 / (1 - gamma)) mean_m w(s_m, a_m) r_m is the value of pi
in that MDP (an estimate of the infinite-horizon discounted J even when the data come from
truncated trajectories, as long as every logged transition's successor is recorded).

Pairs never logged (n = 0) have no equation: their rows and columns are replaced by the identity
with right-hand side 0, so w = 0 there. Pairs the target reaches in the empirical model but that
were never logged are reported in ``unsupported`` with the target mass they would carry
(``unsupported_mass``), instead of dividing by zero.

All cores are pure and jit/vmap-safe; sizes come from the ``target_policy`` shape ``[S, A]``
(static). Host-side checks live in :func:`validate_tabular_inputs` and the container wrappers of
:mod:`offrl_jax.mis.estimators`.

See "GenDICE: Generalized Offline Estimation of Stationary Values", Zhang, Dai, Li & Schuurmans
2020, and "Breaking the Curse of Horizon: Infinite-Horizon Off-Policy Estimation", Liu, Li, Tang
& Zhou 2018.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.core.validation import check_finite
from offrl_jax.envs.tabular import TabularMDP, state_distributions, state_policy

Array = Any

__all__ = [
    "TabularRatios",
    "ExactRatios",
    "tabular_ratios",
    "tabular_average_ratios",
    "exact_ratios",
    "logged_distribution",
    "stationary_distribution",
    "flow_counts",
    "FlowCounts",
    "validate_tabular_inputs",
]


class TabularRatios(NamedTuple):
    """Estimated tabular density ratios.

    Attributes:
      weights: ``[S, A]`` w_hat(s, a); 0 where n(s, a) = 0.
      counts: ``[S, A]`` n(s, a), the (mask-weighted) number of logged transitions from (s, a).
      supported: ``[S, A]`` bool, n(s, a) > 0.
      unsupported: ``[S, A]`` bool, pairs the target reaches in the empirical model but with no
        logged transition (the ill-posed pairs; their ratio is undefined).
      unsupported_mass: scalar, target occupancy mass that falls on unsupported pairs.
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


class ExactRatios(NamedTuple):
    """Exact ratios from model distributions.

    Attributes:
      weights: ``[S, A]`` d_target / d_data where d_data > 0, else 0.
      supported: ``[S, A]`` bool, d_data > 0.
      unsupported_mass: scalar, target mass where d_data = 0 (0 under coverage).
    """

    weights: Array
    supported: Array
    unsupported_mass: Array


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
    initial_states: Array,
    target_policy: Array,
    mask: Optional[Array] = None,
    initial_mask: Optional[Array] = None,
) -> FlowCounts:
    """Counts of the empirical Bellman-flow equations (one pass of scatter-adds).

    Args:
      states: ``[M]`` int s_m (any shape, flattened; padded ``[N, T]`` works with ``mask``).
      actions: ``[M]`` int a_m.
      next_states: ``[M]`` int s'_m.
      discounts: ``[M]`` 0 where s'_m is terminal (no flow), else 1.
      initial_states: ``[N0]`` int samples of s_0 ~ mu0.
      target_policy: ``[S, A]`` pi(a|s).
      mask: optional ``[M]`` sample weights (1 real, 0 padding).
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
    # Target mass arriving at each pair: (1 - gamma) dbar0 + gamma Pbar^T (d_hat w).
    inflow = (1.0 - gamma) * counts.initial + gamma * jnp.einsum(
        "saxy,sa->xy", counts.flow, counts.data * w
    )
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
    initial_states: Array,
    target_policy: Array,
    gamma: float,
    mask: Optional[Array] = None,
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
      initial_states: ``[N0]`` int initial states s_0 (e.g. each trajectory's first state).
      target_policy: ``[S, A]`` pi(a|s); its shape sets S and A.
      gamma: discount in [0, 1).
      mask: optional ``[M]`` 1 on real steps, 0 on padding.
      initial_mask: optional ``[N0]`` 1 on real initial samples.
      ridge: Tikhonov term added to the diagonal on logged pairs (relative to d_hat^D, so
        ``ridge`` = 1e-3 shrinks weights of pairs with d_hat^D ~ 1e-3 by about half).

    Returns:
      :class:`TabularRatios` with ``weights`` ``[S, A]``.
    """
    counts = flow_counts(states, actions, next_states, discounts, initial_states, target_policy, mask, initial_mask)
    ns, na = counts.data.shape
    a, sup = _flow_matrix(counts, gamma, ridge)
    b = jnp.where(sup, (1.0 - gamma) * counts.initial.reshape(-1), 0.0)
    w = jnp.linalg.solve(a, b[:, None])[:, 0].reshape(ns, na)
    return _finish(w, counts, gamma)


def tabular_average_ratios(
    states: Array,
    actions: Array,
    next_states: Array,
    target_policy: Array,
    mask: Optional[Array] = None,
    discounts: Optional[Array] = None,
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
      target_policy: ``[S, A]`` pi(a|s).
      mask: optional ``[M]`` 1 on real steps, 0 on padding.
      discounts: optional ``[M]``; transitions with discount 0 carry no flow (default all 1).
      ridge: Tikhonov term (rows sqrt(ridge) I appended to the least-squares system).

    Returns:
      :class:`TabularRatios`; ``data_mass`` is 1 up to round-off when the system is consistent.
    """
    disc = jnp.ones(jnp.shape(jnp.ravel(states)), jnp.asarray(target_policy).dtype) if discounts is None else discounts
    s_first = jnp.ravel(states)[:1]
    counts = flow_counts(states, actions, next_states, disc, s_first, target_policy, mask)
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


def exact_ratios(target_distribution: Array, data_distribution: Array) -> ExactRatios:
    """Exact ratios w = d_target / d_data with the support reported.

    Args:
      target_distribution: ``[S, A]`` d^pi (e.g. :func:`offrl_jax.envs.occupancy`).
      data_distribution: ``[S, A]`` d^D (e.g. :func:`logged_distribution`, or the behaviour
        occupancy for data sampled from d^{pi_beta}).

    Returns:
      :class:`ExactRatios` (weights 0 where d_data = 0).
    """
    dt = jnp.asarray(target_distribution)
    dd = jnp.asarray(data_distribution)
    sup = dd > 0
    w = jnp.where(sup, dt / jnp.where(sup, dd, 1.0), 0.0)
    return ExactRatios(w, sup, jnp.sum(jnp.where(sup, 0.0, dt)))


def logged_distribution(mdp: TabularMDP, behavior_policy: Array, horizon: int) -> Array:
    """Exact distribution d^D(s, a) of the transitions logged by rollouts of ``horizon`` steps.

    d^D(s, a) = sum_{t<T} Pr(s_t = s, s not terminal) pi_beta(a|s) / Z, each logged step counted
    once (undiscounted), steps after termination excluded (what :func:`offrl_jax.envs.rollout`
    logs, and what the counts of :func:`tabular_ratios` estimate).

    Args:
      mdp: the tabular MDP (true states).
      behavior_policy: ``[O, A]`` or ``[S, A]`` pi_beta.
      horizon: T, number of steps per rollout (static int).

    Returns:
      ``[S, A]`` d^D, summing to 1.
    """
    ds = state_distributions(mdp, behavior_policy, horizon)
    live = jnp.where(mdp.terminal, 0.0, jnp.sum(ds, axis=0))
    pi_b = state_policy(mdp, behavior_policy).astype(ds.dtype)
    d = live[:, None] * pi_b
    return d / jnp.sum(d)


def stationary_distribution(mdp: TabularMDP, policy: Array) -> Array:
    """Stationary state-action distribution d^pi(s, a) = nu(s) pi(a|s) with nu P_pi = nu.

    Solved as the least-squares system [(I - P_pi^T); 1^T] nu = [0; 1]; unique when the chain
    under pi has a single recurrent class. This is the gamma -> 1 limit of the normalised
    occupancy, the target of :func:`tabular_average_ratios`.

    Args:
      mdp: the tabular MDP.
      policy: ``[O, A]`` or ``[S, A]`` pi.

    Returns:
      ``[S, A]`` d^pi, summing to 1.
    """
    pi = state_policy(mdp, policy).astype(mdp.rewards.dtype)
    p_pi = jnp.einsum("sa,sat->st", pi, mdp.transitions)
    ns = mdp.num_states
    a = jnp.concatenate([jnp.eye(ns, dtype=p_pi.dtype) - p_pi.T, jnp.ones((1, ns), p_pi.dtype)], 0)
    b = jnp.concatenate([jnp.zeros((ns,), p_pi.dtype), jnp.ones((1,), p_pi.dtype)])
    nu = jnp.linalg.lstsq(a, b)[0]
    return nu[:, None] * pi


# ----------------------------------------------------------------------------------------------
# Host-side validation.
# ----------------------------------------------------------------------------------------------
def _check_index(x: Array, name: str, size: int, shape=None) -> np.ndarray:
    a = check_finite(x, name)
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {list(shape)}, found {list(a.shape)}")
    if a.size == 0:
        raise ValueError(f"{name}: empty dataset; expected at least one entry")
    if a.dtype.kind not in "iu" and not np.all(a == np.round(a)):
        raise ValueError(f"{name}: expected integer indices, found dtype {a.dtype}")
    if np.any(a < 0) or np.any(a >= size):
        raise ValueError(f"{name}: expected indices in [0, {size}), found range [{a.min()}, {a.max()}]")
    return a


def validate_tabular_inputs(
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
) -> None:
    """Host-side checks for :func:`tabular_ratios` / :func:`tabular_average_ratios`.

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
    s = _check_index(states, "states", ns)
    _check_index(actions, "actions", na, s.shape)
    _check_index(next_states, "next_states", ns, s.shape)
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
