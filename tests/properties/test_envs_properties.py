"""Property-based tests of offrl_jax.envs: exact solvers on random MDPs equal float64 numpy
linear solves; invalid MDPs and policies give a ValueError naming the argument. One MDP shape
[S, A] = [3, 2], values drawn by hypothesis, deterministic."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offrl_jax.envs import TabularMDP, exact_ratios, occupancy, policy_value, q_values, rollout

S, A = 3, 2
CHEAP = settings.get_profile("offrl_cheap")  # registered in conftest.py


def _simplex(rows, cols):
    return st.lists(st.floats(0.05, 1.0), min_size=rows * cols, max_size=rows * cols).map(
        lambda x: (lambda p: p / p.sum(-1, keepdims=True))(np.array(x).reshape(rows, cols))
    )


_solve = jax.jit(lambda mdp, pi: (policy_value(mdp, pi), q_values(mdp, pi), occupancy(mdp, pi)))


@CHEAP
@given(p=_simplex(S * A, S), r=st.lists(st.floats(-5, 5), min_size=S * A, max_size=S * A).map(np.array),
       d0=_simplex(1, S), pi=_simplex(S, A), gamma=st.floats(0.0, 0.99))
def test_exact_solvers_equal_numpy_linear_solves(p, r, d0, pi, gamma):
    p, r, d0 = p.reshape(S, A, S), r.reshape(S, A), d0[0]
    mdp = TabularMDP.create(p, r, d0, gamma, dtype=jnp.float64)
    j, q, occ = _solve(mdp, pi)
    p_pi = np.einsum("sa,sat->st", pi, p)
    v = np.linalg.solve(np.eye(S) - gamma * p_pi, np.sum(pi * r, 1))
    np.testing.assert_allclose(q, r + gamma * p @ v, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(j, d0 @ v, rtol=1e-9, atol=1e-9)
    d_s = (1 - gamma) * np.linalg.solve(np.eye(S) - gamma * p_pi.T, d0)
    np.testing.assert_allclose(occ, d_s[:, None] * pi, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.sum(occ * r) / (1 - gamma), j, rtol=1e-9, atol=1e-9)
    w = exact_ratios(occ, np.full((S, A), 1.0 / (S * A))).weights
    np.testing.assert_allclose(w, occ * S * A, rtol=1e-9)


@CHEAP
@given(p=_simplex(S * A, S), what=st.sampled_from(["transitions", "rewards", "initial", "gamma", "horizon"]),
       bad=st.floats(0.01, 0.5), i=st.integers(0, S - 1))
def test_create_refuses_invalid_arguments(p, what, bad, i):
    args = dict(transitions=p.reshape(S, A, S), rewards=np.zeros((S, A)), initial=np.full(S, 1.0 / S), gamma=0.9)
    if what == "transitions":
        args["transitions"] = args["transitions"].copy()
        args["transitions"][i, 0, 0] += bad
    elif what == "rewards":
        args["rewards"] = np.array(args["rewards"])
        args["rewards"][i, 0] = np.nan
    elif what == "initial":
        args["initial"] = args["initial"] + bad
    elif what == "gamma":
        args["gamma"] = 1.0 + bad
    else:
        args["horizon"] = -i
    with pytest.raises(ValueError, match=what):
        TabularMDP.create(**args)


_MDP = TabularMDP.create(np.full((S, A, S), 1.0 / S), np.arange(S * A).reshape(S, A), np.full(S, 1.0 / S), 0.9)


@settings(CHEAP, max_examples=10)
@given(pi=_simplex(S, A), i=st.integers(0, S - 1), bad=st.sampled_from(["negative", "sum", "nan", "shape"]))
def test_solvers_and_rollout_refuse_non_policies(pi, i, bad):
    pi = pi.copy()
    if bad == "negative":
        pi[i] = [-0.2, 1.2]
    elif bad == "sum":
        pi[i] *= 0.7
    elif bad == "nan":
        pi[i, 0] = np.nan
    else:
        pi = pi[:, :1]
    for f in (lambda x: policy_value(_MDP, x), lambda x: q_values(_MDP, x), lambda x: occupancy(_MDP, x)):
        with pytest.raises(ValueError, match="policy"):
            f(pi)
    with pytest.raises(ValueError, match="behavior_policy"):
        rollout(jax.random.key(0), _MDP, pi, 2, 3)


# ---------------------------------------------------------------------------------------------
# The dtype policy, as a matrix (dtype x function), against the float64 result.
# ---------------------------------------------------------------------------------------------

_ONE_HOT = np.eye(A)[[0, 1, 0]]
_ENVS_FUNCTIONS = {
    "TabularMDP.create": lambda c: policy_value(TabularMDP.create(
        np.full((S, A, S), 1.0 / S), c(np.arange(S * A).reshape(S, A)), np.full(S, 1.0 / S), 0.9), _ONE_HOT),
    "policy_value": lambda c: policy_value(_MDP, c(_ONE_HOT)),
    "occupancy": lambda c: occupancy(_MDP, c(_ONE_HOT)),
}


@pytest.mark.parametrize("name", sorted(_ENVS_FUNCTIONS))
def test_dtype_matrix(name, dtype_matrix):
    dtype_matrix(_ENVS_FUNCTIONS[name])


@pytest.mark.parametrize("field,value", [("actions", 2), ("observations", -1), ("next_observations", 3),
                                         ("observations", 0.5)])
def test_estimate_mdp_refuses_bad_indices(field, value):
    from offrl_jax.data import Trajectories
    from offrl_jax.envs import estimate_mdp

    f = dict(observations=np.array([[0.0, 1.0]]), actions=np.array([[0.0, 1.0]]), next_observations=np.array([[1.0, 0.0]]))
    f[field] = f[field].copy()
    f[field][0, 1] = value
    traj = Trajectories.create(**f, rewards=np.ones((1, 2)), discounts=np.ones((1, 2)), mask=np.ones((1, 2)))
    with pytest.raises(ValueError, match=f"trajectories.{field}"):
        estimate_mdp(traj, S, A, 0.9)
