"""Effective sample size, largest weight share, per-step ESS."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax import core


def test_ess_and_share_match_definitions():
    w = np.array([1.0, 2.0, 3.0, 0.5])
    assert float(core.effective_sample_size(np.log(w))) == pytest.approx(w.sum() ** 2 / (w**2).sum(), rel=1e-12)
    assert float(core.max_weight_share(np.log(w))) == pytest.approx(3.0 / w.sum(), rel=1e-12)
    assert float(core.effective_sample_size(np.zeros(7))) == pytest.approx(7.0)
    assert float(core.effective_sample_size(np.array([0.0, -np.inf, -np.inf]))) == pytest.approx(1.0)
    assert float(core.effective_sample_size(np.full(3, -np.inf))) == 0.0
    assert float(core.max_weight_share(np.full(3, -np.inf))) == 0.0


def test_huge_log_weights_in_float32():
    lw = jnp.array([1000.0, 1000.0, 1000.0 + np.log(2.0)], jnp.float32)
    assert float(core.effective_sample_size(lw)) == pytest.approx(16 / 6, rel=1e-4)
    assert float(core.max_weight_share(lw)) == pytest.approx(0.5, rel=1e-4)


def test_per_step_ess_decays_under_mismatch():
    rng = np.random.default_rng(0)
    n, t = 400, 12
    # Behaviour uniform over 2 actions, target (0.9, 0.1): ratios 1.8 or 0.2.
    acts = rng.integers(0, 2, size=(n, t))
    lr = np.log(np.where(acts == 0, 1.8, 0.2))
    ess = np.asarray(core.per_timestep_ess(lr, np.ones((n, t))))
    # E[rho^2] = 1.64 per step, so ESS_t ~ N / 1.64^{t+1}.
    expect = n / 1.64 ** (np.arange(t) + 1)
    assert np.all(np.diff(ess[:6]) < 0)
    np.testing.assert_allclose(ess[:4], expect[:4], rtol=0.25)
    assert ess[-1] < 0.05 * n


def test_weight_diagnostics_struct_jit_and_padding():
    lr = np.log(np.array([[2.0, 2.0, 1.0], [0.5, 1.0, 1.0]]))
    m = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    d = core.weight_diagnostics(lr, m)
    w = np.array([4.0, 0.5])  # final weights (padding frozen)
    assert float(d.ess) == pytest.approx(w.sum() ** 2 / (w**2).sum(), rel=1e-12)
    assert float(d.ess_fraction) == pytest.approx(float(d.ess) / 2)
    assert float(d.max_weight_share) == pytest.approx(4.0 / 4.5, rel=1e-12)
    assert float(d.max_log_weight) == pytest.approx(np.log(4.0)) and not bool(d.zero_weight_sum)
    np.testing.assert_allclose(d.per_step_ess[0], (2.5**2) / (4 + 0.25), rtol=1e-12)
    dj = jax.jit(core.weight_diagnostics)(lr, m)
    for a, b in zip(d, dj):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    with pytest.raises(ValueError, match="log_ratios"):
        core.weight_diagnostics(np.full((2, 3), np.inf), m)
