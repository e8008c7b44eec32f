"""Property-based tests of linear: random valid inputs match float64 numpy references; random
invalid inputs raise ``ValueError`` naming the argument before anything is traced.

Shapes are fixed (M = 12 transitions, K = 3 features, A = 2 actions); values vary. The solvers
run through one jitted program compiled once.
"""

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from offrl_jax import linear

M, K, A = 12, 3, 2


def _np_lstd(phi, phi_next, r, d, g, ridge):
    a = phi.T @ (phi - g * d[:, None] * phi_next) + ridge * np.eye(K)
    return np.linalg.solve(a, phi.T @ r)


def _np_fqi(phi_sa, phi_next_all, r, d, g, ridge, iterations):
    gram = phi_sa.T @ phi_sa + ridge * np.eye(K)
    w = np.zeros(K)
    for _ in range(iterations):
        y = r + g * d * np.max(phi_next_all @ w, axis=-1)
        w = np.linalg.solve(gram, phi_sa.T @ y)
    return w


@jax.jit
def _solvers(phi, phi_next, phi_next_all, r, d, g, ridge):
    return {
        "lstd": linear.lstd(phi, phi_next, r, d, g, ridge),
        "lstdq": linear.lstdq(phi, phi_next, r, d, g, ridge),
        "linear_model_value": linear.linear_model_value(phi, phi_next, r, d, g, ridge),
        "lstd_chunked": linear.lstd(phi, phi_next, r, d, g, ridge, chunk_size=5),
        "fqi": linear.linear_fqi(phi, phi_next_all, r, d, g, ridge, num_iterations=4).weights,
    }


def _array(shape, lo, hi):
    size = int(np.prod(shape))
    return st.lists(st.floats(lo, hi, allow_nan=False, width=32), min_size=size, max_size=size).map(
        lambda xs: np.asarray(xs, np.float64).reshape(shape)
    )


@st.composite
def problems(draw):
    phi = draw(_array((M, K), -1.0, 1.0))
    phi_next_all = draw(_array((M, A, K), -1.0, 1.0))
    r = draw(_array((M,), -2.0, 2.0))
    d = np.asarray(draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=M, max_size=M)))
    g = draw(st.sampled_from([0.0, 0.5, 0.9]))
    ridge = draw(st.sampled_from([0.5, 1.0, 4.0]))
    return phi, phi_next_all[:, 0], phi_next_all, r, d, g, ridge


@given(problems())
def test_solvers_equal_float64_references(problem):
    phi, phi_next, phi_next_all, r, d, g, ridge = problem
    got = jax.device_get(_solvers(phi, phi_next, phi_next_all, r, d, g, ridge))
    want = _np_lstd(phi, phi_next, r, d, g, ridge)
    # A ridge >= 0.5 on a 3 x 3 system of O(1) entries keeps it well conditioned, except when
    # gamma d phi' cancels phi; compare where the reference system is not close to singular.
    a = phi.T @ (phi - g * d[:, None] * phi_next) + ridge * np.eye(K)
    if np.linalg.cond(a) < 1e6:
        for name in ("lstd", "lstdq", "lstd_chunked", "linear_model_value"):
            assert np.all(np.isfinite(got[name])), name
            np.testing.assert_allclose(got[name], want, rtol=1e-6, atol=1e-8, err_msg=name)
    np.testing.assert_allclose(got["fqi"], _np_fqi(phi, phi_next_all, r, d, g, ridge, 4), rtol=1e-8, atol=1e-10)


ENTRY_POINTS = {
    "lstd": lambda p, pn, pa, r, d, g, lam, sw: linear.lstd(p, pn, r, d, g, lam, sample_weights=sw),
    "lstdq": lambda p, pn, pa, r, d, g, lam, sw: linear.lstdq(p, pn, r, d, g, lam, sample_weights=sw),
    "linear_model": lambda p, pn, pa, r, d, g, lam, sw: linear.linear_model(p, pn, r, d, lam, sample_weights=sw),
    "linear_model_value": lambda p, pn, pa, r, d, g, lam, sw: linear.linear_model_value(p, pn, r, d, g, lam,
                                                                                        sample_weights=sw),
    "td_system": lambda p, pn, pa, r, d, g, lam, sw: linear.td_system(p, pn, r, d, g, sample_weights=sw),
    "lspi": lambda p, pn, pa, r, d, g, lam, sw: linear.lspi(p, pa, r, d, g, lam, sample_weights=sw),
    "linear_fqi": lambda p, pn, pa, r, d, g, lam, sw: linear.linear_fqi(p, pa, r, d, g, lam, sample_weights=sw),
}
# Each break: (argument name the error must carry, how to break it).
BREAKS = ["phi_nan", "phi_next_inf", "rewards_nan", "discounts_range", "gamma_high", "ridge_negative",
          "sample_weights_negative", "rewards_shape", "phi_rank"]
_NEXT_NAME = {"lstd": "phi_next", "lstdq": "phi_next_pi", "linear_model": "phi_next", "linear_model_value": "phi_next",
              "td_system": "phi_next", "lspi": "phi_next_all", "linear_fqi": "phi_next_all"}
_PHI_NAME = {"lstdq": "phi_sa", "lspi": "phi_sa", "linear_fqi": "phi_sa"}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@given(problem=problems(), pick=st.data(), row=st.integers(0, M - 1))
def test_invalid_inputs_raise_value_error_naming_the_argument(entry, problem, pick, row):
    skip = {"linear_model": ("gamma_high",), "td_system": ("ridge_negative",)}.get(entry, ())
    how = pick.draw(st.sampled_from([b for b in BREAKS if b not in skip]))
    p, pn, pa, r, d, g, lam = (x.copy() if isinstance(x, np.ndarray) else x for x in problem)
    sw = None
    name = how.rsplit("_", 1)[0]
    if how == "phi_nan":
        p[row, 0] = np.nan
    elif how == "phi_next_inf":
        pn[row, 1] = np.inf
        pa[row, 0, 1] = np.inf
    elif how == "rewards_nan":
        r[row] = np.nan
    elif how == "discounts_range":
        d[row] = 1.5
    elif how == "gamma_high":
        g = 1.25
    elif how == "ridge_negative":
        lam = -1.0
    elif how == "sample_weights_negative":
        sw = np.ones(M)
        sw[row] = -1.0
    elif how == "rewards_shape":
        r = r[:-1]
    elif how == "phi_rank":
        p, name = p[:, :, None], "phi"
    name = {"phi": _PHI_NAME.get(entry, "phi"), "phi_next": _NEXT_NAME[entry]}.get(name, name)
    with pytest.raises(ValueError, match=name):
        ENTRY_POINTS[entry](p, pn, pa, r, d, g, lam, sw)
