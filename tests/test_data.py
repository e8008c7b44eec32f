"""Containers: round trips, pytree behaviour and every validation error."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax import data
from offrl_jax.data import Trajectories, Transitions


def episodes():
    rng = np.random.default_rng(0)
    out = []
    for length in (3, 5, 1):
        out.append(
            dict(
                observations=rng.normal(size=(length, 2)),
                actions=rng.integers(0, 3, size=length),
                rewards=rng.normal(size=length),
                next_observations=rng.normal(size=(length, 2)),
                terminals=np.r_[np.zeros(length - 1), 1.0],
                behavior_log_probs=np.log(rng.uniform(0.1, 1.0, size=length)),
            )
        )
    return out


def test_episodes_to_trajectories_to_transitions():
    eps = episodes()
    traj = data.from_episodes(eps)
    assert traj.rewards.shape == (3, 5)
    np.testing.assert_array_equal(traj.lengths, [3, 5, 1])
    np.testing.assert_array_equal(traj.mask[0], [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(traj.discounts[0, :3], [1, 1, 0])
    np.testing.assert_allclose(traj.rewards[1], eps[1]["rewards"], rtol=1e-6)
    assert float(traj.rewards[0, 3]) == 0.0
    tr = data.to_transitions(traj)
    assert isinstance(tr, Transitions) and tr.size == 9
    np.testing.assert_allclose(tr.rewards, np.concatenate([e["rewards"] for e in eps]), rtol=1e-6)
    np.testing.assert_allclose(tr.observations, np.concatenate([e["observations"] for e in eps]), rtol=1e-6)
    np.testing.assert_allclose(traj.returns(0.5)[2], eps[2]["rewards"][0], rtol=1e-6)


def test_episodes_without_next_observations():
    obs = np.arange(5.0)[:, None]
    traj = data.from_episodes([dict(observations=obs, actions=[0, 1, 0, 1], rewards=np.ones(4))])
    np.testing.assert_allclose(traj.next_observations[0, :, 0], [1, 2, 3, 4])
    with pytest.raises(ValueError, match="observations"):
        data.from_episodes([dict(observations=obs[:4], actions=[0, 1, 0, 1], rewards=np.ones(4))])


def test_npz_round_trip(tmp_path):
    traj = data.from_episodes(episodes())
    data.save_npz(tmp_path / "t.npz", traj)
    back = data.load_npz(tmp_path / "t.npz")
    assert isinstance(back, Trajectories)
    jax.tree_util.tree_map(np.testing.assert_array_equal, traj, back)
    tr = data.to_transitions(traj)
    data.save_npz(tmp_path / "m.npz", tr)
    jax.tree_util.tree_map(np.testing.assert_array_equal, tr, data.load_npz(tmp_path / "m.npz"))


def test_from_dict_cuts_at_terminals_and_timeouts():
    m = 7
    d = dict(
        observations=np.arange(m, dtype=float)[:, None],
        actions=np.zeros(m, int),
        rewards=np.arange(m, dtype=float),
        terminals=np.array([0, 1, 0, 0, 0, 0, 0]),
        timeouts=np.array([0, 0, 0, 1, 0, 0, 0]),
    )
    # Without next_observations, s' after a time-out is unknown: an error naming the field.
    with pytest.raises(ValueError, match="next_observations"):
        data.from_dict(d)
    nxt = np.arange(1, m + 1, dtype=float)[:, None]
    traj = data.from_dict({**d, "next_observations": nxt})
    np.testing.assert_array_equal(traj.lengths, [2, 2, 3])
    np.testing.assert_array_equal(traj.discounts[0, :2], [1, 0])
    # A timeout is a truncation: bootstrapping stays on.
    np.testing.assert_array_equal(traj.discounts[1, :2], [1, 1])
    np.testing.assert_allclose(traj.rewards[2, :3], [4, 5, 6])
    np.testing.assert_allclose(traj.next_observations[2, :2, 0], [5, 6])
    np.testing.assert_allclose(traj.next_observations[1, :2, 0], [3, 4])
    # unknown_next="drop": the last step of each truncated episode goes; every s' kept is real.
    dropped = data.from_dict(d, unknown_next="drop")
    np.testing.assert_array_equal(dropped.lengths, [2, 1, 2])
    np.testing.assert_allclose(dropped.rewards[2, :2], [4, 5])
    np.testing.assert_allclose(dropped.next_observations[1, :1, 0], [3])
    np.testing.assert_allclose(dropped.next_observations[2, :2, 0], [5, 6])
    np.testing.assert_array_equal(dropped.discounts[1, :1], [1])


def test_from_dict_keeps_target_log_probs_and_checks_flags():
    m = 4
    d = dict(observations=np.arange(m, dtype=float)[:, None], actions=np.zeros(m, int), rewards=np.ones(m),
             terminals=np.array([0, 1, 0, 1]), behavior_log_probs=np.log(np.full(m, 0.5)),
             target_log_probs=np.log(np.array([0.1, 0.2, 0.3, 0.4])))
    traj = data.from_dict(d)
    np.testing.assert_allclose(np.asarray(traj.target_log_probs)[traj.mask > 0], d["target_log_probs"])
    with pytest.raises(ValueError, match="terminals"):
        data.from_dict({**d, "terminals": np.array([0, 0.5, 0, 1])})
    for key in ("observations", "actions"):
        with pytest.raises(ValueError, match=key):
            data.from_dict({k: v for k, v in d.items() if k != key})


def test_save_npz_is_atomic_and_exact_path(tmp_path):
    traj = data.from_episodes([dict(observations=np.zeros((3, 1)), actions=np.zeros(2, int), rewards=np.ones(2))])
    plain = tmp_path / "plain"
    data.save_npz(plain, traj)
    assert plain.exists() and not (tmp_path / "plain.npz").exists()
    jax.tree_util.tree_map(np.testing.assert_array_equal, traj, data.load_npz(plain))

    class Boom(Exception):
        pass

    good = plain.read_bytes()
    original = np.savez

    def failing(f, **arrays):
        f.write(b"partial")
        raise Boom()

    np.savez = failing
    try:
        with pytest.raises(Boom):
            data.save_npz(plain, traj)
    finally:
        np.savez = original
    assert plain.read_bytes() == good  # the previous good file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["plain"]  # no temporary left behind
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(2))
    with pytest.raises(ValueError, match="save_npz"):
        data.load_npz(bad)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk"):
        data.load_npz(tmp_path / "junk.npz")


def test_transitions_check_discounts_and_behaviour_support():
    base = dict(observations=np.zeros(3), actions=np.zeros(3, int), rewards=np.ones(3),
                next_observations=np.zeros(3), discounts=np.ones(3))
    with pytest.raises(ValueError, match="discounts"):
        data.Transitions.create(**{**base, "discounts": np.array([1.0, 5.0, 1.0])})
    with pytest.raises(ValueError, match="behavior_log_probs"):
        data.Transitions.create(**base, behavior_log_probs=np.array([0.0, -np.inf, -1.0]))


def test_pytree_through_jit_vmap_tree_map():
    traj = data.from_episodes(episodes())
    doubled = jax.jit(lambda t: t.replace(rewards=2 * t.rewards))(traj)
    np.testing.assert_allclose(doubled.rewards, 2 * traj.rewards)
    per_row = jax.vmap(lambda t: jnp.sum(t.rewards * t.mask))(traj)
    np.testing.assert_allclose(per_row, jnp.sum(traj.rewards * traj.mask, -1))
    leaves = jax.tree_util.tree_leaves(traj)
    assert len(leaves) == 7  # 6 required + behaviour log-probs


def valid_fields():
    n, t = 2, 3
    return dict(
        observations=np.zeros((n, t)),
        actions=np.zeros((n, t), int),
        rewards=np.ones((n, t)),
        next_observations=np.zeros((n, t)),
        discounts=np.ones((n, t)),
        mask=np.array([[1, 1, 1], [1, 1, 0]]),
        behavior_log_probs=np.full((n, t), -0.5),
    )


@pytest.mark.parametrize(
    "field, value, pattern",
    [
        ("rewards", np.ones((2, 4)), "rewards: expected shape"),
        ("rewards", np.array([[1, np.nan, 1], [1, 1, 1.0]]), "rewards: expected finite"),
        ("rewards", np.array([[1, np.inf, 1], [1, 1, 1.0]]), "rewards: expected finite"),
        ("mask", np.array([[1, 0, 1], [1, 1, 0]]), "mask: expected a prefix"),
        ("mask", np.array([[1, 2, 1], [1, 1, 0]]), "mask: expected values"),
        ("mask", np.zeros((2, 3)), "mask: empty"),
        ("mask", np.zeros((0, 3)), "mask: empty"),
        ("behavior_log_probs", np.full((2, 3), 0.5), "behavior_log_probs: expected log-probabilities"),
        ("behavior_log_probs", np.full((2, 3), np.nan), "behavior_log_probs: .*NaN"),
        ("behavior_log_probs", np.full((2, 3), -np.inf), "behavior_log_probs: behaviour probability is 0"),
        ("target_log_probs", np.full((2, 2), -1.0), "target_log_probs: expected shape"),
        ("actions", np.zeros((2, 2)), "actions: expected leading shape"),
        ("next_observations", np.zeros((2, 3, 2)), "next_observations: expected shape"),
        ("discounts", np.full((2, 3), 2.0), "discounts: expected values in"),
        ("observations", None, "observations: required"),
    ],
)
def test_trajectories_validation_names_the_field(field, value, pattern):
    f = valid_fields()
    f[field] = value
    with pytest.raises(ValueError, match=pattern):
        Trajectories.create(**f)


def test_transitions_validation():
    ok = dict(observations=np.zeros(3), actions=np.zeros(3, int), rewards=np.ones(3),
              next_observations=np.zeros(3), discounts=np.ones(3))
    assert Transitions.create(**ok).size == 3
    for field, value, pattern in [
        ("rewards", np.ones(0), "rewards: empty"),
        ("rewards", np.array([1, np.nan, 1]), "rewards: expected finite"),
        ("actions", np.zeros(4), "actions: expected leading"),
        ("behavior_log_probs", np.array([0.0, 0.1, -1]), "behavior_log_probs"),
    ]:
        bad = dict(ok, **{field: value})
        with pytest.raises(ValueError, match=pattern):
            Transitions.create(**bad)


def test_empty_inputs():
    with pytest.raises(ValueError, match="episodes: empty"):
        data.from_episodes([])
    with pytest.raises(ValueError, match="empty episode"):
        data.from_episodes([dict(observations=np.zeros((0, 1)), actions=[], rewards=np.zeros(0),
                                 next_observations=np.zeros((0, 1)))])
    with pytest.raises(ValueError, match="rewards: empty"):
        data.from_dict(dict(observations=np.zeros((0, 1)), actions=np.zeros(0), rewards=np.zeros(0)))


def test_validation_refuses_tracers():
    f = valid_fields()
    with pytest.raises(ValueError, match="before tracing"):
        jax.jit(lambda r: Trajectories.create(**dict(f, rewards=r)))(jnp.ones((2, 3)))
