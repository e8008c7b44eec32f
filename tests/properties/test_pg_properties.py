"""Property-based tests of offrl_jax.pg: surrogate values and gradients equal float64 numpy
importance-sampling references on random data; invalid data and configs give a ValueError
naming the argument. Fixed shapes [N, T] = [3, 4], deterministic."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offrl_jax import pg, policies
from offrl_jax.data import Trajectories

N, T, GAMMA = 3, 4, 0.9
CHEAP = settings.get_profile("offrl_cheap")  # registered in conftest.py


def _arr(lo, hi):
    return st.lists(st.floats(lo, hi, allow_subnormal=False), min_size=N * T, max_size=N * T).map(lambda x: np.array(x).reshape(N, T))


_lengths = st.lists(st.integers(1, T), min_size=N, max_size=N).map(
    lambda ls: (np.arange(T)[None, :] < np.array(ls)[:, None]).astype(float)
)


def _value_and_grad(name):
    def f(tlp, blp, r, mask):
        if name == "trajectory":
            return pg.trajectory_surrogate(tlp, blp, r, mask, GAMMA)
        if name == "per_decision":
            return pg.per_decision_surrogate(tlp, blp, r, mask, GAMMA)
        return pg.first_order_surrogate(tlp, blp, pg.returns_to_go(r, mask, GAMMA), mask, GAMMA)

    return jax.jit(jax.value_and_grad(f))


_FNS = {name: _value_and_grad(name) for name in ("trajectory", "per_decision", "first_order")}
_RTG = jax.jit(pg.returns_to_go)


def _reference(name, tlp, blp, r, mask):
    """float64 numpy: the IS value and d value / d log pi(a_t|s_t) (the score coefficients)."""
    disc = GAMMA ** np.arange(T)
    lr = (tlp - blp) * mask
    rd = r * mask * disc
    if name == "trajectory":
        w = np.exp(lr.sum(1)) / N
        return np.sum(w * rd.sum(1)), w[:, None] * rd.sum(1)[:, None] * mask
    if name == "per_decision":
        w = np.exp(np.cumsum(lr, 1)) / N
        return np.sum(w * rd), np.flip(np.cumsum(np.flip(w * rd, 1), 1), 1) * mask
    rtg = np.flip(np.cumsum(np.flip(rd, 1), 1), 1) / disc  # discounted reward-to-go from t
    coef = np.exp(lr) / N * disc * rtg * mask
    return np.sum(coef), coef


@CHEAP
@given(name=st.sampled_from(sorted(_FNS)), tlp=_arr(-3, 0), blp=_arr(-3, -0.01), r=_arr(-5, 5), mask=_lengths)
def test_surrogates_equal_float64_reference(name, tlp, blp, r, mask):
    value, grad = _FNS[name](tlp, blp, r, mask)
    ref_value, ref_grad = _reference(name, tlp, blp, r, mask)
    assert np.isfinite(float(value))
    np.testing.assert_allclose(value, ref_value, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-12)


@CHEAP
@given(r=_arr(-5, 5), mask=_lengths, gamma=st.floats(0, 1))
def test_returns_to_go_equal_reference(r, mask, gamma):
    ref = np.zeros((N, T))
    for t in range(T):
        ref[:, t] = np.sum(r[:, t:] * mask[:, t:] * gamma ** np.arange(T - t), 1)
    np.testing.assert_allclose(_RTG(r, mask, gamma), ref * mask, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Invalid inputs.
# ---------------------------------------------------------------------------------------------
def _traj(**change):
    f = dict(observations=np.zeros((N, T), int), actions=np.zeros((N, T), int), rewards=np.ones((N, T)),
             next_observations=np.zeros((N, T), int), discounts=np.ones((N, T)), mask=np.ones((N, T)),
             behavior_log_probs=np.full((N, T), -0.5))
    f.update(change)
    return Trajectories(**{k: jnp.asarray(v) for k, v in f.items()})


@CHEAP
@given(field=st.sampled_from(["rewards", "behavior_log_probs", "q_hat", "baseline", "state_weights"]),
       bad=st.sampled_from([np.nan, np.inf, 0.5]), i=st.integers(0, N - 1), t=st.integers(0, T - 1))
def test_pg_batch_refuses_invalid_values(field, bad, i, t):
    x = np.full((N, T), -0.5 if field == "behavior_log_probs" else 1.0)
    x[i, t] = bad
    if field == "state_weights" and bad == 0.5:
        x[i, t] = -0.5
    if field in ("rewards", "q_hat", "baseline") and bad == 0.5:
        return  # a legal value
    if field in ("rewards", "behavior_log_probs"):
        with pytest.raises(ValueError, match=field):
            pg.pg_batch(_traj(**{field: x}))
    else:
        with pytest.raises(ValueError, match=field):
            pg.pg_batch(_traj(), **{field: x})


@settings(CHEAP, max_examples=10)
@given(action=st.one_of(st.integers(-5, -1), st.integers(2, 9)), i=st.integers(0, N - 1), t=st.integers(0, T - 1),
       estimator=st.text(min_size=1, max_size=5), gamma=st.one_of(st.floats(1.001, 5), st.floats(-5, -0.001)))
def test_validate_data_and_config_refuse_invalid(action, i, t, estimator, gamma):
    policy, config = policies.tabular_softmax(1, 2), pg.PGConfig()
    batch = pg.pg_batch(_traj())
    pg.validate_data(config, batch, policy)  # the valid batch passes
    acts = np.zeros((N, T), int)
    acts[i, t] = action
    with pytest.raises(ValueError, match="data.actions"):
        pg.validate_data(config, batch.replace(actions=jnp.asarray(acts)), policy)
    with pytest.raises(ValueError, match="estimator"):
        pg.PGConfig(estimator=estimator)
    with pytest.raises(ValueError, match="gamma"):
        pg.PGConfig(gamma=gamma)


# ---------------------------------------------------------------------------------------------
# The dtype policy, as a matrix (dtype x function), against the float64 result.
# ---------------------------------------------------------------------------------------------
_RNG = np.random.default_rng(1)
_R = _RNG.integers(-2, 3, (N, T))
_TLP, _BLP = np.log(np.full((N, T), 0.25)), np.log(np.full((N, T), 0.5))



_PG_FUNCTIONS = {
    "returns_to_go": lambda c: pg.returns_to_go(c(_R), np.ones((N, T)), GAMMA),
    "trajectory_surrogate": lambda c: pg.trajectory_surrogate(_TLP, _BLP, c(_R), c(np.ones((N, T))), GAMMA),
    "per_decision_surrogate": lambda c: pg.per_decision_surrogate(_TLP, _BLP, c(_R), np.ones((N, T)), GAMMA,
                                                                  q_hat=c(_R), baseline=c(1)),
    "state_marginal_surrogate": lambda c: pg.state_marginal_surrogate(_TLP, _BLP, c(_R), c(np.ones((N, T))),
                                                                      np.ones((N, T)), GAMMA),
}


@pytest.mark.parametrize("name", sorted(_PG_FUNCTIONS))
def test_dtype_matrix(name, dtype_matrix):
    dtype_matrix(_PG_FUNCTIONS[name])
