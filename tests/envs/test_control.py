"""gymnax control rollouts, graded controllers and Monte-Carlo ground truth.

Compilations are shared: per task one jitted collector and one jitted Monte-Carlo function,
each vmapped over the controller's epsilon (params are traced, so one compile serves all).
"""

import functools

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.core.validation import check_mask
from offrl_jax.envs.control import (
    MonteCarloValue,
    control_episode,
    control_returns,
    control_rollout,
    make_env,
    monte_carlo_value,
    validate_control_args,
)
from offrl_jax.envs.control_policies import (
    CONTINUOUS_CONTROLLERS,
    CONTROLLERS,
    ControlPolicy,
    controller,
    swing_up_policy,
    threshold_policy,
)

ENVS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0")
EPSILONS = (0.0, 0.5, 1.0)
TARGET_EPSILON = 0.0
N_DATA = 48
N_MC = 256
EXTRA = 10  # horizon = time limit + EXTRA, so every row ends with padding


def _limit(name):
    return int(make_env(name)[1].max_steps_in_episode)


def _stacked_params(name):
    ps = [controller(name, e, dtype=jnp.float64).params for e in EPSILONS]
    return jax.tree.map(lambda *x: jnp.stack(x), *ps)


@functools.lru_cache(maxsize=None)
def _collector(name):
    policy = CONTROLLERS[name].policy
    horizon = _limit(name) + EXTRA

    def collect(key, params, target_params):
        return control_rollout(
            key, name, policy, params, N_DATA, horizon, target_policy=policy, target_params=target_params
        )

    return jax.jit(jax.vmap(collect, in_axes=(None, 0, None)))


@functools.lru_cache(maxsize=None)
def _mc(name):
    policy = CONTROLLERS[name].policy
    horizon = _limit(name) + EXTRA

    def mc(key, params, gamma):
        return monte_carlo_value(key, name, policy, params, N_MC, horizon, gamma)

    return jax.jit(jax.vmap(mc, in_axes=(None, 0, None)))


@functools.lru_cache(maxsize=None)
def _data(name):
    target = controller(name, TARGET_EPSILON, dtype=jnp.float64).params
    return _collector(name)(jax.random.key(1), _stacked_params(name), target)


def _row(data, i):
    return jax.tree.map(lambda x: np.asarray(x[i]), data)


def _rule(name, obs):
    spec = CONTROLLERS[name]
    low, high = {"CartPole-v1": (0, 1)}.get(name, (0, 2))
    return np.where(obs @ np.asarray(spec.weights) + spec.bias >= 0, high, low)


def _resync(name, state, obs):
    """The gymnax state whose observation is ``obs`` (same time step)."""
    if name == "CartPole-v1":
        return state.replace(x=obs[0], x_dot=obs[1], theta=obs[2], theta_dot=obs[3])
    if name == "MountainCar-v0":
        return state.replace(position=obs[0], velocity=obs[1])
    return state.replace(
        joint_angle1=np.arctan2(obs[1], obs[0]),
        joint_angle2=np.arctan2(obs[3], obs[2]),
        velocity_1=obs[4],
        velocity_2=obs[5],
    )


# ----------------------------------------------------------------------------------------------
# Collected data: shapes, masks, discounts, termination vs truncation, log-probabilities.
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ENVS)
def test_shapes_mask_and_discounts(name):
    data = _data(name)
    env, env_params = make_env(name)
    obs_dim = env.observation_space(env_params).shape[0]
    horizon = _limit(name) + EXTRA
    e = len(EPSILONS)
    assert data.observations.shape == (e, N_DATA, horizon, obs_dim)
    assert data.next_observations.shape == (e, N_DATA, horizon, obs_dim)
    assert data.observations.dtype == jnp.float64  # the environment's dtype under x64
    assert data.actions.dtype == jnp.int32
    for f in ("rewards", "discounts", "mask", "behavior_log_probs", "target_log_probs"):
        assert getattr(data, f).shape == (e, N_DATA, horizon), f
    for i in range(e):
        d = _row(data, i)
        check_mask(d.mask, allow_empty_rows=False)
        lengths = d.mask.sum(1).astype(int)
        assert np.all(lengths <= _limit(name))  # the time limit always ends an episode
        pad = d.mask == 0
        for f in ("observations", "next_observations"):
            assert np.all(getattr(d, f)[pad] == 0)
        for f in ("actions", "rewards", "behavior_log_probs", "target_log_probs"):
            assert np.all(getattr(d, f)[pad] == 0), f
        # Discount 0 only on the last real step, and there always when the episode ended before
        # the time limit (a termination). At the limit it is 0 only if the step also terminated
        # (checked step by step against gymnax's flags below).
        last = d.discounts[np.arange(N_DATA), lengths - 1]
        assert np.all(last[lengths < _limit(name)] == 0)
        d_first = d.discounts.copy()
        d_first[np.arange(N_DATA), lengths - 1] = 1.0
        assert np.all(d_first == 1)
        # The container's own validation accepts the data.
        type(data).create(**{k: v for k, v in vars(d).items() if v is not None})


