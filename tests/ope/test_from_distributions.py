"""Estimators from action distributions equal the [N, T] log-ratio estimators on the same data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax import ope
from offrl_jax.ope import from_distributions as fd

GAMMA = 0.9
ALL = fd.ESTIMATORS_FROM_DISTRIBUTIONS


def _data(seed=0, n=40, t=6, a=3):
    rng = np.random.default_rng(seed)
    target = rng.dirichlet(np.ones(a), size=(n, t))
    behaviour = rng.dirichlet(np.ones(a), size=(n, t))
    u = rng.uniform(size=(n, t, 1))
    actions = np.minimum((np.cumsum(behaviour, axis=-1) < u).sum(-1), a - 1)
    lengths = rng.integers(1, t + 1, size=n)
    mask = (np.arange(t)[None] < lengths[:, None]).astype(np.float64)
    return {
        "rewards": rng.normal(size=(n, t)) * mask,
        "actions": actions * (mask > 0),
        "mask": mask,
        "target_probs": target,
        "behavior_probs": np.take_along_axis(behaviour, actions[..., None], -1)[..., 0],
        "q_values": rng.normal(size=(n, t, a)),
    }


@pytest.fixture(scope="module", autouse=True)
def _fast_compiles():
    """Most XLA optimisations off: these programs run once on little data (float64 results agree
    to ~1e-15), so compiling is most of their cost."""
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.fixture(scope="module")
def reference(data):
    """The [N, T] estimators on log ratios and model terms formed here with take_along_axis."""
    d = data
    real = d["mask"] > 0
    pi_a = np.take_along_axis(d["target_probs"], d["actions"][..., None], -1)[..., 0]
    lr = np.where(real, np.log(np.where(real, pi_a, 1.0)) - np.log(np.where(real, d["behavior_probs"], 1.0)), 0.0)
    q_a = np.take_along_axis(d["q_values"], d["actions"][..., None], -1)[..., 0] * real
    v = (d["target_probs"] * d["q_values"]).sum(-1) * real

    def estimators(r, lr, m, q_a, v):
        return {
            "is": ope.trajectory_is(r, lr, m, GAMMA),
            "pdis": ope.per_decision_is(r, lr, m, GAMMA),
            "wis": ope.weighted_is(r, lr, m, GAMMA),
            "wpdis": ope.weighted_per_decision_is(r, lr, m, GAMMA),
            "dm": ope.direct_method(v[:, 0]),
            "dr": ope.doubly_robust(r, lr, m, GAMMA, q_a, v),
            "wdr": ope.weighted_doubly_robust(r, lr, m, GAMMA, q_a, v),
        }

    ope.trajectory_is(d["rewards"], lr, d["mask"], GAMMA)  # the host checks, once
    return {"terms": (lr, q_a, v), **jax.jit(estimators)(d["rewards"], lr, d["mask"], q_a, v)}


def _all(d, **kw):
    opts = dict(behavior_probs=d["behavior_probs"], q_values=d["q_values"])
    opts.update(kw)
    return fd.estimate_all(d["rewards"], d["actions"], d["mask"], d["target_probs"], GAMMA, **opts)


@pytest.mark.parametrize("method", ["auto", "linear", "log"])
def test_every_estimator_equals_the_log_ratio_estimators(data, reference, method):
    res = _all(data, method=method).as_dict()
    assert set(res) == set(ALL)
    for name in ALL:
        np.testing.assert_allclose(res[name], reference[name], rtol=1e-6, atol=1e-9, err_msg=name)


def test_terms_equal_take_along_axis(data, reference):
    terms = fd.distribution_terms(
        data["actions"], data["mask"], data["target_probs"], behavior_probs=data["behavior_probs"],
        q_values=data["q_values"],
    )
    for got, want in zip(terms, reference["terms"]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_log_probs_input_single_estimator_and_jit(data, reference):
    d = data
    log_b = np.log(d["behavior_probs"])
    dr = fd.doubly_robust_from_distributions(
        d["rewards"], d["actions"], d["mask"], d["target_probs"], GAMMA, behavior_log_probs=log_b, q_values=d["q_values"]
    )
    np.testing.assert_allclose(dr, reference["dr"], rtol=1e-6)
    jitted = jax.jit(
        lambda r, a, m, p, b, q: fd.estimate_all(r, a, m, p, GAMMA, behavior_log_probs=b, q_values=q).dr
    )
    np.testing.assert_allclose(jitted(d["rewards"], d["actions"], d["mask"], d["target_probs"], log_b, d["q_values"]), dr, rtol=1e-12)


def test_identities_and_fallback(data):
    d = dict(data)
    # Q-hat = 0: DR is PDIS, WDR is WPDIS, DM is 0.
    res = _all(d, q_values=np.zeros_like(d["q_values"]))
    np.testing.assert_allclose(res.dr, res.pdis, rtol=1e-10)
    np.testing.assert_allclose(res.wdr, res.wpdis, rtol=1e-10)
    assert float(res.dm) == 0.0
    # Ratios of 1e12 per step overflow a float32 product but not log-space weights: the
    # automatic pass falls back and equals the log-space pass.
    d32 = {k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in d.items()}
    d32["behavior_probs"] = (d32["behavior_probs"] * 1e-12).astype(np.float32)
    with jax.enable_x64(False):
        auto = _all(d32, estimators=("wis", "wpdis", "wdr"))
        log = _all(d32, estimators=("wis", "wpdis", "wdr"), method="log")
    pi_a = np.take_along_axis(d32["target_probs"], d32["actions"][..., None], -1)[..., 0]
    ratios = np.where(d32["mask"] > 0, pi_a / d32["behavior_probs"], 1).astype(np.float32)
    with np.errstate(over="ignore"):
        assert not np.all(np.isfinite(np.prod(ratios, axis=1)))  # the linear pass cannot hold these
    for name in ("wis", "wpdis", "wdr"):
        assert np.isfinite(float(getattr(log, name)))
        np.testing.assert_allclose(getattr(auto, name), getattr(log, name), rtol=1e-6)


def test_magic_equals_magic_on_terms(data, reference):
    d = data
    key = jax.random.key(0)
    got = fd.magic_from_distributions(
        key, d["rewards"], d["actions"], d["mask"], d["target_probs"], GAMMA,
        behavior_probs=d["behavior_probs"], q_values=d["q_values"], num_resamples=4, j_steps=(-1, 0, 5),
    )
    lr, q_a, v = reference["terms"]
    # ope.magic on the take_along_axis terms, through the same compiled program.
    want = fd._magic_jit(key, d["rewards"], lr, d["mask"], GAMMA, q_a, v, j_steps=(-1, 0, 5), num_resamples=4)
    assert fd._magic_jit.__wrapped__ is ope.magic
    np.testing.assert_allclose(got.estimate, want.estimate, rtol=1e-9)
    np.testing.assert_allclose(got.wdr, reference["wdr"], rtol=1e-9)


def _corrupt(d, field, index, value):
    out = dict(d)
    out[field] = d[field].copy()
    out[field][index] = value
    return out


@pytest.mark.parametrize(
    "field,index,value,match",
    [
        ("target_probs", (3, 0, 1), 1.5, "target_probs: expected probabilities in \\[0, 1\\]"),
        ("target_probs", (3, 0), np.array([0.5, 0.4, 0.3]), "target_probs: expected each row"),
        ("behavior_probs", (0, 0), 0.0, "behavior_probs: behaviour probability 0 at logged step \\(0, 0\\)"),
        ("behavior_probs", (0, 0), 1.2, "behavior_probs: expected probabilities in \\(0, 1\\]"),
        ("actions", (0, 0), 7, "actions: expected indices in \\[0, 3\\)"),
        ("rewards", (0, 0), np.nan, "rewards: expected finite values"),
        ("q_values", (0, 0, 2), np.inf, "q_values: expected finite values"),
        ("mask", (0, 0), 0.5, "mask: expected values in"),
    ],
)
def test_bad_values_are_named(data, field, index, value, match):
    with pytest.raises(ValueError, match=match):
        _all(_corrupt(data, field, index, value))


def test_bad_shapes_and_arguments_are_named(data):
    d = data
    with pytest.raises(ValueError, match="rewards: expected shape"):
        _all({**d, "rewards": d["rewards"][:, :2]})
    with pytest.raises(ValueError, match="q_values: expected shape"):
        _all(d, q_values=d["q_values"][..., :2])
    with pytest.raises(ValueError, match="behavior_probs/behavior_log_probs"):
        fd.estimate_all(d["rewards"], d["actions"], d["mask"], d["target_probs"], GAMMA)
    with pytest.raises(ValueError, match="q_values: required"):
        fd.estimate_all(
            d["rewards"], d["actions"], d["mask"], d["target_probs"], GAMMA, behavior_probs=d["behavior_probs"],
            estimators=("dr",),
        )
    with pytest.raises(ValueError, match="estimators"):
        _all(d, estimators=("magic",))
    with pytest.raises(ValueError, match="gamma"):
        fd.estimate_all(d["rewards"], d["actions"], d["mask"], d["target_probs"], 1.5, behavior_probs=d["behavior_probs"])


def test_float32_stays_float32():
    d = _data(seed=1, n=8, t=3)
    d32 = {k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in d.items()}
    with jax.enable_x64(False):
        res = _all(d32, estimators=("is",))
    assert res.is_.dtype == jnp.float32


# ----------------------------------------------------------------------------------------------
# numpy inputs read in place (offrl_jax.core.host_arrays): blocks of 8 rows, so that the
# estimators run on views of the caller's buffers.
# ----------------------------------------------------------------------------------------------
def _at_offset(x, offset_bytes):
    buf = np.empty(x.nbytes + 128, np.uint8)
    start = (-buf.ctypes.data) % 64 + offset_bytes
    out = buf[start : start + x.nbytes].view(x.dtype).reshape(x.shape)
    out[...] = x
    return out


def test_numpy_inputs_in_place_at_every_alignment(data, reference):
    from offrl_jax.core.host_arrays import RowView, row_view

    want = None
    for off in range(0, 64, 8):
        d = {k: _at_offset(v, off) for k, v in data.items()}
        assert isinstance(row_view(d["target_probs"], np.float64, 8), RowView)
        got = _all(d, chunk_rows=8).as_dict()
        want = want or got
        for name in ALL:
            assert float(got[name]) == float(want[name]), (name, off)  # identical at every offset
            np.testing.assert_allclose(got[name], reference[name], rtol=1e-6, atol=1e-9, err_msg=name)
    # float32 without x64: int64 actions read as pairs of 32-bit words, a read-only array in
    # place, a non-contiguous one copied; then ratios whose products overflow float32, where
    # the log-space pass runs as a second program.
    d32 = {k: (v.astype(np.float32) if v.dtype.kind == "f" else v.astype(np.int64)) for k, v in data.items()}
    d32 = {k: _at_offset(v, 4) for k, v in d32.items()}
    d32["target_probs"].flags.writeable = False
    d32["q_values"] = np.asfortranarray(d32["q_values"])
    with jax.enable_x64(False):
        got32 = _all(d32, chunk_rows=8, estimators=("dr", "wdr"))
        np.testing.assert_allclose([got32.dr, got32.wdr], [reference["dr"], reference["wdr"]], rtol=1e-5)
        d32["behavior_probs"] = _at_offset((d32["behavior_probs"] * 1e-12).astype(np.float32), 4)
        auto = _all(d32, chunk_rows=8, estimators=("dr", "wdr"))
        log = _all(d32, chunk_rows=8, estimators=("dr", "wdr"), method="log")
    assert np.isfinite(float(log.wdr)) and float(auto.wdr) == float(log.wdr)


@pytest.mark.parametrize(
    "field,index,value,match",
    [
        ("target_probs", (37, 4, 1), 1.5, "target_probs: expected probabilities in \\[0, 1\\]"),
        ("behavior_probs", (12, 0), 0.0, "behavior_probs: behaviour probability 0 at logged step \\(12, 0\\)"),
        ("actions", (39, 0), -1, "actions: expected indices in \\[0, 3\\)"),
        ("q_values", (20, 0, 2), np.nan, "q_values: expected finite values"),
        ("mask", (30, 0), 2.0, "mask: expected values in"),
    ],
)
def test_bad_values_in_place_are_named(data, field, index, value, match):
    d = {k: _at_offset(v, 16) for k, v in _corrupt(data, field, index, value).items()}
    with pytest.raises(ValueError, match=match):
        _all(d, chunk_rows=8)
