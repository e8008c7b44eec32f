"""Value estimates from density ratios, and container-level tabular MIS entry points.

Array-level estimators (pure, jit/vmap-safe):

* :func:`mis_estimate`: J_hat = (1 / (1 - gamma)) (1/M) sum_m w_m r_m over M logged transitions
  (normalised discounted occupancy), or the self-normalised
  J_hat_SN = (1 / (1 - gamma)) sum_m w_m r_m / sum_m w_m.
* :func:`mis_average_reward`: the per-step average reward E_D[w r] (gamma -> 1 limit).
* :func:`mis_finite_horizon`: (1/N) sum_n sum_t gamma^t w_t r_t for time-indexed ratios.

Container entry points (host-validated): :func:`tabular_mis` for :class:`~offrl_jax.data.Trajectories`
or :class:`~offrl_jax.data.Transitions`, and :func:`mis_rows` for summary tables.

See "Breaking the Curse of Horizon: Infinite-Horizon Off-Policy Estimation", Liu, Li, Tang &
Zhou 2018, and "DualDICE: Behavior-Agnostic Estimation of Discounted Stationary Distribution
Corrections", Nachum, Chow, Dai & Li 2019.
"""

from __future__ import annotations

from typing import Any, List, NamedTuple, Optional, Tuple, Union

import jax.numpy as jnp
import numpy as np

from offrl_jax.core.validation import check_mask
from offrl_jax.data import Trajectories, Transitions
from offrl_jax.mis.tabular import TabularRatios, tabular_average_ratios, tabular_ratios, validate_tabular_inputs
from offrl_jax.mis.time_indexed import TimeIndexedRatios, tabular_time_ratios

Array = Any

__all__ = [
    "mis_estimate",
    "mis_average_reward",
    "mis_finite_horizon",
    "ratios_at",
    "TabularMISResult",
    "tabular_mis",
    "mis_rows",
]


def _masked(weights, rewards, mask):
    w = jnp.asarray(weights)
    r = jnp.asarray(rewards).astype(w.dtype) if jnp.issubdtype(w.dtype, jnp.floating) else jnp.asarray(rewards)
    m = jnp.ones(r.shape, r.dtype) if mask is None else jnp.asarray(mask).astype(r.dtype)
    w = jnp.where(m > 0, w, 0.0) * m
    r = jnp.where(m > 0, r, 0.0)
    return w, r, m


def mis_average_reward(weights: Array, rewards: Array, mask: Optional[Array] = None, self_normalize: bool = False) -> Array:
    """Ratio-weighted mean reward over logged transitions.

    E_hat = sum_m mask_m w_m r_m / sum_m mask_m (or / sum_m mask_m w_m when ``self_normalize``).
    With w = d^pi / d^D this estimates E_{d^pi}[r]: the (1 - gamma)-scaled discounted value for
    the normalised occupancy, or the average reward per step for the stationary distribution.

    See "Breaking the Curse of Horizon", Liu, Li, Tang & Zhou 2018.

    Args:
      weights: ``[M]`` (any shape) w(s_m, a_m) at the logged pairs.
      rewards: same shape, r_m.
      mask: optional, same shape, 1 on real steps, 0 on padding.
      self_normalize: divide by the weight sum instead of the count (static).

    Returns:
      Scalar estimate (0 if the normaliser is 0).
    """
    w, r, m = _masked(weights, rewards, mask)
    num = jnp.sum(w * r)
    den = jnp.sum(w) if self_normalize else jnp.sum(m)
    return jnp.where(den != 0, num / jnp.where(den != 0, den, 1.0), 0.0)


