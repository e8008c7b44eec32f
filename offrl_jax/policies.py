"""Policies: tabular ``[S, A]`` (or ``[O, A]``) probability arrays, and differentiable
parametric policies.

Tabular helpers (:func:`greedy`, :func:`epsilon_greedy`, :func:`softmax`, :func:`uniform`,
:func:`deterministic`, :func:`mixture`, :func:`log_prob`) are pure and jit/vmap-safe;
``log_prob`` uses the double-where trick so that gradients stay finite where a probability is 0.

A differentiable categorical policy is a :class:`PolicyFns` of pure functions over a parameter
pytree (the ``init``/``apply`` pair of flax and optax), what the policy-gradient learners of
:mod:`offrl_jax.pg` optimise:

* ``init(key) -> params``
* ``logits(params, observations[...]) -> [..., A]``
* ``log_prob(params, observations[...], actions[...]) -> [...]``, log π_θ(a|o)
* ``probs(params, observations[...]) -> [..., A]``

:func:`tabular_softmax` holds one logit per (observation, action), π_θ(a|o) ∝ exp(θ[o, a]);
its full table ``probs(params, jnp.arange(O))`` plugs into the exact solvers of
:mod:`offrl_jax.envs` (``jax.grad`` of ``policy_value`` is the exact policy gradient).
:func:`mlp_categorical` is a flax Linen MLP with a categorical head, for vector observations
(or integer observations, one-hot encoded).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = Any

__all__ = [
    "greedy",
    "epsilon_greedy",
    "softmax",
    "uniform",
    "mixture",
    "log_prob",
    "deterministic",
    "PolicyFns",
    "categorical_log_prob",
    "tabular_softmax",
    "CategoricalMLP",
    "mlp_categorical",
]


def greedy(q: Array) -> Array:
    """One-hot policy on argmax_a Q(s, a) (ties to the lowest index). ``q``: ``[..., A]``."""
    return jax.nn.one_hot(jnp.argmax(q, axis=-1), q.shape[-1], dtype=q.dtype)


def epsilon_greedy(q: Array, epsilon: float) -> Array:
    """pi(a|s) = epsilon / A + (1 - epsilon) 1[a = argmax Q(s, .)]."""
    a = q.shape[-1]
    return epsilon / a + (1.0 - epsilon) * greedy(q)


def softmax(q: Array, temperature: float = 1.0) -> Array:
    """pi(a|s) proportional to exp(Q(s, a) / temperature)."""
    return jax.nn.softmax(q / temperature, axis=-1)


def uniform(num_states: int, num_actions: int, dtype: Any = jnp.float32) -> Array:
    """The uniform policy ``[S, A]``."""
    return jnp.full((num_states, num_actions), 1.0 / num_actions, dtype)


def deterministic(actions: Array, num_actions: int, dtype: Any = jnp.float32) -> Array:
    """One-hot policy from an ``[S]`` array of actions."""
    return jax.nn.one_hot(actions, num_actions, dtype=dtype)


def mixture(pi: Array, other: Array, alpha: float) -> Array:
    """alpha * pi + (1 - alpha) * other: the knob that sets how far two policies differ."""
    return alpha * pi + (1.0 - alpha) * other


def log_prob(policy: Array, obs: Array, actions: Array) -> Array:
    """log pi(a | o) gathered from a tabular policy ``[O, A]`` at int ``obs``/``actions``."""
    p = policy[obs, actions]
    safe = jnp.where(p > 0, p, 1.0)
    return jnp.where(p > 0, jnp.log(safe), -jnp.inf)


# ----------------------------------------------------------------------------------------------
# Differentiable parametric policies (see the module docstring).
# ----------------------------------------------------------------------------------------------
class PolicyFns(NamedTuple):
    """Pure functions of a categorical policy (see the module docstring).

    ``num_observations`` (integer observations in [0, O)) and ``num_actions`` (A) are the sizes
    the policy indexes, when known: learners check logged data against them on the host.
    """

    init: Callable[[Array], Any]
    logits: Callable[[Any, Array], Array]
    log_prob: Callable[[Any, Array, Array], Array]
    probs: Callable[[Any, Array], Array]
    num_observations: Optional[int] = None
    num_actions: Optional[int] = None


def categorical_log_prob(logits: Array, actions: Array) -> Array:
    """log π(a|o) = logits[a] − logsumexp(logits) gathered at integer ``actions``.

    Args:
      logits: ``[..., A]`` unnormalised log-probabilities.
      actions: ``[...]`` integer actions.

    Returns:
      ``[...]`` log-probabilities (differentiable in ``logits``).
    """
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(log_p, actions[..., None].astype(jnp.int32), axis=-1)[..., 0]


def tabular_softmax(
    num_observations: int,
    num_actions: int,
    init_logits: Optional[Array] = None,
    temperature: float = 1.0,
    dtype: Any = jnp.float32,
) -> PolicyFns:
    """Tabular softmax policy π_θ(a|o) = exp(θ[o, a]/τ) / Σ_b exp(θ[o, b]/τ).

    Its score is ∇_θ log π(a|o) = (e_a − π(·|o))/τ in row o (Sutton, McAllester, Singh & Mansour
    2000, "Policy Gradient Methods for Reinforcement Learning with Function Approximation").

    Args:
      num_observations: O (static).
      num_actions: A (static).
      init_logits: optional ``[O, A]`` initial θ (e.g. log π_β to start at the behaviour
        policy); zeros (uniform policy) by default.
      temperature: τ > 0.
      dtype: parameter dtype when ``init_logits`` is None.

    Returns:
      :class:`PolicyFns` with params ``[O, A]``; observations are integer indices.
    """
    if num_observations < 1 or num_actions < 1:
        raise ValueError(
            f"num_observations, num_actions: expected positive sizes, found {num_observations}, {num_actions}"
        )
    if not temperature > 0:
        raise ValueError(f"temperature: expected a positive temperature, found {temperature}")
    if init_logits is not None:
        init_logits = jnp.asarray(init_logits)
        if init_logits.shape != (num_observations, num_actions):
            raise ValueError(
                f"init_logits: expected shape [O, A] = {[num_observations, num_actions]}, "
                f"found {list(init_logits.shape)}"
            )
        if not bool(jnp.all(jnp.isfinite(init_logits))):
            raise ValueError("init_logits: expected finite logits")

    def init(key: Array) -> Array:
        del key
        if init_logits is not None:
            return init_logits
        return jnp.zeros((num_observations, num_actions), dtype)

    def logits(params: Array, observations: Array) -> Array:
        return params[observations] / temperature

    def log_prob(params: Array, observations: Array, actions: Array) -> Array:
        return categorical_log_prob(logits(params, observations), actions)

    def probs(params: Array, observations: Array) -> Array:
        return jax.nn.softmax(logits(params, observations), axis=-1)

    return PolicyFns(init, logits, log_prob, probs, num_observations, num_actions)


class CategoricalMLP(nn.Module):
    """MLP mapping observations ``[..., d]`` to action logits ``[..., A]`` (flax Linen).

    Attributes:
      num_actions: A.
      hidden_sizes: widths of the hidden layers.
      activation: hidden nonlinearity.
    """

    num_actions: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: Callable[[Array], Array] = nn.tanh

    @nn.compact
    def __call__(self, x: Array) -> Array:
        for width in self.hidden_sizes:
            x = self.activation(nn.Dense(width)(x))
        # A small final layer starts the policy close to uniform.
        return nn.Dense(self.num_actions, kernel_init=nn.initializers.variance_scaling(0.01, "fan_in", "normal"))(x)


def mlp_categorical(
    num_actions: int,
    observation_dim: Optional[int] = None,
    num_observations: Optional[int] = None,
    hidden_sizes: Sequence[int] = (64, 64),
    dtype: Any = jnp.float32,
) -> PolicyFns:
    """Categorical policy π_θ(a|o) = softmax(f_θ(o))_a with an MLP f_θ (:class:`CategoricalMLP`).

    Give ``observation_dim`` for vector observations ``[..., d]``, or ``num_observations`` for
    integer observations, which are one-hot encoded.

    Args:
      num_actions: A.
      observation_dim: d, the size of vector observations.
      num_observations: O, the number of integer observations.
      hidden_sizes: hidden-layer widths.
      dtype: dtype of the example input used by ``init`` (params follow flax's default float32
        unless x64 inputs are given).

    Returns:
      :class:`PolicyFns` whose params are the flax variable dict.
    """
    if (observation_dim is None) == (num_observations is None):
        raise ValueError("observation_dim, num_observations: expected exactly one of them")
    size = observation_dim if observation_dim is not None else num_observations
    if size < 1 or num_actions < 1:
        raise ValueError(f"observation size / num_actions: expected positive sizes, found {size}, {num_actions}")
    if any(int(h) < 1 for h in hidden_sizes):
        raise ValueError(f"hidden_sizes: expected positive widths, found {tuple(hidden_sizes)}")
    net = CategoricalMLP(num_actions=num_actions, hidden_sizes=tuple(int(h) for h in hidden_sizes))

    def features(observations: Array) -> Array:
        if num_observations is not None:
            return jax.nn.one_hot(observations, num_observations, dtype=dtype)
        return jnp.asarray(observations, dtype)

    def init(key: Array) -> Any:
        return net.init(key, jnp.zeros((1, size), dtype))

    def logits(params: Any, observations: Array) -> Array:
        return net.apply(params, features(observations))

    def log_prob(params: Any, observations: Array, actions: Array) -> Array:
        return categorical_log_prob(logits(params, observations), actions)

    def probs(params: Any, observations: Array) -> Array:
        return jax.nn.softmax(logits(params, observations), axis=-1)

    return PolicyFns(init, logits, log_prob, probs, num_observations, num_actions)
