"""The certainty-equivalence model estimated from data."""

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.core import ModelTerms
from offrl_jax.envs import TabularMDP, policy_value, q_values, rollout
from offrl_jax.envs.empirical import estimate_mdp, model_q_hat
from offrl_jax.envs.suite import graph, graph_policy

F64 = jnp.float64

# Jitted once per module: eager calls of these run op by op and compile every primitive.
_rollout = jax.jit(rollout, static_argnums=(3, 4))
_estimate_mdp = jax.jit(estimate_mdp, static_argnums=(1, 2, 4))
_model_q_hat = jax.jit(model_q_hat)
_policy_value = jax.jit(policy_value)
_q_values = jax.jit(q_values)


def test_deterministic_mdp_is_recovered_exactly():
    mdp = graph(horizon=5, stochastic=False, dtype=F64)
    pi_b, pi_e = graph_policy(mdp, 0.5), graph_policy(mdp, 0.2)
    traj = _rollout(jax.random.key(0), mdp, pi_b, 400, 5)
    model = _estimate_mdp(traj, mdp.num_states, 2, 0.98, 5)
    pad = jnp.concatenate([pi_e, jnp.full((1, 2), 0.5, F64)])
    np.testing.assert_allclose(_policy_value(model, pad), _policy_value(mdp, pi_e), rtol=1e-12)
    terms = _model_q_hat(model, pi_e, traj)
    assert isinstance(terms, ModelTerms)  # produced by core.model_terms
    q_taken, v_hat = terms
    q_true = _q_values(mdp, pi_e)  # [H, S, A]
    t = np.broadcast_to(np.arange(5), (400, 5))
    s, a = np.asarray(traj.states), np.asarray(traj.actions)
    np.testing.assert_allclose(q_taken, np.asarray(q_true)[t, s, a], atol=1e-12)
    np.testing.assert_allclose(v_hat, np.sum(np.asarray(q_true)[t, s] * np.asarray(pi_e)[s], -1), atol=1e-12)


def test_transition_estimates_within_standard_errors_and_terminal_state():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), size=(3, 2))
    p = np.concatenate([p, np.zeros((3, 2, 1))], -1) * 0.9
    p[..., 3] = 0.1  # 10% chance of termination from every pair
    p = np.concatenate([p, np.zeros((1, 2, 4))], 0)
    p[3, :, 3] = 1.0
    r = np.concatenate([rng.normal(size=(3, 2)), np.zeros((1, 2))])
    mdp = TabularMDP.create(p, r, [1 / 3, 1 / 3, 1 / 3, 0], 0.9, terminal=[0, 0, 0, 1], dtype=F64)
    pi = jnp.full((4, 2), 0.5, F64)
    traj = _rollout(jax.random.key(1), mdp, pi, 3000, 30)
    model = _estimate_mdp(traj, 3, 2, 0.9)  # observations 0..2 ever seen at s_t; 3 = terminal
    n = np.zeros((3, 2))
    np.add.at(n, (np.asarray(traj.observations), np.asarray(traj.actions)), np.asarray(traj.mask))
    # Termination probability 0.1 from every pair, within 4 standard errors.
    p_term = np.asarray(model.transitions[:3, :, 3])
    assert np.all(np.abs(p_term - 0.1) < 4 * np.sqrt(0.09 / n))
    p_hat = np.asarray(model.transitions[:3, :, :3])
    se = np.sqrt(p[:3, :, :3] * (1 - p[:3, :, :3]) / n[..., None])
    assert np.all(np.abs(p_hat - p[:3, :, :3]) < 4 * se + 1e-12)
    assert bool(model.terminal[3]) and float(model.rewards[3].sum()) == 0.0
    np.testing.assert_allclose(model.transitions.sum(-1), 1.0, rtol=1e-12)