def test_termination_and_truncation_occur_as_expected():
    lim = {n: _limit(n) for n in ENVS}
    # CartPole: the near-optimal controller always reaches the 500-step limit (truncation).
    cp = _row(_data("CartPole-v1"), 0)
    assert np.all(cp.mask.sum(1) == lim["CartPole-v1"])
    assert np.all(cp.discounts[:, lim["CartPole-v1"] - 1] == 1)
    assert np.all(cp.rewards.sum(1) == 500.0)
    # MountainCar: the controller reaches the goal (termination), random actions never do.
    mc_good, mc_rand = _row(_data("MountainCar-v0"), 0), _row(_data("MountainCar-v0"), 2)
    assert np.all(mc_good.mask.sum(1) < lim["MountainCar-v0"])
    assert np.all(mc_rand.mask.sum(1) == lim["MountainCar-v0"])
    assert np.all(mc_rand.discounts == 1)
    # Acrobot: the controller swings up (termination); rewards are -1 until the terminal step.
    ac = _row(_data("Acrobot-v1"), 0)
    lengths = ac.mask.sum(1).astype(int)
    assert np.all(lengths < lim["Acrobot-v1"])
    np.testing.assert_array_equal(ac.rewards.sum(1), -(lengths - 1.0))


@pytest.mark.parametrize("name", ENVS)
def test_matches_gymnax_public_step_and_its_flags(name):
    """Replays logged actions through gymnax's public, auto-resetting ``env.step``."""
    env, env_params = make_env(name)
    data = _data(name)
    key = jax.random.key(1)  # the collector's key; episode n uses split(key, N)[n]
    # epsilon = 0 (CartPole: time-limit truncation; the others: termination) and, for
    # MountainCar, epsilon = 1 (time-limit truncation).
    cases = ((0, 0), (2, 1)) if name == "MountainCar-v0" else ((0, 0),)
    for i, n in cases:
        d = _row(data, i)
        k_reset, _ = jax.random.split(jax.random.split(key, N_DATA)[n])
        obs, state = env.reset(k_reset, env_params)
        length = int(d.mask[n].sum())
        for t in range(length):
            np.testing.assert_allclose(d.observations[n, t], obs, rtol=1e-9, atol=1e-9)
            # The same arithmetic, fused differently by XLA, differs by round-off, which the
            # bang-bang controllers amplify over hundreds of steps: restart each step from the
            # logged state so that every transition is compared on its own.
            state = _resync(name, state, d.observations[n, t])
            obs, state, r, term, trunc, info = env.step(
                jax.random.key(t), state, int(d.actions[n, t]), env_params
            )
            np.testing.assert_allclose(d.rewards[n, t], r)
            np.testing.assert_allclose(
                d.next_observations[n, t], info["final_observation"], rtol=1e-9, atol=1e-9
            )
            assert d.discounts[n, t] == float(info["discount"]) == 1.0 - float(term)
            done = bool(term) or bool(trunc)
            assert done == (t == length - 1)
        # gymnax auto-reset: the public step returns the next episode's first observation,
        # while the row ends with the true final observation.
        assert not np.allclose(obs, d.next_observations[n, length - 1])
        if length < d.mask.shape[1]:
            assert d.mask[n, length] == 0


