"""Property-based tests of offrl_jax.mis: random valid inputs give finite results equal to a
float64 numpy reference; random invalid inputs give a ValueError naming the argument.

Fixed small shapes (one compile), values drawn by hypothesis, deterministic (derandomize)."""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offrl_jax.data import Trajectories, Transitions
from offrl_jax.mis import (
    DiceConfig,
    DiceData,
    dice_data_from_trajectories,
    mis_estimate,
    mis_finite_horizon,
    ratios_at,
    tabular_mis,
    tabular_ratios,
    tabular_time_mis,
)

S, A, M, N0, GAMMA = 3, 2, 10, 3, 0.8
CHEAP = settings.get_profile("offrl_cheap")  # registered in conftest.py

_ratios = jax.jit(tabular_ratios)


def _ints(size, high):
    return st.lists(st.integers(0, high - 1), min_size=size, max_size=size).map(np.array)


def _policy():
    return st.lists(st.floats(0.05, 1.0), min_size=S * A, max_size=S * A).map(
        lambda x: (lambda p: p / p.sum(-1, keepdims=True))(np.array(x).reshape(S, A))
    )


def _reference(s, a, s2, d, s0, pi, gamma):
    """float64 numpy: (diag(n) - gamma Pbar^T) w = (1 - gamma) M dbar0 on logged pairs."""
    n = np.zeros((S, A))
    np.add.at(n, (s, a), 1.0)
    trans = np.zeros((S, A, S))
    np.add.at(trans, (s, a, s2), d)
    pbar = (trans[..., None] * pi[None, None]).reshape(S * A, S * A)
    mu0 = np.bincount(s0, minlength=S) / len(s0)
    b = (1 - gamma) * len(s) * (mu0[:, None] * pi).reshape(-1)
    sup = n.reshape(-1) > 0
    mat = np.diag(n.reshape(-1)) - gamma * pbar.T
    w = np.zeros(S * A)
    w[sup] = np.linalg.solve(mat[np.ix_(sup, sup)], b[sup])
    return w.reshape(S, A)


@CHEAP
@given(s=_ints(M, S), a=_ints(M, A), s2=_ints(M, S), s0=_ints(N0, S), pi=_policy(),
       r=st.lists(st.floats(-5, 5), min_size=M, max_size=M).map(np.array), term=_ints(M, 2))
def test_tabular_ratios_equal_float64_reference(s, a, s2, s0, pi, r, term):
    d = 1.0 - term.astype(float)
    res = _ratios(s, a, s2, d, None, s0, pi, GAMMA)
    ref = _reference(s, a, s2, d, s0, pi, GAMMA)
    np.testing.assert_allclose(res.weights, ref, rtol=1e-8, atol=1e-10)
    w = ref[s, a]
    assert np.isfinite(float(res.unsupported_mass))
    np.testing.assert_allclose(res.unsupported_mass, (1 - GAMMA) + GAMMA * np.mean(d * w) - np.mean(w), atol=1e-10)
    est = mis_estimate(ratios_at(res.weights, s, a), r, None, GAMMA)
    np.testing.assert_allclose(est, np.mean(w * r) / (1 - GAMMA), rtol=1e-8, atol=1e-10)


@CHEAP
@given(w=st.lists(st.floats(0, 10), min_size=8, max_size=8), r=st.lists(st.floats(-5, 5), min_size=8, max_size=8),
       length=st.integers(1, 4), gamma=st.floats(0, 1))
