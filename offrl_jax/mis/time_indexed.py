"""Finite-horizon (time-indexed) tabular marginalised importance sampling.

For finite-horizon data the ratio depends on time: w_t(s, a) = d^pi_t(s, a) / d^D_t(s, a), with
d_t the distribution of (s_t, a_t) among the N logged trajectories (a trajectory that has ended
sits in an absorbing state with reward 0). The marginals of the target are propagated forward
through the empirical per-step model, one step at a time:

    d_hat^D_t(s, a) = n_t(s, a) / N,
    d_hat^pi_0(s, a) = mu0_hat(s) pi(a|s),
    d_hat^pi_{t+1}(s', a') = pi(a'|s') (1/N) sum_n 1[s'^n_t = s'] discount^n_t w_t(s^n_t, a^n_t),
    w_t = d_hat^pi_t / d_hat^D_t   (0 where n_t = 0; the lost target mass is reported),

and J_hat = (1/N) sum_n sum_t gamma^t w_t(s^n_t, a^n_t) r^n_t, which estimates the finite-horizon
value E_pi[sum_{t<T} gamma^t r_t] (gamma = 1 allowed). The estimator's error grows polynomially
in T, not exponentially like trajectory-wise importance sampling. :func:`tabular_time_ratios`
computes the ratios from arrays, :func:`~offrl_jax.mis.mis_finite_horizon` the estimate, and
:func:`tabular_time_mis` both from a validated :class:`~offrl_jax.data.Trajectories`. The exact
per-step ratios of a model are :func:`offrl_jax.envs.exact_time_ratios`.

See "Towards Optimal Off-Policy Evaluation for Reinforcement Learning with Marginalized
Importance Sampling", Xie, Ma & Wang 2019 (state marginals with per-step ratios), and
"Asymptotically Efficient Off-Policy Evaluation for Tabular Reinforcement Learning", Yin & Wang
2020 (the state-action form used here, which needs no behaviour probabilities).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.core.validation import check_mask, validate_gamma
from offrl_jax.data import Trajectories
from offrl_jax.mis.estimators import mis_finite_horizon
from offrl_jax.core.dtypes import as_float
from offrl_jax.core.validation import check_finite
from offrl_jax.mis.tabular import _check_core_inputs, _field_names, _index_array, _indices, _validate_tabular_inputs, _where_real

Array = Any

__all__ = ["TimeIndexedRatios", "TimeIndexedMISResult", "tabular_time_ratios", "tabular_time_mis"]


class TimeIndexedRatios(NamedTuple):
    """Time-indexed ratios.

    Attributes:
      weights: ``[N, T]`` w_t(s^n_t, a^n_t) at the logged steps (0 on padding).
      table: ``[T, S, A]`` w_t(s, a) (0 where n_t(s, a) = 0).
      target_marginals: ``[T, S, A]`` d_hat^pi_t.
      unsupported_mass: ``[T]`` target mass at step t on pairs with n_t = 0.
    """

    weights: Array
    table: Array
    target_marginals: Array
    unsupported_mass: Array


def tabular_time_ratios(
    states: Array,
    actions: Array,
    next_states: Array,
    discounts: Array,
    mask: Array,
    target_policy: Array,
    *,
    pooled: bool = False,
) -> TimeIndexedRatios:
    """Per-step ratios w_t = d_hat^pi_t / d_hat^D_t by forward propagation (``lax.scan`` over t).

    Dataset-level function on padded ``[N, T]`` arrays; see the module docstring for the
    recursion. Rows with ``mask[n, 0] = 0`` (empty trajectories) are ignored.

    ``pooled=True`` assumes a time-homogeneous MDP: the target marginals are propagated with the
    transition model P_hat(s'|s, a) pooled over all steps,
    d_hat^pi_{t+1}(s', a') = pi(a'|s') sum_{s,a} d_hat^pi_t(s, a) P_hat(s'|s, a), while the
    denominators stay per step. Its variance grows far more slowly with T (the per-step model
    uses ~N samples per step, the pooled one ~N T); mass reaching pairs never logged at any step
    is reported as unsupported.

    See "Towards Optimal Off-Policy Evaluation for Reinforcement Learning with Marginalized
    Importance Sampling", Xie, Ma & Wang 2019; Yin & Wang 2020 (state-action form).

    Args:
      states: ``[N, T]`` int s_t in [0, S).
      actions: ``[N, T]`` int a_t in [0, A).
      next_states: ``[N, T]`` int s_{t+1}.
      discounts: ``[N, T]`` 0 where s_{t+1} is terminal (the trajectory ends), else 1.
      mask: ``[N, T]`` 1 on real steps, 0 on padding (a prefix of ones per row).
      target_policy: ``[S, A]`` pi(a|s); its shape sets S and A.
      pooled: propagate with the transition model pooled over steps (static; see above).

    Returns:
      :class:`TimeIndexedRatios`.
    """
    _check_core_inputs(states, actions, next_states, mask, target_policy, discounts=discounts)
    pi = jnp.asarray(target_policy)
    dtype = pi.dtype if jnp.issubdtype(pi.dtype, jnp.floating) else jnp.float32
    pi = pi.astype(dtype)
    ns, na = pi.shape
    m = jnp.asarray(mask).astype(dtype)
    s = jnp.asarray(states).astype(jnp.int32)
    a = jnp.asarray(actions).astype(jnp.int32)
    s2 = jnp.asarray(next_states).astype(jnp.int32)
    d = jnp.asarray(discounts).astype(dtype) * m
    num = jnp.sum(m[:, 0])
    safe_num = jnp.where(num > 0, num, 1.0)
    mu0 = jnp.zeros((ns,), dtype).at[s[:, 0]].add(m[:, 0]) / safe_num
    n_all = jnp.zeros((ns, na), dtype).at[s, a].add(m)
    p_all = jnp.zeros((ns, na, ns), dtype).at[s, a, s2].add(d)
    p_all = p_all / jnp.where(n_all > 0, n_all, 1.0)[..., None]

    def step(d_pi, xs):
        s_t, a_t, s2_t, m_t, d_t = xs
        n_t = jnp.zeros((ns, na), dtype).at[s_t, a_t].add(m_t)
        seen = n_t > 0
        w_t = jnp.where(seen, d_pi * safe_num / jnp.where(seen, n_t, 1.0), 0.0)
        lost = jnp.sum(jnp.where(seen, 0.0, d_pi))
        w_logged = w_t[s_t, a_t] * m_t
        if pooled:
            next_mass = jnp.einsum("sa,sat->t", d_pi, p_all)
        else:
            next_mass = jnp.zeros((ns,), dtype).at[s2_t].add(w_logged * d_t) / safe_num
        return next_mass[:, None] * pi, (w_logged, w_t, d_pi, lost)

    xs = (s.T, a.T, s2.T, m.T, d.T)
    _, (w_logged, table, marg, lost) = jax.lax.scan(step, mu0[:, None] * pi, xs)
    return TimeIndexedRatios(w_logged.T, table, marg, lost)


_time_ratios_jit = jax.jit(tabular_time_ratios, static_argnames=("pooled",))


class TimeIndexedMISResult(NamedTuple):
    """Finite-horizon tabular MIS estimate and its ratios.

    Attributes:
      estimate: scalar J_hat = (1/N) sum_n sum_t gamma^t w_t(s^n_t, a^n_t) r^n_t.
      ratios: :class:`TimeIndexedRatios`.
    """

    estimate: Array
    ratios: TimeIndexedRatios


def tabular_time_mis(
    trajectories: Trajectories,
    target_policy: Array,
    gamma: float,
    *,
    pooled: bool = False,
    use_states: bool = False,
) -> TimeIndexedMISResult:
    """Finite-horizon (time-indexed) tabular MIS from padded trajectories (host-validated).

    J_hat = (1/N) sum_n sum_{t<T} gamma^t w_hat_t(s^n_t, a^n_t) r^n_t with
    w_hat_t = d_hat^pi_t / d_hat^D_t from :func:`tabular_time_ratios`; it estimates
    E_pi[sum_{t<T} gamma^t r_t] with T = ``trajectories.max_length`` (use it when the data's
    horizon is the problem's horizon).

    See "Towards Optimal Off-Policy Evaluation for Reinforcement Learning with Marginalized
    Importance Sampling", Xie, Ma & Wang 2019; Yin & Wang 2020 (state-action form).

    Args:
      trajectories: padded :class:`~offrl_jax.data.Trajectories`.
      target_policy: ``[S, A]`` pi over observations (or true states with ``use_states``).
      gamma: discount in [0, 1].
      pooled: propagate the target marginals with the pooled transition model.
      use_states: index by the true ``states``/``next_states`` fields (aliased MDPs).

    Returns:
      :class:`TimeIndexedMISResult`.

    Raises:
      ValueError: naming the argument, for invalid data, policy or gamma.
    """
    validate_gamma(gamma)
    s, s2 = _indices(trajectories, use_states)
    mask = trajectories.mask
    check_mask(mask)
    _validate_tabular_inputs(
        _where_real(s, mask), _where_real(trajectories.actions, mask), _where_real(s2, mask), target_policy,
        discounts=trajectories.discounts, names=_field_names(use_states, "trajectories"),
    )
    rewards = as_float(trajectories.rewards, "trajectories.rewards")
    check_finite(rewards, "trajectories.rewards")
    pi = jnp.asarray(np.asarray(target_policy), rewards.dtype)
    s, s2, actions = (_index_array(x, mask) for x in (s, s2, trajectories.actions))
    ratios = _time_ratios_jit(s, actions, s2, trajectories.discounts, mask, pi, pooled=bool(pooled))
    return TimeIndexedMISResult(mis_finite_horizon(ratios.weights, rewards, mask, gamma), ratios)
