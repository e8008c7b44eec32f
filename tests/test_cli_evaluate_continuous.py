"""``offrl-jax evaluate`` on continuous actions (an LQR log) and vector observations (CartPole):
estimates against exact or Monte-Carlo truths, and the new user errors -> one line, exit 2."""

import json

import jax
import numpy as np
import pytest

from offrl_jax import cli
from offrl_jax.data import Trajectories, save_npz
from offrl_jax.envs.control import control_rollout
from offrl_jax.envs.control_policies import controller
from offrl_jax.envs.lqr import LinearGaussianPolicy, LQRSystem, sample_lqr_transitions
from offrl_jax.experiments.evaluate_q import target_next_probs
from offrl_jax.formats import save_logs

Z95 = 1.959964  # the Student-t quantile at these N is within 0.5% of it; SE = half-width / Z95

LQR_POLICY = """
import numpy as np

GAIN, VAR = np.array({gain!r}), {var!r}


def target(observations, actions):
    mean = observations @ GAIN.T
    return (-0.5 * (actions - mean) ** 2 / VAR - 0.5 * np.log(2 * np.pi * VAR)).sum(-1)


def sample(key, observations):
    import jax
    import jax.numpy as jnp

    mean = observations @ jnp.asarray(GAIN.T, observations.dtype)
    return mean + np.sqrt(VAR) * jax.random.normal(key, mean.shape, observations.dtype)


def numpy_sample(key, observations):
    return np.asarray(observations) @ GAIN.T
"""

CARTPOLE_POLICY = """
import numpy as np

W, EPS = np.array([0.1, 0.5, 10.0, 2.0]), {eps!r}


def target(observations):
    push = (observations @ W >= 0).astype(np.float64)
    return np.stack([EPS / 2 + (1 - EPS) * (1 - push), EPS / 2 + (1 - EPS) * push], -1)
"""


@pytest.fixture(autouse=True)
def _no_persistent_cache(monkeypatch):
    monkeypatch.setenv("OFFRL_JAX_NO_CACHE", "1")


def _lqr_value(system, policy, gamma, horizon):
    """Exact J = E[Σ_{t<T} γ^t r_t] of a linear-Gaussian policy: V_k(s) = sᵀP_k s + c_k with
    P_{k+1} = −(Q + KᵀRK) + γ MᵀP_kM, c_{k+1} = −tr(RΣ_a) + γ (tr(BᵀP_kBΣ_a) + tr(P_kΣ_w) + c_k)."""
    a, b, k, q, r, sw, sa, mu, s0 = (np.asarray(x, np.float64) for x in (
        system.transition, system.control, policy.gain, system.state_cost, system.action_cost, system.noise_cov,
        policy.noise_cov, system.initial_mean, system.initial_cov))
    m, p, c = a + b @ k, np.zeros_like(a), 0.0
    for _ in range(horizon):
        p, c = (-(q + k.T @ r @ k) + gamma * m.T @ p @ m,
                -np.trace(r @ sa) + gamma * (np.trace(b.T @ p @ b @ sa) + np.trace(p @ sw) + c))
    return float(mu @ p @ mu + np.trace(p @ s0) + c)


@pytest.fixture(scope="module")
def lqr_logs(tmp_path_factory):
    """300 behaviour episodes (T = 8) of a 2-state, 1-action LQR system as a d3rlpy export
    (float actions [M, 1], no propensities), the true behaviour log-densities as a file, the
    target as a module, and the target's exact finite-horizon value."""
    folder = tmp_path_factory.mktemp("evaluate_lqr")
    n, t, gamma = 300, 8, 0.9
    system = LQRSystem.create(transition=[[0.9, 0.2], [0.0, 0.8]], control=[[0.0], [0.5]], state_cost=np.eye(2),
                              action_cost=[[0.1]], noise_cov=0.01 * np.eye(2), initial_mean=[1.0, 0.0],
                              initial_cov=0.1 * np.eye(2), dtype=np.float32)
    behavior = LinearGaussianPolicy.create(gain=[[-0.3, -0.5]], noise_cov=[[0.25]], dtype=np.float32)
    target = LinearGaussianPolicy.create(gain=[[-0.4, -0.6]], noise_cov=[[0.16]], dtype=np.float32)
    tr = sample_lqr_transitions(jax.random.key(0), system, behavior, n, t)

    def sh(x):
        return np.asarray(x).reshape((n, t) + np.asarray(x).shape[1:])

    traj = Trajectories.create(observations=sh(tr.observations), actions=sh(tr.actions), rewards=sh(tr.rewards),
                               next_observations=sh(tr.next_observations), discounts=sh(tr.discounts),
                               mask=np.ones((n, t), np.float32))
    save_logs(str(folder / "lqr_d3rlpy.npz"), traj, format="d3rlpy")
    np.save(folder / "behavior_logdens.npy", sh(behavior.log_prob(tr.observations, tr.actions)))
    (folder / "lqr_policy.py").write_text(LQR_POLICY.format(gain=[[-0.4, -0.6]], var=0.16))
    return folder, gamma, _lqr_value(system, target, gamma, t)


