"""The documented training path validates: ``pg.make_train(config, policy)(key, batch)`` and
``train.seeds(g)`` refuse bad data with a ValueError naming the field, before tracing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax import pg, policies

O, A = 3, 2
POLICY = policies.tabular_softmax(O, A)
CFG = pg.PGConfig(estimator="per_decision", gamma=0.9, num_steps=2, learning_rate=0.1)


def _batch(**change):
    f = dict(observations=np.array([[0, 1, 2], [2, 1, 0]]), actions=np.array([[0, 1, 1], [1, 0, 0]]),
             rewards=np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]]), mask=np.array([[1.0, 1, 1], [1, 1, 0]]),
             behavior_log_probs=np.log(np.full((2, 3), 0.5)))
    f.update(change)
    return pg.PGBatch(**{k: jnp.asarray(v) for k, v in f.items()})  # raw constructor: unchecked


@pytest.fixture(scope="module")
def train():
    return pg.make_train(CFG, POLICY)


def test_checked_train_equals_unchecked_program(train):
    res = train(jax.random.key(0), _batch())
    ref = jax.jit(train.unchecked)(jax.random.key(0), _batch())
    np.testing.assert_array_equal(res.metrics.estimate, ref.metrics.estimate)
    assert np.all(np.isfinite(res.metrics.estimate))


@pytest.mark.parametrize(
    "change,field",
    [
        (dict(actions=np.array([[0, 2, 1], [1, 0, 0]])), "data.actions"),
        (dict(observations=np.array([[0, 1, 3], [2, 1, 0]])), "data.observations"),
        (dict(rewards=np.array([[1.0, np.nan, 2.0], [0.0, 1.0, 0.0]])), "rewards"),
        (dict(behavior_log_probs=np.array([[0.1, -1, -1], [-1, -1, -1]])), "behavior_log_probs"),
    ],
)
def test_documented_path_refuses_bad_data(train, change, field):
    bad = _batch(**change)
    with pytest.raises(ValueError, match=field):
        train(jax.random.key(0), bad)
    with pytest.raises(ValueError, match=field):
        train.seeds(2)(jax.random.split(jax.random.key(0), 2), bad)
    with pytest.raises(ValueError, match=field):
        pg.validate_data(CFG, bad, POLICY)


def test_padding_is_not_checked(train):
    # Out-of-range values on padded steps are never read: the batch trains.
    ok = _batch(actions=np.array([[0, 1, 1], [1, 0, 7]]))
    assert np.all(np.isfinite(train(jax.random.key(0), ok).metrics.estimate))
