"""The peers' data layouts, converted both ways without the peers (the real packages are in
tests/interop)."""

import pickle

import numpy as np
import pytest

from offrl_jax import formats
from offrl_jax.data import Trajectories


def _same(a: Trajectories, b: Trajectories):
    for f in a.__dataclass_fields__:
        x, y = getattr(a, f), getattr(b, f)
        assert (x is None) == (y is None), f
        if x is not None:
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, err_msg=f)


def _d3rlpy_arrays():
    """Three episodes: terminal after row 3, time-out after row 6, end of data (no flag) at 9."""
    rng = np.random.default_rng(0)
    m = 10
    term = np.zeros(m)
    term[3] = 1
    tout = np.zeros(m)
    tout[6] = 1
    return {
        "observations": rng.normal(size=(m, 2)).astype(np.float32),
        "actions": rng.integers(0, 3, m),
        "rewards": rng.normal(size=(m, 1)).astype(np.float32),
        "terminals": term,
        "timeouts": tout,
    }


@pytest.fixture(scope="module")
def traj():
    """Variable lengths (3, 2, 4), a terminal, time-outs, behaviour log-probs."""
    rng = np.random.default_rng(1)
    n, t = 3, 4
    mask = (np.arange(t)[None] < np.array([3, 2, 4])[:, None]).astype(np.float32)
    disc = np.ones((n, t), np.float32)
    disc[0, 2] = 0  # episode 0 terminates; 1 and 2 are cut by time-outs
    states = rng.normal(size=(n, t + 1, 2)).astype(np.float32)  # s'_t = s_{t+1}, as Minari stores them
    return Trajectories.create(
        observations=states[:, :-1] * mask[..., None],
        next_observations=states[:, 1:] * mask[..., None],
        actions=rng.integers(0, 3, (n, t)) * (mask > 0),
        rewards=rng.normal(size=(n, t)).astype(np.float32) * mask,
        discounts=disc * mask,
        mask=mask,
        behavior_log_probs=np.log(rng.uniform(0.1, 1, (n, t))).astype(np.float32) * mask,
    )


def test_d3rlpy_terminal_and_timeout_kept_apart():
    d = _d3rlpy_arrays()
    drop = formats.from_d3rlpy(d)
    np.testing.assert_array_equal(drop.lengths, [4, 2, 2])  # the cut steps 6 and 9 are dropped
    np.testing.assert_array_equal(drop.discounts[:, :4], [[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 0, 0]])
    np.testing.assert_allclose(drop.next_observations[1, 1], d["observations"][6])  # s' recorded
    keep = formats.from_d3rlpy(d, unknown_next="keep")
    np.testing.assert_array_equal(keep.lengths, [4, 3, 3])
    np.testing.assert_allclose(keep.rewards[1, :3], d["rewards"][4:7, 0])
    np.testing.assert_allclose(keep.discounts[1, :3], [1, 1, 1])  # a time-out is no termination
    back = formats.to_d3rlpy(keep)
    for k in ("observations", "actions", "terminals", "timeouts"):
        want = d[k].copy()
        if k == "timeouts":
            want[-1] = 1  # the end of the data is a cut
        np.testing.assert_allclose(back[k], want, err_msg=k)
    np.testing.assert_allclose(back["rewards"], d["rewards"][:, 0])
    with pytest.raises(ValueError, match="next_observations: missing"):
        formats.from_d3rlpy(d, unknown_next="error")


def test_d3rlpy_episodes_object_and_errors():
    class Episode:
        def __init__(self, obs, act, rew, terminated):
            self.observations, self.actions, self.rewards, self.terminated = obs, act, rew, terminated

    class Dataset:
        episodes = [
            Episode(np.zeros((3, 2)), np.array([0, 1, 2]), np.ones((3, 1)), True),
            Episode(np.ones((2, 2)), np.array([1, 1]), np.ones((2, 1)), False),
        ]

    t = formats.from_d3rlpy(Dataset(), unknown_next="keep")
    np.testing.assert_array_equal(t.lengths, [3, 2])
    np.testing.assert_array_equal(t.discounts[0], [1, 1, 0])
    d = _d3rlpy_arrays()
    with pytest.raises(ValueError, match="terminals: expected 0/1"):
        formats.from_d3rlpy({**d, "terminals": d["terminals"] * 2})
    with pytest.raises(ValueError, match="actions: expected leading length 10"):
        formats.from_d3rlpy({**d, "actions": d["actions"][:5]})
    with pytest.raises(ValueError, match="observations: required field is missing"):
        formats.from_d3rlpy({k: v for k, v in d.items() if k != "observations"})


