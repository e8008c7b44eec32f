"""Our estimates equal SCOPE-RL's on the same logged dataset and OPE inputs (peer venv only)."""

import numpy as np
import pytest

scope_rl = pytest.importorskip("scope_rl", reason="scope-rl is not installed (the interop tests run in .ci/run's second venv)")

from scope_rl.ope import OffPolicyEvaluation  # noqa: E402
from scope_rl.ope import discrete  # noqa: E402

from offrl_jax import formats  # noqa: E402
from offrl_jax.data import Trajectories  # noqa: E402
from offrl_jax.ope import from_distributions as fd  # noqa: E402

RTOL = 1e-5
GAMMA = 0.95
PAIRS = {  # ours -> SCOPE-RL estimator
    "is": discrete.TrajectoryWiseImportanceSampling,
    "pdis": discrete.PerDecisionImportanceSampling,
    "wis": discrete.SelfNormalizedTIS,
    "wpdis": discrete.SelfNormalizedPDIS,
    "dm": discrete.DirectMethod,
    "dr": discrete.DoublyRobust,
    "wdr": discrete.SelfNormalizedDR,
}


@pytest.fixture(scope="module")
def logs():
    rng = np.random.default_rng(0)
    n, t, a = 200, 8, 3
    behaviour = rng.dirichlet(np.ones(a), size=(n, t))
    actions = (np.cumsum(behaviour, -1) < rng.uniform(size=(n, t, 1))).sum(-1).clip(0, a - 1)
    obs = rng.normal(size=(n, t + 1, 2))
    disc = np.ones((n, t))
    disc[:, -1] = 0
    traj = Trajectories.create(
        observations=obs[:, :-1], next_observations=obs[:, 1:], actions=actions, rewards=rng.uniform(size=(n, t)),
        discounts=disc, mask=np.ones((n, t)),
        behavior_log_probs=np.log(np.take_along_axis(behaviour, actions[..., None], -1)[..., 0]),
    )
    target = rng.dirichlet(np.ones(a), size=(n, t))
    q = rng.normal(size=(n, t, a))
    return traj, target, q


def test_logged_dataset_round_trip(logs):
    traj, _, _ = logs
    logged = formats.to_scope_rl(traj, n_actions=3)
    back = formats.from_scope_rl(logged)
    for f in ("observations", "actions", "rewards", "discounts", "mask", "behavior_log_probs"):
        np.testing.assert_allclose(np.asarray(getattr(back, f)), np.asarray(getattr(traj, f)), rtol=1e-12, err_msg=f)


def test_estimates_equal_scope_rl(logs):
    traj, target, q = logs
    logged = formats.to_scope_rl(traj, n_actions=3)
    inputs = formats.to_scope_rl_input_dict(target, q, gamma=GAMMA, target_policy="pi")
    # SCOPE-RL zeroes rewards from a done step on by default, which drops the last reward of
    # every trajectory; compare on the full rewards.
    ope = OffPolicyEvaluation(
        logged_dataset=logged, ope_estimators=[cls() for cls in PAIRS.values()], disable_reward_after_done=False
    )
    theirs = ope.estimate_policy_value(inputs)["pi"]
    ours = fd.estimate_all(
        np.asarray(traj.rewards), np.asarray(traj.actions), np.asarray(traj.mask), target, GAMMA,
        behavior_log_probs=np.asarray(traj.behavior_log_probs), q_values=q,
    ).as_dict()
    for name, cls in PAIRS.items():
        np.testing.assert_allclose(float(ours[name]), theirs[cls().estimator_name], rtol=RTOL, err_msg=name)


def test_input_dict_reads_back(logs):
    _, target, q = logs
    inputs = formats.to_scope_rl_input_dict(target, q, gamma=GAMMA, target_policy="pi")
    p2, q2 = formats.from_scope_rl_input_dict(inputs, target.shape[1])
    np.testing.assert_allclose(p2, target)
    np.testing.assert_allclose(q2, q)
