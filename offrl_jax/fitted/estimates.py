"""What a fitted Q̂ gives an evaluator: the direct-method value and the DR family's model terms.

* :func:`initial_value`: FQE's estimate Ĵ(π) = (1/N) Σ_n E_{a~π} Q̂(s_0^n, a), exact over a
  discrete policy's probabilities or Monte-Carlo over sampled continuous actions;
* :func:`q_model_terms`: Q̂ evaluated along trajectories as ``q_taken``/``v_hat``, produced by
  :func:`offrl_jax.core.model_terms` (the one producer of model terms).

See "Batch Policy Learning under Constraints", Le, Voloshin & Yue 2019 (FQE's estimate) and
"Doubly Robust Off-policy Value Evaluation for Reinforcement Learning", Jiang & Li 2016.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import jax.numpy as jnp

from offrl_jax.core import ModelTerms, model_terms
from offrl_jax.fitted.targets import policy_probs, sampled_next_values

Array = Any

__all__ = ["initial_value", "q_model_terms"]


def initial_value(
    apply_fn: Callable,
    params: Any,
    observations: Array,
    target_policy: Any,
    *,
    key: Optional[Array] = None,
    num_samples: int = 1,
) -> Array:
    """Direct-method estimate of J(π) from a fitted Q̂ at the initial observations.

    Discrete actions (``key`` None): Ĵ = (1/N) Σ_n Σ_a π(a|s_0^n) Q̂(s_0^n, a).
    Continuous actions (``key`` given): Ĵ = (1/N) Σ_n (1/K) Σ_k Q̂(s_0^n, a_k), a_k ~ π(·|s_0^n),
    an unbiased Monte-Carlo estimate of the same expectation. See Le, Voloshin & Yue 2019.

    Args:
      apply_fn: the network's apply function (``(params, obs) -> [N, A]`` discrete,
        ``(params, obs, act) -> [N]`` continuous); params: its parameters.
      observations: ``[N, ...]`` initial observations s_0^n.
      target_policy: discrete: an ``[O, A]`` table (integer observations) or a function
        ``observations -> [N, A]`` probabilities; continuous: ``sample_actions(key, obs [N, D])
        -> [N, d]``.
      key: PRNG key of the sampled (continuous) estimate.
      num_samples: K, actions drawn per observation (continuous; static).

    Returns:
      Scalar estimate in Q̂'s dtype.
    """
    if key is None:
        q = apply_fn(params, observations)
        probs = policy_probs(observations, target_policy)
        return jnp.mean(jnp.sum(probs.astype(q.dtype) * q, axis=-1))
    q_fn = functools.partial(apply_fn, params)
    return jnp.mean(sampled_next_values(key, q_fn, target_policy, observations, num_samples))


def q_model_terms(
    apply_fn: Callable, params: Any, observations: Array, actions: Array, mask: Array, target_policy: Any
) -> ModelTerms:
    """A discrete-action Q̂ along trajectories as the DR inputs ``(q_taken, v_hat)`` ``[N, T]``.

    q_taken[n, t] = Q̂(s_t, a_t), v_hat[n, t] = Σ_a π(a|s_t) Q̂(s_t, a), 0 on padding (through
    :func:`offrl_jax.core.model_terms`).

    Args:
      apply_fn: the network's apply function; params: its parameters.
      observations: ``[N, T, ...]`` (or ``[N, T]`` ints for tabular input).
      actions: ``[N, T]`` ints.
      mask: ``[N, T]`` 1 on real steps.
      target_policy: ``[O, A]`` table or function ``observations [B, ...] -> [B, A]``.

    Returns:
      :class:`~offrl_jax.core.ModelTerms` in Q̂'s dtype.
    """
    n, t = actions.shape
    flat = observations.reshape((n * t,) + observations.shape[2:])
    q = apply_fn(params, flat)
    probs = policy_probs(flat, target_policy)
    return model_terms(q.reshape(n, t, -1), probs.reshape(n, t, -1), actions, mask)
