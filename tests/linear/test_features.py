"""Feature maps against hand computations."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax import linear as L


def test_one_hot_and_per_action_layout():
    phi = L.one_hot_state_action(4, 3)
    assert phi.num_features == 12
    v = phi(2, 1)
    assert v.shape == (12,) and float(v[1 * 4 + 2]) == 1.0 and float(v.sum()) == 1.0
    table = L.all_action_features(phi, jnp.arange(4), 3)
    assert table.shape == (4, 3, 12)
    np.testing.assert_array_equal(table.reshape(12, 12), np.eye(12).reshape(3, 4, 12).transpose(1, 0, 2).reshape(12, 12))


def test_polynomial_is_lagoudakis_parr_chain_basis():
    """chain_basis_pol: terms (10 s / S)^k, k = 0..4, on 1-based s, one block per action."""
    feats = L.per_action(L.polynomial(4, scale=10 / 20), 2)
    v = feats(jnp.asarray(5.0), 1)
    np.testing.assert_allclose(v[:5], 0.0)
    np.testing.assert_allclose(v[5:], [2.5**k for k in range(5)], rtol=1e-12)


def test_polynomial_multivariate_monomials():
    feats = L.polynomial(2, num_inputs=2, offset=(0.0, 1.0))
    assert feats.num_features == math.comb(2 + 2, 2)
    x, y = 2.0, 3.0 + 1.0  # offset applied to y
    v = np.asarray(feats(jnp.asarray([2.0, 3.0])))
    assert sorted(v.tolist()) == pytest.approx(sorted([1, x, y, x * x, x * y, y * y]))
    assert v[0] == 1.0


def test_rbf_grid_values():
    feats = L.rbf_grid(low=(0.0, -1.0), high=(1.0, 1.0), num_centers=(3, 2))
    assert feats.num_features == 1 + 6
    v = np.asarray(feats(jnp.asarray([0.5, 1.0])))
    assert v[0] == 1.0
    # widths = grid spacing (0.5, 2); centre (0.5, 1) gives exactly 1; centre (0, -1) gives exp(-0.5 (1 + 1)).
    centres = [(a, b) for a in (0.0, 0.5, 1.0) for b in (-1.0, 1.0)]
    want = [np.exp(-0.5 * (((0.5 - a) / 0.5) ** 2 + ((1.0 - b) / 2.0) ** 2)) for a, b in centres]
    np.testing.assert_allclose(v[1:], want, rtol=1e-12)


def test_fourier_basis_values():
    feats = L.fourier(2, low=(0.0, 0.0), high=(2.0, 4.0))
    assert feats.num_features == 9
    v = np.asarray(feats(jnp.asarray([1.0, 1.0])))  # x̄ = (0.5, 0.25)
    coefs = sorted([(a, b) for a in range(3) for b in range(3)], key=lambda c: (sum(c), (-c[0], -c[1])))
    np.testing.assert_allclose(v, [np.cos(np.pi * (0.5 * a + 0.25 * b)) for a, b in coefs], atol=1e-12)
    np.testing.assert_allclose(feats(jnp.asarray([-5.0, 0.0])), 1.0)  # clipped to the low corner
    assert L.fourier(3, low=np.zeros(4), high=np.ones(4), max_nonzero=1).num_features == 1 + 4 * 3


def test_gymnax_defaults_work_on_cartpole_observations():
    import gymnax

    env, params = gymnax.make("CartPole-v1")
    obs, _ = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(0), 5), params)
    low, high = L.GYMNAX_BOUNDS["CartPole-v1"]
    for feats in (L.fourier(2, low, high, max_nonzero=2), L.rbf_grid(low, high, 3)):
        phi = L.featurize(feats, obs)
        assert phi.shape == (5, feats.num_features) and bool(jnp.all(jnp.isfinite(phi)))
    lo, hi = L.bounds_from_data(np.asarray(obs))
    assert np.all(lo < np.asarray(obs).min(0)) and np.all(hi > np.asarray(obs).max(0))


def test_from_function_and_expected_features():
    feats = L.from_function(lambda s, a: jnp.stack([s, s * a, 1.0]), jnp.asarray(0.0), 0)
    assert feats.num_features == 3
    phi_all = L.all_action_features(feats, jnp.asarray([1.0, 2.0]), 2)  # [2, 2, 3]
    probs = jnp.asarray([[0.25, 0.75], [1.0, 0.0]])
    np.testing.assert_allclose(L.expected_features(phi_all, probs), [[1.0, 0.75, 1.0], [2.0, 0.0, 1.0]])


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: L.one_hot(0), "num_states"),
        (lambda: L.per_action(L.one_hot(3), 0), "num_actions"),
        (lambda: L.polynomial(-1), "degree"),
        (lambda: L.rbf_grid((0.0, 1.0), (1.0,)), "low"),
        (lambda: L.rbf_grid(0.0, 1.0, 0), "num_centers"),
        (lambda: L.rbf_grid(0.0, 1.0, 3, width=-1.0), "width"),
        (lambda: L.fourier(2, 1.0, 0.0), "high"),
        (lambda: L.fourier(2, 0.0, 1.0, max_nonzero=0), "max_nonzero"),
        (lambda: L.from_function(lambda x: jnp.ones((2, 2)), jnp.ones(3)), "fn"),
        (lambda: L.bounds_from_data(np.full((3, 2), np.nan)), "observations"),
    ],
)
def test_feature_validation(make, match):
    with pytest.raises(ValueError, match=match):
        make()
