"""Our T = 1 estimators equal OBP's IPW, SNIPW and DR on its own bandit feedback (peer venv only)."""

import numpy as np
import pytest

obp = pytest.importorskip("obp", reason="obp is not installed (the interop tests run in .ci/run's second venv)")

from obp.dataset import SyntheticBanditDataset  # noqa: E402
from obp.ope import DoublyRobust, InverseProbabilityWeighting, SelfNormalizedInverseProbabilityWeighting  # noqa: E402

from offrl_jax import formats  # noqa: E402
from offrl_jax.ope import from_distributions as fd  # noqa: E402

RTOL = 1e-5


@pytest.fixture(scope="module")
def feedback():
    ds = SyntheticBanditDataset(n_actions=4, dim_context=3, random_state=0)
    bf = ds.obtain_batch_bandit_feedback(n_rounds=500)
    rng = np.random.default_rng(0)
    action_dist = rng.dirichlet(np.ones(4), size=500)[:, :, None]  # [n, A, len_list = 1]
    q_hat = rng.normal(size=(500, 4, 1))
    return bf, action_dist, q_hat


def test_bandit_feedback_round_trip(feedback):
    bf, _, _ = feedback
    traj = formats.from_obp(bf)
    assert traj.rewards.shape == (bf["n_rounds"], 1)
    back = formats.to_obp(traj, n_actions=bf["n_actions"])
    for k in ("context", "action", "reward", "pscore"):
        np.testing.assert_allclose(back[k], bf[k], rtol=1e-6, err_msg=k)


def test_estimates_equal_obp(feedback):
    bf, action_dist, q_hat = feedback
    traj = formats.from_obp(bf)
    ours = fd.estimate_all(
        np.asarray(traj.rewards), np.asarray(traj.actions), np.asarray(traj.mask), action_dist[:, None, :, 0], 1.0,
        behavior_probs=bf["pscore"][:, None], q_values=q_hat[:, None, :, 0], estimators=("is", "wis", "dr"),
    )
    kw = dict(reward=bf["reward"], action=bf["action"], pscore=bf["pscore"], action_dist=action_dist)
    theirs = {
        "is": InverseProbabilityWeighting().estimate_policy_value(**kw),
        "wis": SelfNormalizedInverseProbabilityWeighting().estimate_policy_value(**kw),
        "dr": DoublyRobust().estimate_policy_value(**kw, estimated_rewards_by_reg_model=q_hat),
    }
    got = ours.as_dict()
    for name, value in theirs.items():
        np.testing.assert_allclose(float(got[name]), value, rtol=RTOL, err_msg=name)
