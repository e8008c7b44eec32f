"""The documented DICE training path validates: ``mis.make_train(config, w, c)(key, data)``
refuses bad data (a raw DiceData) with a ValueError naming the field, before tracing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.mis import DiceConfig, DiceData, DiceNetwork, make_train, validate_data

O, A = 3, 2
CFG = DiceConfig(gamma=0.9, batch_size=None, initial_batch_size=None, num_steps=2)
NET = DiceNetwork(num_actions=A, hidden_sizes=(), num_observations=O, use_bias=False)


def _data(**change):
    f = dict(observations=np.array([0, 1, 2]), actions=np.array([0, 1, 1]), rewards=np.array([1.0, 0.0, 2.0]),
             next_observations=np.array([1, 2, 0]), discounts=np.ones(3), next_target_probs=np.full((3, A), 0.5),
             initial_observations=np.array([0, 1]), initial_target_probs=np.full((2, A), 0.5))
    f.update(change)
    return DiceData(**{k: jnp.asarray(v) for k, v in f.items()})  # raw constructor: unchecked


@pytest.fixture(scope="module")
def train():
    return make_train(CFG, NET, NET)


def test_checked_train_equals_unchecked_program(train):
    res = train(jax.random.key(0), _data())
    ref = jax.jit(train.unchecked)(jax.random.key(0), _data())
    np.testing.assert_array_equal(res.metrics.loss, ref.metrics.loss)


@pytest.mark.parametrize(
    "change,field",
    [
        (dict(actions=np.array([0, 2, 1])), "actions"),
        (dict(next_observations=np.array([1, 3, 0])), "next_observations"),
        (dict(rewards=np.array([1.0, np.nan, 2.0])), "rewards"),
        (dict(discounts=np.array([1.0, np.inf, 1.0])), "discounts"),
    ],
)
def test_documented_path_refuses_bad_data(train, change, field):
    bad = _data(**change)
    with pytest.raises(ValueError, match=field):
        train(jax.random.key(0), bad)
    with pytest.raises(ValueError, match=field):
        validate_data(CFG, bad, NET, NET)
