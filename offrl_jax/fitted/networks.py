"""Q-networks as flax Linen modules.

Discrete actions: :class:`QNetwork` maps an observation to ``[A]`` action values, the usual
DQN/NFQ head (see "Neural Fitted Q Iteration", Riedmiller 2005). With ``num_observations`` set
it takes integer observations and one-hot encodes them, so a network with no hidden layers is
exactly a tabular Q-function Q(s, a) = W[s, a] + b[a].

Continuous actions: :class:`ContinuousQNetwork` maps ``(observation, action)`` to a scalar.

Both are pure: ``params = net.init(key, obs)``, ``q = net.apply(params, obs)``; parameters are
a pytree, so they vmap over seeds.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

Array = Any

__all__ = ["QNetwork", "ContinuousQNetwork", "mlp_flops"]


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


def mlp_flops(input_dim: int, hidden_sizes: Sequence[int], num_outputs: int, batch: int) -> int:
    """Matmul FLOPs of one forward pass of an MLP on a batch: Σ_layers 2·B·d_in·d_out."""
    dims = [input_dim, *hidden_sizes, num_outputs]
    return int(sum(2 * batch * a * b for a, b in zip(dims[:-1], dims[1:])))
