"""Tabular policies as ``[S, A]`` (or ``[O, A]``) probability arrays, and helpers.

All helpers are pure and jit/vmap-safe. ``log_prob`` uses the double-where trick so that
gradients stay finite where a probability is 0.
"""

from __future__ import annotations

from typing import Any

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
