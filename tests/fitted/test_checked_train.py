"""The documented training path validates: ``make_train(cfg, pi)(key, data)`` and
``train.seeds(g)(keys, data)`` refuse bad data with a ValueError naming the field, before
tracing, and equal the unchecked jitted program on good data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.data import Transitions
from offrl_jax.fitted import FittedQConfig, make_train, validate_data

O, A = 3, 2
CFG = FittedQConfig(num_actions=A, num_observations=O, hidden_sizes=(), gamma=0.9, batch_size=None,
                    num_steps=3, learning_rate=0.1, target_update_period=1)
PI = jnp.full((O, A), 0.5)


def _data(**change):
    f = dict(observations=np.array([0, 1, 2, 1]), actions=np.array([0, 1, 1, 0]), rewards=np.array([1.0, 0.0, 2.0, 1.0]),
             next_observations=np.array([1, 2, 0, 0]), discounts=np.ones(4))
    f.update(change)
    return Transitions(**{k: jnp.asarray(v) for k, v in f.items()})  # raw constructor: unchecked


@pytest.fixture(scope="module")
def train():
    return make_train(CFG, PI)


def test_checked_train_equals_unchecked_program(train):
    data = _data()
    res = train(jax.random.key(0), data)
    ref = jax.jit(train.unchecked)(jax.random.key(0), data)
    np.testing.assert_array_equal(res.metrics.loss, ref.metrics.loss)
    assert np.all(np.isfinite(res.metrics.loss))


@pytest.mark.parametrize(
    "change,field",
    [
        (dict(actions=np.array([0, 1, 2, 0])), "actions"),
        (dict(next_observations=np.array([1, 3, 0, 0])), "next_observations"),
        (dict(observations=np.array([0, -1, 2, 1])), "observations"),
        (dict(rewards=np.array([1.0, np.nan, 2.0, 1.0])), "data.rewards"),
        (dict(discounts=np.array([1.0, 1.0, np.inf, 1.0])), "data.discounts"),
        (dict(discounts=np.array([1.0, 1.0, 2.0, 1.0])), "data.discounts"),
    ],
)
def test_documented_path_refuses_bad_data(train, change, field):
    bad = _data(**change)
    with pytest.raises(ValueError, match=field):
        train(jax.random.key(0), bad)
    with pytest.raises(ValueError, match=field):
        train.seeds(2)(jax.random.split(jax.random.key(0), 2), bad)
    with pytest.raises(ValueError, match=field):
        validate_data(CFG, bad, PI)  # what to call before a jax.jit of one's own
