"""FQE of controllers on gymnax Acrobot-v1 and MountainCar-v0 against Monte-Carlo truth.

Setting: γ = 0.99; data: episodes of the controller with ε = 0.3 (key 0; Acrobot 50 episodes
≈ 6k transitions, MountainCar 80 ≈ 13k); target: the controller with ε = 0.1. The compared
quantity is the value of episodes cut at the time limit T (time-aware FQE: input [o, t/T],
time-out terminal), estimated by Monte-Carlo from 1000 target episodes (key 123, independent of
the data). FQE: MLP 64x64, Adam 1e-3, batch 256, target copy every 10 steps, 4000 steps, rewards
scaled by 1 − γ, standardised observations, seeds vmapped (Acrobot 2, MountainCar 4; key 1).

Tolerance: |Ĵ − J_MC| ≤ 3 SE_MC + α |J_MC|, with α FQE's approximation allowance at this small
size, measured over data/network/step-count variants of this setting: Acrobot errors 6-14%
(Ĵ below J_MC, toward the behaviour policy's value), α = 0.15; MountainCar errors 3-8%, α = 0.10
(with 4 seeds; single seeds spread by ±4). At 10^5 transitions with a 2x256 network the errors
are 9% and 4.5% (benchmarks/results/fitted_control.md). The tolerance separates policies: the
uniform policy's value (Acrobot −99.3, MountainCar −86.6) lies outside it, which is checked too.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.data import Trajectories, Transitions
from offrl_jax.envs.control import control_rollout, make_env
from offrl_jax.envs.control_policies import controller
from offrl_jax.experiments.control_fqe import FQEValue, controller_probs, fqe_value
from offrl_jax.fitted import FittedQConfig, time_aware_transitions, with_time

GAMMA = 0.99
MC_EPISODES = 1000
# task: (num_actions, dataset episodes, FQE seeds, allowance)
TASKS = {"Acrobot-v1": (3, 50, 2, 0.15), "MountainCar-v0": (3, 80, 4, 0.10)}

_fqe = jax.jit(fqe_value, static_argnames=("target_policy", "config", "standardize"))


@functools.partial(jax.jit, static_argnames=("env_name", "policy"))
def _rollouts(keys, env_name, policy, params):
    """One compiled rollout of MC_EPISODES episodes per (key, controller parameters) pair."""
    one = lambda k, p: control_rollout(k, env_name, policy, p, num_episodes=MC_EPISODES)
    return jax.vmap(one)(keys, params)


def _config(num_actions: int) -> FittedQConfig:
    return FittedQConfig(
        num_actions=num_actions, gamma=GAMMA, hidden_sizes=(64, 64), num_steps=4000, batch_size=256,
        learning_rate=1e-3, target_update_period=10, dtype="float32",
    )


@functools.lru_cache(maxsize=None)
def _case(env_name: str):
    """(FQE result, {epsilon: (Monte-Carlo mean, SE)}) for one task, computed once per session.

    One vmapped rollout call gives the behaviour data (key 0, first ``episodes`` episodes) and the
    Monte-Carlo episodes of the target and the uniform policy (key 123, independent of the data).
    """
    a, episodes, seeds, _ = TASKS[env_name]
    _, env_params = make_env(env_name)
    limit = int(env_params.max_steps_in_episode)
    eps = (0.3, 0.1, 1.0)
    ctrl = [controller(env_name, e, jnp.float32) for e in eps]
    params = jax.tree.map(lambda *x: jnp.stack(x), *[c.params for c in ctrl])
    keys = jnp.stack([jax.random.key(0), jax.random.key(123), jax.random.key(123)])
    trajs = _rollouts(keys, env_name, ctrl[0].policy, params)
    traj = jax.tree.map(lambda x: x[0, :episodes], trajs)
    data = time_aware_transitions(traj, limit)
    s0 = with_time(traj.observations[:, 0], 0, limit)
    probs = controller_probs(ctrl[1], a, traj.observations.shape[-1])
    fqe = _fqe(jax.random.split(jax.random.key(1), seeds), data, s0, probs, _config(a), reward_scale=1.0 - GAMMA)
    mc = {}
    for i in (1, 2):
        g = np.asarray(jax.tree.map(lambda x: x[i], trajs).returns(GAMMA), np.float64)
        mc[eps[i]] = (g.mean(), g.std(ddof=1) / np.sqrt(g.size))
    return fqe, mc


def _tolerance(env_name, mc) -> float:
    mean, se = mc
    return 3.0 * se + TASKS[env_name][3] * abs(mean)


@pytest.mark.parametrize("env_name", ["Acrobot-v1", "MountainCar-v0"])
def test_fqe_matches_monte_carlo_and_separates_policies(env_name):
    fqe, mc = _case(env_name)
    est = float(fqe.estimate)
    assert np.all(np.isfinite(np.asarray(fqe.seed_estimates)))
    # The target's value: within the tolerance.
    tol = _tolerance(env_name, mc[0.1])
    assert mc[0.1][1] > 0  # the target's episode lengths vary
    assert abs(est - mc[0.1][0]) <= tol, (est, mc[0.1])
    # A badly wrong policy's value (uniform random actions) is not.
    assert abs(est - mc[1.0][0]) > tol, (est, mc[1.0])


def test_time_aware_transitions_mark_time_outs_terminal():
    # Two hand-made episodes, T = 3: one terminates at t = 1, one reaches the limit at t = 2.
    obs = jnp.arange(2 * 3 * 2, dtype=jnp.float32).reshape(2, 3, 2)
    traj = Trajectories(
        observations=obs,
        actions=jnp.zeros((2, 3), jnp.int32),
        rewards=-jnp.ones((2, 3), jnp.float32),
        next_observations=obs + 100.0,
        discounts=jnp.array([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]], jnp.float32),
        mask=jnp.array([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], jnp.float32),
    )
    out = time_aware_transitions(traj, 3)
    np.testing.assert_array_equal(out.discounts, [1.0, 0.0, 1.0, 1.0, 0.0])
    np.testing.assert_allclose(out.observations[:, -1], np.array([0, 1, 0, 1, 2]) / 3)
    np.testing.assert_allclose(out.next_observations[:, -1], np.array([1, 2, 1, 2, 3]) / 3)
    np.testing.assert_array_equal(out.observations[:, :2], np.asarray(obs)[np.asarray(traj.mask) > 0])
    assert out.observations.dtype == jnp.float32
    with pytest.raises(ValueError, match="time_limit"):
        time_aware_transitions(traj, 0)


def test_controller_probs_equal_the_mixture_and_ignore_extra_features():
    c = controller("MountainCar-v0", 0.3, jnp.float32)
    obs = jnp.array([[-0.5, 0.01], [-0.5, -0.02], [0.1, 0.0]], jnp.float32)
    p = controller_probs(c, 3, obs_dim=2)
    expected = np.full((3, 3), 0.1)
    expected[[0, 1, 2], [2, 0, 2]] += 0.7  # push with the velocity (right at velocity 0)
    np.testing.assert_allclose(p(obs), expected, rtol=1e-6)
    np.testing.assert_allclose(p(with_time(obs, jnp.array([0, 5, 9]), 10)), expected, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(p)(obs), p(obs), rtol=1e-6)
    with pytest.raises(ValueError, match="num_actions"):
        controller_probs(c, 0)


def _tiny_dataset(dtype=jnp.float64, m=16):
    obs = jnp.linspace(-1.0, 1.0, 2 * m, dtype=dtype).reshape(m, 2)
    return Transitions(
        observations=obs, actions=jnp.arange(m, dtype=jnp.int32) % 2, rewards=jnp.linspace(-1.0, 1.0, m, dtype=dtype),
        next_observations=obs[::-1], discounts=(jnp.arange(m) % 5 != 0).astype(dtype),
    )


def _half(o):
    return jnp.full(o.shape[:1] + (2,), 0.5, o.dtype)


def _one(o):
    return jnp.ones(o.shape[:1] + (1,), o.dtype)


def test_fqe_value_reward_scale_is_exact_at_the_fixed_point():
    """One state, one action, r = 2, γ = 0.5: Q = r / (1 − γ) = 4. With a bias-only Q and full-batch
    SGD (step 0.5, target copied every step) the iteration is b ← 0.75 b + c·2·0.5 = 0.75 b + c,
    fixed point 4c, so the estimate b / c = 4 for every reward scale c."""
    m = 8
    zeros = jnp.zeros((m, 1), jnp.float64)
    ds = Transitions(
        observations=zeros, actions=jnp.zeros((m,), jnp.int32), rewards=jnp.full((m,), 2.0),
        next_observations=zeros, discounts=jnp.ones((m,)),
    )
    cfg = FittedQConfig(
        num_actions=1, gamma=0.5, hidden_sizes=(), num_steps=150, batch_size=None, learning_rate=0.5,
        optimizer="sgd", target_update_period=1, dtype="float64",
    )
    keys = jax.random.split(jax.random.key(0), 3)
    for c in (1.0, 0.25, 0.01):  # reward_scale is traced: one compilation
        res = _fqe(keys, ds, zeros[:2], _one, cfg, reward_scale=c)
        assert isinstance(res, FQEValue)
        np.testing.assert_allclose(res.seed_estimates, 4.0, rtol=1e-9)
        np.testing.assert_allclose(res.standard_error, 0.0, atol=1e-9)


def test_fqe_value_jit_and_vmap_over_seeds_agree():
    """Jitted equals eager; seeds are independent lanes (permuting the keys permutes the estimates),
    and the summary is the mean and standard error of the per-seed estimates."""
    ds = _tiny_dataset()
    cfg = FittedQConfig(num_actions=2, gamma=0.9, hidden_sizes=(4,), num_steps=3, batch_size=8, dtype="float64")
    keys = jax.random.split(jax.random.key(3), 3)
    s0 = ds.observations[:4]
    jitted = _fqe(keys, ds, s0, _half, cfg, reward_scale=0.1)
    eager = fqe_value(keys, ds, s0, _half, cfg, reward_scale=0.1)
    np.testing.assert_allclose(jitted.seed_estimates, eager.seed_estimates, rtol=1e-10)
    np.testing.assert_allclose(jitted.final_loss, eager.final_loss, rtol=1e-10)
    permuted = _fqe(keys[jnp.array([2, 0, 1])], ds, s0, _half, cfg, reward_scale=0.1)
    np.testing.assert_allclose(permuted.seed_estimates, np.asarray(jitted.seed_estimates)[[2, 0, 1]], rtol=1e-10)
    est = np.asarray(jitted.seed_estimates)
    assert np.ptp(est) > 0  # the seeds differ
    np.testing.assert_allclose(jitted.estimate, est.mean(), rtol=1e-10)
    np.testing.assert_allclose(jitted.standard_error, est.std(ddof=1) / np.sqrt(3), rtol=1e-8)


def test_fqe_value_rejects_bad_arguments():
    ds = _tiny_dataset(jnp.float32, m=8)
    obs = ds.observations
    policy = _half
    cfg = FittedQConfig(num_actions=2, hidden_sizes=(4,), num_steps=2, batch_size=4)
    keys = jax.random.split(jax.random.key(0), 2)
    with pytest.raises(ValueError, match="initial_observations"):
        fqe_value(keys, ds, jnp.zeros((3, 5), jnp.float32), policy, cfg)
    with pytest.raises(ValueError, match="reward_scale"):
        fqe_value(keys, ds, obs[:2], policy, cfg, reward_scale=0.0)
    with pytest.raises(ValueError, match="method"):
        fqe_value(keys, ds, obs[:2], None, cfg.replace(method="fqi"))
    with pytest.raises(ValueError, match="batch_size"):
        fqe_value(keys, ds, obs[:2], policy, cfg.replace(batch_size=9))


def test_fqe_value_is_exact_on_a_tabular_mdp(garnet_data):
    """Integer (one-hot) observations skip standardisation; on the enumerated Garnet (data = model)
    the estimate equals the exact J(π) = mean_s0 Σ_a π(a|s0) Q^π(s0, a) (float64 solve)
    for every seed; 3000 full-batch Adam steps leave < 1e-6 (as in test_train)."""
    from offrl_jax.envs import q_values

    mdp, ds, pi = garnet_data
    cfg = FittedQConfig(
        num_actions=3, num_observations=7, hidden_sizes=(), gamma=0.9, batch_size=None, learning_rate=0.05,
        num_steps=3000, target_update_period=15, dtype="float64",
    )
    q_true = np.asarray(q_values(mdp, pi))
    exact = np.mean(np.sum(q_true[:6] * np.asarray(pi)[:6], -1))
    table = lambda o: pi[o]
    res = _fqe(jax.random.split(jax.random.key(0), 2), ds, jnp.arange(6), table, cfg, reward_scale=1.0)
    np.testing.assert_allclose(res.seed_estimates, exact, atol=1e-6)