@pytest.mark.parametrize("name", ENVS)
def test_log_probs_match_mixture_formula_and_sampling(name):
    data = _data(name)
    num_actions = make_env(name)[0].num_actions
    for i, eps in enumerate(EPSILONS):
        d = _row(data, i)
        real = d.mask > 0
        rule = _rule(name, d.observations[real])
        a = d.actions[real]
        hit = (a == rule).astype(float)
        with np.errstate(divide="ignore"):
            expect_b = np.log(eps / num_actions + (1 - eps) * hit)
            expect_t = np.log(TARGET_EPSILON / num_actions + (1 - TARGET_EPSILON) * hit)
        np.testing.assert_allclose(d.behavior_log_probs[real], expect_b, rtol=1e-12)
        np.testing.assert_array_equal(d.target_log_probs[real], expect_t)
        assert np.all(np.isfinite(d.behavior_log_probs[real]))
        # Sampling follows the mixture: P(a = c(o)) = 1 - eps + eps / A, within 5 SE.
        p = 1 - eps + eps / num_actions
        se = max(np.sqrt(p * (1 - p) / hit.size), 1e-12)
        assert abs(hit.mean() - p) <= 5 * se + 1e-12, (eps, hit.mean(), p)


def test_policy_log_prob_equals_sample_log_prob():
    policy, params = controller("Acrobot-v1", 0.3)

    @jax.jit
    def check(params):
        obs = jax.random.normal(jax.random.key(0), (64, 6), jnp.float32)
        keys = jax.random.split(jax.random.key(1), 64)
        a, lp = jax.vmap(policy.sample, (None, 0, 0))(params, obs, keys)
        lp_again = jax.vmap(policy.log_prob, (None, 0, 0))(params, obs, a)
        per_action = lambda o: jax.vmap(lambda b: policy.log_prob(params, o, b))(jnp.arange(3))
        all_lp = jax.vmap(per_action)(obs)
        return lp, lp_again, all_lp

    lp, lp_again, all_lp = check(params)
    np.testing.assert_array_equal(lp, lp_again)
    np.testing.assert_allclose(jnp.exp(all_lp).sum(-1), 1.0, rtol=1e-6)
    assert lp.dtype == jnp.float32  # float32 parameters give float32 log-probabilities
    # Two of the three actions have probability 0.3 / 3 (off the rule), one 0.7 + 0.1.
    np.testing.assert_allclose(np.sort(np.exp(all_lp), -1)[:, 1:], [[0.1, 0.8]] * 64, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# Monte-Carlo ground truth.
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ENVS)
def test_graded_quality_and_mc_agrees_with_independent_rollouts(name):
    mc1 = _mc(name)(jax.random.key(7), _stacked_params(name), 1.0)
    mc99 = _mc(name)(jax.random.key(7), _stacked_params(name), 0.99)
    assert isinstance(mc1, MonteCarloValue)
    for mc in (mc1, mc99):
        mean, se = np.asarray(mc.mean), np.asarray(mc.standard_error)
        # Quality decreases with epsilon, each gap by more than 4 combined standard errors.
        for j in range(len(EPSILONS) - 1):
            gap = mean[j] - mean[j + 1]
            assert gap > 4 * np.hypot(se[j], se[j + 1]) and gap > 0, (name, mean, se)
    data = _data(name)
    for gamma, mc in ((1.0, mc1), (0.99, mc99)):
        for i in range(len(EPSILONS)):
            g = np.asarray(_row(data, i).returns(gamma))
            se_data = g.std(ddof=1) / np.sqrt(g.size)
            tol = 4 * np.hypot(se_data, mc.standard_error[i]) + 1e-9
            assert abs(g.mean() - mc.mean[i]) <= tol, (name, gamma, i, g.mean(), mc.mean[i])
    if name == "CartPole-v1":
        assert float(mc1.mean[0]) == 500.0 and float(mc1.standard_error[0]) == 0.0
        np.testing.assert_allclose(mc99.mean[0], (1 - 0.99**500) / 0.01, rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# jit == no jit, vmapped == looped, returns path == trajectory path, determinism.
# ----------------------------------------------------------------------------------------------
SMALL = dict(env="MountainCar-v0", num_episodes=4, horizon=30)
_small_rollout = jax.jit(
    functools.partial(control_rollout, dtype=jnp.float32, **SMALL),
    static_argnames=("policy", "target_policy"),
)


def test_jit_equals_nojit_and_bare_functions_and_float32():
    policy, params = controller("MountainCar-v0", 0.4)
    target, target_params = controller("MountainCar-v0", 0.1)
    key = jax.random.key(3)
    jitted = _small_rollout(
        key, policy=policy, params=params, target_policy=target, target_params=target_params
    )
    eager = control_rollout(
        key, policy=policy.sample, params=params, target_policy=target.log_prob,
        target_params=target_params, dtype=jnp.float32, **SMALL,
    )
    for f in ("observations", "actions", "rewards", "next_observations", "discounts", "mask",
              "behavior_log_probs", "target_log_probs"):
        a, b = getattr(jitted, f), getattr(eager, f)
        assert a.dtype == b.dtype
        if f not in ("actions",):
            assert a.dtype == jnp.float32, f
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7, err_msg=f)
    # Horizon truncation: no MountainCar episode ends within 30 steps; discounts stay 1.
    assert np.all(np.asarray(jitted.mask) == 1) and np.all(np.asarray(jitted.discounts) == 1)


