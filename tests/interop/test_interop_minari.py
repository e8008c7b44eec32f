"""Round trips with the real Minari (peer venv only; skipped where minari does not import)."""

import numpy as np
import pytest

minari = pytest.importorskip("minari", reason="minari is not installed (optional in .ci/run's second venv)")
gym = pytest.importorskip("gymnasium")

from offrl_jax import formats  # noqa: E402
from offrl_jax.data import Trajectories  # noqa: E402


@pytest.fixture(scope="module")
def traj():
    rng = np.random.default_rng(0)
    n, t = 4, 5
    lengths = np.array([5, 3, 4, 2])
    mask = (np.arange(t)[None] < lengths[:, None]).astype(np.float32)
    states = rng.normal(size=(n, t + 1, 2)).astype(np.float32)
    disc = np.ones((n, t), np.float32)
    disc[1, 2] = 0  # episode 1 terminates; the others are truncated
    return Trajectories.create(
        observations=states[:, :-1] * mask[..., None], next_observations=states[:, 1:] * mask[..., None],
        actions=rng.integers(0, 3, (n, t)) * (mask > 0), rewards=rng.normal(size=(n, t)).astype(np.float32) * mask,
        discounts=disc * mask, mask=mask,
    )


def test_minari_dataset_round_trip(traj, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    from minari.data_collector import EpisodeBuffer

    buffers = []
    for i, ep in enumerate(formats.to_minari(traj)):
        buffers.append(EpisodeBuffer(id=i, observations=ep["observations"], actions=ep["actions"], rewards=ep["rewards"],
                                     terminations=ep["terminations"], truncations=ep["truncations"], infos={}))
    ds = minari.create_dataset_from_buffers(
        "offrljax/interop/roundtrip-v0", buffers,
        observation_space=gym.spaces.Box(-np.inf, np.inf, (2,), np.float32), action_space=gym.spaces.Discrete(3),
        algorithm_name="none", author="offrl_jax", author_email="none@example.com", code_permalink="none",
    )
    back = formats.from_minari(list(ds.iterate_episodes()))
    for f in ("observations", "next_observations", "actions", "rewards", "discounts", "mask"):
        np.testing.assert_allclose(np.asarray(getattr(back, f)), np.asarray(getattr(traj, f)), rtol=1e-6, err_msg=f)
    files = list(tmp_path.rglob("*.hdf5"))
    if files:
        loaded = formats.load_logs(files[0])
        np.testing.assert_allclose(np.asarray(loaded.rewards), np.asarray(traj.rewards), rtol=1e-6)
