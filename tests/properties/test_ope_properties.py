"""Property-based tests of ope: random valid inputs match float64 numpy references; random
invalid inputs raise ``ValueError`` naming the argument before anything is traced.

Shapes are fixed ([N, T] = [4, 5]); values, masks (prefix lengths) and gamma vary. The estimators
run through one jitted program compiled once; the invalid cases run the eager entry points, whose
host checks raise before tracing.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from offrl_jax import ope

N, T = 4, 5


# ----------------------------------------------------------------------------------------------
# float64 numpy references (unrolled equations, weights in log space).
# ----------------------------------------------------------------------------------------------
def _prep(r, lr, m, gamma):
    real = m > 0
    r = np.where(real, r, 0.0)
    log_w = np.cumsum(np.where(real, lr, 0.0), axis=1)
    disc = gamma ** np.arange(r.shape[1])
    return real, r, log_w, disc


def _softmax0(x):
    top = np.max(x, axis=0, keepdims=True)
    e = np.exp(x - np.where(np.isfinite(top), top, 0.0))
    s = e.sum(axis=0, keepdims=True)
    return np.where(s > 0, e / np.where(s > 0, s, 1.0), 0.0)


def np_is(r, lr, m, g):
    _, r, log_w, disc = _prep(r, lr, m, g)
    return np.mean(np.exp(log_w[:, -1]) * (r * disc).sum(1))


def np_pdis(r, lr, m, g):
    _, r, log_w, disc = _prep(r, lr, m, g)
    return np.mean((np.exp(log_w) * r * disc).sum(1))


def np_wis(r, lr, m, g):
    _, r, log_w, disc = _prep(r, lr, m, g)
    return float(np.sum(_softmax0(log_w[:, -1:])[:, 0] * (r * disc).sum(1)))


def np_wpdis(r, lr, m, g):
    _, r, log_w, disc = _prep(r, lr, m, g)
    return float(np.sum(_softmax0(log_w) * r * disc))


def np_dr(r, lr, m, g, q, v):
    real, r, log_w, disc = _prep(r, lr, m, g)
    q, v = np.where(real, q, 0.0), np.where(real, v, 0.0)
    prev = np.concatenate([np.zeros((r.shape[0], 1)), log_w[:, :-1]], 1)
    return np.mean((disc * (np.exp(log_w) * (r - q) + np.exp(prev) * v)).sum(1))


def np_wdr(r, lr, m, g, q, v):
    real, r, log_w, disc = _prep(r, lr, m, g)
    q, v = np.where(real, q, 0.0), np.where(real, v, 0.0)
    w = _softmax0(log_w)
    w_prev = np.concatenate([np.full((r.shape[0], 1), 1.0 / r.shape[0]), w[:, :-1]], 1)
    return float(np.sum(disc * (w * (r - q) + w_prev * v)))


REFERENCES = {"is": np_is, "pdis": np_pdis, "wis": np_wis, "wpdis": np_wpdis}
MODEL_REFERENCES = {"dr_scan": np_dr, "dr_associative": np_dr, "dr_weights": np_dr, "wdr": np_wdr}


@jax.jit
def _all_estimates(r, lr, m, g, q, v):
    return {
        "is": ope.trajectory_is(r, lr, m, g),
        "pdis": ope.per_decision_is(r, lr, m, g),
        "wis": ope.weighted_is(r, lr, m, g),
        "wpdis": ope.weighted_per_decision_is(r, lr, m, g),
        "dr_scan": ope.doubly_robust(r, lr, m, g, q, v),
        "dr_associative": ope.doubly_robust(r, lr, m, g, q, v, method="associative"),
        "dr_weights": ope.doubly_robust(r, lr, m, g, q, v, method="weights"),
        "wdr": ope.weighted_doubly_robust(r, lr, m, g, q, v),
    }


# ----------------------------------------------------------------------------------------------
# Strategies: fixed shapes, varying values, masks and gamma.
# ----------------------------------------------------------------------------------------------
def _matrix(lo, hi):
    return st.lists(st.floats(lo, hi, allow_nan=False, width=32), min_size=N * T, max_size=N * T).map(
        lambda xs: np.asarray(xs, np.float64).reshape(N, T)
    )


masks = st.lists(st.integers(1, T), min_size=N, max_size=N).map(
    lambda ls: (np.arange(T)[None, :] < np.asarray(ls)[:, None]).astype(np.float64)
)
gammas = st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0])


@st.composite
def datasets(draw):
    r, lr = draw(_matrix(-2.0, 2.0)), draw(_matrix(-3.0, 3.0))
    # Some steps where the target never takes the logged action (log-ratio -inf, weight 0).
    zero = draw(st.lists(st.booleans(), min_size=N * T, max_size=N * T))
    lr = np.where(np.asarray(zero).reshape(N, T) & (np.arange(N * T).reshape(N, T) % 7 == 0), -np.inf, lr)
    return r, lr, draw(masks), draw(gammas), draw(_matrix(-2.0, 2.0)), draw(_matrix(-2.0, 2.0))


@given(datasets())
def test_estimators_equal_float64_references(data):
    r, lr, m, g, q, v = data
    got = jax.device_get(_all_estimates(r, lr, m, jnp.float64(g), q, v))
    for name, ref in REFERENCES.items():
        want = ref(r, lr, m, g)
        assert np.isfinite(got[name])
        np.testing.assert_allclose(got[name], want, rtol=1e-9, atol=1e-9, err_msg=name)
    for name, ref in MODEL_REFERENCES.items():
        want = ref(r, lr, m, g, q, v)
        assert np.isfinite(got[name])
        np.testing.assert_allclose(got[name], want, rtol=1e-9, atol=1e-9, err_msg=name)


@given(st.lists(st.floats(-5, 5, allow_nan=False, width=32), min_size=8, max_size=8))
def test_intervals_equal_float64_references(xs):
    x = np.asarray(xs)
    n = x.size
    ci = ope.hoeffding_bound(x, -5.0, 5.0, 0.9, side="two-sided")
    width = 10.0 * np.sqrt(np.log(1 / 0.05) / (2 * n))
    np.testing.assert_allclose([ci.estimate, ci.lower, ci.upper],
                               [x.mean(), max(x.mean() - width, -5.0), min(x.mean() + width, 5.0)], rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# Invalid inputs: a ValueError naming the argument, from every entry point, before tracing.
# ----------------------------------------------------------------------------------------------
KEY = jax.random.key(0)
ENTRY_POINTS = {
    "trajectory_is": lambda r, lr, m, g, q, v: ope.trajectory_is(r, lr, m, g),
    "per_decision_is": lambda r, lr, m, g, q, v: ope.per_decision_is(r, lr, m, g),
    "weighted_is": lambda r, lr, m, g, q, v: ope.weighted_is(r, lr, m, g),
    "weighted_per_decision_is": lambda r, lr, m, g, q, v: ope.weighted_per_decision_is(r, lr, m, g),
    "doubly_robust": lambda r, lr, m, g, q, v: ope.doubly_robust(r, lr, m, g, q, v),
    "weighted_doubly_robust": lambda r, lr, m, g, q, v: ope.weighted_doubly_robust(r, lr, m, g, q, v),
    "magic": lambda r, lr, m, g, q, v: ope.magic(KEY, r, lr, m, g, q, v, num_resamples=4),
    "j_step_returns": lambda r, lr, m, g, q, v: ope.j_step_returns(r, lr, m, g, q, v),
}
# (argument, how to break it): a NaN or inf at a real step, a +inf log-ratio, a non-prefix mask,
# gamma outside [0, 1], a wrong shape.
BREAKS = ["rewards_nan", "rewards_inf", "log_ratios_nan", "log_ratios_posinf", "q_taken_nan", "v_hat_inf",
          "mask_hole", "mask_value", "gamma_high", "gamma_nan", "rewards_shape", "log_ratios_shape"]


def _break(data, how, where):
    r, lr, m, g, q, v = (x.copy() if isinstance(x, np.ndarray) else x for x in data)
    i, j = where
    i, j = i % N, min(j, int(m[i % N].sum()) - 1)
    if how == "rewards_nan":
        r[i, j] = np.nan
    elif how == "rewards_inf":
        r[i, j] = -np.inf
    elif how == "log_ratios_nan":
        lr[i, j] = np.nan
    elif how == "log_ratios_posinf":
        lr[i, j] = np.inf
    elif how == "q_taken_nan":
        q[i, j] = np.nan
    elif how == "v_hat_inf":
        v[i, j] = np.inf
    elif how == "mask_hole":
        m[i, :] = 1.0
        m[i, T // 2] = 0.0
    elif how == "mask_value":
        m[i, 0] = 0.5
    elif how == "gamma_high":
        g = 1.0 + (j + 1) * 0.1
    elif how == "gamma_nan":
        g = float("nan")
    elif how == "rewards_shape":
        r = r[:, :-1]
    elif how == "log_ratios_shape":
        lr = lr[:-1]
    name = how.rsplit("_", 1)[0] if not how.startswith(("q_taken", "v_hat")) else how[: how.rfind("_")]
    return (r, lr, m, g, q, v), name


MODEL_FREE = {"trajectory_is", "per_decision_is", "weighted_is", "weighted_per_decision_is"}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@given(data=datasets(), pick=st.data(), where=st.tuples(st.integers(0, N - 1), st.integers(0, T - 1)))
def test_invalid_inputs_raise_value_error_naming_the_argument(entry, data, pick, where):
    breaks = [b for b in BREAKS if not (entry in MODEL_FREE and b.startswith(("q_taken", "v_hat")))]
    bad, name = _break(data, pick.draw(st.sampled_from(breaks)), where)
    with pytest.raises(ValueError, match=name):
        ENTRY_POINTS[entry](*bad)


@given(where=st.tuples(st.integers(0, N - 1), st.integers(0, T - 1)),
       value=st.sampled_from([np.nan, np.inf, 0.5, 3.0]), which=st.sampled_from(["target", "behavior"]))
def test_log_importance_ratios_refuses_invalid_log_probs(where, value, which):
    lt, lb = np.full((N, T), -1.0), np.full((N, T), -1.0)
    (lt if which == "target" else lb)[where] = value
    with pytest.raises(ValueError, match=f"{which}_log_probs"):
        ope.log_importance_ratios(lt, lb, np.ones((N, T)))


@given(st.sampled_from(["samples_nan", "samples_shape", "confidence", "side", "range"]))
def test_interval_entry_points_refuse_invalid_arguments(how):
    x = np.linspace(0, 1, 8)
    kwargs, name = {}, how.split("_")[0]
    if how == "samples_nan":
        x = x.copy()
        x[3] = np.nan
    elif how == "samples_shape":
        x = x.reshape(2, 4)
    elif how == "confidence":
        kwargs = dict(confidence=1.5)
    elif how == "side":
        kwargs = dict(side="both")
    for fn in (ope.student_t_interval, ope.hoeffding_bound, ope.empirical_bernstein_bound):
        args = (x,) if fn is ope.student_t_interval else (x, 0.0, 1.0)
        if how == "range":
            if fn is ope.student_t_interval:
                continue
            args, name = (x, 0.0, 0.5), "samples"
        with pytest.raises(ValueError, match=name):
            fn(*args, **kwargs)
