"""Feature maps phi(s) -> [K] and phi(s, a) -> [K'] for linear value functions.

A :class:`Features` bundles a pure function of *one* input with its output size K; apply it to a
batch with :func:`featurize` (a ``vmap``). State-action features are built from state features
by :func:`per_action` ("replicated per action", Lagoudakis & Parr 2003): block ``a`` of the
``[A * K]`` vector holds phi(s), the other blocks are 0, so Q(s, a) = phi(s)^T w_a.

Continuous observations (gymnax tasks) are first rescaled to the box ``[low, high]``.
:func:`rbf_grid` and :func:`fourier` take those bounds as arguments; :data:`GYMNAX_BOUNDS` holds
defaults for the classic-control tasks (the finite ranges the states actually visit, since
several gymnax observation spaces are unbounded), and :func:`bounds_from_data` reads them off a
dataset. Values outside the box are clipped for the Fourier basis (cosines of a rescaled input
are only a basis on [0, 1]).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np

Array = Any

__all__ = [
    "Features",
    "GYMNAX_BOUNDS",
    "all_action_features",
    "bounds_from_data",
    "expected_features",
    "featurize",
    "fourier",
    "from_function",
    "one_hot",
    "one_hot_state_action",
    "per_action",
    "polynomial",
    "rbf_grid",
]

# (low, high) per observation dimension for gymnax classic control. Bounded spaces use their
# own bounds; unbounded velocity entries use ranges that cover the states reached in practice.
GYMNAX_BOUNDS = {
    "CartPole-v1": ((-2.4, -3.0, -0.2095, -3.5), (2.4, 3.0, 0.2095, 3.5)),
    "Acrobot-v1": ((-1.0, -1.0, -1.0, -1.0, -12.566371, -28.274334), (1.0, 1.0, 1.0, 1.0, 12.566371, 28.274334)),
    "MountainCar-v0": ((-1.2, -0.07), (0.6, 0.07)),
    "MountainCarContinuous-v0": ((-1.2, -0.07), (0.6, 0.07)),
    "Pendulum-v1": ((-1.0, -1.0, -8.0), (1.0, 1.0, 8.0)),
}


@dataclasses.dataclass(frozen=True)
class Features:
    """A feature map of one input with a known output size.

    Attributes:
      apply: pure function of one state (or one state and one int action) returning ``[K]``.
      num_features: K.
      name: label.
    """

    apply: Callable[..., Array]
    num_features: int
    name: str = "features"

    def __call__(self, *args: Array) -> Array:
        return self.apply(*args)


def _box(low: Array, high: Array, name: str) -> Tuple[np.ndarray, np.ndarray]:
    lo = np.atleast_1d(np.asarray(low, np.float64))
    hi = np.atleast_1d(np.asarray(high, np.float64))
    if lo.ndim != 1 or lo.shape != hi.shape:
        raise ValueError(f"{name}: expected low and high of the same shape [d], found {lo.shape} and {hi.shape}")
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))) or np.any(hi <= lo):
        raise ValueError(f"{name}: expected finite bounds with high > low, found low={lo}, high={hi}")
    return lo, hi


def _vector(x: Array, d: int) -> Array:
    x = jnp.asarray(x)
    x = jnp.reshape(x, (-1,))
    if x.shape[0] != d:
        raise ValueError(f"x: expected a state with {d} entries, found shape {x.shape}")
    return x


def _float(x: Array) -> Array:
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def one_hot(num_states: int, dtype: Any = jnp.float32) -> Features:
    """Tabular state features phi(s) = e_s, ``[S]`` (ints in [0, S))."""
    if int(num_states) < 1:
        raise ValueError(f"num_states: expected a positive int, found {num_states}")
    s_ = int(num_states)
    return Features(lambda s: jax.nn.one_hot(s, s_, dtype=dtype), s_, "one_hot")


def per_action(features: Features, num_actions: int) -> Features:
    """State-action features replicated per action: phi(s, a) = e_a ⊗ phi(s), ``[A * K]``.

    Block a (entries ``a*K .. a*K + K - 1``) holds phi(s) and the others are 0, so the weights
    reshape to ``[A, K]`` and Q(s, a) = phi(s)^T w[a]. See "Least-Squares Policy Iteration",
    Lagoudakis & Parr 2003 (the chain-walk bases of their code).
    """
    if int(num_actions) < 1:
        raise ValueError(f"num_actions: expected a positive int, found {num_actions}")
    n_a, k = int(num_actions), features.num_features

    def apply(s, a):
        phi = features(s)
        return (jax.nn.one_hot(a, n_a, dtype=phi.dtype)[:, None] * phi[None, :]).reshape(n_a * k)

    return Features(apply, n_a * k, f"{features.name}_per_action")


def one_hot_state_action(num_states: int, num_actions: int, dtype: Any = jnp.float32) -> Features:
    """Tabular state-action features e_{a*S + s}, ``[A * S]`` (one-hot state replicated per action)."""
    return per_action(one_hot(num_states, dtype), num_actions)


def polynomial(degree: int, num_inputs: int = 1, scale: Union[float, Sequence[float]] = 1.0,
               offset: Union[float, Sequence[float]] = 0.0) -> Features:
    """Polynomial features: all monomials of z = scale * (x + offset) of total degree <= ``degree``.

    phi(x) = (prod_i z_i^{c_i})_{c : sum c <= degree}, ordered by total degree then
    lexicographically; for one input this is (1, z, z^2, ..., z^degree). Lagoudakis & Parr's
    chain-walk basis ``chain_basis_pol`` is ``polynomial(4, scale=10 / S)`` on 1-based states s
    (terms (10 s / S)^k, k = 0..4), replicated per action. See "Least-Squares Policy Iteration",
    Lagoudakis & Parr 2003.

    Args:
      degree: maximal total degree (>= 0).
      num_inputs: d, the number of entries of x.
      scale, offset: scalars or ``[d]``.
    """
    if int(degree) != degree or degree < 0:
        raise ValueError(f"degree: expected an int >= 0, found {degree}")
    d = int(num_inputs)
    if d < 1:
        raise ValueError(f"num_inputs: expected a positive int, found {num_inputs}")
    exps = [c for total in range(int(degree) + 1) for c in itertools.product(range(total + 1), repeat=d) if sum(c) == total]
    exps = sorted(exps, key=lambda c: (sum(c), tuple(-e for e in c)))
    powers = np.asarray(exps, np.int32)  # [K, d]
    sc = np.broadcast_to(np.asarray(scale, np.float64), (d,)).copy()
    off = np.broadcast_to(np.asarray(offset, np.float64), (d,)).copy()

    def apply(x):
        x = _float(_vector(x, d))
        z = jnp.asarray(sc, x.dtype) * (x + jnp.asarray(off, x.dtype))
        return jnp.prod(z[None, :] ** powers, axis=-1)

    return Features(apply, len(exps), "polynomial")


def rbf_grid(low: Array, high: Array, num_centers: Union[int, Sequence[int]] = 5,
             width: Optional[Union[float, Sequence[float]]] = None, bias: bool = True) -> Features:
    """Gaussian radial basis functions on a regular grid over the box ``[low, high]``.

    phi_c(x) = exp(-1/2 sum_i ((x_i - c_i) / sigma_i)^2) for centres c on the grid
    ``linspace(low_i, high_i, n_i)`` per dimension, plus a constant 1 first when ``bias``.
    The default width sigma_i is the grid spacing (high_i - low_i) / (n_i - 1) (the box width
    when n_i = 1). Lagoudakis & Parr's ``chain_basis_rbf`` uses exp(-(s - c)^2 / SS^2), i.e.
    sigma = SS / sqrt(2). See "Least-Squares Policy Iteration", Lagoudakis & Parr 2003.

    Args:
      low, high: scalars or ``[d]`` box bounds (see :data:`GYMNAX_BOUNDS`).
      num_centers: int or ``[d]`` ints; K = prod(n_i) (+ 1 with bias).
      width: optional sigma, scalar or ``[d]``.
    """
    lo, hi = _box(low, high, "low/high")
    d = lo.shape[0]
    n = np.broadcast_to(np.asarray(num_centers), (d,))
    if np.any(n < 1) or not np.issubdtype(n.dtype, np.integer):
        raise ValueError(f"num_centers: expected positive ints, found {num_centers}")
    axes = [np.linspace(lo[i], hi[i], int(n[i])) if n[i] > 1 else np.asarray([(lo[i] + hi[i]) / 2]) for i in range(d)]
    centers = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d)
    if width is None:
        sig = np.where(n > 1, (hi - lo) / np.maximum(n - 1, 1), hi - lo)
    else:
        sig = np.broadcast_to(np.asarray(width, np.float64), (d,))
        if np.any(sig <= 0) or not np.all(np.isfinite(sig)):
            raise ValueError(f"width: expected positive finite widths, found {width}")

    def apply(x):
        x = _float(_vector(x, d))
        z = (x[None, :] - jnp.asarray(centers, x.dtype)) / jnp.asarray(sig, x.dtype)[None, :]
        phi = jnp.exp(-0.5 * jnp.sum(z * z, axis=-1))
        return jnp.concatenate([jnp.ones((1,), x.dtype), phi]) if bias else phi

    return Features(apply, centers.shape[0] + int(bias), "rbf_grid")


def fourier(order: int, low: Array, high: Array, max_nonzero: Optional[int] = None) -> Features:
    """Fourier basis: phi_c(x) = cos(pi c^T x̄), x̄ = clip((x - low) / (high - low), 0, 1).

    Coefficient vectors c range over {0, ..., order}^d (the full basis, K = (order + 1)^d), or
    only those with at most ``max_nonzero`` non-zero entries (``max_nonzero=1`` is the
    uncoupled basis), ordered by sum(c). See "Value Function Approximation in Reinforcement
    Learning using the Fourier Basis", Konidaris, Osentoski & Thomas 2011.

    Args:
      order: n >= 0.
      low, high: scalars or ``[d]`` box bounds (see :data:`GYMNAX_BOUNDS`).
      max_nonzero: optional cap on the coupling of the coefficient vectors.
    """
    if int(order) != order or order < 0:
        raise ValueError(f"order: expected an int >= 0, found {order}")
    lo, hi = _box(low, high, "low/high")
    d = lo.shape[0]
    if max_nonzero is not None and int(max_nonzero) < 1:
        raise ValueError(f"max_nonzero: expected a positive int or None, found {max_nonzero}")
    cs = [c for c in itertools.product(range(int(order) + 1), repeat=d)
          if max_nonzero is None or sum(e > 0 for e in c) <= max_nonzero]
    coef = np.asarray(sorted(cs, key=lambda c: (sum(c), tuple(-e for e in c))), np.float64)  # [K, d]

    def apply(x):
        x = _float(_vector(x, d))
        xb = jnp.clip((x - jnp.asarray(lo, x.dtype)) / jnp.asarray(hi - lo, x.dtype), 0.0, 1.0)
        return jnp.cos(jnp.pi * (jnp.asarray(coef, x.dtype) @ xb))

    return Features(apply, coef.shape[0], "fourier")


def from_function(fn: Callable[..., Array], *example_inputs: Array, name: str = "custom") -> Features:
    """Wraps any pure function of one input (or one state and one action) returning ``[K]``.

    K is read off ``jax.eval_shape(fn, *example_inputs)`` (nothing is computed).

    Raises:
      ValueError: if the output is not a 1-D float vector.
    """
    if not callable(fn):
        raise ValueError(f"fn: expected a callable, found {type(fn).__name__}")
    if not example_inputs:
        raise ValueError("example_inputs: expected one example input per argument of fn")
    out = jax.eval_shape(fn, *example_inputs)
    if not hasattr(out, "shape") or len(out.shape) != 1 or not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(f"fn: expected a float vector [K] per input, found {out}")
    return Features(fn, int(out.shape[0]), name)


def featurize(features: Features, *inputs: Array) -> Array:
    """Applies ``features`` to a batch: ``[M, ...]`` inputs (one per argument) -> ``[M, K]``."""
    return jax.vmap(features.apply)(*inputs)


def all_action_features(features: Features, states: Array, num_actions: int) -> Array:
    """phi(s_m, a) for every action: ``[M, ...]`` states -> ``[M, A, K]``."""
    actions = jnp.arange(int(num_actions))
    return jax.vmap(lambda s: jax.vmap(lambda a: features.apply(s, a))(actions))(states)


def expected_features(phi_all: Array, probs: Array) -> Array:
    """Expected features under a stochastic policy: sum_a pi(a|s) phi(s, a).

    Args:
      phi_all: ``[..., A, K]`` phi(s, a) for every action.
      probs: ``[..., A]`` pi(a|s).

    Returns:
      ``[..., K]``; this is ``phi_next_pi`` of :func:`~offrl_jax.linear.lstdq` when applied at s'.
    """
    return jnp.einsum("...ak,...a->...k", phi_all, probs.astype(phi_all.dtype))


def bounds_from_data(observations: Array, margin: float = 0.05) -> Tuple[np.ndarray, np.ndarray]:
    """Per-dimension (low, high) of ``[M, d]`` observations, widened by ``margin`` of the range.

    Host-side (numpy). A dimension with zero range gets a unit-width box around its value.
    """
    x = np.asarray(observations, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"observations: expected a non-empty [M, d] array, found shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("observations: expected finite values, found NaN or inf")
    lo, hi = x.min(0), x.max(0)
    flat = hi <= lo
    span = np.where(flat, 1.0, hi - lo)
    return np.where(flat, lo - 0.5, lo - margin * span), np.where(flat, hi + 0.5, hi + margin * span)
