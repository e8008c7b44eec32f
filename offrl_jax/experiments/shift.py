"""Distribution shift made visible: how well a batch learner thinks it does vs how well it does.

Batch methods that improve a policy (LSPI, FQI) evaluate their own greedy policy with the data of
another (behaviour) policy. At iteration k the learned Q̂_k "thinks" its greedy policy
π_k(o) = argmax_a Q̂_k(o, a) (ties to the first action) is worth

    thinks_k = Σ_s d0(s) max_a Q̂_k(obs(s), a),

while on a tabular MDP the exact value ``does_k`` = J(π_k) says what it does. With narrow data
the greedy step picks actions the data never tried, whose Q̂ is whatever the function class
extrapolates (the ridge prior 0 for tabular features), and "thinks" drifts away from "does"
(usually above it); with data covering every state-action pair the two agree up to sampling
error and both approach J(π*). See "Off-Policy Deep Reinforcement Learning without
Exploration", Fujimoto, Meger & Precup 2019 (extrapolation error), "Stabilizing Off-Policy
Q-Learning via Bootstrapping Error Reduction", Kumar, Fu, Tucker & Levine 2019, and
"Least-Squares Policy Iteration", Lagoudakis & Parr 2003.

* :func:`thinks_vs_does`: the one computation, from Q̂ tables ``[I, O, A]`` to :class:`ShiftCurves`;
* :func:`linear_q_tables` and :func:`tabular_q_table`: Q̂ tables of linear weights and of a
  network over integer observations;
* :func:`linear_distribution_shift`: rolls out behaviour data, runs LSPI and linear FQI
  (:mod:`offrl_jax.linear`) and reports both curves (:class:`ShiftReport`);
* :func:`fitted_distribution_shift`: the curves of neural outer/inner FQI
  (:func:`offrl_jax.fitted.fitted_q_iteration`) on a given dataset.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from offrl_jax.core import is_concrete
from offrl_jax.data import Transitions
from offrl_jax.envs.rollout import rollout
from offrl_jax.envs.tabular import TabularMDP, policy_value, value_iteration
from offrl_jax.fitted import FittedQConfig, fitted_q_iteration, q_network
from offrl_jax.linear import linear_fqi, lspi
from offrl_jax.policies import greedy

Array = Any

__all__ = [
    "ShiftCurves",
    "ShiftReport",
    "thinks_vs_does",
    "linear_q_tables",
    "tabular_q_table",
    "linear_distribution_shift",
    "fitted_distribution_shift",
]


class ShiftCurves(NamedTuple):
    """Per-iteration "thinks" vs "does" of a learner's greedy policies.

    Attributes:
      thinks: ``[I]`` Σ_s d0(s) max_a Q̂_k(obs(s), a), the learner's own value of its greedy policy.
      does: ``[I]`` exact discounted J(π_k) of that greedy policy.
      optimal: scalar J(π*) of the (discounted) MDP, by value iteration.
      q_tables: ``[I, O, A]`` Q̂_k over every observation and action.
    """

    thinks: Array
    does: Array
    optimal: Array
    q_tables: Array


class ShiftReport(NamedTuple):
    """Result of :func:`linear_distribution_shift` for one behaviour policy.

    Attributes:
      lspi: :class:`ShiftCurves` over LSPI's ``lspi_iterations + 1`` weight iterates.
      fqi: :class:`ShiftCurves` over linear FQI's ``fqi_iterations + 1`` iterates.
      optimal: exact J(π*) of the MDP (discounted), as in both curves.
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
    """The MDP without its finite horizon: a stationary Q̂ estimates the discounted value."""
    if mdp.horizon is None:
        return mdp
    if is_concrete(mdp.gamma) and float(mdp.gamma) >= 1.0:
        raise ValueError("mdp: a stationary Q̂ estimates a discounted value; expected gamma < 1")
    return mdp.replace(horizon=None)


def _check_table(mdp: TabularMDP, table: Array, name: str) -> None:
    """``phi_table`` is ``[O, A, K]``, ``q_tables`` is ``[I, O, A]``."""
    o, a = mdp.num_observations, mdp.num_actions
    lead = int(name == "q_tables")
    if jnp.ndim(table) != 3 or table.shape[lead : lead + 2] != (o, a):
        want = "[I, O, A]" if lead else "[O, A, K]"
        raise ValueError(f"{name}: expected shape {want} with O = {o}, A = {a}, found {list(jnp.shape(table))}")


def thinks_vs_does(mdp: TabularMDP, q_tables: Array) -> ShiftCurves:
    """"Thinks" Σ_s d0(s) max_a Q̂_k(obs(s), a) vs "does" J(π_k), for each table Q̂_k.

    π_k is greedy in Q̂_k over observations (ties to the first action). J is the exact
    discounted value from :func:`~offrl_jax.envs.policy_value` (a finite ``mdp.horizon`` is
    dropped, since a stationary Q̂ estimates the discounted infinite-horizon value).

    Args:
      mdp: tabular MDP (O observations, A actions), gamma < 1.
      q_tables: ``[I, O, A]`` Q̂ per iteration (:func:`linear_q_tables`, :func:`tabular_q_table`).

    Returns:
      :class:`ShiftCurves` with ``[I]`` curves.
    """
    _check_table(mdp, q_tables, "q_tables")
    disc = _discounted(mdp)
    q = q_tables.astype(mdp.rewards.dtype)
    thinks = jnp.max(q, -1)[:, mdp.obs_of_state] @ mdp.initial.astype(q.dtype)
    does = jax.vmap(lambda qk: policy_value(disc, greedy(qk)))(q)
    optimal = jnp.dot(disc.initial, jnp.max(value_iteration(disc).q_star, -1))
    return ShiftCurves(thinks, does, optimal, q)


