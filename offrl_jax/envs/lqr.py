"""Discrete-time linear-quadratic systems with the exact Q-function of a linear-Gaussian policy.

System (state dim n, action dim m), reward of the *current* state and action:

    s_{t+1} = A s_t + B a_t + w_t,   w_t ~ N(0, Σ_w),     r_t = −(s_tᵀ Q_c s_t + a_tᵀ R a_t),
    s_0 ~ N(μ_0, Σ_0),   policy π:   a_t = K s_t + e_t,   e_t ~ N(0, Σ_a).

Exact values for discount γ < 1 (the evaluation step of policy iteration for LQR, whose
Q-function is a quadratic form in [s; a]: "Adaptive Linear Quadratic Control Using Policy
Iteration", Bradtke, Ydstie & Barto 1994; the discrete Lyapunov equation as in Bertsekas,
"Dynamic Programming and Optimal Control" Vol. I, §4.1). Write M = A + B K for the closed loop.
V^π(s) = sᵀ P s + v_0 with P the solution of the discrete Lyapunov equation

    P = −(Q_c + Kᵀ R K) + γ Mᵀ P M,     solved exactly as (I − γ Mᵀ⊗Mᵀ) vec P = −vec(Q_c + KᵀRK),

which has a unique solution, the value, when γ ρ(M)² < 1. Then, since
E[V(As + Ba + w)] = (As + Ba)ᵀ P (As + Ba) + tr(P Σ_w) + v_0,

    Q^π(s, a) = sᵀ P_ss s + 2 sᵀ P_sa a + aᵀ P_aa a + c,
    P_ss = −Q_c + γ AᵀPA,  P_sa = γ AᵀPB,  P_aa = −R + γ BᵀPB,  c = γ (tr(P Σ_w) + v_0),

and V(s) = E_{a~π} Q(s, a) = sᵀ(P_ss + P_sa K + KᵀP_saᵀ + KᵀP_aa K)s + tr(P_aa Σ_a) + c gives
back P and v_0 = (tr(P_aa Σ_a) + γ tr(P Σ_w)) / (1 − γ). For s_0 ~ N(μ_0, Σ_0),
J(π) = μ_0ᵀ P μ_0 + tr(P Σ_0) + v_0. (Cost-based texts write the same equations for −P.)

Our Q_c/R are ``state_cost``/``action_cost``; the dataset sampler and Monte-Carlo returns are
``lax.scan`` over time of a batch of episodes; callers jit them with sizes static.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from offrl_jax.data import Transitions

Array = Any

__all__ = [
    "LQRSystem",
    "LinearGaussianPolicy",
    "LQRValue",
    "lqr_policy_value",
    "lqr_q_values",
    "lqr_state_values",
    "lqr_initial_value",
    "lqr_step",
    "sample_lqr_transitions",
    "lqr_returns",
]


def _sqrt_psd(cov: np.ndarray) -> np.ndarray:
    """A square root L with L Lᵀ = cov for a symmetric positive semi-definite ``cov`` (host)."""
    lam, vec = np.linalg.eigh(cov)
    return vec * np.sqrt(np.maximum(lam, 0.0))[None, :]


def _check_matrix(x, name: str, shape: tuple, psd: bool = False, pd: bool = False) -> np.ndarray:
    if isinstance(x, jax.core.Tracer):
        raise ValueError(f"{name}: validation needs a concrete array; build the container outside jit")
    a = np.asarray(x)
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {list(shape)}, found {list(a.shape)}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: expected finite values")
    if psd or pd:
        if not np.allclose(a, a.T, atol=1e-8 * max(1.0, np.abs(a).max())):
            raise ValueError(f"{name}: expected a symmetric matrix")
        lam = np.linalg.eigvalsh(a) if a.size else np.ones(1)
        if pd and lam.min() <= 0:
            raise ValueError(f"{name}: expected a positive definite matrix, smallest eigenvalue {lam.min():.3g}")
        if lam.min() < -1e-10 * max(1.0, np.abs(lam).max()):
            raise ValueError(f"{name}: expected a positive semi-definite matrix, smallest eigenvalue {lam.min():.3g}")
    return a


@struct.dataclass
class LQRSystem:
    """s' = A s + B a + w, w ~ N(0, Σ_w); r = −(sᵀ Q_c s + aᵀ R a); s_0 ~ N(μ_0, Σ_0).

    Attributes:
      transition: ``[n, n]`` A.
      control: ``[n, m]`` B.
      state_cost: ``[n, n]`` Q_c (symmetric PSD).
      action_cost: ``[m, m]`` R (symmetric PSD).
      noise_cov: ``[n, n]`` Σ_w (symmetric PSD).
      initial_mean: ``[n]`` μ_0.
      initial_cov: ``[n, n]`` Σ_0 (symmetric PSD).
      noise_sqrt: ``[n, n]`` L_w with L_w L_wᵀ = Σ_w (set by :meth:`create`).
      initial_sqrt: ``[n, n]`` L_0 with L_0 L_0ᵀ = Σ_0 (set by :meth:`create`).
    """

    transition: Array
    control: Array
    state_cost: Array
    action_cost: Array
    noise_cov: Array
    initial_mean: Array
    initial_cov: Array
    noise_sqrt: Array
    initial_sqrt: Array

    @property
    def state_dim(self) -> int:
        return self.transition.shape[0]

    @property
    def action_dim(self) -> int:
        return self.control.shape[1]

    @classmethod
    def create(
        cls, transition, control, state_cost, action_cost, noise_cov, initial_mean, initial_cov, dtype=None
    ) -> "LQRSystem":
        """Host-validated constructor (shapes, finiteness, symmetric PSD costs and covariances);
        raises ``ValueError`` naming the argument. ``dtype`` defaults to that of ``transition``
        (float32 for non-float input)."""
        a = np.asarray(transition)
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise ValueError(f"transition: expected a square [n, n] matrix, found {list(a.shape)}")
        n = a.shape[0]
        b = np.asarray(control)
        if b.ndim != 2 or b.shape[0] != n:
            raise ValueError(f"control: expected shape [n, m] = [{n}, m], found {list(b.shape)}")
        m = b.shape[1]
        arrays = dict(
            transition=_check_matrix(a, "transition", (n, n)),
            control=_check_matrix(b, "control", (n, m)),
            state_cost=_check_matrix(state_cost, "state_cost", (n, n), psd=True),
            action_cost=_check_matrix(action_cost, "action_cost", (m, m), psd=True),
            noise_cov=_check_matrix(noise_cov, "noise_cov", (n, n), psd=True),
            initial_mean=_check_matrix(initial_mean, "initial_mean", (n,)),
            initial_cov=_check_matrix(initial_cov, "initial_cov", (n, n), psd=True),
        )
        arrays["noise_sqrt"] = _sqrt_psd(arrays["noise_cov"])
        arrays["initial_sqrt"] = _sqrt_psd(arrays["initial_cov"])
        dt = dtype or (a.dtype if a.dtype.kind == "f" else jnp.float32)
        dt = jax.dtypes.canonicalize_dtype(dt)  # float64 input without x64 gives float32
        return cls(**{k: jnp.asarray(v, dt) for k, v in arrays.items()})


@struct.dataclass
class LinearGaussianPolicy:
    """π(a|s) = N(a; K s, Σ_a).

    Attributes:
      gain: ``[m, n]`` K.
      noise_cov: ``[m, m]`` Σ_a (symmetric positive definite).
      noise_chol: ``[m, m]`` lower Cholesky factor of Σ_a (set by :meth:`create`).
    """

    gain: Array
    noise_cov: Array
    noise_chol: Array

    @classmethod
    def create(cls, gain, noise_cov, dtype=None) -> "LinearGaussianPolicy":
        """Host-validated constructor; raises ``ValueError`` naming the argument."""
        k = np.asarray(gain)
        if k.ndim != 2:
            raise ValueError(f"gain: expected shape [m, n], found {list(k.shape)}")
        m = k.shape[0]
        arrays = dict(
            gain=_check_matrix(k, "gain", k.shape),
            noise_cov=_check_matrix(noise_cov, "noise_cov", (m, m), pd=True),
        )
        arrays["noise_chol"] = np.linalg.cholesky(arrays["noise_cov"])
        dt = dtype or (k.dtype if k.dtype.kind == "f" else jnp.float32)
        dt = jax.dtypes.canonicalize_dtype(dt)
        return cls(**{key: jnp.asarray(v, dt) for key, v in arrays.items()})

    def mean(self, observations: Array) -> Array:
        """``[B, n]`` → ``[B, m]`` mean actions K s."""
        return observations @ self.gain.T

    def sample_actions(self, key: Array, observations: Array) -> Array:
        """One draw a = K s + e, e ~ N(0, Σ_a), per row: ``[B, n]`` → ``[B, m]``."""
        noise = jax.random.normal(key, observations.shape[:-1] + (self.gain.shape[0],), self.gain.dtype)
        return self.mean(observations) + noise @ self.noise_chol.T

    def log_prob(self, observations: Array, actions: Array) -> Array:
        """log N(a; K s, Σ_a) per row: ``[B, n]``, ``[B, m]`` → ``[B]`` (a density, may be > 0)."""
        chol = self.noise_chol
        diff = actions - self.mean(observations)
        z = jax.scipy.linalg.solve_triangular(chol, diff.T, lower=True).T
        m = self.gain.shape[0]
        log_det = 2.0 * jnp.sum(jnp.log(jnp.diag(chol)))
        return -0.5 * (jnp.sum(z * z, axis=-1) + log_det + m * jnp.log(2.0 * jnp.pi))


class LQRValue(NamedTuple):
    """Exact V^π(s) = sᵀ P s + v_0 and Q^π(s, a) = sᵀP_ss s + 2 sᵀP_sa a + aᵀP_aa a + c.

    Attributes:
      p: ``[n, n]`` P.  v0: ``[]`` v_0.
      p_ss: ``[n, n]``.  p_sa: ``[n, m]``.  p_aa: ``[m, m]``.  c: ``[]``.
      stable: ``[]`` bool, γ ρ(A + BK)² < 1 (else the value is infinite and these are meaningless).
    """

    p: Array
    v0: Array
    p_ss: Array
    p_sa: Array
    p_aa: Array
    c: Array
    stable: Array


def lqr_policy_value(system: LQRSystem, policy: LinearGaussianPolicy, gamma: float) -> LQRValue:
    """Exact V^π and Q^π of a linear-Gaussian policy on an LQR system (see the module docstring).

    P solves P = −(Q_c + KᵀRK) + γ (A+BK)ᵀ P (A+BK) by the vectorised linear solve
    (I − γ Mᵀ⊗Mᵀ) vec P = −vec(Q_c + KᵀRK) (an n² × n² system: for small n). See "Adaptive
    Linear Quadratic Control Using Policy Iteration", Bradtke, Ydstie & Barto 1994.

    Args:
      system: the :class:`LQRSystem`.
      policy: the evaluated :class:`LinearGaussianPolicy` (gain ``[m, n]``).
      gamma: discount γ in [0, 1).

    Returns:
      :class:`LQRValue` with P, v_0, P_ss, P_sa, P_aa, c and the ``stable`` flag.
    """
    a, b, k = system.transition, system.control, policy.gain
    n = a.shape[0]
    closed = a + b @ k
    cost = system.state_cost + k.T @ system.action_cost @ k
    lhs = jnp.eye(n * n, dtype=a.dtype) - gamma * jnp.kron(closed.T, closed.T)
    p = jnp.linalg.solve(lhs, -cost.reshape(n * n, 1)).reshape(n, n)
    p = 0.5 * (p + p.T)
    p_ss = -system.state_cost + gamma * a.T @ p @ a
    p_sa = gamma * a.T @ p @ b
    p_aa = -system.action_cost + gamma * b.T @ p @ b
    v0 = (jnp.trace(p_aa @ policy.noise_cov) + gamma * jnp.trace(p @ system.noise_cov)) / (1.0 - gamma)
    c = gamma * (jnp.trace(p @ system.noise_cov) + v0)
    stable = gamma * jnp.max(jnp.abs(jnp.linalg.eigvals(closed))) ** 2 < 1.0
    return LQRValue(p, v0, p_ss, p_sa, p_aa, c, stable)


def lqr_q_values(value: LQRValue, observations: Array, actions: Array) -> Array:
    """Q^π(s, a) = sᵀP_ss s + 2 sᵀP_sa a + aᵀP_aa a + c: ``[B, n]``, ``[B, m]`` → ``[B]``."""
    quad = (
        jnp.sum((observations @ value.p_ss) * observations, axis=-1)
        + 2.0 * jnp.sum((observations @ value.p_sa) * actions, axis=-1)
        + jnp.sum((actions @ value.p_aa) * actions, axis=-1)
    )
    return quad + value.c


def lqr_state_values(value: LQRValue, observations: Array) -> Array:
    """V^π(s) = sᵀ P s + v_0: ``[B, n]`` → ``[B]``."""
    return jnp.sum((observations @ value.p) * observations, axis=-1) + value.v0


def lqr_initial_value(system: LQRSystem, value: LQRValue) -> Array:
    """J(π) = E_{s_0~N(μ_0, Σ_0)} V^π(s_0) = μ_0ᵀ P μ_0 + tr(P Σ_0) + v_0 (scalar)."""
    mu = system.initial_mean
    return mu @ value.p @ mu + jnp.trace(value.p @ system.initial_cov) + value.v0


def lqr_step(key: Array, system: LQRSystem, states: Array, actions: Array):
    """One transition: ``[B, n]``, ``[B, m]`` → (next states ``[B, n]``, rewards ``[B]``).

    s' = A s + B a + w, w ~ N(0, Σ_w); r = −(sᵀ Q_c s + aᵀ R a).
    """
    noise = jax.random.normal(key, states.shape, states.dtype) @ system.noise_sqrt.T
    next_states = states @ system.transition.T + actions @ system.control.T + noise
    rewards = -(
        jnp.sum((states @ system.state_cost) * states, axis=-1)
        + jnp.sum((actions @ system.action_cost) * actions, axis=-1)
    )
    return next_states, rewards


def _initial_states(key: Array, system: LQRSystem, num: int) -> Array:
    z = jax.random.normal(key, (num, system.state_dim), system.transition.dtype)
    return system.initial_mean[None, :] + z @ system.initial_sqrt.T


def sample_lqr_transitions(
    key: Array, system: LQRSystem, behavior: LinearGaussianPolicy, num_episodes: int, horizon: int
) -> Transitions:
    """Transitions from ``num_episodes`` behaviour episodes of ``horizon`` steps, flattened.

    s_0 ~ N(μ_0, Σ_0), a_t ~ π_β(·|s_t), s_{t+1} = A s_t + B a_t + w_t. Episodes end by
    truncation only, so ``discounts`` is 1 everywhere (the bootstrap from s' stays). A ``lax.scan``
    over time of the batch of episodes; jit with ``num_episodes`` and ``horizon`` static.

    Args:
      key: PRNG key.
      system: the :class:`LQRSystem`.
      behavior: the behaviour :class:`LinearGaussianPolicy`.
      num_episodes: N (static).  horizon: T (static).

    Returns:
      :class:`~offrl_jax.data.Transitions` with M = N·T rows (episode-major): observations and
      next_observations ``[M, n]``, float actions ``[M, m]``, rewards and discounts ``[M]``.
    """
    k0, k_run = jax.random.split(key)

    def body(s, k):
        k_a, k_w = jax.random.split(k)
        a = behavior.sample_actions(k_a, s)
        s_next, r = lqr_step(k_w, system, s, a)
        return s_next, (s, a, r, s_next)

    _, (s, a, r, s_next) = jax.lax.scan(body, _initial_states(k0, system, num_episodes), jax.random.split(k_run, horizon))
    flat = lambda x: jnp.swapaxes(x, 0, 1).reshape((num_episodes * horizon,) + x.shape[2:])
    return Transitions(
        observations=flat(s),
        actions=flat(a),
        rewards=flat(r),
        next_observations=flat(s_next),
        discounts=jnp.ones(num_episodes * horizon, r.dtype),
    )


def lqr_returns(
    key: Array,
    system: LQRSystem,
    policy: LinearGaussianPolicy,
    gamma: float,
    num_episodes: int,
    horizon: int,
    initial_states: Array | None = None,
    initial_actions: Array | None = None,
) -> Array:
    """Monte-Carlo discounted returns G_n = Σ_{t<T} γ^t r_t under π, ``[N]``.

    Starts from s_0 ~ N(μ_0, Σ_0) (estimating J(π)), or from given ``initial_states [N, n]``
    (V^π(s)), optionally with the first action fixed to ``initial_actions [N, m]`` (Q^π(s, a)).
    Truncation at T biases by at most γ^T times the tail value; pick T accordingly.

    Args:
      key: PRNG key.  system, policy: as in :func:`lqr_policy_value`.  gamma: γ.
      num_episodes: N (static).  horizon: T (static).
      initial_states: optional ``[N, n]``.  initial_actions: optional ``[N, m]``.

    Returns:
      ``[N]`` returns.
    """
    k0, k_run = jax.random.split(key)
    s0 = _initial_states(k0, system, num_episodes) if initial_states is None else initial_states
    dtype = s0.dtype

    def body(carry, inp):
        s, g, disc = carry
        k, t = inp
        k_a, k_w = jax.random.split(k)
        a = policy.sample_actions(k_a, s)
        if initial_actions is not None:
            a = jnp.where(t == 0, initial_actions, a)
        s_next, r = lqr_step(k_w, system, s, a)
        return (s_next, g + disc * r, disc * gamma), None

    init = (s0, jnp.zeros(num_episodes, dtype), jnp.ones((), dtype))
    (_, g, _), _ = jax.lax.scan(body, init, (jax.random.split(k_run, horizon), jnp.arange(horizon)))
    return g
