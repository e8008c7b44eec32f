"""Log importance ratios, cumulative log weights, guarded softmax, host validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax import core, ope


def test_log_ratios_masked_and_gradient_safe():
    lt = jnp.array([[np.log(0.5), np.log(0.2), -jnp.inf]])
    lb = jnp.array([[np.log(0.25), np.log(0.4), -jnp.inf]])  # -inf only on padding
    m = jnp.array([[1.0, 1.0, 0.0]])
    lr = ope.log_importance_ratios(lt, lb, m)
    np.testing.assert_allclose(lr, [[np.log(2.0), np.log(0.5), 0.0]], rtol=1e-12)
    grad = jax.grad(lambda x: jnp.sum(ope.log_importance_ratios(x, lb, m)))(lt)
    assert np.all(np.isfinite(grad)) and float(grad[0, 2]) == 0.0


def test_cumulative_weights_freeze_after_the_end_and_clip():
    lr = np.log(np.array([[2.0, 3.0, 5.0, 7.0]]))
    m = np.array([[1.0, 1.0, 0.0, 0.0]])
    np.testing.assert_allclose(np.exp(core.cumulative_log_weights(lr, m)), [[2, 6, 6, 6]], rtol=1e-12)
    np.testing.assert_allclose(
        np.exp(core.cumulative_log_weights(lr, m, max_log_ratio=np.log(2.5))), [[2, 5, 5, 5]], rtol=1e-12
    )
    np.testing.assert_allclose(
        np.exp(core.cumulative_log_weights(lr, m, max_log_weight=np.log(4.0))), [[2, 4, 4, 4]], rtol=1e-12
    )
    np.testing.assert_allclose(core.clip_log_ratios(lr, None), lr)


def test_log_discounts():
    np.testing.assert_allclose(np.exp(core.log_discounts(0.9, 4, jnp.float64)), 0.9 ** np.arange(4), rtol=1e-12)
    np.testing.assert_allclose(np.exp(core.log_discounts(0.0, 3, jnp.float64)), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(np.exp(core.log_discounts(1.0, 3, jnp.float64)), [1.0, 1.0, 1.0])


def test_normalized_weights_huge_and_all_zero():
    lw = jnp.array([[1000.0, -jnp.inf], [1000.0 + np.log(3.0), -jnp.inf]], jnp.float32)
    w, zero = core.normalized_weights(lw, axis=0)
    assert w.dtype == jnp.float32
    np.testing.assert_allclose(w[:, 0], [0.25, 0.75], rtol=1e-4)  # float32 spacing at 1000 is 6e-5
    np.testing.assert_array_equal(w[:, 1], [0.0, 0.0])
    np.testing.assert_array_equal(zero, [False, True])
    jw, jz = jax.jit(core.normalized_weights, static_argnames="axis")(lw, axis=0)
    np.testing.assert_array_equal(jw, w)
    np.testing.assert_array_equal(jz, zero)


def test_jit_and_vmap_of_cumulative_weights():
    rng = np.random.default_rng(0)
    lr, m = rng.normal(size=(3, 5)), np.ones((3, 5))
    loop = np.stack([core.cumulative_log_weights(lr[i], m[i]) for i in range(3)])
    np.testing.assert_allclose(jax.vmap(core.cumulative_log_weights)(lr, m), loop, rtol=1e-12)
    np.testing.assert_allclose(jax.jit(core.cumulative_log_weights)(lr, m), loop, rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# Host validation: every error names its argument, raised before tracing.
# ----------------------------------------------------------------------------------------------
N, T = 3, 4
OK = dict(rewards=np.ones((N, T)), log_ratios=np.zeros((N, T)), mask=np.ones((N, T)), gamma=0.9)


def _with(**kw):
    d = dict(OK)
    d.update(kw)
    return d


def _nan_at(x, idx=(1, 2)):
    x = np.array(x, dtype=float)
    x[idx] = np.nan
    return x


BAD = [
    ("mask", _with(mask=np.zeros((0, 4)), rewards=np.zeros((0, 4)), log_ratios=np.zeros((0, 4)))),
    ("mask", _with(mask=np.array([[1.0, 0.0, 1.0, 0.0]] * N))),
    ("mask", _with(mask=np.zeros((N, T)))),
    ("rewards", _with(rewards=np.ones((N, T + 1)))),
    ("rewards", _with(rewards=_nan_at(OK["rewards"]))),
    ("log_ratios", _with(log_ratios=np.ones((N + 1, T)))),
    ("log_ratios", _with(log_ratios=_nan_at(OK["log_ratios"]))),
    ("log_ratios", _with(log_ratios=np.where(np.eye(N, T) > 0, np.inf, 0.0))),
    ("gamma", _with(gamma=1.5)),
    ("gamma", _with(gamma=-0.1)),
    ("gamma", _with(gamma=float("nan"))),
]
ESTIMATORS = (ope.trajectory_is, ope.per_decision_is, ope.weighted_is, ope.weighted_per_decision_is)


@pytest.mark.parametrize("name,kwargs", BAD)
def test_bad_input_names_the_argument(name, kwargs):
    with pytest.raises(ValueError, match=name):
        core.validate_ope_inputs(**kwargs)
    for f in ESTIMATORS:
        with pytest.raises(ValueError, match=name):
            f(**kwargs)
    z = np.zeros_like(np.asarray(kwargs["rewards"]))
    with pytest.raises(ValueError, match=name):
        ope.doubly_robust(**kwargs, q_taken=z, v_hat=z)
    with pytest.raises(ValueError, match=name):
        ope.weighted_doubly_robust(**kwargs, q_taken=z, v_hat=z)


@pytest.mark.parametrize("arg", ["q_taken", "v_hat"])
def test_bad_model_terms_name_the_argument(arg):
    z = np.zeros((N, T))
    kw = dict(q_taken=z, v_hat=z)
    kw[arg] = np.zeros((N, T + 2))
    with pytest.raises(ValueError, match=arg):
        ope.doubly_robust(**OK, **kw)
    kw[arg] = _nan_at(z)
    with pytest.raises(ValueError, match=arg):
        ope.weighted_doubly_robust(**OK, **kw)


def test_padding_may_hold_anything():
    m = np.array([[1.0, 1.0, 0.0, 0.0]] * N)
    lr = np.where(m > 0, 0.0, np.inf)
    r = np.where(m > 0, 1.0, np.nan)
    core.validate_ope_inputs(r, lr, m, 1.0)
    assert np.isfinite(float(ope.trajectory_is(r, lr, m, 1.0)))


def test_validate_log_probs():
    m = np.ones((2, 2))
    lb = np.log(np.full((2, 2), 0.5))
    core.validate_log_probs(np.full((2, 2), -np.inf), lb, m)  # target never acts there: weight 0
    lb_zero = lb.copy()
    lb_zero[1, 0] = -np.inf
    with pytest.raises(ValueError, match="behavior_log_probs.*coverage"):
        core.validate_log_probs(lb, lb_zero, m)
    with pytest.raises(ValueError, match="target_log_probs"):
        core.validate_log_probs(np.full((2, 2), 0.3), lb, m)
    with pytest.raises(ValueError, match="target_log_probs"):
        core.validate_log_probs(_nan_at(lb, (0, 0)), lb, m)
    with pytest.raises(ValueError, match="behavior_log_probs"):
        core.validate_log_probs(lb, lb[:, :1], m)


def test_traced_inputs_skip_host_checks_and_stay_jittable():
    f = jax.jit(ope.trajectory_is)
    assert float(f(OK["rewards"], OK["log_ratios"], OK["mask"], 0.9)) == pytest.approx(1 + 0.9 + 0.81 + 0.729)


def test_blocked_cumsum_matches_numpy_and_carries_infinities():
    from offrl_jax.core.weights import cumsum_last

    # numpy data and one jitted program per shape (eager jax.random and eager cumsum_last compiled
    # every primitive again for each shape); the eager path is checked on the infinities below.
    rng = np.random.default_rng(0)
    jitted = jax.jit(cumsum_last)
    for shape in [(1,), (7,), (3, 5), (2, 128), (2, 129), (2, 300), (2, 10_000)]:
        x = rng.normal(size=shape)
        np.testing.assert_allclose(jitted(x), np.cumsum(x, -1), rtol=1e-10, atol=1e-9)
    x = jnp.array([[0.5, -jnp.inf, 1.0, 2.0], [1.0, 2.0, 3.0, 4.0]])
    out = np.asarray(cumsum_last(x))
    np.testing.assert_array_equal(out[0], [0.5, -np.inf, -np.inf, -np.inf])
    np.testing.assert_allclose(out[1], [1, 3, 6, 10])
    np.testing.assert_array_equal(jitted(x), out)
    x32 = rng.normal(size=(4, 1000)).astype(np.float32)
    got = jitted(x32)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, np.cumsum(x32.astype(np.float64), -1), atol=1e-3)
