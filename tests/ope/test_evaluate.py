"""The one-call entry point: rows agree with the array-level estimators; errors name arguments."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax import ope
from offrl_jax.envs import TabularMDP, policy_value, q_values, rollout


S = 4


@functools.lru_cache(maxsize=None)
def _setup():
    idx = np.arange(S)
    trans = np.zeros((S, 2, S))
    np.add.at(trans, (idx, 0, np.maximum(idx - 1, 0)), 0.9)
    np.add.at(trans, (idx, 0, np.minimum(idx + 1, S - 1)), 0.1)
    np.add.at(trans, (idx, 1, np.minimum(idx + 1, S - 1)), 0.9)
    np.add.at(trans, (idx, 1, np.maximum(idx - 1, 0)), 0.1)
    rewards = np.repeat(np.array([0.0, 1.0, 1.0, 0.0])[:, None], 2, 1)
    mdp = TabularMDP.create(trans, rewards, np.full(S, 1 / S), 0.9, horizon=5, dtype=jnp.float64)
    behavior = np.tile([0.5, 0.5], (S, 1))
    target = np.tile([0.3, 0.7], (S, 1))
    data = jax.jit(rollout, static_argnums=(3, 4))(jax.random.key(1), mdp, behavior, 200, 5, target_policy=target)
    q = q_values(mdp, target)  # [H, S, A], horizon-aware
    return mdp, behavior, target, data, q


def test_rows_match_array_functions_and_print(fast_compiles):
    mdp, _, target, d, q = _setup()
    j = float(policy_value(mdp, target))
    q_hat = 0.8 * np.asarray(q)  # a wrong, fixed model
    table = ope.evaluate(d, target, 0.9, q_hat=q_hat, true_value=j, num_resamples=100)
    lr = d.log_ratios()

    @jax.jit
    def array_level(r, lr, m, obs, acts):
        t = jnp.arange(5)[None, :]
        terms = ope.model_terms(jnp.asarray(q_hat)[t, obs], jnp.asarray(target)[obs], acts, m)
        args = (r, lr, m, 0.9)
        return {
            "is": ope.trajectory_is(*args),
            "pdis": ope.per_decision_is(*args),
            "wis": ope.weighted_is(*args),
            "wpdis": ope.weighted_per_decision_is(*args),
            "dm": ope.direct_method(terms.v_hat[:, 0]),
            "dr": ope.doubly_robust(*args, *terms),
            "wdr": ope.weighted_doubly_robust(*args, *terms),
        }

    want = array_level(d.rewards, lr, d.mask, d.observations, d.actions)
    args = (d.rewards, lr, d.mask, 0.9)
    assert [r.name for r in table.rows] == ["is", "pdis", "wis", "wpdis", "dm", "dr", "wdr"]
    for name, value in want.items():
        row = table[name]
        assert row.estimate == pytest.approx(float(value), rel=1e-10, abs=1e-12)
        assert row.lower < row.estimate < row.upper
        assert row.error == pytest.approx(row.estimate - j)
        assert row.interval == ("student-t" if name in ("is", "pdis", "dm", "dr") else "bootstrap")
    # Student-t half-width by hand: t_{0.975, 199} s / sqrt(N).
    x = np.asarray(jax.jit(ope.trajectory_is_returns)(*args))
    half = 1.971956544 * x.std(ddof=1) / np.sqrt(200)
    assert table["is"].upper - table["is"].estimate == pytest.approx(half, rel=1e-5)
    text = str(table)
    assert "DR (doubly robust)" in text and "95% lower" in text and "true J" in text
    assert set(table.to_dict()) == set(want)


def test_model_terms_input_magic_and_exact_model(fast_compiles):
    mdp, _, target, d, q = _setup()
    t = jnp.arange(5)[None, :]
    terms = ope.model_terms(q[t, d.states], jnp.asarray(target)[d.states], d.actions, d.mask)
    table = ope.evaluate(d, None, 0.9, estimators=("dm", "dr", "magic"), q_hat=terms, num_resamples=50)
    j = float(policy_value(mdp, target))
    # With the exact Q^pi the model-based rows are close to J and the DR interval covers it.
    assert table["dr"].lower < j < table["dr"].upper
    assert abs(table["dm"].estimate - j) < 0.1
    assert table["magic"].interval == "n/a" and np.isfinite(table["magic"].estimate)


def test_policy_instead_of_target_log_probs(fast_compiles):
    _, _, target, d, _ = _setup()
    no_target = d.replace(target_log_probs=None)
    a = ope.evaluate(no_target, target, 0.9, estimators=("is", "wpdis"), num_resamples=20)
    b = ope.evaluate(d, None, 0.9, estimators=("is", "wpdis"), num_resamples=20)
    assert a["is"].estimate == pytest.approx(b["is"].estimate, rel=1e-12)
    assert a["wpdis"].estimate == pytest.approx(b["wpdis"].estimate, rel=1e-12)


def test_errors_name_the_argument():
    _, _, target, d, q = _setup()
    with pytest.raises(ValueError, match="estimators"):
        ope.evaluate(d, None, 0.9, estimators=("nope",))
    with pytest.raises(ValueError, match="q_hat"):
        ope.evaluate(d, None, 0.9, estimators=("dr",))
    with pytest.raises(ValueError, match="policy"):
        ope.evaluate(d, None, 0.9, estimators=("dr",), q_hat=np.zeros((S, 2)))
    with pytest.raises(ValueError, match="policy"):
        ope.evaluate(d.replace(target_log_probs=None), None, 0.9, estimators=("is",))
    with pytest.raises(ValueError, match="gamma"):
        ope.evaluate(d, None, 1.5, estimators=("is",))
    with pytest.raises(ValueError, match="confidence"):
        ope.evaluate(d, None, 0.9, estimators=("is",), confidence=1.0)
    with pytest.raises(ValueError, match="trajectories"):
        ope.evaluate({"rewards": 1}, None, 0.9)
    # Behaviour probability 0 where the target acts.
    bad = d.replace(behavior_log_probs=d.behavior_log_probs.at[0, 0].set(-jnp.inf))
    with pytest.raises(ValueError, match="behavior_log_probs"):
        ope.evaluate(bad, None, 0.9, estimators=("is",))