def linear_q_tables(phi_table: Array, weights_history: Array) -> Array:
    """``[I, O, A]`` Q̂_k(o, a) = φ(o, a)ᵀ w_k from ``phi_table [O, A, K]`` and ``weights_history [I, K]``."""
    if jnp.ndim(phi_table) != 3:
        raise ValueError(f"phi_table: expected shape [O, A, K], found {list(jnp.shape(phi_table))}")
    if jnp.ndim(weights_history) != 2 or weights_history.shape[1] != phi_table.shape[2]:
        raise ValueError(
            f"weights_history: expected shape [I, K = {phi_table.shape[2]}], found {list(jnp.shape(weights_history))}"
        )
    return jnp.einsum("oak,ik->ioa", phi_table, weights_history.astype(phi_table.dtype))


def tabular_q_table(apply_fn: Callable, params: Any, num_observations: int) -> Array:
    """``[O, A]`` network values Q̂(o, ·) at every integer observation o = 0..O−1."""
    return apply_fn(params, jnp.arange(num_observations))


def linear_distribution_shift(key: Array, mdp: TabularMDP, phi_table: Array, behavior_policy: Array,
                              num_episodes: int, horizon: int, *, ridge: Any = 1e-3, lspi_iterations: int = 20,
                              fqi_iterations: int = 50) -> ShiftReport:
    """Trains LSPI and linear FQI on behaviour data and reports "thinks" vs "does" per iteration.

    Collects ``num_episodes`` episodes of ``horizon`` steps with :func:`~offrl_jax.envs.rollout`,
    runs :func:`~offrl_jax.linear.lspi` (ε = 0, so all ``lspi_iterations`` run unless the weights
    stop changing exactly) and :func:`~offrl_jax.linear.linear_fqi` on φ(o, a) =
    ``phi_table[o, a]``, and applies :func:`thinks_vs_does` to both weight histories. Pure and
    jit-able (sizes static); vmap it over behaviour policies or keys.

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
    _check_table(mdp, phi_table, "phi_table")
    data = rollout(key, mdp, behavior_policy, num_episodes, horizon)
    flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
    obs, act, nxt = flat(data.observations), flat(data.actions), flat(data.next_observations)
    mask = flat(data.mask).astype(phi_table.dtype)
    args = (phi_table[obs, act], phi_table[nxt], flat(data.rewards), flat(data.discounts), mdp.gamma, ridge)
    res_lspi = lspi(*args, max_iterations=lspi_iterations, epsilon=0.0, sample_weights=mask)
    res_fqi = linear_fqi(*args, num_iterations=fqi_iterations, sample_weights=mask)
    lspi_curves = thinks_vs_does(mdp, linear_q_tables(phi_table, res_lspi.weights_history))
    fqi_curves = thinks_vs_does(mdp, linear_q_tables(phi_table, res_fqi.weights_history))
    seen = jnp.zeros((mdp.num_observations, mdp.num_actions), mask.dtype).at[obs, act].max(mask)
    return ShiftReport(
        lspi=lspi_curves,
        fqi=fqi_curves,
        optimal=lspi_curves.optimal,
        behavior=policy_value(_discounted(mdp), behavior_policy),
        coverage=jnp.mean(seen),
        num_samples=jnp.sum(mask),
    )


def fitted_distribution_shift(key: Array, dataset: Transitions, mdp: TabularMDP, config: FittedQConfig,
                              num_iterations: int, *, reinitialize: bool = False) -> ShiftCurves:
    """Runs outer/inner FQI on ``dataset`` and returns "thinks" and "does" per iteration.

    thinks_k = Σ_s d0(s) max_a Q̂_k(o(s), a) and does_k = J(greedy(Q̂_k)) by an exact linear solve
    on ``mdp`` (:func:`thinks_vs_does` on the network's table after each outer iteration of
    :func:`~offrl_jax.fitted.fitted_q_iteration`).

    Args:
      key: PRNG key.
      dataset: :class:`~offrl_jax.data.Transitions` with integer observations and actions.
      mdp: a discounted :class:`~offrl_jax.envs.tabular.TabularMDP` (``horizon`` None) with the
        data's observation space; its ``gamma`` must equal ``config.gamma``.
      config: ``method="fqi"`` and ``num_observations = mdp.num_observations``.
      num_iterations: K outer iterations (static).
      reinitialize: fresh network each iteration (else warm start).

    Returns:
      :class:`ShiftCurves` with ``[K]`` curves.
    """
    _check_fitted_args(mdp, config)
    apply_fn = q_network(config).apply

    def eval_fn(params):
        return tabular_q_table(apply_fn, params, mdp.num_observations)

    res = fitted_q_iteration(key, dataset, config, num_iterations, eval_fn=eval_fn, reinitialize=reinitialize)
    return thinks_vs_does(mdp, res.evals)


def _check_fitted_args(mdp: TabularMDP, config: FittedQConfig) -> None:
    if config.method != "fqi":
        raise ValueError(f"config.method: expected 'fqi', found {config.method!r}")
    if config.num_observations != mdp.num_observations:
        raise ValueError(
            f"config.num_observations: expected the MDP's {mdp.num_observations}, found {config.num_observations}"
        )
    if config.num_actions != mdp.num_actions:
        raise ValueError(f"config.num_actions: expected the MDP's {mdp.num_actions}, found {config.num_actions}")
    if mdp.horizon is not None:
        raise ValueError("mdp: expected a discounted MDP (horizon None); stationary Q̂ cannot fit a finite horizon")
    if abs(float(mdp.gamma) - config.gamma) > 1e-6:
        raise ValueError(f"config.gamma: expected the MDP's gamma {float(mdp.gamma)}, found {config.gamma}")
