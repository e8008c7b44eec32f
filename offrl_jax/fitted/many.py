"""Fitted Q evaluation of K target policies on one dataset, trained as one program.

FQE's learner closes over its target policy (:func:`~offrl_jax.fitted.make_train`); the
policy only enters the TD target y_m = r_m + γ d_m Σ_a' π(a'|s'_m) Q̄(s'_m, a'), so K policies
given as one ``[K, O, A]`` table stack (or a stacked pytree read by a policy function) are
trained by ``jax.vmap`` over the policy axis: K networks, one compiled program, each equal to
the single-policy run with the same key. See "Batch Policy Learning under Constraints", Le,
Voloshin & Yue 2019.
"""

from __future__ import annotations

from typing import Any, Callable

import jax

from offrl_jax.core import TrainResult
from offrl_jax.fitted.config import FittedQConfig
from offrl_jax.fitted.estimates import initial_value
from offrl_jax.fitted.loop import make_train

Array = Any

__all__ = ["make_train_policies", "initial_values_policies"]


def make_train_policies(config: FittedQConfig) -> Callable[[Array, Any, Any], TrainResult]:
    """``train(key, data, target_policies) -> TrainResult`` with a leading policy axis K.

    ``target_policies`` is a ``[K, O, A]`` stack of tabular policies (or any pytree with a
    leading K axis that ``make_train(config, policy)`` accepts per slice). Every policy's network
    starts from the same ``key`` (so entry k equals ``make_train(config, target_policies[k])(key,
    data)``); ``jax.jit`` the returned function to compile all K runs as one program, and vmap
    it again over keys for seeds. Validate the data on the host first
    (:func:`~offrl_jax.fitted.validate_data` with any one policy), as for ``make_train``.

    Args:
      config: an FQE :class:`~offrl_jax.fitted.FittedQConfig` (``method="fqe"``, discrete).

    Returns:
      The K-policy train function.
    """
    if config.method != "fqe" or config.continuous:
        raise ValueError("config: K-policy training needs discrete-action FQE (method='fqe', num_actions set)")

    def train(key: Array, data: Any, target_policies: Any) -> TrainResult:
        return jax.vmap(lambda pi: make_train(config, pi)(key, data))(target_policies)

    return train


def initial_values_policies(result: TrainResult, observations: Array, target_policies: Any) -> Array:
    """``[K]`` FQE estimates Ĵ_k = (1/N) Σ_n Σ_a π_k(a|s^n_0) Q̂_k(s^n_0, a) of K trained networks.

    Args:
      result: :func:`make_train_policies`'s result (parameters with a leading K axis).
      observations: ``[N, ...]`` initial observations s^n_0.
      target_policies: the ``[K, O, A]`` stack the networks were trained for.

    Returns:
      ``[K]`` estimates (:func:`~offrl_jax.fitted.initial_value` per policy).
    """
    state = result.state
    return jax.vmap(lambda params, pi: initial_value(state.apply_fn, params, observations, pi))(
        state.params, target_policies
    )