def _run(capsys, *argv):
    try:
        code = cli.main(["evaluate", *map(str, argv)])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def _rows(path):
    report = json.loads(path.read_text())
    return {r["name"]: r for r in report["estimates"]}, report


def test_continuous_actions_with_true_densities_match_exact_lqr_value(lqr_logs, capsys, monkeypatch, fast_compiles):
    folder, gamma, exact = lqr_logs
    monkeypatch.chdir(folder)
    code, out, err = _run(capsys, "lqr_d3rlpy.npz", "--target", "lqr_policy:target", "--gamma", gamma,
                          "--propensities", "behavior_logdens.npy", "--estimators", "is,pdis", "--out", "true",
                          "--no-figure", "--quiet")
    assert code == 0, err
    rows, report = _rows(folder / "true.json")
    assert report["settings"]["action_dim"] == 1 and "continuous actions of dimension d = 1" in out
    for name in ("is", "pdis"):
        se = (rows[name]["upper"] - rows[name]["lower"]) / (2 * Z95)
        assert abs(rows[name]["estimate"] - exact) < 3.5 * se, (name, rows[name], exact)
        assert se < 0.1 * abs(exact)  # an informative interval, not a vacuous one
    b = report["behavior"]
    # E_β[π/β] = 1 here (both Gaussians have full support): the diagnostic finds it within 3.5 SE.
    assert abs(b["mean_step_ratio"] - 1.0) < 3.5 * b["mean_step_ratio_se"]
    assert b["max_step_log_ratio"] > 0 > b["min_step_log_ratio"]
    assert "min_propensity" not in b and not report["warnings"]


def test_continuous_actions_with_estimated_gaussian_behaviour(lqr_logs, capsys, monkeypatch, fast_compiles):
    """β̂: the linear Gaussian (the behaviour's own family), cross-fitted over 2 folds: PDIS stays
    within 3.5 SE of the exact value and the β̂ diagnostics are printed."""
    folder, gamma, exact = lqr_logs
    monkeypatch.chdir(folder)
    code, out, err = _run(capsys, "lqr_d3rlpy.npz", "--target", "lqr_policy:target", "--gamma", gamma,
                          "--behavior-model", "linear", "--folds", 2, "--estimators", "is,pdis", "--out", "est",
                          "--no-figure")
    assert code == 0, err
    assert "estimating the behaviour policy (Gaussian linear, 2-fold" in err
    rows, report = _rows(folder / "est.json")
    se = (rows["pdis"]["upper"] - rows["pdis"]["lower"]) / (2 * Z95)
    assert abs(rows["pdis"]["estimate"] - exact) < 3.5 * se, (rows["pdis"], exact)
    b = report["behavior"]
    assert b["source"].startswith("estimated (diagonal Gaussian, linear, 2-fold")
    # The true behaviour's mean log-density per step is −½ log(2πe σ²) = −0.726 for σ² = 0.25.
    assert abs(b["heldout_log_likelihood"] + 0.726) < 0.05
    assert 0 <= b["calibration_error"] < 0.05
    assert "held-out log-likelihood" in out and "per-step density ratio" in out


