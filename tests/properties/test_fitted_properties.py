"""Property-based tests of offrl_jax.fitted: TD targets and losses equal float64 numpy
references; invalid configs and data give a ValueError naming the field (no training here;
training is covered in tests/fitted). Fixed shapes, deterministic."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offrl_jax import fitted
from offrl_jax.data import Transitions

B, A, O = 5, 3, 4
CHEAP = settings.get_profile("offrl_cheap")  # registered in conftest.py


def _vec(lo, hi, n=B):
    return st.lists(st.floats(lo, hi, allow_subnormal=False), min_size=n, max_size=n).map(np.array)


_targets = jax.jit(lambda r, d, q, p, q2, g: (fitted.fqe_targets(r, d, q, p, g), fitted.fqi_targets(r, d, q, g),
                                               fitted.fqi_targets(r, d, q, g, q2)))
_losses = jax.jit(lambda x, y, delta: (fitted.l2_loss(x, y), fitted.huber_loss(x, y, delta)))


@CHEAP
@given(r=_vec(-5, 5), d=st.lists(st.sampled_from([0.0, 1.0]), min_size=B, max_size=B).map(np.array),
       q=_vec(-5, 5, B * A), q2=_vec(-5, 5, B * A), p=_vec(0.01, 1, B * A), gamma=st.floats(0, 1))
def test_targets_equal_float64_reference(r, d, q, q2, p, gamma):
    q, q2, p = q.reshape(B, A), q2.reshape(B, A), p.reshape(B, A)
    p = p / p.sum(1, keepdims=True)
    fqe, fqi, dbl = _targets(r, d, q, p, q2, gamma)
    np.testing.assert_allclose(fqe, r + gamma * d * np.sum(p * q, 1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fqi, r + gamma * d * q.max(1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dbl, r + gamma * d * q[np.arange(B), q2.argmax(1)], rtol=1e-12, atol=1e-12)


@CHEAP
@given(x=_vec(-5, 5), y=_vec(-5, 5), delta=st.floats(0.1, 3))
def test_losses_equal_float64_reference(x, y, delta):
    l2, hub = _losses(x, y, delta)
    e = np.abs(x - y)
    np.testing.assert_allclose(l2, np.mean(0.5 * e**2), rtol=1e-12)
    np.testing.assert_allclose(hub, np.mean(np.where(e <= delta, 0.5 * e**2, delta * (e - 0.5 * delta))), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Invalid configs and data.
# ---------------------------------------------------------------------------------------------
_BAD_FIELDS = st.sampled_from([
    ("num_steps", st.integers(-5, 0)), ("batch_size", st.integers(-5, 0)), ("learning_rate", st.floats(-1, 0)),
    ("gamma", st.floats(1.001, 5)), ("target_update_period", st.integers(-3, 0)), ("hidden_sizes", st.just((0,))),
    ("method", st.text(max_size=3)), ("loss", st.text(max_size=3)), ("tau", st.floats(1.001, 3)),
])


@CHEAP
@given(st.data())
def test_config_refuses_invalid_fields(data):
    field, values = data.draw(_BAD_FIELDS)
    value = data.draw(values)
    with pytest.raises(ValueError, match=field):
        fitted.FittedQConfig(num_actions=A, **{field: value})


CFG = fitted.FittedQConfig(num_actions=A, num_observations=O, hidden_sizes=(), batch_size=None, num_steps=1)
PI = np.full((O, A), 1.0 / A)


def _data(**change):
    f = dict(observations=np.arange(B) % O, actions=np.arange(B) % A, rewards=np.ones(B),
             next_observations=(np.arange(B) + 1) % O, discounts=np.ones(B))
    f.update(change)
    return Transitions(**{k: jnp.asarray(v) for k, v in f.items()})


@CHEAP
@given(field=st.sampled_from(["actions", "observations", "next_observations", "rewards", "discounts"]),
       where=st.integers(0, B - 1), bad=st.sampled_from(["low", "high", "nan", "inf"]))
def test_validate_data_refuses_invalid_values(field, where, bad):
    fitted.validate_data(CFG, _data(), PI)  # the valid data pass
    x = np.array(getattr(_data(), field))
    if field in ("rewards", "discounts"):
        x = x.astype(float)
        x[where] = {"low": -0.5, "high": 1.5, "nan": np.nan, "inf": np.inf}[bad]
        if field == "rewards" and bad in ("low", "high"):
            return  # legal rewards
    else:
        if bad in ("nan", "inf"):
            bad = "high"
        x[where] = -1 if bad == "low" else {"actions": A, "observations": O, "next_observations": O}[field]
    with pytest.raises(ValueError, match=field):
        fitted.validate_data(CFG, _data(**{field: x}), PI)


# ---------------------------------------------------------------------------------------------
# The dtype policy, as a matrix (dtype x function), against the float64 result.
# ---------------------------------------------------------------------------------------------

_R, _Q = np.arange(B) - 2, (np.arange(B * A).reshape(B, A) % 4)
_FITTED_FUNCTIONS = {
    "fqe_targets": lambda c: fitted.fqe_targets(c(_R), c(np.ones(B)), c(_Q), np.full((B, A), 1 / A), 0.9),
    "fqi_targets": lambda c: fitted.fqi_targets(c(_R), c(np.ones(B)), c(_Q), 0.9),
    "huber_loss": lambda c: fitted.huber_loss(c(_R), c(_Q[:, 0])),
}


@pytest.mark.parametrize("name", sorted(_FITTED_FUNCTIONS))
def test_dtype_matrix(name, dtype_matrix):
    dtype_matrix(_FITTED_FUNCTIONS[name])