def test_vmapped_equals_looped_and_returns_path():
    policy, params = controller("MountainCar-v0", 0.4)
    target, target_params = controller("MountainCar-v0", 0.1)
    key = jax.random.key(5)
    # The same static arguments as the jit test above: its compiled rollout is reused (the
    # target only adds target_log_probs, which the bare episode below does not fill).
    data = _small_rollout(key, policy=policy, params=params, target_policy=target, target_params=target_params)
    episode = jax.jit(control_episode, static_argnums=(1, 3, 5), static_argnames=("dtype",))
    env, env_params = make_env("MountainCar-v0")
    for n, k in enumerate(jax.random.split(key, SMALL["num_episodes"])):
        row = episode(k, env, env_params, policy, params, SMALL["horizon"], dtype=jnp.float32)
        for f, v in vars(row).items():
            if v is not None:
                np.testing.assert_array_equal(v, getattr(data, f)[n], err_msg=f)
    # The lean returns path samples the very same episodes as the trajectory path.
    g = control_returns(key, "MountainCar-v0", policy, params, 4, 30, 0.9, dtype=jnp.float32)
    np.testing.assert_allclose(g, data.returns(0.9), rtol=1e-6)


def test_determinism_given_key():
    name = "Acrobot-v1"
    target = controller(name, TARGET_EPSILON, dtype=jnp.float64).params
    again = _collector(name)(jax.random.key(1), _stacked_params(name), target)
    other = _collector(name)(jax.random.key(2), _stacked_params(name), target)
    for f in ("observations", "actions", "rewards", "mask"):
        np.testing.assert_array_equal(getattr(again, f), getattr(_data(name), f))
    assert not np.array_equal(other.actions, again.actions)


def test_custom_environment_object_and_params():
    env, env_params = gymnax.make("MountainCar-v0")
    short = env_params.replace(max_steps_in_episode=20)
    policy, params = controller("MountainCar-v0", 1.0)
    data = control_rollout(jax.random.key(0), env, policy, params, 3, env_params=short)
    assert data.mask.shape == (3, 20)  # horizon defaults to the environment's time limit
    assert np.all(np.asarray(data.mask) == 1) and np.all(np.asarray(data.discounts) == 1)


# ----------------------------------------------------------------------------------------------
# Host-side validation.
# ----------------------------------------------------------------------------------------------
def test_validation_errors_name_the_argument():
    policy, params = controller("CartPole-v1", 0.1)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="env: unknown gymnax environment"):
        control_rollout(key, "CartPole-v9", policy, params, 4, 10)
    with pytest.raises(ValueError, match="env: expected a gymnax id"):
        control_rollout(key, object(), policy, params, 4, 10)
    from gymnax.wrappers.purerl import FlattenObservationWrapper

    with pytest.raises(ValueError, match="wrappers"):
        wrapped = FlattenObservationWrapper(make_env("CartPole-v1")[0])
        control_rollout(key, wrapped, policy, params, 4, 10)
    for bad in (0, -3, 2.0, True):
        with pytest.raises(ValueError, match="num_episodes"):
            control_rollout(key, "CartPole-v1", policy, params, bad, 10)
    for bad in (0, -1, 5.5):
        with pytest.raises(ValueError, match="horizon"):
            control_rollout(key, "CartPole-v1", policy, params, 4, bad)
    for bad in (-0.1, 1.5, float("nan"), np.ones(2)):
        with pytest.raises(ValueError, match="gamma"):
            monte_carlo_value(key, "CartPole-v1", policy, params, 10, 10, bad)
    with pytest.raises(ValueError, match="num_episodes"):
        monte_carlo_value(key, "CartPole-v1", policy, params, 1, 10, 0.9)
    with pytest.raises(ValueError, match="gamma"):
        control_returns(key, "CartPole-v1", policy, params, 4, 10, 2.0)
    with pytest.raises(ValueError, match="target_params"):
        control_rollout(key, "CartPole-v1", policy, params, 4, 10, target_policy=policy)
    with pytest.raises(ValueError, match="env_name"):
        controller("Pendulum-v9", 0.1)
    for bad in (0.0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="noise_std"):
            controller("Pendulum-v1", 0.1, noise_std=bad)
    with pytest.raises(ValueError, match="noise_std"):
        controller("CartPole-v1", 0.1, noise_std=0.1)
    with pytest.raises(ValueError, match="max_torque"):
        swing_up_policy(0.0)
    for bad in (-0.1, 1.01, float("nan")):
        with pytest.raises(ValueError, match="epsilon"):
            controller("CartPole-v1", bad)
    with pytest.raises(ValueError, match="num_actions"):
        threshold_policy(0, 0, 0)
    with pytest.raises(ValueError, match="high"):
        threshold_policy(2, 0, 2)
    validate_control_args("Acrobot-v1", 1, 1, 0.0)  # boundary values pass
    validate_control_args("Acrobot-v1", 1, None, 1.0)
    assert isinstance(CONTROLLERS["CartPole-v1"].policy, ControlPolicy)


