"""Stochastic policies for gymnax control tasks, and hand-written controllers of graded quality.

A policy is a pair of pure functions held in a :class:`ControlPolicy`:

* ``sample(params, obs, key) -> (action, log_prob)``: draws a discrete action for one
  observation ``obs`` ``[obs_dim]`` and returns ``log pi(action | obs)``;
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
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

Array = Any

__all__ = [
    "CONTROLLERS",
    "ControlPolicy",
    "Controller",
    "ThresholdParams",
    "controller",
    "threshold_policy",
]


class ControlPolicy(NamedTuple):
    """A stochastic policy over discrete actions as two pure functions.

    Attributes:
      sample: ``(params, obs[obs_dim], key) -> (action[] int32, log_prob[])``.
      log_prob: ``(params, obs[obs_dim], action[] int) -> log_prob[]``, ``log pi(action | obs)``
        (``-inf`` where the probability is 0).
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
    params: ThresholdParams


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


def controller(env_name: str, epsilon: float = 0.0, dtype: Any = jnp.float32) -> Controller:
    """A hand-written controller for a gymnax control task, mixed with uniform random actions.

    pi_epsilon(a | o) = epsilon / A + (1 - epsilon) 1[a = c(o)], where c is a linear threshold
    rule that needs no trained weights (see :func:`threshold_policy`):

    * CartPole-v1: push right iff 0.1 x + 0.5 x_dot + 10 theta + 2 theta_dot >= 0;
    * Acrobot-v1: torque +1 iff theta2_dot - theta1_dot >= 0, else -1 (energy pumping);
    * MountainCar-v0: push in the direction of the velocity.

    ``epsilon`` grades the quality. Monte-Carlo values over the full time limit
    (``monte_carlo_value``, 1000 episodes, key 123, float32; standard errors in brackets):

    ==============  =====  ============  ============  ============  ============  ============
    task            gamma  epsilon 0     0.1           0.3           0.5           1 (uniform)
    ==============  =====  ============  ============  ============  ============  ============
    CartPole-v1     1      500.0 (0.0)   500.0 (0.0)   458.2 (3.5)   205.9 (4.8)   22.1 (0.4)
    CartPole-v1     0.99   99.3 (0.0)    99.3 (0.0)    96.2 (0.4)    72.8 (0.8)    19.5 (0.3)
    Acrobot-v1      1      -84.8 (0.9)   -94.9 (1.0)   -119.6 (1.4)  -152.3 (1.3)  -498.9 (0.3)
    Acrobot-v1      0.99   -56.4 (0.2)   -60.2 (0.2)   -68.1 (0.2)   -77.0 (0.2)   -99.3 (0.0)
    MountainCar-v0  1      -119.4 (0.1)  -125.5 (0.5)  -167.7 (0.8)  -190.8 (0.4)  -200.0 (0.0)
    MountainCar-v0  0.99   -69.9 (0.0)   -71.4 (0.1)   -80.8 (0.2)   -85.2 (0.1)   -86.6 (0.0)
    ==============  =====  ============  ============  ============  ============  ============

    Args:
      env_name: one of ``CONTROLLERS``: "CartPole-v1", "Acrobot-v1", "MountainCar-v0".
      epsilon: weight of the uniform policy, in [0, 1].
      dtype: float dtype of the parameters (and so of the log-probabilities).

    Returns:
      :class:`Controller` ``(policy, params)``. The ``policy`` object is shared by every call
      for the same task (only ``params`` differ), so jitted rollouts keyed on it compile once.

    Raises:
      ValueError: on an unknown ``env_name`` or ``epsilon`` outside [0, 1].
    """
    if env_name not in CONTROLLERS:
        raise ValueError(
            f"env_name: expected one of {sorted(CONTROLLERS)} (tasks with a hand-written "
            f"controller), found {env_name!r}"
        )
    eps = float(epsilon)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"epsilon: expected a mixture weight in [0, 1], found {epsilon!r}")
    spec = CONTROLLERS[env_name]
    params = ThresholdParams(
        weights=jnp.asarray(spec.weights, dtype),
        bias=jnp.asarray(spec.bias, dtype),
        epsilon=jnp.asarray(eps, dtype),
    )
    return Controller(policy=spec.policy, params=params)