def test_continuous_actions_with_fqe_from_a_target_sampler(lqr_logs, capsys, monkeypatch, fast_compiles):
    """--q-hat fqe with --target-sampler (continuous-action neural FQE, cross-fitted): DR within
    3.5 SE of the exact value, its standard error no larger than PDIS's, DM within 10%."""
    folder, gamma, exact = lqr_logs
    monkeypatch.chdir(folder)
    code, out, err = _run(capsys, "lqr_d3rlpy.npz", "--target", "lqr_policy:target", "--gamma", gamma,
                          "--propensities", "behavior_logdens.npy", "--q-hat", "fqe", "--target-sampler",
                          "lqr_policy:sample", "--estimators", "pdis,dm,dr", "--out", "sampled", "--no-figure")
    assert code == 0, err
    assert "actions sampled from the target" in err
    rows, _ = _rows(folder / "sampled.json")
    se = {k: (r["upper"] - r["lower"]) / (2 * Z95) for k, r in rows.items()}
    assert abs(rows["dr"]["estimate"] - exact) < 3.5 * se["dr"], (rows["dr"], exact)
    assert se["dr"] <= se["pdis"]
    assert abs(rows["dm"]["estimate"] - exact) < 0.1 * abs(exact), (rows["dm"], exact)


@pytest.fixture(scope="module")
def cartpole_logs(tmp_path_factory):
    """CartPole logs (vector observations [N, T, 4], 2 actions) of the controller mixed with 90%
    uniform actions, with their propensities (our npz); the target (30% uniform) as a module; a
    Monte-Carlo value of the target from as many episodes."""
    folder = tmp_path_factory.mktemp("evaluate_cartpole")
    n, t, gamma = 100, 10, 0.9
    rollout = jax.jit(control_rollout, static_argnames=("env", "policy", "num_episodes", "horizon", "target_policy"))
    beh, tgt = controller("CartPole-v1", 0.9), controller("CartPole-v1", 0.3)
    save_npz(str(folder / "cartpole.npz"), rollout(jax.random.key(0), "CartPole-v1", beh.policy, beh.params, n, t))
    g = np.asarray(rollout(jax.random.key(1), "CartPole-v1", tgt.policy, tgt.params, n, t).returns(gamma))
    (folder / "cartpole_policy.py").write_text(CARTPOLE_POLICY.format(eps=0.3))
    return folder, gamma, float(g.mean()), float(g.std(ddof=1) / np.sqrt(n))


def test_vector_observations_with_neural_fqe(cartpole_logs, capsys, monkeypatch, fast_compiles):
    """--q-hat fqe on vector observations: DR within 3.5 SE of the Monte-Carlo value; the neural
    Q̂ cuts DR's standard error well below PDIS's, and DM lands within 3% of the value."""
    folder, gamma, mc, mc_se = cartpole_logs
    monkeypatch.chdir(folder)
    code, out, err = _run(capsys, "cartpole.npz", "--target", "cartpole_policy:target", "--gamma", gamma,
                          "--q-hat", "fqe", "--fqe-steps", 1000, "--estimators", "pdis,dm,dr", "--out", "fqe",
                          "--no-figure")
    assert code == 0, err
    assert "target policy at the next observations" in err and "cross-fitted neural FQE" in err
    rows, report = _rows(folder / "fqe.json")
    se = {k: (r["upper"] - r["lower"]) / (2 * Z95) for k, r in rows.items()}
    assert abs(rows["dr"]["estimate"] - mc) < 3.5 * np.hypot(se["dr"], mc_se), (rows["dr"], mc, mc_se)
    assert se["dr"] < 0.2 * se["pdis"]
    assert abs(rows["dm"]["estimate"] - mc) < 0.03 * abs(mc), (rows["dm"], mc)


def test_target_next_probs_shifts_within_trajectories():
    """π(·|s'_t) = π(·|s_{t+1}) inside a trajectory; the last real step keeps its own π; a note
    only when a time-out before the horizon moved to an unrecorded s'."""
    pi = np.arange(2 * 3 * 2, dtype=float).reshape(2, 3, 2)
    obs = np.arange(6, dtype=np.float32).reshape(2, 3, 1)
    nxt = obs + 1
    nxt[1, 1] = 0.0  # row 1 has 2 real steps and ends by a time-out at s' = 0 (not recorded elsewhere)
    traj = Trajectories.create(observations=obs, next_observations=nxt, actions=np.zeros((2, 3), np.int32),
                               rewards=np.zeros((2, 3)), discounts=np.ones((2, 3)), mask=[[1, 1, 1], [1, 1, 0]])
    notes = []
    got = target_next_probs(pi, traj, None, notes)
    np.testing.assert_array_equal(got[0], pi[0, [1, 2, 2]])
    np.testing.assert_array_equal(got[1, :2], pi[1, [1, 1]])
    assert len(notes) == 1 and "1 trajectories end by a time-out" in notes[0]
    given = np.full_like(pi, 0.5)
    assert target_next_probs(pi, traj, given, []) is given


