"""Distribution shift in fitted Q iteration: predicted vs actual value of the greedy policy.

After each outer iteration k of FQI, the greedy policy π_k(s) = argmax_a Q̂_k(s, a) is
*predicted* to be worth Σ_s d0(s) max_a Q̂_k(s, a) at the start states, while it is actually
worth J(π_k), computed exactly on a tabular MDP. On narrow data (a near-deterministic behaviour
policy) the max over actions reads Q̂ at unseen pairs, so the prediction drifts away from the
truth; on broad data (ε-mixtures) both curves meet near J(π*). See "Off-Policy Deep
Reinforcement Learning without Exploration", Fujimoto, Meger & Precup 2019 (extrapolation
error), and "Stabilizing Off-Policy Q-Learning via Bootstrapping Error Reduction", Kumar, Fu,
Tucker & Levine 2019.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax.numpy as jnp

from offrl_jax.data import Transitions
from offrl_jax.envs.tabular import TabularMDP, policy_value, value_iteration
from offrl_jax.fitted.iteration import fitted_q_iteration
from offrl_jax.fitted.train import FittedQConfig, q_network
from offrl_jax.policies import greedy

Array = Any

__all__ = ["ShiftCurves", "tabular_q_table", "distribution_shift_curves"]


class ShiftCurves(NamedTuple):
    """Per-iteration curves of :func:`distribution_shift_curves`.

    Attributes:
      predicted: ``[K]`` Σ_s d0(s) max_a Q̂_k(o(s), a), FQI's own estimate of its greedy policy.
      actual: ``[K]`` J(π_k), the exact value of that greedy policy.
      optimal: scalar J(π*) from value iteration.
      q_tables: ``[K, O, A]`` Q̂_k over all observations.
    """

    predicted: Array
    actual: Array
    optimal: Array
    q_tables: Array


def tabular_q_table(apply_fn: Callable, params: Any, num_observations: int) -> Array:
    """``[O, A]`` network values Q̂(o, ·) at every integer observation o = 0..O−1."""
    return apply_fn(params, jnp.arange(num_observations))


def distribution_shift_curves(
    key: Array,
    dataset: Transitions,
    mdp: TabularMDP,
    config: FittedQConfig,
    num_iterations: int,
    reinitialize: bool = False,
) -> ShiftCurves:
    """Runs outer/inner FQI on ``dataset`` and returns predicted and actual values per iteration.

    predicted_k = Σ_s d0(s) max_a Q̂_k(o(s), a);  actual_k = J(greedy(Q̂_k)) by an exact linear
    solve on ``mdp`` (ties go to the lowest action index).

    Args:
      key: PRNG key.
      dataset: :class:`~offrl_jax.data.Transitions` with integer observations and actions.
      mdp: a discounted :class:`~offrl_jax.envs.tabular.TabularMDP` (``horizon`` None) with
        the data's observation space; its ``gamma`` should equal ``config.gamma``.
      config: ``method="fqi"`` and ``num_observations = mdp.num_observations``.
      num_iterations: K outer iterations (static).
      reinitialize: fresh network each iteration (else warm start).

    Returns:
      :class:`ShiftCurves`.
    """
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

    def eval_fn(params):
        q = tabular_q_table(q_network(config).apply, params, mdp.num_observations)
        q = q.astype(mdp.rewards.dtype)
        predicted = jnp.dot(mdp.initial, jnp.max(q, axis=-1)[mdp.obs_of_state])
        return predicted, policy_value(mdp, greedy(q)), q

    res = fitted_q_iteration(key, dataset, config, num_iterations, eval_fn=eval_fn, reinitialize=reinitialize)
    predicted, actual, q_tables = res.evals
    optimal = policy_value(mdp, value_iteration(mdp).policy)
    return ShiftCurves(predicted, actual, optimal, q_tables)