def mis_estimate(
    weights: Array, rewards: Array, gamma: float, mask: Optional[Array] = None, self_normalize: bool = False
) -> Array:
    """Discounted MIS value estimate J_hat = (1 / (1 - gamma)) E_hat_D[w r].

    J(pi) = E_{d^pi}[r] / (1 - gamma) for the normalised discounted occupancy
    d^pi(s, a) = (1 - gamma) sum_t gamma^t Pr_pi(s_t = s, a_t = a), so with
    w = d^pi / d^D: J_hat = (1 / (1 - gamma)) (1/M) sum_m w_m r_m, and the self-normalised form
    (1 / (1 - gamma)) sum_m w_m r_m / sum_m w_m.

    See "Breaking the Curse of Horizon", Liu, Li, Tang & Zhou 2018; "DualDICE", Nachum, Chow,
    Dai & Li 2019.

    Args:
      weights: ``[M]`` (any shape) w(s_m, a_m).
      rewards: same shape, r_m.
      gamma: discount in [0, 1).
      mask: optional, same shape, 1 on real steps, 0 on padding.
      self_normalize: self-normalise by the weight sum (static).

    Returns:
      Scalar J_hat.
    """
    return mis_average_reward(weights, rewards, mask, self_normalize) / (1.0 - gamma)


def mis_finite_horizon(weights: Array, rewards: Array, mask: Array, gamma: float) -> Array:
    """Finite-horizon MIS estimate J_hat = (1/N) sum_n sum_t gamma^t w_t(s^n_t, a^n_t) r^n_t.

    Dataset-level, on padded ``[N, T]`` arrays with time-indexed ratios (e.g.
    :func:`offrl_jax.mis.tabular_time_ratios`). N counts the rows with a real first step.

    See "Towards Optimal Off-Policy Evaluation for Reinforcement Learning with Marginalized
    Importance Sampling", Xie, Ma & Wang 2019.

    Args:
      weights: ``[N, T]`` w_t at the logged steps.
      rewards: ``[N, T]`` r_t.
      mask: ``[N, T]`` 1 on real steps, 0 on padding.
      gamma: discount in [0, 1].

    Returns:
      Scalar J_hat.
    """
    w, r, m = _masked(weights, rewards, mask)
    t = jnp.arange(r.shape[-1], dtype=r.dtype)
    disc = jnp.asarray(gamma, r.dtype) ** t
    n = jnp.sum(m[:, 0])
    return jnp.sum(w * r * disc[None, :]) / jnp.where(n > 0, n, 1.0)


def ratios_at(table: Array, states: Array, actions: Array) -> Array:
    """Gathers w(s_m, a_m) from an ``[S, A]`` ratio table at int ``states``/``actions`` (any shape)."""
    return jnp.asarray(table)[jnp.asarray(states), jnp.asarray(actions)]


