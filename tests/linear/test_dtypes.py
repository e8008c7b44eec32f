"""The dtype policy at every public entry point of linear: int32, lists, float16 and mixed dtypes.

One tiny problem with integer features and rewards (exact in every dtype) is solved from each
form; every solver must give the float answer (float16 computed in float32).
"""

import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax import linear

# Three states in a ring, two actions; one-hot state-action features (K = 6).
S, A = 3, 2
_s = np.array([0, 1, 2, 0, 1, 2])
_a = np.array([0, 0, 0, 1, 1, 1])
_t = np.array([1, 2, 0, 2, 0, 1])
PHI_ALL = np.eye(S * A).reshape(A, S, S * A).transpose(1, 0, 2)  # [S, A, K]
PHI_SA = PHI_ALL[_s, _a]
PHI_NEXT_ALL = PHI_ALL[_t]
PHI_NEXT_PI = PHI_NEXT_ALL[:, 0]  # pi takes action 0
REWARDS = np.array([1, 0, 2, 0, 1, 1])
DISCOUNTS = np.array([1, 1, 0, 1, 1, 1])
PHI_S = np.eye(S)[_s]
PHI_S_NEXT = np.eye(S)[_t]

CALLS = {
    "lstd": lambda f: linear.lstd(f(PHI_S), f(PHI_S_NEXT), f(REWARDS), f(DISCOUNTS), 0.5, 0.25),
    "lstdq": lambda f: linear.lstdq(f(PHI_SA), f(PHI_NEXT_PI), f(REWARDS), f(DISCOUNTS), 0.5, 0.25),
    "linear_model_value": lambda f: linear.linear_model_value(f(PHI_S), f(PHI_S_NEXT), f(REWARDS), f(DISCOUNTS), 0.5, 0.25),
    "linear_model": lambda f: linear.linear_model(f(PHI_S), f(PHI_S_NEXT), f(REWARDS), f(DISCOUNTS), 0.25).transition,
    "td_system": lambda f: linear.td_system(f(PHI_S), f(PHI_S_NEXT), f(REWARDS), f(DISCOUNTS), 0.5).a,
    "solve": lambda f: linear.solve(f(np.eye(3) * 2 + 1), f(np.arange(3))).weights,
    "lspi": lambda f: linear.lspi(f(PHI_SA), f(PHI_NEXT_ALL), f(REWARDS), f(DISCOUNTS), 0.5, 0.25, max_iterations=3).weights,
    "linear_fqi": lambda f: linear.linear_fqi(f(PHI_SA), f(PHI_NEXT_ALL), f(REWARDS), f(DISCOUNTS), 0.5, 0.25,
                                              num_iterations=3).weights,
}
FORMS = {
    "int32": lambda x: np.asarray(x, np.int32),
    "list": lambda x: np.asarray(x).tolist(),
    "float16": lambda x: np.asarray(x, np.float16),
}


@pytest.fixture(scope="module")
def references():
    return {name: np.asarray(call(lambda x: np.asarray(x, np.float32))) for name, call in CALLS.items()}


# Lists go through the same conversion as int32 (to the default float): one cheap solver suffices.
CASES = [(form, name) for form in ("int32", "float16") for name in CALLS] + [("list", "lstd"), ("list", "solve")]


@pytest.mark.parametrize("form", ["int32", "float16", "list"])
def test_dtype_matrix_every_form_gives_the_float_answer(form, references):
    for name in [n for f, n in CASES if f == form]:
        call = CALLS[name]
        got = call(FORMS[form])
        assert jnp.issubdtype(got.dtype, jnp.floating) and got.dtype != jnp.float16, (name, got.dtype)
        np.testing.assert_allclose(np.asarray(got, np.float64), references[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_mixed_dtypes_promote_to_the_widest_float(references):
    # int32 features, float16 next features, float32 rewards, bool discounts: computed in float32.
    got = linear.lstd(PHI_S.astype(np.int32), PHI_S_NEXT.astype(np.float16), REWARDS.astype(np.float32),
                      DISCOUNTS.astype(bool), 0.5, 0.25)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), references["lstd"], rtol=1e-6)
    got64 = linear.lstd(PHI_S.astype(np.float32), PHI_S_NEXT.astype(np.float64), REWARDS, DISCOUNTS, 0.5, 0.25)
    assert got64.dtype == jnp.float64  # the tests run with x64 enabled


@pytest.mark.parametrize("bad, match", [(np.array([[1 + 1j]] * 6), "phi"), (np.array(["a"] * 6), "rewards")])
def test_non_numeric_inputs_are_refused_naming_the_argument(bad, match):
    args = dict(phi=PHI_S, phi_next=PHI_S_NEXT, rewards=REWARDS, discounts=DISCOUNTS)
    args[match] = bad
    with pytest.raises(ValueError, match=match):
        linear.lstd(args["phi"], args["phi_next"], args["rewards"], args["discounts"], 0.5)
