"""Exact density-ratio oracles computed from a tabular MDP: the ground truth of the MIS family.

The marginalised importance-sampling estimators of :mod:`offrl_jax.mis` estimate ratios of
state-action distributions from data; here the same ratios are computed exactly from the model,
so tests and experiments can compare the two:

* :func:`exact_ratios`: w = d_target / d_data for two given ``[S, A]`` distributions (e.g. the
  normalised discounted occupancy :func:`~offrl_jax.envs.occupancy` over
  :func:`logged_distribution`), with the support reported;
* :func:`logged_distribution`: the distribution of the transitions that rollouts of a fixed
  length log (what the counts of :func:`offrl_jax.mis.tabular_ratios` estimate);
* :func:`stationary_distribution`: the stationary state-action distribution of a policy (the
  target of the average-reward ratios);
* :func:`exact_time_ratios`: the per-step ratios w_t = Pr_pi(s_t, a_t) / Pr_beta(s_t, a_t) of the
  finite-horizon (time-indexed) estimator.

See "Breaking the Curse of Horizon: Infinite-Horizon Off-Policy Estimation", Liu, Li, Tang &
Zhou 2018, and "Towards Optimal Off-Policy Evaluation for Reinforcement Learning with
Marginalized Importance Sampling", Xie, Ma & Wang 2019.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp

from offrl_jax.envs.tabular import TabularMDP, state_distributions, state_policy

Array = Any

__all__ = [
    "ExactRatios",
    "exact_ratios",
    "logged_distribution",
    "stationary_distribution",
    "exact_time_ratios",
]


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
    logs, and what the counts of :func:`offrl_jax.mis.tabular_ratios` estimate).

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
    occupancy, the target of :func:`offrl_jax.mis.tabular_average_ratios`.

    Args:
      mdp: the tabular MDP.
      policy: ``[O, A]`` or ``[S, A]`` pi (named as in :func:`~offrl_jax.envs.occupancy`).

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


def exact_time_ratios(mdp: TabularMDP, target_policy: Array, behavior_policy: Array, horizon: int) -> Array:
    """Exact per-step ratios w_t(s, a) = Pr_pi(s_t = s, a_t = a) / Pr_beta(s_t = s, a_t = a).

    The ground truth of :func:`offrl_jax.mis.tabular_time_ratios` (its ``table``).

    Args:
      mdp: the tabular MDP (true states); terminal states are excluded (0 weight).
      target_policy: ``[O, A]`` or ``[S, A]`` pi.
      behavior_policy: ``[O, A]`` or ``[S, A]`` pi_beta.
      horizon: T (static int).

    Returns:
      ``[T, S, A]`` exact w_t, 0 where the behaviour marginal is 0 or the state is terminal.
    """
    dt = state_distributions(mdp, target_policy, horizon)[..., None] * state_policy(mdp, target_policy)[None]
    db = state_distributions(mdp, behavior_policy, horizon)[..., None] * state_policy(mdp, behavior_policy)[None]
    ok = (db > 0) & ~mdp.terminal[None, :, None]
    return jnp.where(ok, dt / jnp.where(ok, db, 1.0), 0.0)