def test_minari_round_trip_and_errors(traj):
    eps = formats.to_minari(traj)
    assert [len(e["rewards"]) for e in eps] == [3, 2, 4]
    assert eps[0]["terminations"].tolist() == [False, False, True]
    assert eps[1]["truncations"].tolist() == [False, True]
    assert eps[0]["observations"].shape == (4, 2)
    back = formats.from_minari(eps)
    _same(traj.replace(behavior_log_probs=None), back)
    with pytest.raises(ValueError, match=r"episodes\[1\].observations: expected leading length 3"):
        formats.from_minari([eps[0], {**eps[1], "observations": eps[1]["observations"][:2]}])
    with pytest.raises(ValueError, match=r"episodes\[0\].terminations: expected 0/1"):
        formats.from_minari([{**eps[0], "terminations": np.array([0, 2, 0])}])


def test_scope_rl_round_trip_and_input_dict():
    rng = np.random.default_rng(2)
    n, t, a = 4, 3, 3
    disc = np.ones((n, t), np.float32)
    disc[:, -1] = 0
    obs = rng.normal(size=(n, t, 2)).astype(np.float32)
    traj = Trajectories.create(
        observations=obs, next_observations=np.concatenate([obs[:, 1:], obs[:, -1:]], 1),
        actions=rng.integers(0, a, (n, t)), rewards=rng.normal(size=(n, t)).astype(np.float32),
        discounts=disc, mask=np.ones((n, t), np.float32),
        behavior_log_probs=np.log(rng.uniform(0.1, 1, (n, t))).astype(np.float32),
    )
    logged = formats.to_scope_rl(traj, n_actions=a)
    assert logged["size"] == n * t and logged["pscore"].shape == (n * t,)
    _same(traj, formats.from_scope_rl(logged))
    probs = rng.dirichlet(np.ones(a), size=(n, t))
    q = rng.normal(size=(n, t, a))
    inputs = formats.to_scope_rl_input_dict(probs, q, gamma=0.9, target_policy="pi")
    np.testing.assert_allclose(inputs["pi"]["initial_state_value_prediction"], (probs[:, 0] * q[:, 0]).sum(-1))
    p2, q2 = formats.from_scope_rl_input_dict(inputs, t)
    np.testing.assert_allclose(p2, probs)
    np.testing.assert_allclose(q2, q)
    with pytest.raises(ValueError, match="reward: expected n_trajectories"):
        formats.from_scope_rl({**logged, "n_trajectories": 5})
    with pytest.raises(ValueError, match="pscore: expected probabilities in"):
        formats.from_scope_rl({**logged, "pscore": np.zeros(n * t)})


def test_obp_round_trip():
    rng = np.random.default_rng(3)
    n = 6
    feedback = {
        "n_rounds": n, "n_actions": 3, "context": rng.normal(size=(n, 2)), "action": rng.integers(0, 3, n),
        "reward": rng.binomial(1, 0.5, n).astype(float), "pscore": rng.uniform(0.2, 1, n), "position": None,
    }
    t = formats.from_obp(feedback)
    assert t.rewards.shape == (n, 1) and float(np.asarray(t.discounts).max()) == 0.0
    back = formats.to_obp(t, n_actions=3)
    for k in ("context", "action", "reward", "pscore"):
        np.testing.assert_allclose(back[k], feedback[k], rtol=1e-6, err_msg=k)
    with pytest.raises(ValueError, match="pscore: expected probabilities in \\(0, 1\\]"):
        formats.from_obp({**feedback, "pscore": feedback["pscore"] * 2})


@pytest.mark.parametrize("fmt", ["npz", "d3rlpy", "minari"])
def test_save_and_load_logs(tmp_path, traj, fmt):
    path = tmp_path / f"logs_{fmt}.npz"
    formats.save_logs(path, traj, format=fmt)
    back = formats.load_logs(path, unknown_next="keep")
    want = traj if fmt == "npz" else traj.replace(behavior_log_probs=None)
    _same(want, back)
    assert formats.load_logs(path, format=fmt, unknown_next="keep").num_episodes == 3


def test_load_logs_scope_rl_pickle_and_errors(tmp_path):
    rng = np.random.default_rng(4)
    logged = {
        "size": 6, "n_trajectories": 2, "step_per_trajectory": 3, "action_type": "discrete", "n_actions": 2,
        "state": rng.normal(size=(6, 2)), "action": rng.integers(0, 2, 6).astype(float), "reward": rng.normal(size=6),
        "done": np.tile([0.0, 0.0, 1.0], 2), "terminal": np.tile([0.0, 0.0, 1.0], 2), "pscore": np.full(6, 0.5),
    }
    path = tmp_path / "logged.pkl"
    path.write_bytes(pickle.dumps(logged))
    t = formats.load_logs(path)
    np.testing.assert_allclose(np.exp(t.behavior_log_probs), 0.5)
    with pytest.raises(ValueError, match="no such file"):
        formats.load_logs(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="cannot read an .npz archive"):
        formats.load_logs(tmp_path / "bad.npz")
    np.savez(tmp_path / "odd.npz", foo=np.zeros(3))
    with pytest.raises(ValueError, match="format: cannot tell the format"):
        formats.load_logs(tmp_path / "odd.npz")
    with pytest.raises(ValueError, match="format: expected"):
        formats.load_logs(path, format="csv")
