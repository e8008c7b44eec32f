"""Q-networks as flax Linen modules.

Discrete actions: :class:`QNetwork` maps an observation to ``[A]`` action values, the usual
DQN/NFQ head (see "Neural Fitted Q Iteration", Riedmiller 2005). With ``num_observations`` set
it takes integer observations and one-hot encodes them, so a network with no hidden layers is
exactly a tabular Q-function Q(s, a) = W[s, a] + b[a].

Continuous actions: :class:`ContinuousQNetwork` (an MLP) and :class:`QuadraticQNetwork`
(linear in its parameters) map ``(observation, action)`` to a scalar.

All are pure: ``params = net.init(key, obs[, act])``, ``q = net.apply(params, obs[, act])``;
parameters are a pytree, so they vmap over seeds. :func:`q_network` builds the one a
:class:`~offrl_jax.fitted.config.FittedQConfig` describes.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from offrl_jax.fitted.config import FittedQConfig

Array = Any

__all__ = ["QNetwork", "ContinuousQNetwork", "QuadraticQNetwork", "q_network", "mlp_flops"]


def _features(obs: Array, num_observations: Optional[int], dtype: Any) -> Array:
    if num_observations is not None:
        return nn.one_hot(obs, num_observations, dtype=dtype)
    return jnp.asarray(obs, dtype)


class QNetwork(nn.Module):
    """MLP Q-network for discrete actions: Q(s, ·) = W_L σ(… σ(W_1 x(s) + b_1) …) + b_L ∈ R^A.

    x(s) is the feature vector, or the one-hot e_s for tabular input. See "Neural Fitted Q
    Iteration", Riedmiller 2005 (an MLP regressed onto fitted-Q targets).

    Attributes:
      num_actions: A, the number of outputs.
      hidden_sizes: widths of the hidden layers (``()`` gives a linear map of the input).
      num_observations: if set, observations are ints in ``[0, O)`` and are one-hot encoded
        (tabular input); else they are float feature vectors ``[..., D]``.
      activation: hidden-layer nonlinearity.
      dtype: dtype of parameters and computation.
    """

    num_actions: int
    hidden_sizes: Sequence[int] = (256, 256)
    num_observations: Optional[int] = None
    activation: Callable[[Array], Array] = nn.relu
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, obs: Array) -> Array:
        """Args: obs ``[..., D]`` floats or ``[...]`` ints (tabular). Returns ``[..., A]``."""
        x = _features(obs, self.num_observations, self.dtype)
        for width in self.hidden_sizes:
            x = self.activation(nn.Dense(width, dtype=self.dtype, param_dtype=self.dtype)(x))
        return nn.Dense(self.num_actions, dtype=self.dtype, param_dtype=self.dtype)(x)


class ContinuousQNetwork(nn.Module):
    """MLP Q-network for continuous actions: Q(s, a) = MLP([s, a]) ∈ R.

    See "Continuous control with deep reinforcement learning", Lillicrap et al. 2016 (critic
    on state and action); used with :func:`~offrl_jax.fitted.targets.sampled_fqe_targets`.

    Attributes:
      hidden_sizes: widths of the hidden layers.
      activation: hidden-layer nonlinearity.
      dtype: dtype of parameters and computation.
    """

    hidden_sizes: Sequence[int] = (256, 256)
    activation: Callable[[Array], Array] = nn.relu
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, obs: Array, action: Array) -> Array:
        """Args: obs ``[..., D]``, action ``[..., d]``. Returns ``[...]``."""
        x = jnp.concatenate([jnp.asarray(obs, self.dtype), jnp.asarray(action, self.dtype)], -1)
        for width in self.hidden_sizes:
            x = self.activation(nn.Dense(width, dtype=self.dtype, param_dtype=self.dtype)(x))
        return nn.Dense(1, dtype=self.dtype, param_dtype=self.dtype)(x)[..., 0]


class QuadraticQNetwork(nn.Module):
    """Quadratic Q-function, linear in its parameters: Q(s, a) = xᵀ W x + bᵀ x + c, x = [s; a].

    Only the symmetric part of W matters; W, b, c start at 0. This class holds the exact Q^π of
    a linear-Gaussian policy on a linear-quadratic system (see :mod:`offrl_jax.envs.lqr`), so FQE
    with it is linear FQE on quadratic features ("Adaptive Linear Quadratic Control Using Policy
    Iteration", Bradtke, Ydstie & Barto 1994, fit Q = [s; a]ᵀ H [s; a] the same way), with
    W[:n, :n] = P_ss, W[:n, n:] = P_sa (if W is symmetric), W[n:, n:] = P_aa, c the constant.

    Attributes:
      dtype: dtype of parameters and computation.
    """

    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, obs: Array, action: Array) -> Array:
        """Args: obs ``[..., D]``, action ``[..., d]``. Returns ``[...]``."""
        x = jnp.concatenate([jnp.asarray(obs, self.dtype), jnp.asarray(action, self.dtype)], -1)
        size = x.shape[-1]
        w = self.param("w", nn.initializers.zeros, (size, size), self.dtype)
        b = self.param("b", nn.initializers.zeros, (size,), self.dtype)
        c = self.param("c", nn.initializers.zeros, (), self.dtype)
        return jnp.sum((x @ w) * x, axis=-1) + x @ b + c


@functools.lru_cache(maxsize=256)
def q_network(config: FittedQConfig) -> nn.Module:
    """The network a config describes: :class:`QNetwork` (discrete), :class:`ContinuousQNetwork`
    (``features="mlp"``) or :class:`QuadraticQNetwork` (``"quadratic"``). One object per config,
    so train states of equal configs have equal static fields and share compilations."""
    dtype = jnp.dtype(config.dtype)
    if not config.continuous:
        return QNetwork(
            num_actions=config.num_actions,
            hidden_sizes=tuple(config.hidden_sizes),
            num_observations=config.num_observations,
            dtype=dtype,
        )
    if config.features == "quadratic":
        return QuadraticQNetwork(dtype=dtype)
    return ContinuousQNetwork(hidden_sizes=tuple(config.hidden_sizes), dtype=dtype)


def mlp_flops(input_dim: int, hidden_sizes: Sequence[int], num_outputs: int, batch: int) -> int:
    """Matmul FLOPs of one forward pass of an MLP on a batch: Σ_layers 2·B·d_in·d_out."""
    dims = [input_dim, *hidden_sizes, num_outputs]
    return int(sum(2 * batch * a * b for a, b in zip(dims[:-1], dims[1:])))
