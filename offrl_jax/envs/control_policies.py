"""Stochastic policies for gymnax control tasks, and hand-written controllers of graded quality.

A policy is a pair of pure functions held in a :class:`ControlPolicy`:

* ``sample(params, obs, key) -> (action, log_prob)``: draws an action for one observation
  ``obs`` ``[obs_dim]`` (a discrete ``[]`` int, or a continuous ``[d]`` float) and returns
  ``log pi(action | obs)`` (a log-probability, or a log-density for continuous actions);
* ``log_prob(params, obs, action) -> log_prob``: ``log pi(action | obs)`` of a given action.

``params`` is any pytree (so policies vmap over parameters, e.g. over ``epsilon``). Both functions
act on one observation; rollouts ``vmap`` them over episodes.

The controllers are epsilon-mixtures of a deterministic linear threshold rule c(o) with the
uniform policy over the A actions:

    pi(a | o) = epsilon / A + (1 - epsilon) 1[a = c(o)],
    c(o) = high if w . o + b >= 0 else low,

so their log-probabilities are exact (``epsilon = 0`` gives log-probability 0 for c(o) and -inf
for every other action; ``epsilon = 1`` is the uniform random policy). The mixture weight
``epsilon`` sets the quality of the data-generating policy, the device used by the epsilon-greedy
behaviour policies of the COBS benchmark (see "Empirical Study of Off-Policy Policy Evaluation
for Reinforcement Learning", Voloshin et al. 2019).

Pendulum-v1 (one continuous torque in [-2, 2]) has an energy-shaping swing-up with a linear
stabiliser near upright (:func:`swing_up_policy`); its quality is graded the same way, by a
mixture of a truncated Gaussian around the controller's torque with uniform torques, whose
log-density is exact.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.scipy.special import log_ndtr

Array = Any

__all__ = [
    "CONTINUOUS_CONTROLLERS",
    "CONTROLLERS",
    "ControlPolicy",
    "Controller",
    "SwingUpParams",
    "ThresholdParams",
    "controller",
    "swing_up_policy",
    "threshold_policy",
]


class ControlPolicy(NamedTuple):
    """A stochastic policy as two pure functions.

    Attributes:
      sample: ``(params, obs[obs_dim], key) -> (action, log_prob[])``, the action a ``[]`` int32
        (discrete) or a ``[d]`` float (continuous).
      log_prob: ``(params, obs[obs_dim], action) -> log_prob[]``, ``log pi(action | obs)``: a
        log-probability (discrete; ``-inf`` where the probability is 0) or a log-density
        (continuous).
    """

    sample: Callable[[Any, Array, Array], Tuple[Array, Array]]
    log_prob: Callable[[Any, Array, Array], Array]


@struct.dataclass
class ThresholdParams:
    """Parameters of an epsilon-mixed linear threshold controller.

    Attributes:
      weights: ``[obs_dim]`` w of the rule c(o) = high if w . o + b >= 0 else low.
      bias: ``[]`` b.
      epsilon: ``[]`` weight of the uniform policy in the mixture, in [0, 1].
    """

    weights: Array
    bias: Array
    epsilon: Array


class Controller(NamedTuple):
    """A policy and its parameters (unpacks as ``policy, params = controller(...)``)."""

    policy: ControlPolicy
    params: Any  # ThresholdParams (discrete tasks) or SwingUpParams (Pendulum-v1)


def _safe_log(p: Array) -> Array:
    # Double where: finite gradients where p = 0 (log-probability -inf there).
    return jnp.where(p > 0, jnp.log(jnp.where(p > 0, p, 1.0)), -jnp.inf)


def threshold_policy(num_actions: int, low: int, high: int) -> ControlPolicy:
    """Epsilon-mixture of a linear threshold rule with the uniform policy, as a ControlPolicy.

    pi(a | o) = epsilon / A + (1 - epsilon) 1[a = c(o)], with c(o) = ``high`` if
    w . o + b >= 0 else ``low`` (w, b, epsilon from :class:`ThresholdParams`). Sampling draws
    from this categorical distribution, so the returned log-probabilities are exact. See
    "Empirical Study of Off-Policy Policy Evaluation for Reinforcement Learning", Voloshin et
    al. 2019, for epsilon-mixed behaviour policies in OPE benchmarks.

    Args:
      num_actions: A, the number of discrete actions.
      low: action taken by the rule when w . o + b < 0.
      high: action taken by the rule when w . o + b >= 0.

    Returns:
      A :class:`ControlPolicy` whose functions act on one observation ``[obs_dim]``.

    Raises:
      ValueError: if ``num_actions < 1`` or ``low``/``high`` are not in [0, A).
    """
    if not isinstance(num_actions, (int, np.integer)) or num_actions < 1:
        raise ValueError(f"num_actions: expected a positive int, found {num_actions!r}")
    for name, a in (("low", low), ("high", high)):
        if not isinstance(a, (int, np.integer)) or not 0 <= a < num_actions:
            raise ValueError(f"{name}: expected an action in [0, {num_actions}), found {a!r}")

    def log_probs_all(params: ThresholdParams, obs: Array) -> Array:
        eps = jnp.asarray(params.epsilon)
        obs = obs.astype(eps.dtype)
        score = jnp.dot(params.weights.astype(eps.dtype), obs) + params.bias
        rule = jnp.where(score >= 0, high, low)
        probs = eps / num_actions + (1.0 - eps) * jax.nn.one_hot(rule, num_actions, dtype=eps.dtype)
        return _safe_log(probs)

    def sample(params: ThresholdParams, obs: Array, key: Array) -> Tuple[Array, Array]:
        lp = log_probs_all(params, obs)
        action = jax.random.categorical(key, lp).astype(jnp.int32)
        return action, lp[action]

    def log_prob(params: ThresholdParams, obs: Array, action: Array) -> Array:
        return log_probs_all(params, obs)[action]

    return ControlPolicy(sample=sample, log_prob=log_prob)


@struct.dataclass
class SwingUpParams:
    """Parameters of the noisy energy-shaping swing-up controller of Pendulum-v1.

    Attributes:
      energy_gain: ``[]`` k of the swing-up torque k (E* − E) ω.
      kp: ``[]`` proportional gain of the stabiliser −kp θ − kd ω.
      kd: ``[]`` derivative gain of the stabiliser.
      switch_cos: ``[]`` the stabiliser acts where cos θ > switch_cos.
      gravity: ``[]`` c = 3 g / (2 l) of the dynamics θ̈ = c sin θ + 3 u / (m l²) (15 for the
        default gymnax parameters); E = ω² / 2 + c cos θ, E* = c (upright at rest).
      noise_std: ``[]`` σ > 0 of the truncated Gaussian around the controller's torque.
      epsilon: ``[]`` weight of uniform torques in the mixture, in [0, 1].
    """

    energy_gain: Array
    kp: Array
    kd: Array
    switch_cos: Array
    gravity: Array
    noise_std: Array
    epsilon: Array


def swing_up_policy(max_torque: float = 2.0) -> ControlPolicy:
    """Energy-shaping swing-up with a linear stabiliser, mixed with noise, as a ControlPolicy.

    Observation o = (cos θ, sin θ, ω), θ = 0 upright. The controller's torque is

        c(o) = clip(−kp θ − kd ω, −M, M)          if cos θ > switch_cos (near upright),
        c(o) = clip(k (E* − E) ω, −M, M)          otherwise (pump energy: dE/dt ∝ u ω),

    with θ = atan2(sin θ, cos θ), E = ω² / 2 + c_g cos θ and E* = c_g (see "Swinging up a
    pendulum by energy control", Åström & Furuta 2000). The policy draws one torque ``[1]``
    from the mixture

        π(a | o) = ε / (2M) + (1 − ε) N(a; c(o), σ²) / Z(o),   a ∈ [−M, M],
        Z(o) = Φ((M − c(o)) / σ) − Φ((−M − c(o)) / σ),

    of uniform torques (weight ε) and a Gaussian around c(o) truncated to [−M, M]; every action
    is a legal torque and ``log_prob`` is its exact log-density (the log of the sum, computed
    with ``logaddexp``). ε = 1 is the uniform random policy, density 1 / (2M).

    Args:
      max_torque: M, the torque bound (2 for Pendulum-v1).

    Returns:
      A :class:`ControlPolicy` with ``[1]`` float actions, parameters :class:`SwingUpParams`.

    Raises:
      ValueError: if ``max_torque`` is not a positive number.
    """
    if isinstance(max_torque, bool) or not isinstance(max_torque, (int, float)) or not max_torque > 0:
        raise ValueError(f"max_torque: expected a positive number, found {max_torque!r}")
    m = float(max_torque)

    def torque(params: SwingUpParams, obs: Array) -> Array:
        dtype = jnp.asarray(params.noise_std).dtype
        cos, sin, omega = (obs[i].astype(dtype) for i in range(3))
        theta = jnp.arctan2(sin, cos)
        energy = 0.5 * omega**2 + params.gravity * cos
        swing = params.energy_gain * (params.gravity - energy) * omega
        stabilise = -params.kp * theta - params.kd * omega
        return jnp.clip(jnp.where(cos > params.switch_cos, stabilise, swing), -m, m)

    def log_density(params: SwingUpParams, mean: Array, action: Array) -> Array:
        sigma, eps = params.noise_std, params.epsilon
        dtype = sigma.dtype
        a = jnp.asarray(action, dtype).reshape(())
        z = (a - mean) / sigma
        hi, lo = (m - mean) / sigma, (-m - mean) / sigma
        # log Z = log(Φ(hi) − Φ(lo)) = log Φ(hi) + log(1 − exp(log Φ(lo) − log Φ(hi))); Z ≥ 1/2 as |c(o)| ≤ M.
        log_z = log_ndtr(hi) + jnp.log1p(-jnp.exp(log_ndtr(lo) - log_ndtr(hi)))
        log_gauss = -0.5 * z**2 - jnp.log(sigma) - 0.5 * jnp.log(2 * jnp.pi).astype(dtype) - log_z
        inside = jnp.abs(a) <= m
        log_gauss = jnp.where(inside, log_gauss, -jnp.inf)
        log_unif = jnp.where(inside, -jnp.log(jnp.asarray(2 * m, dtype)), -jnp.inf)
        with_eps = lambda w, lp: jnp.where(w > 0, jnp.log(jnp.where(w > 0, w, 1.0)) + lp, -jnp.inf)  # noqa: E731
        return jnp.logaddexp(with_eps(eps, log_unif), with_eps(1.0 - eps, log_gauss))

    def sample(params: SwingUpParams, obs: Array, key: Array) -> Tuple[Array, Array]:
        mean = torque(params, obs)
        sigma = params.noise_std
        k_mix, k_unif, k_gauss = jax.random.split(key, 3)
        dtype = sigma.dtype
        g = mean + sigma * jax.random.truncated_normal(k_gauss, (-m - mean) / sigma, (m - mean) / sigma, (), dtype)
        u = jax.random.uniform(k_unif, (), dtype, -m, m)
        a = jnp.clip(jnp.where(jax.random.uniform(k_mix, (), dtype) < params.epsilon, u, g), -m, m)[None]
        return a, log_density(params, mean, a)

    def log_prob(params: SwingUpParams, obs: Array, action: Array) -> Array:
        return log_density(params, torque(params, obs), action)

    return ControlPolicy(sample=sample, log_prob=log_prob)



class _Spec(NamedTuple):
    policy: ControlPolicy
    weights: Tuple[float, ...]
    bias: float


# One ControlPolicy object per task, created once, so jit caches keyed on it are reused.
CONTROLLERS = {
    # Push right (1) iff 0.1 x + 0.5 x_dot + 10 theta + 2 theta_dot >= 0: a linear stabiliser of
    # the pole angle and angular velocity that also recentres the cart.
    "CartPole-v1": _Spec(threshold_policy(2, low=0, high=1), (0.1, 0.5, 10.0, 2.0), 0.0),
    # Torque +1 (2) iff theta2_dot - theta1_dot >= 0, else -1 (0): energy pumping, torque in the
    # direction of the second joint's velocity relative to the first link's.
    "Acrobot-v1": _Spec(threshold_policy(3, low=0, high=2), (0.0, 0.0, 0.0, 0.0, -1.0, 1.0), 0.0),
    # Push right (2) iff velocity >= 0, else left (0): accelerate in the direction of motion.
    "MountainCar-v0": _Spec(threshold_policy(3, low=0, high=2), (0.0, 1.0), 0.0),
}


class _SwingSpec(NamedTuple):
    policy: ControlPolicy
    energy_gain: float
    kp: float
    kd: float
    switch_cos: float
    gravity: float
    noise_std: float


# Continuous-action tasks: one ControlPolicy object each, as above.
CONTINUOUS_CONTROLLERS = {
    # Energy pumping k (E* − E) ω, k = 1, away from upright; −10 θ − 2 ω where cos θ > 0.8
    # (θ̈ = 15 sin θ + 3 u becomes −15 θ − 6 ω near 0); truncated-Gaussian torque noise σ = 0.1.
    "Pendulum-v1": _SwingSpec(swing_up_policy(2.0), 1.0, 10.0, 2.0, 0.8, 15.0, 0.1),
}


def controller(env_name: str, epsilon: float = 0.0, dtype: Any = jnp.float32, *,
               noise_std: Optional[float] = None) -> Controller:
    """A hand-written controller for a gymnax control task, mixed with uniform random actions.

    Discrete tasks: pi_epsilon(a | o) = epsilon / A + (1 - epsilon) 1[a = c(o)], where c is a
    linear threshold rule that needs no trained weights (see :func:`threshold_policy`):

    * CartPole-v1: push right iff 0.1 x + 0.5 x_dot + 10 theta + 2 theta_dot >= 0;
    * Acrobot-v1: torque +1 iff theta2_dot - theta1_dot >= 0, else -1 (energy pumping);
    * MountainCar-v0: push in the direction of the velocity.

    Continuous task Pendulum-v1 (torque ``[1]`` in [-2, 2]; :func:`swing_up_policy`):
    pi_epsilon(a | o) = epsilon / 4 + (1 - epsilon) N(a; c(o), sigma^2) / Z(o) on [-2, 2], with
    c(o) the energy-shaping swing-up (k = 1) switched to the stabiliser -10 theta - 2 omega
    where cos theta > 0.8, and sigma = ``noise_std`` (default 0.1).

    ``epsilon`` grades the quality. Monte-Carlo values over the full time limit
    (``monte_carlo_value``, 1000 episodes, key 123, float32, Pendulum-v1 with sigma = 0.1;
    standard errors in brackets):

    ==============  =====  ============  ============  ============  ============  =============
    task            gamma  epsilon 0     0.1           0.3           0.5           1 (uniform)
    ==============  =====  ============  ============  ============  ============  =============
    CartPole-v1     1      500.0 (0.0)   500.0 (0.0)   458.2 (3.5)   205.9 (4.8)   22.1 (0.4)
    CartPole-v1     0.99   99.3 (0.0)    99.3 (0.0)    96.2 (0.4)    72.8 (0.8)    19.5 (0.3)
    Acrobot-v1      1      -84.8 (0.9)   -94.9 (1.0)   -119.6 (1.4)  -152.3 (1.3)  -498.9 (0.3)
    Acrobot-v1      0.99   -56.4 (0.2)   -60.2 (0.2)   -68.1 (0.2)   -77.0 (0.2)   -99.3 (0.0)
    MountainCar-v0  1      -119.4 (0.1)  -125.5 (0.5)  -167.7 (0.8)  -190.8 (0.4)  -200.0 (0.0)
    MountainCar-v0  0.99   -69.9 (0.0)   -71.4 (0.1)   -80.8 (0.2)   -85.2 (0.1)   -86.6 (0.0)
    Pendulum-v1     1      -153.2 (2.9)  -167.4 (3.2)  -240.9 (4.4)  -508.6 (5.6)  -1231.8 (9.1)
    Pendulum-v1     0.99   -131.0 (2.3)  -140.8 (2.5)  -176.4 (2.9)  -275.8 (3.2)  -533.2 (4.1)
    ==============  =====  ============  ============  ============  ============  =============

    Args:
      env_name: one of ``CONTROLLERS`` ("CartPole-v1", "Acrobot-v1", "MountainCar-v0") or
        ``CONTINUOUS_CONTROLLERS`` ("Pendulum-v1").
      epsilon: weight of the uniform policy, in [0, 1].
      dtype: float dtype of the parameters (and so of the log-probabilities).
      noise_std: Pendulum-v1 only: sigma > 0 of the Gaussian torque noise (default 0.1).

    Returns:
      :class:`Controller` ``(policy, params)``. The ``policy`` object is shared by every call
      for the same task (only ``params`` differ), so jitted rollouts keyed on it compile once.

    Raises:
      ValueError: on an unknown ``env_name``, ``epsilon`` outside [0, 1], or a ``noise_std``
        that is not positive or is given for a discrete task.
    """
    if env_name not in CONTROLLERS and env_name not in CONTINUOUS_CONTROLLERS:
        raise ValueError(
            f"env_name: expected one of {sorted(CONTROLLERS) + sorted(CONTINUOUS_CONTROLLERS)} (tasks with a "
            f"hand-written controller), found {env_name!r}"
        )
    eps = float(epsilon)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"epsilon: expected a mixture weight in [0, 1], found {epsilon!r}")
    if env_name in CONTINUOUS_CONTROLLERS:
        spec = CONTINUOUS_CONTROLLERS[env_name]
        sigma = spec.noise_std if noise_std is None else noise_std
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not np.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"noise_std: expected a positive number, found {noise_std!r}")
        f = lambda x: jnp.asarray(x, dtype)  # noqa: E731
        params = SwingUpParams(energy_gain=f(spec.energy_gain), kp=f(spec.kp), kd=f(spec.kd),
                               switch_cos=f(spec.switch_cos), gravity=f(spec.gravity), noise_std=f(sigma),
                               epsilon=f(eps))
        return Controller(policy=spec.policy, params=params)
    if noise_std is not None:
        raise ValueError(f"noise_std: only for continuous tasks {sorted(CONTINUOUS_CONTROLLERS)}, not {env_name!r}")
    spec = CONTROLLERS[env_name]
    params = ThresholdParams(
        weights=jnp.asarray(spec.weights, dtype),
        bias=jnp.asarray(spec.bias, dtype),
        epsilon=jnp.asarray(eps, dtype),
    )
    return Controller(policy=spec.policy, params=params)
