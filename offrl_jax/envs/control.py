"""Vectorised data collection and Monte-Carlo ground truth for gymnax control tasks.

Each episode is a ``lax.scan`` over time; episodes are ``vmap``-ed. Every vmapped lane runs
exactly one episode from ``env.reset``: the environment's transition ``env.step_env`` is called
directly, so gymnax's auto-reset (which would silently start a new episode inside the same row)
never happens. An episode ends at the first step that is

* **terminated** (the task's natural end: ``step_env``'s ``done``, which in gymnax >= 1.0 is
  ``env.is_terminated`` and equals ``info["discount"] == 0``): ``discounts = 0`` on that step;
* **truncated** (``env.is_truncated``: the time limit ``max_steps_in_episode``; or the rollout
  ``horizon``): ``discounts = 1`` on that step, so bootstrapping from ``next_observations``
  stays valid.

When both happen on the same step the step is a termination. After the end the environment
state is frozen and the row is padding: ``mask = 0`` and zeros everywhere else. This is the same
(s, a, r, s', terminated, truncated) sequence as gymnax's public ``env.step`` up to its first
``done``, with ``next_observations`` the true final observation (``info["final_observation"]``),
not the reset one.

Actions are discrete (an int per step: CartPole, Acrobot, MountainCar) or continuous (a ``[d]``
float per step: Pendulum-v1), whichever the policy samples; the discrete path is unchanged by
the continuous one (continuous actions are stored as floats ``[.., d]``, discrete as int32).

Jit with the environment, policies and sizes static, e.g.
``jax.jit(control_rollout, static_argnames=("env", "policy", "num_episodes", "horizon",
"target_policy"))``; parameters (``params``, ``target_params``, ``env_params``) stay traced, so one
compilation serves every ``epsilon``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional, Tuple, Union

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments.environment import Environment

from offrl_jax.data import Trajectories
from offrl_jax.envs.control_policies import ControlPolicy

Array = Any
EnvLike = Union[str, Any]
SampleFn = Callable[[Any, Array, Array], Tuple[Array, Array]]
LogProbFn = Callable[[Any, Array, Array], Array]

__all__ = [
    "MonteCarloValue",
    "control_episode",
    "control_returns",
    "control_rollout",
    "make_env",
    "monte_carlo_value",
    "validate_control_args",
]


class MonteCarloValue(NamedTuple):
    """Monte-Carlo estimate of a policy's value.

    Attributes:
      mean: ``[]`` the average discounted return (1/N) sum_n G_n.
      standard_error: ``[]`` s / sqrt(N), with s the sample standard deviation (1/(N-1)).
    """

    mean: Array
    standard_error: Array


@functools.lru_cache(maxsize=None)
def _make_named(name: str):
    # Only the (stateless) environment object is cached: its default parameters may hold arrays,
    # which must be created afresh in each trace.
    return gymnax.make(name)[0]


def make_env(env: EnvLike, env_params: Any = None) -> Tuple[Any, Any]:
    """Resolves a gymnax environment and its parameters.

    Args:
      env: a registered gymnax id (e.g. "CartPole-v1") or a gymnax ``Environment`` (not a
        wrapper: rollouts call ``env.step_env`` directly).
      env_params: the environment's ``EnvParams``; defaults to ``env.default_params``.

    Returns:
      ``(env, env_params)``. Environments made from a name are cached, so the same name always
      gives the same object (jit caches keyed on it are reused).

    Raises:
      ValueError: on an unknown id or an object that is not a gymnax environment.
    """
    if isinstance(env, str):
        if env not in gymnax.registered_envs:
            raise ValueError(
                f"env: unknown gymnax environment {env!r}; expected one of "
                f"{sorted(gymnax.registered_envs)}"
            )
        env_obj = _make_named(env)
    else:
        env_obj = env
        if not isinstance(env_obj, Environment) or not hasattr(env_obj, "is_truncated"):
            raise ValueError(
                "env: expected a gymnax id or a gymnax (>= 1.0) Environment (wrappers, which "
                f"act in step/reset, are not supported: pass the inner environment), found "
                f"{type(env).__name__}"
            )
    return env_obj, (env_obj.default_params if env_params is None else env_params)


def _check_int(x: Any, name: str, minimum: int) -> None:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < minimum:
        raise ValueError(f"{name}: expected a Python int >= {minimum}, found {x!r}")


def _default_horizon(env_params: Any) -> int:
    t = getattr(env_params, "max_steps_in_episode", None)
    if t is None or isinstance(t, jax.core.Tracer):
        raise ValueError(
            "horizon: not given and env_params.max_steps_in_episode is not a concrete int; "
            "pass horizon=T"
        )
    return int(t)


def validate_control_args(
    env: EnvLike,
    num_episodes: int,
    horizon: Optional[int] = None,
    gamma: Optional[float] = None,
    min_episodes: int = 1,
) -> None:
    """Host-side checks of the arguments of the control rollouts (before any tracing).

    Args:
      env: gymnax id or ``Environment``.
      num_episodes: N, a Python int >= ``min_episodes``.
      horizon: T, a Python int >= 1 (or None).
      gamma: discount, in [0, 1] (or None; skipped when traced).
      min_episodes: smallest allowed N.

    Raises:
      ValueError: naming the argument and what was expected.
    """
    make_env(env)
    _check_int(num_episodes, "num_episodes", min_episodes)
    if horizon is not None:
        _check_int(horizon, "horizon", 1)
    if gamma is not None and not isinstance(gamma, jax.core.Tracer):
        g = np.asarray(gamma)
        if g.shape != () or not np.isfinite(g) or not 0.0 <= float(g) <= 1.0:
            raise ValueError(f"gamma: expected a scalar discount in [0, 1], found {gamma!r}")


def _sample_fn(policy: Union[ControlPolicy, SampleFn]) -> SampleFn:
    return policy.sample if isinstance(policy, ControlPolicy) else policy


def _log_prob_fn(target: Union[ControlPolicy, LogProbFn]) -> LogProbFn:
    return target.log_prob if isinstance(target, ControlPolicy) else target


def _select(pred: Array, on_true: Any, on_false: Any) -> Any:
    return jax.tree.map(lambda x, y: jnp.where(pred, x, y), on_true, on_false)


def _action_field(action: Array, dtype: Any) -> Array:
    # Discrete actions are int32 indices; continuous ones ([d] floats) take the float dtype.
    return action.astype(dtype if jnp.issubdtype(action.dtype, jnp.floating) else jnp.int32)


def _scan_episode(key, env, env_params, sample, params, per_step):
    """The scan body of one episode and its initial values.

    ``per_step(acc, obs, action, log_prob, reward, next_obs, terminated, alive) -> (out, acc)``
    gives the step's scan output and the updated accumulator.
    """
    k_reset, k_steps = jax.random.split(key)
    obs0, state0 = env.reset(k_reset, env_params)

    def step(carry, kt):
        state, obs, alive, acc = carry
        k_pol, k_env = jax.random.split(kt)
        action, log_prob = sample(params, obs, k_pol)
        next_obs, next_state, reward, terminated, _ = env.step_env(k_env, state, action, env_params)
        terminated = jnp.asarray(terminated, bool)
        truncated = jnp.asarray(env.is_truncated(next_state, env_params), bool)
        out, acc = per_step(acc, obs, action, log_prob, reward, next_obs, terminated, alive)
        still = alive & ~(terminated | truncated)
        # Freeze the state after the end: the row is padding from here on.
        state = _select(alive, next_state, state)
        obs = jnp.where(alive, next_obs, obs)
        return (state, obs, still, acc), out

    return obs0, state0, step, k_steps


def control_episode(
    key: Array,
    env: Any,
    env_params: Any,
    policy: Union[ControlPolicy, SampleFn],
    params: Any,
    horizon: int,
    target_policy: Union[ControlPolicy, LogProbFn, None] = None,
    target_params: Any = None,
    dtype: Any = None,
) -> Trajectories:
    """Samples one episode of at most ``horizon`` steps (the per-trajectory core; jit-able).

    o_0 from ``env.reset``; a_t ~ pi(. | o_t); (o_{t+1}, r_t, terminated_t) from the gymnax
    transition ``env.step_env``; the episode ends at L = the first t with terminated_t or
    truncated_t (module docstring), or at T. ``mask[t] = 1[t < L]``, ``discounts[t] = 0`` only
    on a terminated step. See "gymnax: A JAX-based Reinforcement Learning Environment Library",
    Lange 2022, for the environments.

    Args:
      key: PRNG key; split into a reset key and one key per step (each split into a policy key
        and an environment key).
      env: gymnax ``Environment`` (static under jit).
      env_params: its ``EnvParams``.
      policy: :class:`ControlPolicy` or a sample function ``(params, obs, key) -> (action,
        log_prob)`` (static).
      params: policy parameters (pytree).
      horizon: T (static Python int).
      target_policy: optional :class:`ControlPolicy` or log-prob function ``(params, obs, action) ->
        log_prob`` of a target policy (static).
      target_params: the target's parameters.
      dtype: float dtype of observations, rewards, discounts, mask and log-probabilities;
        defaults to the environment's observation dtype if float, else float32.

    Returns:
      :class:`~offrl_jax.data.Trajectories` of one episode, with ``[T, ...]`` arrays:
      observations ``[T, obs_dim]``, actions ``[T]`` int32 (discrete) or ``[T, d]`` in the float
      ``dtype`` (continuous policies, e.g. Pendulum-v1's), rewards, next_observations,
      discounts, mask, behavior_log_probs, and target_log_probs when ``target_policy`` is given.
      Padded steps are 0, except ``discounts`` (1, as in the tabular rollouts).
    """
    sample = _sample_fn(policy)
    log_prob_target = None if target_policy is None else _log_prob_fn(target_policy)
    obs0 = jax.eval_shape(lambda k: env.reset(k, env_params)[0], key)
    if dtype is None:
        dtype = obs0.dtype if jnp.issubdtype(obs0.dtype, jnp.floating) else jnp.float32

    def per_step(acc, obs, action, log_prob, reward, next_obs, terminated, alive):
        m = alive.astype(dtype)
        out = dict(
            observations=jnp.where(alive, obs, 0).astype(dtype),
            actions=_action_field(jnp.where(alive, action, 0), dtype),
            rewards=jnp.where(alive, reward, 0).astype(dtype),
            next_observations=jnp.where(alive, next_obs, 0).astype(dtype),
            discounts=jnp.where(alive & terminated, 0.0, 1.0).astype(dtype),
            mask=m,
            behavior_log_probs=jnp.where(alive, log_prob, 0).astype(dtype),
        )
        if log_prob_target is not None:
            lp = log_prob_target(target_params, obs, action)
            out["target_log_probs"] = jnp.where(alive, lp, 0).astype(dtype)
        return out, acc

    obs0, state0, step, k_steps = _scan_episode(key, env, env_params, sample, params, per_step)
    carry0 = (state0, obs0, jnp.asarray(True), ())
    _, fields = jax.lax.scan(step, carry0, jax.random.split(k_steps, horizon))
    return Trajectories(**fields)


def control_rollout(
    key: Array,
    env: EnvLike,
    policy: Union[ControlPolicy, SampleFn],
    params: Any,
    num_episodes: int,
    horizon: Optional[int] = None,
    target_policy: Union[ControlPolicy, LogProbFn, None] = None,
    target_params: Any = None,
    env_params: Any = None,
    dtype: Any = None,
) -> Trajectories:
    """Samples ``num_episodes`` episodes of a gymnax task under a behaviour policy.

    Episode n uses key ``jax.random.split(key, N)[n]`` and is :func:`control_episode`; episodes
    are vmapped. Terminated steps have ``discounts = 0``; time-limit or ``horizon`` truncation
    ends the row (``mask`` drops to 0) with ``discounts = 1``. Monte-Carlo returns of the data,
    ``Trajectories.returns(gamma)``, estimate J(pi) = E[sum_{t < min(L, T)} gamma^t r_t]. See
    "gymnax: A JAX-based Reinforcement Learning Environment Library", Lange 2022.

    Args:
      key: PRNG key.
      env: gymnax id ("CartPole-v1", ...) or ``Environment`` (static under jit).
      policy: behaviour :class:`ControlPolicy` or sample function ``(params, obs, key) ->
        (action, log_prob)`` (static).
      params: behaviour parameters (pytree, traced).
      num_episodes: N (static Python int >= 1).
      horizon: T (static Python int >= 1); defaults to ``env_params.max_steps_in_episode``.
      target_policy: optional target :class:`ControlPolicy` or log-prob function ``(params, obs,
        action) -> log_prob`` (static); fills ``target_log_probs`` at the logged actions.
      target_params: target parameters.
      env_params: gymnax ``EnvParams``; defaults to the environment's defaults.
      dtype: float dtype of the float fields (default: the observation dtype).

    Returns:
      :class:`~offrl_jax.data.Trajectories` with observations/next_observations ``[N, T,
      obs_dim]``, actions ``[N, T]`` int32 (or ``[N, T, d]`` floats for a continuous policy),
      rewards, discounts, mask, behavior_log_probs
      ``[N, T]`` (log-densities for continuous actions) and target_log_probs ``[N, T]`` when
      ``target_policy`` is given.

    Raises:
      ValueError: on an unknown environment or non-positive sizes (host-side, before tracing).
    """
    validate_control_args(env, num_episodes, horizon)
    env_obj, env_params = make_env(env, env_params)
    horizon = _default_horizon(env_params) if horizon is None else horizon
    if isinstance(target_policy, ControlPolicy) and target_params is None:
        raise ValueError("target_params: a target ControlPolicy was given without its parameters")

    def one(k):
        return control_episode(
            k, env_obj, env_params, policy, params, horizon, target_policy, target_params, dtype
        )

    return jax.vmap(one)(jax.random.split(key, num_episodes))


def control_returns(
    key: Array,
    env: EnvLike,
    policy: Union[ControlPolicy, SampleFn],
    params: Any,
    num_episodes: int,
    horizon: Optional[int],
    gamma: float,
    env_params: Any = None,
    dtype: Any = None,
) -> Array:
    """Discounted returns G_n = sum_{t < min(L_n, T)} gamma^t r_t of N sampled episodes.

    The same episodes, key for key, as :func:`control_rollout` with the same arguments (so
    ``control_returns(k, ...) == control_rollout(k, ...).returns(gamma)``), but only the return
    is carried through the scan: memory is O(N), not O(N T obs_dim).

    Args:
      key: PRNG key.
      env: gymnax id or ``Environment`` (static).
      policy: :class:`ControlPolicy` or sample function (static).
      params: policy parameters.
      num_episodes: N (static Python int >= 1).
      horizon: T (static Python int >= 1), or None for ``env_params.max_steps_in_episode``.
      gamma: discount in [0, 1].
      env_params: gymnax ``EnvParams``; defaults to the environment's defaults.
      dtype: float dtype of the returns (default: the observation dtype).

    Returns:
      ``[N]`` discounted returns.
    """
    validate_control_args(env, num_episodes, horizon, gamma)
    env_obj, env_params = make_env(env, env_params)
    horizon = _default_horizon(env_params) if horizon is None else horizon
    sample = _sample_fn(policy)
    obs0 = jax.eval_shape(lambda k: env_obj.reset(k, env_params)[0], key)
    if dtype is None:
        dtype = obs0.dtype if jnp.issubdtype(obs0.dtype, jnp.floating) else jnp.float32

    def per_step(acc, obs, action, log_prob, reward, next_obs, terminated, alive):
        ret, weight = acc
        ret = ret + jnp.where(alive, weight * jnp.asarray(reward, dtype), 0)
        return None, (ret, weight * jnp.asarray(gamma, dtype))

    def one(k):
        obs0, state0, step, k_steps = _scan_episode(
            k, env_obj, env_params, sample, params, per_step
        )
        carry0 = (state0, obs0, jnp.asarray(True), (jnp.zeros((), dtype), jnp.ones((), dtype)))
        (_, _, _, (ret, _)), _ = jax.lax.scan(step, carry0, jax.random.split(k_steps, horizon))
        return ret

    return jax.vmap(one)(jax.random.split(key, num_episodes))


def monte_carlo_value(
    key: Array,
    env: EnvLike,
    policy: Union[ControlPolicy, SampleFn],
    params: Any,
    num_episodes: int,
    horizon: Optional[int],
    gamma: float,
    env_params: Any = None,
    dtype: Any = None,
) -> MonteCarloValue:
    """Monte-Carlo ground truth of a policy's value on a gymnax task, with its standard error.

    J(pi) = E_pi[sum_{t < min(L, T)} gamma^t r_t] is estimated by the mean of N independent
    discounted returns, J_hat = (1/N) sum_n G_n, with standard error s / sqrt(N), s^2 =
    sum_n (G_n - J_hat)^2 / (N - 1) (the on-policy Monte-Carlo estimate; see "Reinforcement
    Learning: An Introduction", Sutton & Barto 2018, ch. 5). Episodes end at termination, at the
    environment's time limit or after T steps, whichever is first.

    Args:
      key: PRNG key (use a key independent of any dataset's).
      env: gymnax id or ``Environment`` (static under jit).
      policy: :class:`ControlPolicy` or sample function ``(params, obs, key) -> (action,
        log_prob)`` (static).
      params: policy parameters.
      num_episodes: N (static Python int >= 2).
      horizon: T (static Python int >= 1), or None for ``env_params.max_steps_in_episode``.
      gamma: discount in [0, 1].
      env_params: gymnax ``EnvParams``; defaults to the environment's defaults.
      dtype: float dtype (default: the observation dtype).

    Returns:
      :class:`MonteCarloValue` ``(mean[], standard_error[])``.

    Raises:
      ValueError: on an unknown environment, N < 2, T < 1 or gamma outside [0, 1].
    """
    validate_control_args(env, num_episodes, horizon, gamma, min_episodes=2)
    returns = control_returns(
        key, env, policy, params, num_episodes, horizon, gamma, env_params, dtype
    )
    mean = jnp.mean(returns)
    se = jnp.std(returns, ddof=1) / jnp.sqrt(jnp.asarray(num_episodes, returns.dtype))
    return MonteCarloValue(mean=mean, standard_error=se)
