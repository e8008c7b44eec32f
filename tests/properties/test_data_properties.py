"""Property-based tests of offrl_jax.data: containers built from random valid fields round-trip
(save_npz/load_npz, from_episodes, to_transitions) and their returns equal a float64 numpy
reference; random invalid fields give a ValueError naming the field."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offrl_jax import data as D

N, T = 3, 4
CHEAP = settings.get_profile("offrl_cheap")  # registered in conftest.py


def _arr(lo, hi):
    return st.lists(st.floats(lo, hi, allow_subnormal=False), min_size=N * T, max_size=N * T).map(lambda x: np.array(x).reshape(N, T))


def _ints(high):
    return st.lists(st.integers(0, high), min_size=N * T, max_size=N * T).map(lambda x: np.array(x).reshape(N, T))


_lengths = st.lists(st.integers(1, T), min_size=N, max_size=N).map(np.array)


def _fields(obs, act, r, lengths, blp):
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(float)
    return dict(observations=obs, actions=act, rewards=r, next_observations=(obs + 1) % 5, discounts=np.ones((N, T)),
                mask=mask, behavior_log_probs=blp)


@CHEAP
@given(obs=_ints(4), act=_ints(1), r=_arr(-5, 5), lengths=_lengths, blp=_arr(-3, 0), gamma=st.floats(0, 1))
def test_trajectories_round_trip_and_returns(tmp_path_factory, obs, act, r, lengths, blp, gamma):
    f = _fields(obs, act, r, lengths, blp)
    traj = D.Trajectories.create(**f)
    ref = np.sum(r * f["mask"] * gamma ** np.arange(T), 1)
    np.testing.assert_allclose(traj.returns(gamma), ref, rtol=1e-10, atol=1e-12)
    path = tmp_path_factory.mktemp("npz") / "data"
    D.save_npz(path, traj)
    back = D.load_npz(path)
    for k in ("observations", "actions", "rewards", "mask", "behavior_log_probs"):
        np.testing.assert_array_equal(getattr(back, k), getattr(traj, k))
    episodes = [{k: np.asarray(f[k])[i, : lengths[i]] for k in ("observations", "actions", "rewards", "next_observations",
                                                                 "behavior_log_probs")} for i in range(N)]
    again = D.from_episodes(episodes, max_length=T)
    np.testing.assert_array_equal(again.rewards, traj.rewards * traj.mask)  # padding: zeros
    np.testing.assert_array_equal(again.mask, traj.mask)
    flat = D.to_transitions(traj)
    assert flat.size == int(lengths.sum())
    np.testing.assert_allclose(np.sum(flat.rewards), np.sum(r * f["mask"]), rtol=1e-10, atol=1e-12)


@CHEAP
@given(obs=_ints(4), act=_ints(1), r=_arr(-5, 5), lengths=_lengths, blp=_arr(-3, 0),
       field=st.sampled_from(["rewards", "discounts", "mask", "behavior_log_probs", "observations"]),
       i=st.integers(0, N - 1), t=st.integers(0, T - 1), bad=st.sampled_from(["nan", "inf", "range", "shape"]))
def test_invalid_fields_are_named(obs, act, r, lengths, blp, field, i, t, bad):
    f = _fields(obs, act, r, lengths, blp)
    x = np.array(f[field], float)
    if bad == "shape":
        x = x[:, :-1]
    elif bad == "nan":
        x[i, t] = np.nan
    elif bad == "inf":
        x[i, t] = np.inf
    else:
        x[i, t] = {"rewards": np.nan, "discounts": 2.0, "mask": 0.5, "behavior_log_probs": 0.5, "observations": np.nan}[field]
    if field == "behavior_log_probs" and f["mask"][i, t] == 0 and bad != "shape":
        return  # padding is not checked
    if field == "mask" and bad in ("nan", "inf"):
        x[i, t] = 0.5
    with pytest.raises(ValueError, match=field):
        D.Trajectories.create(**dict(f, **{field: x}))


@CHEAP
@given(flag=st.floats(0.01, 0.99), field=st.sampled_from(["terminals", "timeouts"]), row=st.integers(0, 5))
def test_from_dict_refuses_non_flags(flag, field, row):
    d = dict(observations=np.arange(6), actions=np.zeros(6, int), rewards=np.ones(6), next_observations=np.arange(6) + 1,
             terminals=np.zeros(6), timeouts=np.zeros(6))
    d[field] = d[field].copy()
    d[field][row] = flag
    with pytest.raises(ValueError, match=field):
        D.from_dict(d)


# ---------------------------------------------------------------------------------------------
# The dtype policy, as a matrix (dtype x container): one float dtype, never float16.
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["int32", "list", "float16", "float32", "bool"])
def test_dtype_matrix(kind, cast):
    to = cast(kind)
    r = (np.arange(N * T).reshape(N, T) % 2)
    f = _fields(np.zeros((N, T), int), np.zeros((N, T), int), to(r), np.full(N, T), None)
    f.pop("behavior_log_probs")
    traj = D.Trajectories.create(**dict(f, discounts=to(np.ones((N, T))), mask=to(f["mask"])))
    flat = D.Transitions.create(observations=np.zeros(3, int), actions=np.zeros(3, int), rewards=to(r[0, :3]),
                                next_observations=np.zeros(3, int), discounts=to(np.ones(3)),
                                behavior_log_probs=np.full(3, -0.5, np.float16 if kind == "float16" else np.float64))
    for c, fields in ((traj, ("rewards", "discounts", "mask")), (flat, ("rewards", "discounts", "behavior_log_probs"))):
        dts = {np.dtype(getattr(c, k).dtype) for k in fields}
        assert len(dts) == 1 and dts.pop().kind == "f" and np.dtype(c.rewards.dtype) != np.float16
    np.testing.assert_array_equal(np.asarray(traj.rewards, np.float64), r)