@pytest.mark.parametrize(
    "logs,args,field",
    [
        ("lqr", ["--q-hat", "fqe"], "q-hat"),
        ("lqr", ["--q-hat", "fqe", "--target-sampler", "lqr_policy:sample", "--gamma", "1"], "gamma"),
        ("lqr", ["--q-hat", "fqe", "--target-sampler", "lqr_policy:numpy_sample"], "target-sampler"),
        ("lqr", ["--q-hat", "fqe", "--target-sampler", "lqr_policy:nowhere"], "target-sampler"),
        ("cartpole", ["--q-hat", "fqe", "--target-sampler", "lqr_policy:sample"], "target-sampler"),
        ("lqr", ["--q-hat", "model"], "q-hat"),
        ("lqr", ["--behavior-model", "tabular"], "behavior-model"),
        ("lqr", ["--propensities", "bad_logdens.npy"], "propensities"),
        ("lqr", ["--target", "probs3d.npy"], "target"),
        ("lqr", ["--target", "lqr_policy:absent"], "target"),
        ("lqr", ["--q-hat", "one_table.npy"], "q-hat"),
        ("cartpole", ["--q-hat", "model"], "q-hat"),
    ],
)
def test_user_errors_one_line_exit_2(lqr_logs, cartpole_logs, capsys, monkeypatch, tmp_path, logs, args, field):
    folder = lqr_logs[0] if logs == "lqr" else cartpole_logs[0]
    monkeypatch.chdir(folder)
    bad = np.load(lqr_logs[0] / "behavior_logdens.npy")
    bad[3, 2] = np.nan
    np.save(lqr_logs[0] / "bad_logdens.npy", bad)
    np.save(lqr_logs[0] / "probs3d.npy", np.full(bad.shape + (2,), 0.5))
    np.save(lqr_logs[0] / "one_table.npy", np.zeros(bad.shape + (2,)))
    data = "lqr_d3rlpy.npz" if logs == "lqr" else "cartpole.npz"
    target = "lqr_policy:target" if logs == "lqr" else "cartpole_policy:target"
    if "--target" in args:
        target = args[args.index("--target") + 1]
        args = [a for a in args if a not in ("--target", target)]
    if logs == "lqr" and "--propensities" not in args and "--behavior-model" not in args:
        args = args + ["--propensities", "behavior_logdens.npy"]  # no β̂ to fit before the error
    if "--gamma" not in args:
        args = args + ["--gamma", "0.9"]
    code, out, err = _run(capsys, data, "--target", target, *args, "--quiet", "--out", tmp_path / "err")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and field in lines[0], err
    assert "Traceback" not in err


def test_density_ratio_warnings_in_words():
    """Continuous actions: a mean per-step ratio significantly below 0.95 warns that the target acts
    where the data do not go; one ratio above 1000 warns of huge single ratios; else no warning."""
    from offrl_jax.experiments.evaluate_report import warnings_for

    weights = dict(ess=500.0, max_weight_share=0.01, num_trajectories=1000)
    calm = dict(mean_step_ratio=0.97, mean_step_ratio_se=0.02, max_step_log_ratio=2.0)
    assert warnings_for(weights, calm) == []
    assert warnings_for(weights, dict(calm, mean_step_ratio=0.93, mean_step_ratio_se=0.02)) == []  # within 2 SE
    off = warnings_for(weights, dict(calm, mean_step_ratio=0.8, mean_step_ratio_se=0.01))
    assert len(off) == 1 and "average 0.800" in off[0] and "20%" in off[0]
    big = warnings_for(weights, dict(calm, max_step_log_ratio=np.log(5000.0)))
    assert len(big) == 1 and "reaches 5e+03" in big[0]