# ----------------------------------------------------------------------------------------------
# Pendulum-v1: the continuous swing-up controller, its exact log-density, rollouts and values.
# ----------------------------------------------------------------------------------------------
def _np_torque(obs, k=1.0, kp=10.0, kd=2.0, switch=0.8, c=15.0, m=2.0):
    """The controller's torque written out by hand (module docstring)."""
    cos, sin, w = obs
    theta = np.arctan2(sin, cos)
    energy = 0.5 * w**2 + c * cos
    u = -kp * theta - kd * w if cos > switch else k * (c - energy) * w
    return float(np.clip(u, -m, m))


def _np_log_density(obs, a, eps, sigma, m=2.0):
    """log(eps / 2M + (1 - eps) N(a; mu, sigma^2) / (Phi((M - mu)/sigma) - Phi((-M - mu)/sigma)))."""
    from math import erf, log, pi, sqrt

    mu = _np_torque(obs)
    cdf = lambda x: 0.5 * (1.0 + erf(x / sqrt(2.0)))  # noqa: E731
    z = cdf((m - mu) / sigma) - cdf((-m - mu) / sigma)
    log_gauss = -0.5 * ((a - mu) / sigma) ** 2 - log(sigma * sqrt(2 * pi)) - log(z)
    parts = [log(w) + lp for w, lp in ((eps, -log(2 * m)), (1 - eps, log_gauss)) if w > 0]
    return float(np.logaddexp.reduce(parts))


PENDULUM_OBS = np.array(
    [[np.cos(3.0), np.sin(3.0), 0.5], [np.cos(0.3), np.sin(0.3), -1.0], [np.cos(-1.2), np.sin(-1.2), 4.0],
     [np.cos(0.05), np.sin(0.05), 0.1]]
)


def test_pendulum_log_density_equals_hand_computed_truncated_gaussian_mixture():
    policy = CONTINUOUS_CONTROLLERS["Pendulum-v1"].policy
    # One compile: log pi(a | o) for a batch of actions at one observation.
    log_prob = jax.jit(jax.vmap(policy.log_prob, in_axes=(None, None, 0)))
    grid = np.linspace(-2.0, 2.0, 4001)
    points = np.array([-2.0, -0.7, 0.0, 0.31, 1.999, 2.01])
    for eps, sigma in ((0.0, 0.1), (0.3, 0.5), (1.0, 0.1)):
        params = controller("Pendulum-v1", eps, dtype=jnp.float64, noise_std=sigma).params
        for obs in PENDULUM_OBS:
            got = np.asarray(log_prob(params, jnp.asarray(obs), jnp.asarray(points[:, None])))
            want = [_np_log_density(obs, a, eps, sigma) for a in points[:-1]]
            np.testing.assert_allclose(got[:-1], want, rtol=1e-9, atol=1e-9)
            assert got[-1] == -np.inf  # outside [-2, 2]
            # A density on [-2, 2]: integrates to 1 (trapezoid rule).
            dens = np.exp(np.asarray(log_prob(params, jnp.asarray(obs), jnp.asarray(grid[:, None]))))
            assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=2e-3)
    # Sampling follows the density: the empirical CDF at a few points against the integral.
    params = controller("Pendulum-v1", 0.3, dtype=jnp.float64, noise_std=0.5).params
    obs = jnp.asarray(PENDULUM_OBS[1])
    keys = jax.random.split(jax.random.key(3), 4000)
    acts, lps = jax.jit(jax.vmap(policy.sample, in_axes=(None, None, 0)))(params, obs, keys)
    acts = np.asarray(acts)
    assert acts.shape == (4000, 1) and np.all(np.abs(acts) <= 2.0)
    np.testing.assert_allclose(np.asarray(lps), np.asarray(log_prob(params, obs, jnp.asarray(acts))), rtol=1e-12)
    dens = np.exp(np.asarray(log_prob(params, obs, jnp.asarray(grid[:, None]))))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(grid))])
    for x in (-1.0, -0.5, 0.0, 1.0):
        p = np.interp(x, grid, cdf)
        # Binomial standard error of the empirical CDF at 4000 draws; 4 standard errors.
        assert np.mean(acts[:, 0] <= x) == pytest.approx(p, abs=4 * np.sqrt(p * (1 - p) / 4000) + 1e-3)


