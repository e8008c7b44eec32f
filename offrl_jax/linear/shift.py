"""Distribution shift made visible: what LSPI / linear FQI think their policy is worth vs its value.

Batch methods evaluate their own greedy policy with the data of another (behaviour) policy. At
iteration k the learned Q̂_k = Φ w_k "thinks" its greedy policy π_k(s) = argmax_a Q̂_k(s, a) is
worth Σ_s d0(s) max_a Q̂_k(s, a); on a tabular MDP the exact value J(π_k) says what it "does".
With narrow data the greedy step picks actions the data never tried, whose Q̂ is whatever the
features extrapolate (the ridge prior 0 for tabular features), and "thinks" drifts away from
"does"; with data covering every state-action pair the two agree up to sampling error. See
"Off-Policy Deep Reinforcement Learning without Exploration", Fujimoto, Meger & Precup 2019
(extrapolation error), and "Least-Squares Policy Iteration", Lagoudakis & Parr 2003.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from offrl_jax.envs.rollout import rollout
from offrl_jax.envs.tabular import TabularMDP, policy_value, value_iteration
from offrl_jax.linear.fqi import linear_fqi
from offrl_jax.linear.lspi import lspi

Array = Any

__all__ = ["ShiftCurves", "ShiftReport", "distribution_shift", "thinks_vs_does"]


class ShiftCurves(NamedTuple):
    """Per-iteration "thinks" vs "does".

    Attributes:
      thinks: ``[I]`` Σ_s d0(s) max_a Q̂_k(obs(s), a), the learned value of its own greedy policy.
      does: ``[I]`` exact discounted J(π_k) of that greedy policy.
    """

    thinks: Array
    does: Array


class ShiftReport(NamedTuple):
    """Result of :func:`distribution_shift` for one behaviour policy.

    Attributes:
      lspi: :class:`ShiftCurves` over LSPI's ``lspi_iterations + 1`` weight iterates.
      fqi: :class:`ShiftCurves` over linear FQI's ``fqi_iterations + 1`` iterates.
      optimal: exact J(π*) of the MDP (discounted).
      behavior: exact J(π_β) of the behaviour policy (discounted).
      coverage: fraction of (observation, action) pairs present in the data.
      num_samples: number of real transitions.
    """

    lspi: ShiftCurves
    fqi: ShiftCurves
    optimal: Array
    behavior: Array
    coverage: Array
    num_samples: Array


def _discounted(mdp: TabularMDP) -> TabularMDP:
    if mdp.horizon is None:
        return mdp
    if not isinstance(mdp.gamma, jax.core.Tracer) and float(mdp.gamma) >= 1.0:
        raise ValueError("mdp: a stationary Q̂ estimates a discounted value; expected gamma < 1")
    return mdp.replace(horizon=None)


def _check_table(mdp: TabularMDP, phi_table: Array) -> None:
    o, a = mdp.num_observations, mdp.num_actions
    if jnp.ndim(phi_table) != 3 or phi_table.shape[:2] != (o, a):
        raise ValueError(f"phi_table: expected shape [O, A, K] = [{o}, {a}, K], found {list(jnp.shape(phi_table))}")


def thinks_vs_does(mdp: TabularMDP, phi_table: Array, weights_history: Array) -> ShiftCurves:
    """"Thinks" Σ_s d0(s) max_a φ(obs(s), a)ᵀ w_k vs "does" J(π_k), for each row w_k.

    π_k is greedy in Q̂_k (ties to the first action) over observations. J is the exact
    discounted value from :func:`~offrl_jax.envs.policy_value` (a finite ``mdp.horizon`` is
    dropped, since a stationary Q̂ estimates the discounted infinite-horizon value).

    Args:
      mdp: tabular MDP (O observations, A actions).
      phi_table: ``[O, A, K]`` φ(o, a).
      weights_history: ``[I, K]`` weights per iteration.

    Returns:
      :class:`ShiftCurves` with ``[I]`` arrays.
    """
    _check_table(mdp, phi_table)
    if jnp.ndim(weights_history) != 2 or weights_history.shape[1] != phi_table.shape[2]:
        raise ValueError(f"weights_history: expected shape [I, K = {phi_table.shape[2]}], found {list(jnp.shape(weights_history))}")
    disc = _discounted(mdp)
    q = jnp.einsum("oak,ik->ioa", phi_table, weights_history.astype(phi_table.dtype))
    thinks = jnp.max(q, -1)[:, mdp.obs_of_state] @ mdp.initial.astype(q.dtype)
    greedy = jax.nn.one_hot(jnp.argmax(q, -1), mdp.num_actions, dtype=mdp.rewards.dtype)
    does = jax.vmap(lambda pol: policy_value(disc, pol))(greedy)
    return ShiftCurves(thinks, does)


def distribution_shift(key: Array, mdp: TabularMDP, phi_table: Array, behavior_policy: Array, num_episodes: int,
                       horizon: int, ridge: Any = 1e-3, lspi_iterations: int = 20,
                       fqi_iterations: int = 50) -> ShiftReport:
    """Trains LSPI and linear FQI on behaviour data and reports "thinks" vs "does" per iteration.

    Collects ``num_episodes`` episodes of ``horizon`` steps with
    :func:`~offrl_jax.envs.rollout`, runs :func:`~offrl_jax.linear.lspi.lspi` (ε = 0, so all
    ``lspi_iterations`` run unless the weights stop changing exactly) and
    :func:`~offrl_jax.linear.fqi.linear_fqi` on φ(o, a) = ``phi_table[o, a]``, and applies
    :func:`thinks_vs_does` to both weight histories. Pure and jit-able (sizes static); vmap it
    over behaviour policies or keys.

    Args:
      key: PRNG key for the rollouts.
      mdp: tabular MDP with exact values (gamma < 1).
      phi_table: ``[O, A, K]`` state-action features.
      behavior_policy: ``[O, A]`` data-collecting policy (narrow: near-deterministic; broad:
        covering every action).
      num_episodes, horizon: static data sizes.
      ridge: λ for LSTDQ and FQI (needed when some pairs are never visited).
      lspi_iterations, fqi_iterations: static iteration counts.

    Returns:
      :class:`ShiftReport`.
    """
    _check_table(mdp, phi_table)
    disc = _discounted(mdp)
    data = rollout(key, mdp, behavior_policy, num_episodes, horizon)
    flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
    obs, act, nxt = flat(data.observations), flat(data.actions), flat(data.next_observations)
    mask = flat(data.mask).astype(phi_table.dtype)
    phi_sa = phi_table[obs, act]
    phi_next_all = phi_table[nxt]
    rewards, discounts = flat(data.rewards), flat(data.discounts)
    res_lspi = lspi(phi_sa, phi_next_all, rewards, discounts, mdp.gamma, ridge, max_iterations=lspi_iterations,
                    epsilon=0.0, sample_weights=mask)
    res_fqi = linear_fqi(phi_sa, phi_next_all, rewards, discounts, mdp.gamma, ridge, num_iterations=fqi_iterations,
                         sample_weights=mask)
    seen = jnp.zeros((mdp.num_observations, mdp.num_actions), mask.dtype).at[obs, act].max(mask)
    q_star, _ = value_iteration(disc)
    return ShiftReport(
        lspi=thinks_vs_does(mdp, phi_table, res_lspi.weights_history),
        fqi=thinks_vs_does(mdp, phi_table, res_fqi.weights_history),
        optimal=jnp.dot(disc.initial, jnp.max(q_star, -1)),
        behavior=policy_value(disc, behavior_policy),
        coverage=jnp.mean(seen),
        num_samples=jnp.sum(mask),
    )
