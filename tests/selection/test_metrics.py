"""Selection metrics: hand-computed cases, scipy's Spearman (ties included), jit/vmap, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from offrl_jax import selection as sel

EST = np.array([3.0, 1.0, 2.0, 5.0])
TRUE = np.array([2.0, 4.0, 1.0, 3.0])  # best: policy 1 (4), worst: policy 2 (1); spread 3


def test_accuracy_by_hand():
    np.testing.assert_allclose(sel.relative_error(EST, TRUE), [0.5, 0.75, 1.0, 2.0 / 3.0])
    # errors 1, -3, 1, 2 -> MSE (1 + 9 + 1 + 4) / 4
    np.testing.assert_allclose(sel.mean_squared_error(EST, TRUE), 15.0 / 4)
    np.testing.assert_allclose(sel.root_mean_squared_error(EST, TRUE), np.sqrt(15.0 / 4))
    # min-max normalisation by the truth divides errors by the spread 3
    np.testing.assert_allclose(sel.mean_squared_error(EST, TRUE, normalize=True), 15.0 / 4 / 9)
    np.testing.assert_allclose(sel.relative_rmse(np.array([1.0, 3.0]), 2.0), 0.5)


def test_ranking_by_hand():
    # top-1 by estimate: policy 3 (true 3); best true 4; regret (4 - 3) / 3
    np.testing.assert_allclose(sel.regret_at_k(EST, TRUE, 1), 1.0 / 3)
    np.testing.assert_allclose(sel.regret_at_k(EST, TRUE, 1, normalize=False), 1.0)
    # top-3 by estimate: {3, 0, 2} -> best true value 3 -> regret 1/3; top-4 contains policy 1
    np.testing.assert_allclose(sel.regret_at_k(EST, TRUE, 3), 1.0 / 3)
    np.testing.assert_allclose(sel.regret_at_k(EST, TRUE, 4), 0.0)
    # top-2 estimate {3, 0}, top-2 truth {1, 3}: one hit
    np.testing.assert_allclose(sel.precision_at_k(EST, TRUE, 2), 0.5)
    np.testing.assert_allclose(sel.precision_at_k(EST, TRUE, 1), 0.0)
    # Sharpe@2: top-2 {3, 0} true {3, 2}: (3 - 1.5) / std([3, 2], ddof=1)
    np.testing.assert_allclose(sel.sharpe_ratio_at_k(EST, TRUE, 1.5, 2), 1.5 / np.std([3.0, 2.0], ddof=1))
    np.testing.assert_allclose(sel.sharpe_ratio_at_k(EST, TRUE, 10.0, 2), 0.0)  # excess clipped at 0
    # ranks u = (3, 1, 2, 4), v = (2, 4, 1, 3): rho = 1 - 6 sum d^2 / (K (K^2 - 1)) = 1 - 6*12/60
    np.testing.assert_allclose(sel.spearman_rank_correlation(EST, TRUE), 1 - 6 * 12 / 60)
    np.testing.assert_allclose(sel.average_ranks(np.array([1.0, 2.0, 2.0, 0.0])), [2.0, 3.5, 3.5, 1.0])


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    k = 12
    a = rng.integers(0, 4, size=(20, k)).astype(float)  # few distinct values: many ties
    a[::2] = rng.normal(size=(10, k))  # every other row without ties
    b = a + rng.normal(size=(20, k)) * (np.arange(20) % 3)[:, None] + rng.integers(0, 3, size=(20, k))
    ours = jax.jit(jax.vmap(sel.spearman_rank_correlation))(a, b)
    ref = [scipy.stats.spearmanr(x, y)[0] for x, y in zip(a, b)]
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    assert np.isnan(sel.spearman_rank_correlation(np.ones(3), np.arange(3.0)))


def test_jit_and_vmap_over_tasks():
    rng = np.random.default_rng(1)
    est, tru = rng.normal(size=(6, 8)), rng.normal(size=(6, 8))

    def all_metrics(e, t):
        return jnp.stack([
            sel.spearman_rank_correlation(e, t), sel.regret_at_k(e, t, 2), sel.precision_at_k(e, t, 3),
            sel.sharpe_ratio_at_k(e, t, 0.0, 3), sel.root_mean_squared_error(e, t, normalize=True),
        ])

    batched = jax.jit(jax.vmap(all_metrics))(est, tru)
    looped = np.stack([all_metrics(e, t) for e, t in zip(est, tru)])
    np.testing.assert_allclose(batched, looped, rtol=1e-12)
    assert batched.shape == (6, 5)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: sel.spearman_rank_correlation(np.ones(3), np.ones(4)), "true_values"),
        (lambda: sel.regret_at_k(np.ones((2, 3)), np.ones((2, 3))), "estimates"),
        (lambda: sel.regret_at_k(EST, TRUE, 5), "k"),
        (lambda: sel.precision_at_k(EST, TRUE, 0), "k"),
        (lambda: sel.sharpe_ratio_at_k(EST, TRUE, 0.0, 1), "k"),
        (lambda: sel.sharpe_ratio_at_k(EST, TRUE, np.ones(2), 2), "behavior_value"),
        (lambda: sel.mean_squared_error(np.array([1.0, np.nan]), np.ones(2)), "estimates"),
        (lambda: sel.spearman_rank_correlation(np.ones(1), np.ones(1)), "estimates"),
        (lambda: sel.relative_rmse(np.ones(3), np.ones(2)), "true_value"),
    ],
)
def test_errors_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
