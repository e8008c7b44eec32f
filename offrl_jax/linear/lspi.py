"""Least-squares policy iteration (LSPI) under ``lax.while_loop``.

LSPI alternates greedy improvement π_k(s) = argmax_a φ(s, a)ᵀ w_k (ties to the first action)
with LSTDQ evaluation w_{k+1} = LSTDQ(D, π_k) on one fixed sample set D, and stops at the first
iteration where ‖w_{k+1} − w_k‖₂ <= ε or after ``max_iterations`` evaluations (the authors'
defaults are ε = 1e-5 and 8 iterations). See "Least-Squares Policy Iteration", Lagoudakis & Parr
2003 (JMLR 4), and their ``lspi.m``.

The per-iteration history lives in fixed-size arrays (so the loop jit-compiles and vmaps): rows
past ``iterations`` repeat the final weights / greedy actions, and ``weight_change`` and
``policy_changes`` are NaN and -1 there.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.core.validation import check_positive_int, is_concrete
from offrl_jax.linear.systems import accumulate_td_system, check_td_inputs, solve

Array = Any

__all__ = ["LSPIResult", "greedy_actions", "lspi"]


class LSPIResult(NamedTuple):
    """Result of :func:`lspi`.

    Attributes:
      weights: ``[K]`` final weights w (Q(s, a) = φ(s, a)ᵀ w).
      iterations: int, number of LSTDQ evaluations run (<= max_iterations).
      converged: bool, the last weight change was <= epsilon.
      ok: bool, every LSTDQ solve was finite and well conditioned.
      weights_history: ``[max_iterations + 1, K]`` w_0, w_1, ...; rows past ``iterations``
        repeat the final weights.
      weight_change: ``[max_iterations]`` ‖w_{k+1} − w_k‖₂ (NaN past ``iterations``).
      policy_changes: ``[max_iterations]`` number of states (rows of ``state_features``, else the
        sample next states) whose greedy action differs between π_k and π_{k+1} (-1 past
        ``iterations``).
      greedy_history: ``[max_iterations + 1, P]`` greedy actions of w_k at the rows of
        ``state_features`` (``P = 0`` without them).
      condition: ``[max_iterations]`` condition number of each LSTDQ system (NaN past).
    """

    weights: Array
    iterations: Array
    converged: Array
    ok: Array
    weights_history: Array
    weight_change: Array
    policy_changes: Array
    greedy_history: Array
    condition: Array


def greedy_actions(phi_all: Array, weights: Array) -> Array:
    """argmax_a φ(s, a)ᵀ w with ties to the first action: ``[..., A, K]`` -> ``[...]`` ints."""
    return jnp.argmax(phi_all @ weights, axis=-1).astype(jnp.int32)


def lspi(phi_sa: Array, phi_next_all: Array, rewards: Array, discounts: Array, gamma: Any, ridge: Any = 0.0, *,
         max_iterations: int = 8, epsilon: float = 1e-5, initial_weights: Optional[Array] = None,
         sample_weights: Optional[Array] = None, state_features: Optional[Array] = None,
         chunk_size: Optional[int] = None) -> LSPIResult:
    """Least-squares policy iteration on a fixed batch of transitions.

    π_k(s') = argmax_a φ(s', a)ᵀ w_k; w_{k+1} = (Ã_k + λI)⁻¹ b̃ with
    Ã_k = Σ_m φ(s_m, a_m)(φ(s_m, a_m) − γ d_m φ(s'_m, π_k(s'_m)))ᵀ and b̃ = Σ_m φ(s_m, a_m) r_m;
    repeat while k < max_iterations and ‖w_{k+1} − w_k‖₂ > ε. See "Least-Squares Policy
    Iteration", Lagoudakis & Parr 2003.

    Args:
      phi_sa: ``[M, K]`` φ(s_m, a_m).
      phi_next_all: ``[M, A, K]`` φ(s'_m, a) for every action a.
      rewards: ``[M]``.
      discounts: ``[M]``, 0 where s'_m is terminal.
      gamma: scalar discount.
      ridge: λ >= 0 added to each LSTDQ system.
      max_iterations: static cap on LSTDQ evaluations (Lagoudakis & Parr's default 8).
      epsilon: stopping tolerance on the L2 weight change (default 1e-5, as the authors').
      initial_weights: ``[K]`` w_0 (default zeros: π_0 takes the first action everywhere).
      sample_weights: optional ``[M]`` non-negative weights.
      state_features: optional ``[P, A, K]`` φ(s, a) at P states whose greedy actions are
        recorded (e.g. all states of a tabular MDP).
      chunk_size: rows per ``lax.scan`` block of each LSTDQ accumulation.

    Returns:
      :class:`LSPIResult`.
    """
    phi_sa, phi_next_all, rewards, discounts, sample_weights = _check_lspi_args(
        phi_sa, phi_next_all, rewards, discounts, gamma, ridge, max_iterations, epsilon,
        initial_weights, sample_weights, state_features, chunk_size)
    n_it, (k, dt) = int(max_iterations), (phi_sa.shape[1], phi_sa.dtype)
    w0 = jnp.zeros((k,), dt) if initial_weights is None else jnp.asarray(initial_weights, dt)
    recorded = None if state_features is None else jnp.asarray(state_features).astype(dt)
    probe = phi_next_all if recorded is None else recorded

    def evaluate(w):  # LSTDQ of the greedy policy of w
        a_next = greedy_actions(phi_next_all, w)
        phi_pi = jnp.take_along_axis(phi_next_all, a_next[:, None, None], axis=1)[:, 0]
        system = accumulate_td_system(phi_sa, phi_pi, rewards, discounts, gamma, sample_weights, chunk_size)
        return solve(system.a, system.b, ridge)

    def cond(c):
        it, _, change, _, _ = c
        return (it < n_it) & (change > epsilon)  # a failed solve (NaN weights) stops: NaN > ε is False

    def body(c):
        it, w, _, ok, hist = c
        res = evaluate(w)
        change = jnp.linalg.norm(res.weights - w)
        changed = jnp.sum(greedy_actions(probe, res.weights) != greedy_actions(probe, w))
        hist = _record(hist, it, res, change, changed, recorded)
        return it + 1, res.weights, change, ok & res.ok, hist

    init = (jnp.asarray(0, jnp.int32), w0, jnp.asarray(jnp.inf, dt), jnp.asarray(True), _history(w0, n_it, recorded))
    it, w, change, ok, hist = jax.lax.while_loop(cond, body, init)
    return LSPIResult(w, it, change <= epsilon, ok, hist["weights"], hist["change"], hist["policy"],
                      hist["greedy"], hist["cond"])


def _check_lspi_args(phi_sa, phi_next_all, rewards, discounts, gamma, ridge, max_iterations, epsilon,
                     initial_weights, sample_weights, state_features, chunk_size) -> tuple:
    arrays = check_td_inputs(phi_sa, phi_next_all, rewards, discounts, gamma, ridge, sample_weights,
                             names=("phi_sa", "phi_next_all"), next_rank=3, chunk_size=chunk_size)
    phi_sa, phi_next_all = arrays[:2]
    check_positive_int(max_iterations, "max_iterations")
    if is_concrete(epsilon) and not (np.isfinite(epsilon) and epsilon >= 0):
        raise ValueError(f"epsilon: expected a finite tolerance >= 0, found {epsilon}")
    k = phi_sa.shape[1]
    if initial_weights is not None and jnp.shape(initial_weights) != (k,):
        raise ValueError(f"initial_weights: expected shape [K] = [{k}], found {list(jnp.shape(initial_weights))}")
    if state_features is not None and (jnp.ndim(state_features) != 3 or tuple(jnp.shape(state_features)[1:]) != tuple(phi_next_all.shape[1:])):
        raise ValueError(
            f"state_features: expected shape [P, A, K] = [P, {phi_next_all.shape[1]}, {k}], "
            f"found {list(jnp.shape(state_features))}"
        )
    return arrays


def _history(w0: Array, n_it: int, recorded: Optional[Array]) -> dict:
    """Fixed-size per-iteration history before the first evaluation."""
    dt, k = w0.dtype, w0.shape[0]
    g0 = jnp.zeros((0,), jnp.int32) if recorded is None else greedy_actions(recorded, w0)
    return dict(
        weights=jnp.broadcast_to(w0, (n_it + 1, k)),
        change=jnp.full((n_it,), jnp.nan, dt),
        policy=jnp.full((n_it,), -1, jnp.int32),
        greedy=jnp.broadcast_to(g0, (n_it + 1, g0.shape[0])),
        cond=jnp.full((n_it,), jnp.nan, dt),
    )


def _record(hist: dict, it: Array, res: Any, change: Array, changed: Array, recorded: Optional[Array]) -> dict:
    """Writes evaluation ``it``: rows past ``it`` of weights/greedy take the new iterate."""
    later = (jnp.arange(hist["weights"].shape[0]) > it)[:, None]
    greedy = hist["greedy"]
    if recorded is not None:
        greedy = jnp.where(later, greedy_actions(recorded, res.weights)[None, :], greedy)
    return dict(
        weights=jnp.where(later, res.weights[None, :], hist["weights"]),
        change=hist["change"].at[it].set(change),
        policy=hist["policy"].at[it].set(changed.astype(jnp.int32)),
        greedy=greedy,
        cond=hist["cond"].at[it].set(res.condition),
    )
