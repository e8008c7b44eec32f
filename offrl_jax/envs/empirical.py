"""The certainty-equivalence (maximum-likelihood) tabular model estimated from logged data."""

from __future__ import annotations

from typing import Any, Optional

import jax.numpy as jnp
import numpy as np

from offrl_jax.core import ModelTerms, model_terms
from offrl_jax.core.dtypes import as_float
from offrl_jax.core.validation import is_concrete
from offrl_jax.data import Trajectories
from offrl_jax.envs.rollout import rollout
from offrl_jax.envs.tabular import TabularMDP, q_values

Array = Any

__all__ = ["estimate_mdp", "model_q_hat", "logged_model_terms"]


def _check_indices(a: np.ndarray, name: str, size: int) -> None:
    """Host check of table indices on real steps: integers (or integral floats) in [0, size)."""
    if a.dtype.kind not in "biuf" or (a.dtype.kind == "f" and not np.all(a == np.round(a))):
        raise ValueError(f"{name}: expected integer indices, found dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= size):
        raise ValueError(f"{name}: expected indices in [0, {size}), found range [{a.min()}, {a.max()}]")


def estimate_mdp(
    trajectories: Trajectories,
    num_states: int,
    num_actions: int,
    gamma: float,
    horizon: Optional[int] = None,
    use_true_states: bool = False,
) -> TabularMDP:
    """Maximum-likelihood MDP from counts: P̂(s'|s,a) = N(s,a,s') / n(s,a), R̂(s,a) = mean reward.

    Built over observations (what a policy sees), as an approximate model in OPE is
    (Thomas & Brunskill 2016 use exactly such a model, which aliasing makes wrong on ModelFail).
    Unvisited pairs become zero-reward self-loops. A step with ``discounts = 0`` leads to an added
    absorbing terminal state (index ``num_states``), so the model has ``num_states + 1`` states.
    The initial distribution is the empirical distribution of first observations. Pure and
    jit-able (``num_states``, ``num_actions``, ``horizon`` static); padded steps are ignored.

    Args:
      trajectories: ``[N, T]`` data with integer observations (or ``states``).
      num_states: number of observations S (or true states with ``use_true_states``).
      num_actions: A.
      gamma: discount of the model.
      horizon: optional finite horizon of the model.
      use_true_states: index by ``trajectories.states`` instead of observations.

    Returns:
      A :class:`TabularMDP` with ``num_states + 1`` states (the last is the terminal state).

    Raises:
      ValueError: naming the field, called eagerly, for observations (states) or actions on
        real steps outside ``[0, num_states)`` / ``[0, num_actions)`` or not integral.
    """
    s = trajectories.states if use_true_states else trajectories.observations
    s2 = trajectories.next_states if use_true_states else trajectories.next_observations
    rewards = as_float(trajectories.rewards, "trajectories.rewards")
    if is_concrete(s, s2, trajectories.actions, trajectories.mask):
        names = ("states", "next_states") if use_true_states else ("observations", "next_observations")
        real = np.asarray(trajectories.mask) > 0
        for name, x, size in ((names[0], s, num_states), (names[1], s2, num_states),
                              ("actions", trajectories.actions, num_actions)):
            _check_indices(np.asarray(x)[real], f"trajectories.{name}", size)
    s, s2 = jnp.asarray(s).astype(jnp.int32), jnp.asarray(s2).astype(jnp.int32)
    m = trajectories.mask.astype(rewards.dtype)
    dtype = rewards.dtype
    n_s = num_states + 1
    term = num_states
    s2 = jnp.where(trajectories.discounts > 0, s2, term)
    sa = (s * num_actions + jnp.asarray(trajectories.actions).astype(jnp.int32)).reshape(-1)
    counts = jnp.zeros((n_s * num_actions, n_s), dtype).at[sa, s2.reshape(-1)].add(m.reshape(-1))
    counts = counts.reshape(n_s, num_actions, n_s)
    visits = counts.sum(-1)
    rsum = jnp.zeros(n_s * num_actions, dtype).at[sa].add((m * rewards).reshape(-1))
    rsum = rsum.reshape(n_s, num_actions)
    seen = visits > 0
    eye = jnp.broadcast_to(jnp.eye(n_s, dtype=dtype)[:, None, :], counts.shape)
    p = jnp.where(seen[..., None], counts / jnp.where(seen, visits, 1.0)[..., None], eye)
    r = jnp.where(seen, rsum / jnp.where(seen, visits, 1.0), 0.0)
    first = jnp.zeros(n_s, dtype).at[s[:, 0]].add(m[:, 0])
    terminal = jnp.arange(n_s) == term
    return TabularMDP(
        transitions=p,
        rewards=r,
        initial=first / jnp.sum(first),
        gamma=jnp.asarray(gamma, dtype),
        terminal=terminal,
        obs_of_state=jnp.arange(n_s, dtype=jnp.int32),
        horizon=horizon,
        num_observations=n_s,
        name="estimated",
    )


def model_q_hat(
    model: TabularMDP, target_policy: Array, trajectories: Trajectories, use_true_states: bool = False
) -> ModelTerms:
    """A model's exact Q^π along trajectories as the DR inputs ``(q_taken, v_hat)`` ``[N, T]``.

    ``q_taken[n, t] = Q̂_t(s_t, a_t)`` and ``v_hat[n, t] = Σ_a π(a|s_t) Q̂_t(s_t, a)`` (time-indexed
    when the model has a finite horizon), 0 on padding, produced by
    :func:`offrl_jax.core.model_terms`.

    Args:
      model: e.g. :func:`estimate_mdp`'s (its extra terminal state gets a uniform, zero-valued row).
      target_policy: ``[S, A]`` over the data's observations.
      trajectories: ``[N, T]`` data with integer observations (or ``states``).
      use_true_states: index by ``trajectories.states`` instead of observations.

    Returns:
      :class:`~offrl_jax.core.ModelTerms` in the model's dtype.
    """
    a = target_policy.shape[1]
    pi = jnp.concatenate([target_policy, jnp.full((1, a), 1.0 / a, target_policy.dtype)])
    q = q_values(model, pi)
    s = trajectories.states if use_true_states else trajectories.observations
    n, t = trajectories.rewards.shape
    if q.ndim == 3:
        tt = jnp.broadcast_to(jnp.arange(t), (n, t))
        q_sa = q[jnp.minimum(tt, q.shape[0] - 1), s]
    else:
        q_sa = q[s]
    return model_terms(q_sa, pi[s].astype(q.dtype), trajectories.actions, trajectories.mask)


def logged_model_terms(key: Array, problem: Any, num_episodes: int) -> tuple:
    """Logged data of a suite problem and the DR inputs of the model estimated from them.

    Rolls out ``problem.behavior`` for ``num_episodes`` episodes of ``problem.horizon`` steps
    (recording ``problem.target``'s log-probabilities), estimates the certainty-equivalence model
    of :func:`estimate_mdp` from those same data and evaluates ``problem.target`` in it
    (:func:`model_q_hat`): the setting of the model-win / model-fail experiments of "Data-Efficient
    Off-Policy Policy Evaluation for Reinforcement Learning", Thomas & Brunskill 2016. Traceable
    (``num_episodes`` is static), so ``jax.vmap`` over keys gives many datasets.

    Args:
      key: PRNG key of the rollout.
      problem: a :class:`~offrl_jax.envs.suite.Problem` (``make_problem``).
      num_episodes: N.

    Returns:
      ``(trajectories, log_ratios [N, T] (0 on padding), ModelTerms(q_taken, v_hat) [N, T])``.
    """
    mdp = problem.mdp
    tr = rollout(key, mdp, problem.behavior, num_episodes, problem.horizon, target_policy=problem.target)
    log_ratios = jnp.where(tr.mask > 0, tr.target_log_probs - tr.behavior_log_probs, 0.0)
    model = estimate_mdp(tr, mdp.num_observations, mdp.num_actions, mdp.gamma, horizon=problem.horizon)
    return tr, log_ratios, model_q_hat(model, problem.target, tr)
