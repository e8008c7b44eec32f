"""``offrl-jax evaluate`` end to end on tiny files, and every user error -> one line, exit 2."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax import cli
from offrl_jax.behavior import estimate_behavior
from offrl_jax.data import Trajectories, save_npz
from offrl_jax.formats import save_logs
from offrl_jax.ope import per_decision_is, trajectory_is

GAMMA = 0.95
POLICY = """
import numpy as np
TABLE = np.load({path!r})


def target(observations):
    return TABLE[observations]


def broken(observations):
    raise RuntimeError("no policy here")
"""


@pytest.fixture(autouse=True)
def _no_persistent_cache(monkeypatch):
    # cli.main would otherwise point JAX's compilation cache at the user's home for the session.
    monkeypatch.setenv("OFFRL_JAX_NO_CACHE", "1")


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """40 logged episodes (T = 20, 21 observations, 4 actions, a known tabular β, lengths 8..20,
    some ending by termination) as a d3rlpy export without propensities and in our npz layout
    with them; the target as a module and as an [N, T, A] file."""
    folder = tmp_path_factory.mktemp("evaluate")
    rng = np.random.default_rng(0)
    n, t, o, a = 40, 20, 21, 4
    beta, pi = rng.dirichlet(np.ones(a), o), rng.dirichlet(np.ones(a), o)
    states = rng.integers(0, o, (n, t + 1))
    actions = (np.cumsum(beta[states[:, :t]], -1) > rng.random((n, t, 1))).argmax(-1)
    lengths = rng.integers(8, t + 1, n)
    lengths[0] = t
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.float32)
    discounts = np.ones((n, t), np.float32)
    ended = rng.random(n) < 0.5
    discounts[np.arange(n)[ended], lengths[ended] - 1] = 0.0
    traj = Trajectories.create(
        observations=states[:, :t] * (mask > 0), actions=actions * (mask > 0), next_observations=states[:, 1:] * (mask > 0),
        rewards=(rng.normal(size=(n, t)) * mask).astype(np.float32), discounts=discounts, mask=mask,
        behavior_log_probs=np.log(beta[states[:, :t], actions]) * mask,
    )
    np.save(folder / "table.npy", pi)
    (folder / "tiny_policy.py").write_text(POLICY.format(path=str(folder / "table.npy")))
    save_logs(str(folder / "logs_d3rlpy.npz"), traj.replace(behavior_log_probs=None), format="d3rlpy")
    save_npz(str(folder / "logs.npz"), traj)
    probs = pi[np.asarray(traj.observations)]
    np.save(folder / "target.npy", probs)
    return folder, traj, probs


def _run(capsys, *argv):
    try:
        code = cli.main(["evaluate", *map(str, argv)])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def _is_value(traj, probs, blp, fn):
    tp = np.take_along_axis(probs, np.asarray(traj.actions)[..., None], -1)[..., 0]
    lr = np.where(np.asarray(traj.mask) > 0, np.log(np.where(tp > 0, tp, 1.0)) - np.asarray(blp), 0.0)
    return float(fn(traj.rewards, jnp.asarray(lr, traj.rewards.dtype), traj.mask, GAMMA))


def test_d3rlpy_export_without_propensities(logs, capsys, monkeypatch, fast_compiles):
    folder, traj, probs = logs
    monkeypatch.chdir(folder)
    code, out, err = _run(capsys, "logs_d3rlpy.npz", "--target", "tiny_policy:target", "--gamma", GAMMA,
                          "--q-hat", "fqe", "--fqe-steps", 20, "--estimators", "is,dr", "--out", folder / "report")
    assert code == 0, err
    report = json.loads((folder / "report.json").read_text())
    assert (folder / "report.md").read_text().startswith("# offrl-jax evaluate")
    names = [r["name"] for r in report["estimates"]]
    assert names == ["is", "dr"]
    assert report["behavior"]["source"].startswith("estimated (tabular")
    assert "estimating the behaviour policy" in err and "IS (trajectory-wise)" in out
    # IS equals trajectory-wise IS with the cross-fitted tabular propensities (computed apart).
    est = estimate_behavior(jax.random.key(0), traj, "tabular", num_folds=5, num_actions=4, num_observations=21)
    rows = {r["name"]: r for r in report["estimates"]}
    np.testing.assert_allclose(rows["is"]["estimate"], _is_value(traj, probs, est.log_probs, trajectory_is), rtol=1e-5)
    assert rows["is"]["lower"] <= rows["is"]["estimate"] <= rows["is"]["upper"]
    assert 0 < report["weights"]["ess"] <= 40


def test_npz_layout_with_logged_propensities_and_q_hat_file(logs, capsys, fast_compiles):
    """Q̂ = 0 from a file: DR equals PDIS exactly; the propensities come from the logs."""
    folder, traj, probs = logs
    np.save(folder / "zeros.npy", np.zeros_like(probs))
    code, out, err = _run(capsys, folder / "logs.npz", "--target", folder / "target.npy", "--gamma", GAMMA,
                          "--q-hat", folder / "zeros.npy", "--estimators", "is,dr", "--out", folder / "r2",
                          "--no-figure", "--quiet")
    assert code == 0, err
    assert all(line.startswith("warning: ") for line in err.splitlines())  # --quiet: no progress lines
    assert "effective sample size" in err  # 40 trajectories of up to 20 steps: the weights collapse, and it says so
    rows = {r["name"]: r for r in json.loads((folder / "r2.json").read_text())["estimates"]}
    pdis = _is_value(traj, probs, traj.behavior_log_probs, per_decision_is)
    np.testing.assert_allclose(rows["dr"]["estimate"], pdis, rtol=1e-5)
    np.testing.assert_allclose(rows["is"]["estimate"], _is_value(traj, probs, traj.behavior_log_probs, trajectory_is),
                               rtol=1e-5)
    assert not os.path.exists(folder / "r2.png")


def _bad_files(folder, traj, probs):
    np.savez(folder / "no_actions.npz", observations=np.zeros(5), rewards=np.zeros(5), terminals=np.zeros(5))
    (folder / "garbage.npz").write_bytes(b"not a zip archive")
    np.save(folder / "short_target.npy", probs[:, :5])
    bad = probs.copy()
    bad[0, 0] = [1.5, -0.5, 0.0, 0.0]
    np.save(folder / "bad_target.npy", bad)
    p = np.exp(np.asarray(traj.behavior_log_probs))
    zero = p.copy()
    zero[0, 0] = 0.0
    np.save(folder / "zero_pscore.npy", zero)
    big = p.copy()
    big[1, 0] = 1.5
    np.save(folder / "big_pscore.npy", big)


@pytest.mark.parametrize(
    "args,field",
    [
        (["missing.npz", "--target", "target.npy"], "missing.npz"),
        (["garbage.npz", "--target", "target.npy"], "garbage.npz"),
        (["no_actions.npz", "--target", "target.npy"], "actions"),
        (["logs.npz", "--target", "short_target.npy"], "target"),
        (["logs.npz", "--target", "bad_target.npy"], "target"),
        (["logs.npz", "--target", "nowhere.npy"], "target"),
        (["logs.npz", "--target", "tiny_policy:absent"], "target"),
        (["logs.npz", "--target", "tiny_policy:broken"], "target"),
        (["logs.npz", "--target", "target.npy", "--propensities", "zero_pscore.npy"], "propensities"),
        (["logs.npz", "--target", "target.npy", "--propensities", "big_pscore.npy"], "propensities"),
        (["logs.npz", "--target", "target.npy", "--gamma", "1.5"], "gamma"),
        (["logs.npz", "--target", "target.npy", "--q-hat", "nope"], "q-hat"),
        (["logs.npz", "--target", "target.npy", "--folds", "1"], "folds"),
        (["logs.npz", "--target", "target.npy", "--estimators", "dr"], "estimators"),
        (["logs.npz", "--target", "target.npy", "--estimators", "xyz"], "estimators"),
    ],
)
def test_user_errors_one_line_exit_2(logs, capsys, monkeypatch, args, field):
    folder, traj, probs = logs
    monkeypatch.chdir(folder)
    if not (folder / "garbage.npz").exists():
        _bad_files(folder, traj, probs)
    code, out, err = _run(capsys, *args, "--quiet", "--out", folder / "err")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and field in lines[0], err
    assert "Traceback" not in err