@functools.lru_cache(maxsize=None)
def _pendulum_collector():
    policy = CONTINUOUS_CONTROLLERS["Pendulum-v1"].policy
    return jax.jit(lambda key, params: control_rollout(key, "Pendulum-v1", policy, params, 4, 30,
                                                       target_policy=policy, target_params=params))


def test_pendulum_rollout_reproducible_by_key_and_consistent():
    params = controller("Pendulum-v1", 0.5, dtype=jnp.float64).params
    collect = _pendulum_collector()
    a, b, c = (collect(jax.random.key(k), params) for k in (5, 5, 6))
    for f in ("observations", "actions", "rewards", "behavior_log_probs"):
        np.testing.assert_array_equal(np.asarray(getattr(a, f)), np.asarray(getattr(b, f)))
    assert not np.array_equal(np.asarray(a.actions), np.asarray(c.actions))
    acts, obs, nxt = np.asarray(a.actions), np.asarray(a.observations), np.asarray(a.next_observations)
    assert acts.shape == (4, 30, 1) and acts.dtype == np.float64 and np.all(np.abs(acts) <= 2.0)
    assert np.all(np.asarray(a.mask) == 1) and np.all(np.asarray(a.discounts) == 1)  # no termination
    # Logged log-densities are the policy's at the logged actions (and equal the target's here).
    np.testing.assert_array_equal(np.asarray(a.behavior_log_probs), np.asarray(a.target_log_probs))
    want = [_np_log_density(obs[0, t], acts[0, t, 0], 0.5, 0.1) for t in range(5)]
    np.testing.assert_allclose(np.asarray(a.behavior_log_probs)[0, :5], want, rtol=1e-9)
    # Rewards and dynamics are the gymnax ones: r = -(θ² + 0.1 ω² + 0.001 u²), semi-implicit Euler.
    theta, omega = np.arctan2(obs[..., 1], obs[..., 0]), obs[..., 2]
    np.testing.assert_allclose(np.asarray(a.rewards), -(theta**2 + 0.1 * omega**2 + 0.001 * acts[..., 0] ** 2),
                               rtol=1e-9, atol=1e-12)
    w_next = np.clip(omega + (15.0 * np.sin(theta) + 3.0 * acts[..., 0]) * 0.05, -8, 8)
    np.testing.assert_allclose(nxt[..., 2], w_next, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(obs[:, 1:], nxt[:, :-1])


def test_pendulum_expert_beats_random_by_many_standard_errors():
    policy = CONTINUOUS_CONTROLLERS["Pendulum-v1"].policy
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *(controller("Pendulum-v1", e).params for e in (0.0, 1.0)))
    mc = jax.jit(jax.vmap(lambda p: monte_carlo_value(jax.random.key(11), "Pendulum-v1", policy, p, 32, None, 0.99)))
    v = mc(stacked)
    mean, se = np.asarray(v.mean), np.asarray(v.standard_error)
    gap = (mean[0] - mean[1]) / np.hypot(se[0], se[1])
    assert gap > 10, (mean, se)
    # Docstring table (1000 episodes): -131.0 (2.3) and -533.2 (4.1); 32 episodes within 4 SE.
    assert abs(mean[0] + 131.0) < 4 * se[0] + 4 * 2.3 * np.sqrt(32 / 1000)
    assert abs(mean[1] + 533.2) < 4 * se[1] + 4 * 4.1 * np.sqrt(32 / 1000)
