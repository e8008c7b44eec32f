"""Fitted Q iteration / evaluation in the classical outer/inner form.

For k = 1..K (Ernst, Geurts & Wehenkel 2005; Le, Voloshin & Yue 2019):

    y_m^k = r_m + γ d_m max_a' Q̂_{k−1}(s'_m, a')                  (FQI)
    y_m^k = r_m + γ d_m Σ_a' π(a'|s'_m) Q̂_{k−1}(s'_m, a')         (FQE)
    Q̂_k  = argmin_Q (1/M) Σ_m ℓ(Q(s_m, a_m) − y_m^k)

with Q̂_0 = 0. The targets of an iteration are computed once over the whole dataset from the
frozen Q̂_{k−1}, then ``config.num_steps`` minibatch optax steps regress onto them. Both loops
are ``lax.scan`` inside one jit-able function, sharing the network, target and regression
pieces of :mod:`offrl_jax.fitted.loop`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from offrl_jax.core.validation import check_positive_int
from offrl_jax.data import Transitions
from offrl_jax.fitted.config import FittedQConfig, Policy, validate_data
from offrl_jax.fitted.loop import QTrainState, StepMetrics, fitted_batch, init_state, regression_step
from offrl_jax.fitted.targets import td_targets

Array = Any

__all__ = ["FQIResult", "fitted_q_iteration"]


class FQIResult(NamedTuple):
    """Outcome of :func:`fitted_q_iteration`.

    Attributes:
      state: the final :class:`~offrl_jax.fitted.loop.QTrainState` (Q̂_K in ``params``).
      metrics: :class:`~offrl_jax.fitted.loop.StepMetrics` with leading ``[K, num_steps]``.
      evals: stacked ``eval_fn(params)`` outputs after each iteration, leading ``[K]``
        (``None`` without ``eval_fn``).
    """

    state: QTrainState
    metrics: StepMetrics
    evals: Any


def fitted_q_iteration(
    key: Array,
    data: Transitions,
    config: FittedQConfig,
    num_iterations: int,
    target_policy: Policy = None,
    *,
    eval_fn: Optional[Callable[[Any], Any]] = None,
    reinitialize: bool = False,
) -> FQIResult:
    """K outer iterations, each a regression of ``config.num_steps`` steps onto frozen targets.

    Q̂_0 = 0, so the first iteration regresses onto the rewards. The optimizer state is reset
    every iteration (each is a fresh regression); with ``reinitialize=True`` the network is
    re-initialised too (classical FQI), else it warm-starts from Q̂_{k−1}. ``config.method``
    picks FQI (max) or FQE (expectation under ``target_policy``); ``double_q`` has no effect
    here, as the online and frozen networks coincide when targets are computed. Discrete
    actions only.

    Args:
      key: PRNG key.
      data: :class:`~offrl_jax.data.Transitions`, validated on the host when concrete.
      config: :class:`~offrl_jax.fitted.config.FittedQConfig`; ``num_steps`` = inner steps.
      num_iterations: K (static).
      target_policy: FQE only: ``[O, A]`` table or function ``observations -> [B, A]``.
      eval_fn: optional pure ``params -> pytree`` evaluated after each iteration.
      reinitialize: fresh network parameters each iteration.

    Returns:
      :class:`FQIResult`.
    """
    check_positive_int(num_iterations, "num_iterations")
    if config.continuous:
        raise ValueError("config: fitted_q_iteration takes discrete actions (num_actions); use make_train")
    validate_data(config, data, target_policy)
    rows = fitted_batch(config, data, target_policy)
    state = init_state(key, config, data)
    m = rows.rewards.shape[0]

    def regress(state: QTrainState, y: Array):
        def inner(state, _):
            key, k_batch = jax.random.split(state.key)
            if config.batch_size is None:
                idx = jnp.arange(m)
            else:
                idx = jax.random.randint(k_batch, (config.batch_size,), 0, m)
            return regression_step(
                config, state.replace(key=key), rows.observations[idx], rows.actions[idx], y[idx]
            )

        return jax.lax.scan(inner, state, None, length=config.num_steps)

    def outer(state, k):
        frozen = state.params
        y = td_targets(config, state.apply_fn, frozen, frozen, rows, target_policy)
        y = jnp.where(k > 0, y, rows.rewards)  # Q̂_0 = 0
        key, k_init = jax.random.split(state.key)
        params = init_state(k_init, config, data).params if reinitialize else frozen
        state = state.replace(params=params, opt_state=state.tx.init(params), target_params=frozen, key=key)
        state, metrics = regress(state, y)
        evals = None if eval_fn is None else eval_fn(state.params)
        return state, (metrics, evals)

    state, (metrics, evals) = jax.lax.scan(outer, state, jnp.arange(num_iterations))
    return FQIResult(state.replace(target_params=state.params), metrics, evals)