def test_finite_horizon_estimate_equals_reference(w, r, length, gamma):
    w, r = np.array(w).reshape(2, 4), np.array(r).reshape(2, 4)
    mask = np.ones((2, 4))
    mask[1, length:] = 0
    ref = np.sum(w * r * mask * gamma ** np.arange(4)) / 2
    np.testing.assert_allclose(mis_finite_horizon(w, r, mask, gamma), ref, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Invalid inputs: ValueError naming the argument, on the host (no JAX error).
# ---------------------------------------------------------------------------------------------
def _transitions(s, a, s2):
    return Transitions.create(observations=s, actions=a, rewards=np.ones(M), next_observations=s2, discounts=np.ones(M))


@CHEAP
@given(s=_ints(M, S), a=_ints(M, A), s2=_ints(M, S), where=st.integers(0, M - 1),
       field=st.sampled_from(["observations", "actions", "next_observations"]),
       bad=st.one_of(st.integers(-5, -1), st.integers(3, 9), st.floats(0.1, 0.9)))
def test_tabular_mis_refuses_bad_indices(s, a, s2, where, field, bad):
    arrays = {"observations": s.astype(float), "actions": a.astype(float), "next_observations": s2.astype(float)}
    arrays[field][where] = bad if not (field == "actions" and bad == 3) else 2
    data = _transitions(arrays["observations"], arrays["actions"], arrays["next_observations"])
    with pytest.raises(ValueError, match=f"data.{field}"):
        tabular_mis(data, np.full((S, A), 0.5), GAMMA, initial_states=s[:2])
    traj = Trajectories.create(**{k: v.reshape(2, 5) for k, v in arrays.items()}, rewards=np.ones((2, 5)),
                               discounts=np.ones((2, 5)), mask=np.ones((2, 5)))
    with pytest.raises(ValueError, match=f"trajectories.{field}"):
        tabular_time_mis(traj, np.full((S, A), 0.5), GAMMA)
    with pytest.raises(ValueError, match=f"trajectories.{field}"):
        dice_data_from_trajectories(traj, np.full((S, A), 0.5))


@CHEAP
@given(s=_ints(M, S), a=_ints(M, A), gamma=st.one_of(st.floats(1.0, 3.0), st.floats(-3.0, -1e-3)),
       row=st.floats(0.0, 0.9))
def test_tabular_entry_points_refuse_bad_gamma_and_policy(s, a, gamma, row):
    data = _transitions(s, a, s)
    with pytest.raises(ValueError, match="gamma"):
        tabular_mis(data, np.full((S, A), 0.5), gamma, initial_states=s[:2])
    pi = np.full((S, A), 0.5)
    pi[0] = [row, 0.05]
    with pytest.raises(ValueError, match="target_policy"):
        tabular_mis(data, pi, GAMMA, initial_states=s[:2])
    with pytest.raises(ValueError, match="target_policy"):
        tabular_ratios(s, a, s, np.ones(M), None, s[:2], pi, GAMMA)
    with pytest.raises(ValueError, match="states"):
        ratios_at(np.ones((S, A)), s + S, a)


@CHEAP
@given(field=st.sampled_from(["rewards", "discounts", "next_target_probs", "initial_target_probs"]),
       bad=st.sampled_from([np.nan, np.inf, -np.inf]), gamma=st.one_of(st.floats(1.0, 2.0), st.floats(-1, -1e-6)))
def test_dice_data_and_config_refuse_invalid(field, bad, gamma):
    f = dict(observations=np.arange(4) % S, actions=np.arange(4) % A, rewards=np.ones(4), next_observations=np.arange(4) % S,
             discounts=np.ones(4), next_target_probs=np.full((4, A), 0.5), initial_observations=np.array([0]),
             initial_target_probs=np.full((1, A), 0.5))
    f[field] = np.array(f[field], float)
    f[field].flat[0] = bad
    with pytest.raises(ValueError, match=field):
        DiceData.create(**f)
    with pytest.raises(ValueError, match="gamma"):
        DiceConfig(gamma=gamma)


# ---------------------------------------------------------------------------------------------
# The dtype policy, as a matrix (dtype x function), against the float64 result.
# ---------------------------------------------------------------------------------------------
_RNG = np.random.default_rng(0)
_S, _A, _S2 = _RNG.integers(0, S, (2, 5)), _RNG.integers(0, A, (2, 5)), _RNG.integers(0, S, (2, 5))
_R = _RNG.integers(-2, 3, (2, 5))



_MIS_FUNCTIONS = {
    "tabular_mis": lambda c: tabular_mis(Trajectories.create(
        observations=_S, actions=_A, rewards=c(_R), next_observations=_S2, discounts=np.ones((2, 5)),
        mask=c(np.ones((2, 5)))), np.full((S, A), 0.5), GAMMA).estimate,
    "tabular_time_mis": lambda c: tabular_time_mis(Trajectories.create(
        observations=(c(_S) if c.kind != "float16" else np.asarray(_S, np.float32)), actions=_A, rewards=c(_R), next_observations=_S2,
        discounts=np.ones((2, 5)), mask=np.ones((2, 5))), np.full((S, A), 0.5), GAMMA).estimate,
    "mis_estimate": lambda c: mis_estimate(c(np.abs(_R)), c(_R), None, GAMMA),
    "mis_finite_horizon": lambda c: mis_finite_horizon(c(np.abs(_R)), c(_R), np.ones((2, 5)), GAMMA),
}


@pytest.mark.parametrize("name", sorted(_MIS_FUNCTIONS))
def test_dtype_matrix(name, dtype_matrix):
    dtype_matrix(_MIS_FUNCTIONS[name])
