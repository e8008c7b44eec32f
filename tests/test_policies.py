"""Differentiable categorical policies: probabilities, log-probabilities, scores, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.policies import categorical_log_prob, mlp_categorical, tabular_softmax


def test_tabular_softmax_log_prob_and_score():
    theta = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4)))
    pol = tabular_softmax(3, 4, init_logits=theta, temperature=2.0)
    params = pol.init(jax.random.key(0))
    table = np.asarray(pol.probs(params, jnp.arange(3)))
    expect = np.exp(np.asarray(theta) / 2) / np.exp(np.asarray(theta) / 2).sum(-1, keepdims=True)
    np.testing.assert_allclose(table, expect, rtol=1e-12)
    obs, act = jnp.array([[0, 2], [1, 1]]), jnp.array([[3, 0], [1, 2]])
    np.testing.assert_allclose(pol.log_prob(params, obs, act), np.log(expect[obs, act]), rtol=1e-12)
    # Score of the softmax: d log π(a|o) / dθ[o, :] = (e_a − π(·|o)) / τ.
    score = jax.grad(lambda th: pol.log_prob(th, jnp.array(2), jnp.array(1)))(params)
    ref = np.zeros((3, 4))
    ref[2] = -expect[2] / 2
    ref[2, 1] += 0.5
    np.testing.assert_allclose(score, ref, rtol=1e-12, atol=1e-15)
    assert np.allclose(tabular_softmax(3, 4).init(jax.random.key(0)), 0.0)


def test_categorical_log_prob_is_normalised():
    logits = jnp.asarray(np.random.default_rng(1).normal(size=(5, 3)))
    lp = jnp.stack([categorical_log_prob(logits, jnp.full(5, a)) for a in range(3)], -1)
    np.testing.assert_allclose(jax.nn.logsumexp(lp, -1), 0.0, atol=1e-12)


def test_mlp_categorical_integer_and_vector_observations_agree():
    pol_int = mlp_categorical(3, num_observations=5, hidden_sizes=(8,), dtype=jnp.float64)
    pol_vec = mlp_categorical(3, observation_dim=5, hidden_sizes=(8,), dtype=jnp.float64)
    obs = jnp.array([[0, 4, 2], [1, 1, 3]])
    act = jnp.array([[2, 0, 1], [0, 1, 2]])

    @jax.jit
    def everything(key):  # one compiled program for all the checks (eager: one primitive at a time)
        params = pol_int.init(key)
        a = pol_int.log_prob(params, obs, act)
        b = pol_vec.log_prob(params, jax.nn.one_hot(obs, 5, dtype=jnp.float64), act)
        grads = jax.grad(lambda p: pol_int.log_prob(p, obs, act).sum())(params)
        return params, a, b, pol_int.probs(params, jnp.arange(5)), grads

    params, a, b, probs, grads = everything(jax.random.key(0))
    assert a.shape == (2, 3)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(pol_int.log_prob(params, obs, act), a, rtol=1e-12)  # eager equals jit
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(jnp.log(probs[obs, act]), a, rtol=1e-10)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


def test_policy_validation():
    with pytest.raises(ValueError, match="init_logits"):
        tabular_softmax(3, 4, init_logits=jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="init_logits"):
        tabular_softmax(2, 2, init_logits=jnp.array([[0.0, jnp.nan], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="temperature"):
        tabular_softmax(3, 4, temperature=0.0)
    with pytest.raises(ValueError, match="num_observations"):
        tabular_softmax(0, 4)
    with pytest.raises(ValueError, match="observation_dim"):
        mlp_categorical(3)
    with pytest.raises(ValueError, match="observation_dim"):
        mlp_categorical(3, observation_dim=2, num_observations=2)
    with pytest.raises(ValueError, match="hidden_sizes"):
        mlp_categorical(3, observation_dim=2, hidden_sizes=(0,))