# ----------------------------------------------------------------------------------------------
# Container entry points.
# ----------------------------------------------------------------------------------------------
class TabularMISResult(NamedTuple):
    """Tabular MIS estimate and its ratios.

    Attributes:
      estimate: scalar J_hat (discounted: (1/(1-gamma)) E_D[w r]; average reward: E_D[w r]).
      self_normalized: scalar self-normalised estimate.
      ratios: :class:`~offrl_jax.mis.tabular.TabularRatios` (``weights`` ``[S, A]``).
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


def tabular_mis(
    data: Union[Trajectories, Transitions],
    target_policy: Array,
    gamma: Optional[float],
    initial_states: Optional[Array] = None,
    use_states: bool = False,
    ridge: float = 0.0,
) -> TabularMISResult:
    """Tabular MIS from a dataset: counts, Bellman-flow solve, estimate (host-validated).

    Discounted (``gamma`` in [0, 1)): ratios from :func:`~offrl_jax.mis.tabular.tabular_ratios`,
    estimating the infinite-horizon discounted value J(pi) = E_{d^pi}[r] / (1 - gamma) (the value
    of pi in the empirical model). ``gamma=None``: the average-reward ratios of
    :func:`~offrl_jax.mis.tabular.tabular_average_ratios` and the average reward per step.

    Args:
      data: :class:`~offrl_jax.data.Trajectories` (padded steps excluded through ``mask``; the
        initial states are each trajectory's first state) or
        :class:`~offrl_jax.data.Transitions` (then ``initial_states`` is required when
        discounted).
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
    validate_tabular_inputs(
        np.where(np.asarray(mask) > 0, np.asarray(s), 0) if mask is not None else s,
        np.where(np.asarray(mask) > 0, np.asarray(data.actions), 0) if mask is not None else data.actions,
        np.where(np.asarray(mask) > 0, np.asarray(s2), 0) if mask is not None else s2,
        target_policy,
        gamma,
        data.discounts,
        initial_states,
        None,
        init_mask,
        ridge,
    )
    pi = jnp.asarray(target_policy)
    if not jnp.issubdtype(pi.dtype, jnp.floating):
        pi = pi.astype(jnp.float32)
    pi = pi.astype(data.rewards.dtype)
    if gamma is None:
        ratios = tabular_average_ratios(s, data.actions, s2, pi, mask, data.discounts, ridge)
        scale = 1.0
    else:
        ratios = tabular_ratios(s, data.actions, s2, data.discounts, initial_states, pi, gamma, mask, init_mask, ridge)
        scale = 1.0 / (1.0 - gamma)
    w = ratios_at(ratios.weights, s, data.actions)
    est = mis_average_reward(w, data.rewards, mask) * scale
    sn = mis_average_reward(w, data.rewards, mask, self_normalize=True) * scale
    return TabularMISResult(est, sn, ratios)


def mis_rows(
    trajectories: Trajectories,
    target_policy: Array,
    gamma: float,
    finite_horizon: bool,
    use_states: bool = False,
) -> List[Tuple[str, float]]:
    """Named tabular MIS estimates for a summary table (the caller compares with the truth).

    ``finite_horizon=True``: the time-indexed estimators of
    :func:`~offrl_jax.mis.tabular_time_ratios` (per-step and pooled transition models), which
    estimate E_pi[sum_{t<T} gamma^t r_t] with T = ``trajectories.max_length`` (use them when the
    data's horizon is the problem's horizon).
    ``finite_horizon=False``: the stationary discounted estimator and its self-normalised form,
    which estimate the infinite-horizon J(pi) (needs gamma < 1).

    Args:
      trajectories: padded :class:`~offrl_jax.data.Trajectories`.
      target_policy: ``[S, A]`` pi over observations (or true states with ``use_states``).
      gamma: discount.
      finite_horizon: which target (see above).
      use_states: index by the true ``states`` fields (aliased MDPs).

    Returns:
      List of ``(row name, estimate)``.
    """
    if finite_horizon:
        if not (0.0 <= float(gamma) <= 1.0):
            raise ValueError(f"gamma: expected a discount in [0, 1], found {gamma}")
        s, s2 = _indices(trajectories, use_states)
        check_mask(trajectories.mask)
        m = np.asarray(trajectories.mask) > 0
        validate_tabular_inputs(
            np.where(m, np.asarray(s), 0), np.where(m, np.asarray(trajectories.actions), 0),
            np.where(m, np.asarray(s2), 0), target_policy, None, trajectories.discounts,
        )
        pi = jnp.asarray(target_policy, trajectories.rewards.dtype)
        rows = []
        for name, pooled in (("MIS (tabular, time-indexed)", False), ("MIS (tabular, time-indexed, pooled)", True)):
            r = tabular_time_ratios(s, trajectories.actions, s2, trajectories.discounts, trajectories.mask, pi, pooled)
            rows.append((name, float(mis_finite_horizon(r.weights, trajectories.rewards, trajectories.mask, gamma))))
        return rows
    res = tabular_mis(trajectories, target_policy, gamma, use_states=use_states)
    return [
        ("MIS (tabular, stationary)", float(res.estimate)),
        ("MIS (tabular, stationary, self-normalised)", float(res.self_normalized)),
    ]
