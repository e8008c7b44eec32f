"""Round trips with the real d3rlpy (run in the peer environment of .ci/run; skipped elsewhere)."""

import numpy as np
import pytest

d3rlpy = pytest.importorskip("d3rlpy", reason="d3rlpy is not installed (the interop tests run in .ci/run's second venv)")

from offrl_jax import formats  # noqa: E402


def _arrays(seed=0, m=40):
    rng = np.random.default_rng(seed)
    term = np.zeros(m)
    tout = np.zeros(m)
    term[[7, 20]] = 1
    tout[[13, 31, m - 1]] = 1
    return {
        "observations": rng.normal(size=(m, 3)).astype(np.float32),
        "actions": rng.integers(0, 4, m),
        "rewards": rng.normal(size=m).astype(np.float32),
        "terminals": term,
        "timeouts": tout,
    }


@pytest.fixture(scope="module")
def dataset():
    return d3rlpy.dataset.MDPDataset(**_arrays())


@pytest.mark.parametrize("unknown_next", ["drop", "keep"])
def test_mdp_dataset_reads_as_its_arrays(dataset, unknown_next):
    ours = formats.from_d3rlpy(_arrays(), unknown_next=unknown_next)
    theirs = formats.from_d3rlpy(dataset, unknown_next=unknown_next)
    for f in ("observations", "actions", "rewards", "next_observations", "discounts", "mask"):
        np.testing.assert_allclose(np.asarray(getattr(theirs, f)), np.asarray(getattr(ours, f)), err_msg=f)
    # Episodes and terminal flags as d3rlpy sees them.
    assert ours.num_episodes == len(dataset.episodes)
    terminated = [bool(e.terminated) for e in dataset.episodes]
    last = np.asarray(ours.lengths) - 1
    ends_terminal = np.asarray(ours.discounts)[np.arange(ours.num_episodes), last] == 0
    assert ends_terminal.tolist() == terminated


def test_dropped_steps_match_d3rlpy_transitions(dataset):
    # d3rlpy forms transitions without the last step of a timed-out episode: "drop" keeps the same.
    ours = formats.from_d3rlpy(dataset, unknown_next="drop")
    assert int(np.asarray(ours.mask).sum()) == sum(e.transition_count for e in dataset.episodes)


def test_to_d3rlpy_builds_the_same_dataset(dataset):
    traj = formats.from_d3rlpy(dataset, unknown_next="keep")
    arrays = formats.to_d3rlpy(traj)
    rebuilt = d3rlpy.dataset.MDPDataset(**{k: v for k, v in arrays.items() if k != "next_observations"})
    assert len(rebuilt.episodes) == len(dataset.episodes)
    for a, b in zip(rebuilt.episodes, dataset.episodes):
        np.testing.assert_allclose(a.observations, b.observations)
        np.testing.assert_allclose(a.actions, b.actions)
        np.testing.assert_allclose(a.rewards, b.rewards)
        assert bool(a.terminated) == bool(b.terminated)


def test_load_logs_reads_d3rlpy_dump(dataset, tmp_path):
    pytest.importorskip("h5py")
    path = tmp_path / "dataset.h5"
    with open(path, "w+b") as f:  # h5py reads back what it writes
        dataset.dump(f)
    loaded = formats.load_logs(path, unknown_next="keep")
    want = formats.from_d3rlpy(dataset, unknown_next="keep")
    for f in ("observations", "actions", "rewards", "discounts", "mask"):
        np.testing.assert_allclose(np.asarray(getattr(loaded, f)), np.asarray(getattr(want, f)), err_msg=f)
