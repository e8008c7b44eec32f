"""Every public entry point of ope under the dtype policy, overflow and the argument checks.

One small dataset, exactly representable in int32 and float16, is fed as float32 (the
reference), int32, Python lists, float16 and a mix of dtypes; every form must give the float
answer. Overflow cases have exact values; bad arguments raise ``ValueError`` naming them.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax import core, ope
from offrl_jax.data import Trajectories

N, T, GAMMA = 4, 3, 0.5
# Integer-valued rewards and log-ratios, model terms on a 1/4 grid: exact in every dtype.
R = np.array([[1, 2, 0], [3, 0, 1], [0, 1, 2], [2, 2, 1]])
LR = np.array([[0, 1, -1], [-1, 0, 0], [1, -1, 0], [0, 0, 1]])
M = np.array([[1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 0, 0]])
Q = np.array([[0.5, 0.25, 1.0], [1.5, 0.0, 0.5], [0.25, 0.75, 1.0], [1.0, 0.5, 0.5]])
V = Q - 0.25


def _forms(x, kind):
    """``x`` as float32 / int32 / list / float16 (model terms never int: they are not integers)."""
    if kind == "float32":
        return np.asarray(x, np.float32)
    if kind == "int32":
        return np.asarray(x, np.int32) if np.all(np.asarray(x) == np.round(x)) else np.asarray(x, np.float32)
    if kind == "list":
        return np.asarray(x).tolist()
    if kind == "float16":
        return np.asarray(x, np.float16)
    raise ValueError(kind)


KINDS = ["int32", "float16", "list", "mixed"]


def _minus_two(x):
    """x - 2 (log-probabilities <= 0) in the form of ``x``."""
    if isinstance(x, list):
        return (np.asarray(x) - 2).tolist()
    return (x - 2).astype(x.dtype)


def _data(kind):
    if kind == "mixed":  # int32 rewards, float16 ratios, float32 model terms, int mask
        return (np.asarray(R, np.int32), np.asarray(LR, np.float16), np.asarray(M, np.int32),
                np.asarray(Q, np.float32), np.asarray(V, np.float32))
    return tuple(_forms(x, kind) for x in (R, LR, M, Q, V))


KEY = jax.random.key(0)
F32 = _data("float32")
S = np.tile([0, 1, 3, 2], 8)  # 32 samples in [0, 3] (Student-t takes its n >= 30 branch)
ESTIMATORS = {
    "trajectory_is": lambda d, s: ope.trajectory_is(*d[:3], GAMMA),
    "per_decision_is": lambda d, s: ope.per_decision_is(*d[:3], GAMMA),
    "weighted_is": lambda d, s: ope.weighted_is(*d[:3], GAMMA),
    "weighted_per_decision_is": lambda d, s: ope.weighted_per_decision_is(*d[:3], GAMMA),
    "dr_scan": lambda d, s: ope.doubly_robust(*d[:3], GAMMA, *d[3:]),
    "dr_weights": lambda d, s: ope.doubly_robust(*d[:3], GAMMA, *d[3:], method="weights"),
    "weighted_doubly_robust": lambda d, s: ope.weighted_doubly_robust(*d[:3], GAMMA, *d[3:]),
    "cumulative_log_weights": lambda d, s: core.cumulative_log_weights(d[1], d[2]),
    "log_importance_ratios": lambda d, s: ope.log_importance_ratios(_minus_two(d[1]), np.full((N, T), -2.0), d[2]),
    "student_t_interval": lambda d, s: jnp.stack(ope.student_t_interval(s)),
    "hoeffding_bound": lambda d, s: jnp.stack(ope.hoeffding_bound(s, 0, 3)),
    "empirical_bernstein_bound": lambda d, s: jnp.stack(ope.empirical_bernstein_bound(s, 0, 3)),
    "bootstrap_interval": lambda d, s: ope.bootstrap_interval(KEY, s, num_resamples=8).upper,
    "hcope_lower_bound": lambda d, s: ope.hcope_lower_bound(KEY, _minus_two(s), s, 0, 3, split=0.5).lower,
}


_REFERENCE: dict = {}  # name -> the float32 answer, computed once
# Entry points built on lax.scan/cond/while, which compile again on every eager call.
_COMPILED_PER_CALL = {"per_decision_is", "weighted_per_decision_is", "dr_scan", "weighted_doubly_robust",
                      "bootstrap_interval", "hcope_lower_bound"}


@pytest.mark.parametrize("kind", KINDS)
def test_dtype_matrix_every_form_gives_the_float_answer(kind):
    """Each form against the float32 computation (float16 and the mix compute in float32, int32
    and lists in the default float, float64 here); one call per function and form."""
    data, samples = _data(kind), _forms(S, "float16" if kind == "mixed" else kind)
    for name, fn in ESTIMATORS.items():
        if kind == "list" and name in _COMPILED_PER_CALL:
            continue  # lists convert exactly as int32 does (to the default float), checked above
        got = fn(data, samples)
        assert jnp.issubdtype(got.dtype, jnp.floating) and got.dtype != jnp.float16, (name, got.dtype)
        if name not in _REFERENCE:
            _REFERENCE[name] = np.asarray(fn(F32, S.astype(np.float32)), np.float64)
        np.testing.assert_allclose(np.asarray(got, np.float64), _REFERENCE[name], rtol=2e-6, atol=1e-6, err_msg=name)


def test_evaluate_with_integer_rewards_and_float16_log_probs():
    traj = Trajectories(
        observations=np.zeros((N, T), np.int32), actions=np.zeros((N, T), np.int32),
        rewards=np.asarray(R, np.int32), next_observations=np.zeros((N, T), np.int32),
        discounts=np.ones((N, T), np.float32), mask=np.asarray(M, np.float32),
        behavior_log_probs=np.zeros((N, T), np.float16), target_log_probs=np.asarray(LR, np.float16) - 2.0,
    )
    table = ope.evaluate(traj, None, GAMMA, estimators=("is", "pdis"), num_resamples=16)
    # log-ratios LR - 2 per real step: IS scaled by e^{-2 L_n}; compare PDIS against the float path.
    lr = np.asarray(LR, np.float32) - 2.0
    want = float(ope.per_decision_is(np.asarray(R, np.float32), lr, np.asarray(M, np.float32), GAMMA))
    assert table["pdis"].estimate == pytest.approx(want, rel=1e-6)
    assert not table["pdis"].overflow


# ----------------------------------------------------------------------------------------------
# Overflow.
# ----------------------------------------------------------------------------------------------
LR_BIG = np.array([[100.0, -100.0]], np.float32)
R_BIG = np.array([[0.0, 1.0]], np.float32)
M_BIG = np.ones((1, 2), np.float32)
Z_BIG = np.zeros((1, 2), np.float32)


@pytest.mark.parametrize("name", ["trajectory_is", "per_decision_is", "weighted_per_decision_is", "dr_scan",
                                  "dr_weights", "weighted_doubly_robust"])
def test_ratios_that_overflow_and_come_back_down_give_the_exact_value(name):
    """w_{0:0} = e^100 overflows float32, its reward is 0, w_{0:1} = 1: every estimator gives 0.9."""
    d = (R_BIG, LR_BIG, M_BIG, Z_BIG, Z_BIG)
    got = {
        "trajectory_is": lambda: ope.trajectory_is(*d[:3], 0.9),
        "per_decision_is": lambda: ope.per_decision_is(*d[:3], 0.9),
        "weighted_per_decision_is": lambda: ope.weighted_per_decision_is(*d[:3], 0.9),
        "dr_scan": lambda: ope.doubly_robust(*d[:3], 0.9, *d[3:]),
        "dr_weights": lambda: ope.doubly_robust(*d[:3], 0.9, *d[3:], method="weights"),
        "weighted_doubly_robust": lambda: ope.weighted_doubly_robust(*d[:3], 0.9, *d[3:]),
    }[name]()
    assert got.dtype == jnp.float32
    assert float(got) == pytest.approx(0.9, rel=1e-6)


@pytest.mark.parametrize("method", ["scan", "associative", "weights"])
def test_dr_products_pass_through_no_inf_and_a_true_overflow_is_inf_not_nan(method):
    # e^60 e^60 e^-60 e^-60 = 1: the backward values dip to e^-120 (below float32) and come back.
    lr = np.array([[60.0, 60.0, -60.0, -60.0]], np.float32)
    r = np.array([[0.0, 0.0, 0.0, 1.0]], np.float32)
    z = np.zeros_like(r)
    assert float(ope.doubly_robust(r, lr, np.ones_like(r), 0.9, z, z, method=method)) == pytest.approx(0.729, rel=1e-6)
    # Nonzero model terms: V_DR(0) = 0.3 + e^100 (0 - 0.5 + 0.9 (0.3 + e^-100 0.5)) is truly -inf in float32.
    got = ope.doubly_robust(R_BIG, LR_BIG, M_BIG, 0.9, Z_BIG + 0.5, Z_BIG + 0.3, method=method)
    assert float(got) == -np.inf
    # 10^3 per step for T = 10^4: inf like PDIS, never NaN (the default method; the others share
    # its overflow path).
    if method == "scan":
        t = 10_000
        big = np.full((1, t), 1000.0, np.float32)
        ones = np.ones((1, t), np.float32)
        assert float(ope.per_decision_is(ones, big, ones, 1.0)) == np.inf
        assert float(ope.doubly_robust(ones, big, ones, 1.0, 0 * ones, 0 * ones)) == np.inf


def test_evaluate_flags_an_overflowing_estimate():
    traj = Trajectories(
        observations=np.zeros((2, 2), np.int32), actions=np.zeros((2, 2), np.int32),
        rewards=np.ones((2, 2), np.float32), next_observations=np.zeros((2, 2), np.int32),
        discounts=np.ones((2, 2), np.float32), mask=np.ones((2, 2), np.float32),
        behavior_log_probs=np.full((2, 2), -60.0, np.float32), target_log_probs=np.zeros((2, 2), np.float32),
    )
    table = ope.evaluate(traj, None, 1.0, estimators=("is", "pdis", "wpdis"), num_resamples=16)
    for name in ("is", "pdis"):
        row = table[name]
        assert row.estimate == np.inf and row.overflow and row.interval == "n/a"
    assert table["wpdis"].estimate == pytest.approx(2.0) and not table["wpdis"].overflow


def test_float16_with_a_legal_minus_inf_log_ratio_equals_float32():
    r = np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 0.0]])
    lr = np.array([[0.5, -np.inf, 0.25], [0.0, 0.75, 1.0]])
    m = np.ones((2, 3))
    want = float(ope.weighted_per_decision_is(r.astype(np.float32), lr.astype(np.float32), m, 0.9))
    got = ope.weighted_per_decision_is(r.astype(np.float16), lr.astype(np.float16), m, 0.9)
    assert got.dtype == jnp.float32 and float(got) == pytest.approx(want, rel=1e-6)
    cw = core.cumulative_log_weights(lr.astype(np.float16), m)
    assert not np.any(np.isnan(np.asarray(cw)))
    np.testing.assert_array_equal(np.asarray(cw), np.asarray(core.cumulative_log_weights(lr.astype(np.float32), m)))


def test_long_horizon_float32_within_1e4_of_float64_for_pdis_dr_wpdis():
    t = 10_000
    rng = np.random.default_rng(3)
    r = rng.uniform(size=(1, t))
    lr = 0.05 * rng.normal(size=(1, t))
    q = rng.uniform(size=(1, t))
    v = q + 0.1 * rng.normal(size=(1, t))
    m = np.ones((1, t))
    f32 = lambda *xs: [np.asarray(x, np.float32) for x in xs]  # noqa: E731
    fns = {
        "pdis": lambda r_, lr_, q_, v_: ope.per_decision_is(r_, lr_, m, 0.99),
        "wpdis": lambda r_, lr_, q_, v_: ope.weighted_per_decision_is(r_, lr_, m, 0.99),
        "dr": lambda r_, lr_, q_, v_: ope.doubly_robust(r_, lr_, m, 0.99, q_, v_),
    }
    for name, fn in fns.items():
        want = float(fn(r, lr, q, v))  # float64 (the tests run with x64)
        got = fn(*f32(r, lr, q, v))
        assert got.dtype == jnp.float32
        assert abs(float(got) - want) <= 1e-4 * abs(want), name


# ----------------------------------------------------------------------------------------------
# Argument checks.
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "target, behavior, match",
    [
        ([[0.1, -1.0]], [[-1.0, -1.0]], "target_log_probs"),
        ([[np.inf, -1.0]], [[-1.0, -1.0]], "target_log_probs"),
        ([[np.nan, -1.0]], [[-1.0, -1.0]], "target_log_probs"),
        ([[-1.0, -1.0]], [[-1.0, 0.5]], "behavior_log_probs"),
        ([[-1.0, -1.0]], [[-1.0, -np.inf]], "behavior_log_probs"),
        ([[-1.0, -1.0, -1.0]], [[-1.0, -1.0]], "target_log_probs"),
    ],
)
def test_log_importance_ratios_refuses_bad_log_probs(target, behavior, match):
    with pytest.raises(ValueError, match=match):
        ope.log_importance_ratios(np.asarray(target), np.asarray(behavior), np.ones((1, 2)))


def test_log_importance_ratios_allows_padding_and_target_zero():
    got = ope.log_importance_ratios([[-np.inf, np.nan]], [[-1.0, np.nan]], [[1, 0]])
    np.testing.assert_array_equal(np.asarray(got), [[-np.inf, 0.0]])


def _traj(n=3, t=2, obs=None):
    return Trajectories(
        observations=np.zeros((n, t), np.int32) if obs is None else obs, actions=np.zeros((n, t), np.int32),
        rewards=np.ones((n, t), np.float32), next_observations=np.zeros((n, t), np.int32),
        discounts=np.ones((n, t), np.float32), mask=np.ones((n, t), np.float32),
        behavior_log_probs=np.full((n, t), np.log(0.5), np.float32), target_log_probs=None,
    )


@pytest.mark.parametrize(
    "policy, q_hat, match",
    [
        (np.array([[1.2, -0.2], [0.5, 0.5]]), None, "target_policy"),
        (np.array([[0.5, 0.2], [0.5, 0.5]]), None, "target_policy"),
        (np.array([[0.5, 0.5]]), None, "target_policy"),  # observation 1 has no row
        (np.array([[0.5, 0.5], [0.5, 0.5]]), np.zeros((1, 2)), "q_hat"),  # too few rows
        (np.array([[0.5, 0.5], [0.5, 0.5]]), np.array([[0.0, np.nan], [0.0, 0.0]]), "q_hat"),
        (lambda o: jnp.full(o.shape + (2,), 0.7), None, "target_policy"),
    ],
)
def test_evaluate_refuses_bad_policies_and_model_tables(policy, q_hat, match):
    obs = np.array([[0, 1], [1, 0], [0, 0]], np.int32)
    with pytest.raises(ValueError, match=match):
        ope.evaluate(_traj(obs=obs), policy, 0.9, q_hat=q_hat, estimators=("pdis",), num_resamples=4)


@pytest.mark.parametrize("key", [0, np.uint32(7), np.zeros(3, np.uint32), jnp.zeros(2, jnp.int32), "k"])
def test_every_key_argument_refuses_non_keys(key):
    x = np.array([0.5, 1.0, 1.5, 2.0])
    calls = [
        lambda: ope.bootstrap_interval(key, x, num_resamples=4),
        lambda: ope.hcope_lower_bound(key, np.zeros(4), x, 0, 3, split=0.5),
        lambda: ope.magic(key, *F32[:3], GAMMA, *F32[3:], j_steps=(-1, 2), num_resamples=4),
        lambda: ope.evaluate(_traj(), np.full((1, 2), 0.5), 0.9, key=key, estimators=("wis",), num_resamples=4),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="key"):
            call()


def test_bootstrap_refuses_an_estimator_that_returns_a_vector():
    with pytest.raises(ValueError, match="estimator"):
        ope.bootstrap_interval(KEY, np.ones((5, 2)), lambda d: jnp.mean(d, axis=0), num_resamples=4)


def test_magic_refuses_one_trajectory_without_a_leading_axis_and_runs_float16():
    r, lr, m, q, v = (np.asarray(a, np.float32)[0] for a in (R, LR, M, Q, V))
    with pytest.raises(ValueError, match="rewards"):
        ope.magic(KEY, r, lr, m, GAMMA, q, v, j_steps=(-1, 2), num_resamples=4)
    h = [np.asarray(a, np.float16) for a in (R, LR, M, Q, V)]
    got = ope.magic(KEY, *h[:3], GAMMA, *h[3:], j_steps=(-1, 2), num_resamples=4)
    assert got.estimate.dtype == jnp.float32 and np.isfinite(float(got.estimate))
