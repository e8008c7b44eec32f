"""Q̂ for the model-based estimators of ``offrl-jax evaluate`` (DM, DR, WDR, MAGIC), cross-fitted.

Each trajectory's Q̂ comes from a model fitted on the other fold of the trajectories (two
contiguous folds), so DR stays unbiased ("Double/debiased machine learning", Chernozhukov et
al. 2018; Jiang & Li 2016 assume an independent Q̂):

* integer observations ``[N, T]``: the certainty-equivalence tabular model (``model``) or
  horizon-aware tabular FQE (``fqe``), :mod:`offrl_jax.experiments.cross_fit`;
* vector observations ``[N, T, D]`` (discrete actions), ``fqe``: the package's neural FQE
  (:mod:`offrl_jax.fitted`, an MLP Q-network with a target network) on the standardised
  observations with the time fraction t / T appended and the last step of the data's horizon
  terminal (:func:`offrl_jax.fitted.time_aware_transitions`: the same horizon-aware value as the
  tabular path, for any γ in [0, 1]). Its TD target
  y = r + γ d Σ_a' π(a'|s') Q̄(s', a') needs the target's probabilities at every next
  observation s'_t: the target's own probabilities at the next logged step
  (s'_t = s_{t+1} within a trajectory), and, at the last step of a trajectory cut by a time-out,
  π(·|s'_T) itself, which a ``module:function`` target gives when called on the next
  observations and a target file may hold as ``target_next_probs`` ``[N, T, A]`` (else the last
  step's own probabilities stand in, with a note);
* vector observations and continuous actions, ``fqe`` with a target sampler: the same neural FQE
  with the sampled target rule y = r + γ d (1/K) Σ_k Q̄(s', a'_k), a'_k ~ π(·|s') (K = 1 per
  step; :func:`offrl_jax.fitted.sampled_fqe_targets`), the Q-network reading [s; a], and
  V̂(s_t) = (1/K) Σ_k Q̂(s_t, a_k) over K = 32 draws. The sampler is the user's JAX function
  ``sample(key, observations [B, D]) -> actions [B, d]``, traced inside the jitted training loop;
  observations are standardised with the whole log's mean and deviation (no outcome enters
  them) and handed back to it in their own units;
* a file: Q̂ ``[N, T, A]`` (discrete actions), or an ``.npz`` with ``q_taken`` and ``v_hat``
  ``[N, T]`` (Q̂(s_t, a_t) and V̂(s_t) = E_{a~π} Q̂(s_t, a): any action space).
"""

from __future__ import annotations

import functools
from typing import Any, List, Optional

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.core import ModelTerms, fold_indices, model_terms
from offrl_jax.data import Trajectories
from offrl_jax.experiments.evaluate_inputs import load_array, optional_array
from offrl_jax.fitted import (
    FittedQConfig,
    make_train,
    make_update,
    sampled_next_values,
    time_aware_transitions,
    validate_data,
    with_time,
)
from offrl_jax.fitted.loop import FittedBatch, init_state

Array = Any

__all__ = ["check_sampler", "continuous_fqe_terms", "load_q_file", "tabular_q_terms", "target_next_probs", "vector_fqe_terms"]

HIDDEN_SIZES = (64, 64)
VALUE_SAMPLES = 32


def load_q_file(path: str, pi: Optional[np.ndarray], actions: Optional[np.ndarray], mask: np.ndarray,
                dtype) -> ModelTerms:
    """Model terms from a file: ``q_taken``/``v_hat`` ``[N, T]`` (npz), or a Q̂ table ``[N, T, A]``
    (discrete actions: ``pi`` and ``actions`` given)."""
    q_taken, v_hat = optional_array(path, "q_taken"), optional_array(path, "v_hat")
    if q_taken is not None or v_hat is not None:
        for name, x in (("q_taken", q_taken), ("v_hat", v_hat)):
            if x is None or x.shape != mask.shape or not np.all(np.isfinite(x[mask > 0])):
                found = "none" if x is None else list(x.shape)
                raise ValueError(f"q-hat: expected {name} with finite values of shape [N, T] = {list(mask.shape)}, found {found}")
        return ModelTerms(*(jnp.asarray(np.where(mask > 0, x, 0.0), dtype) for x in (q_taken, v_hat)))
    q = load_array(path, "q-hat", ("q_hat", "state_action_value_prediction"))
    if pi is None:
        raise ValueError("q-hat: for continuous actions expected an .npz with q_taken and v_hat [N, T], found one array "
                         f"of shape {list(q.shape)}")
    if q.shape != pi.shape or not np.all(np.isfinite(q[mask > 0])):
        raise ValueError(f"q-hat: expected finite values of shape [N, T, A] = {list(pi.shape)}, found {list(q.shape)}")
    return model_terms(jnp.asarray(q, dtype), jnp.asarray(pi, dtype), jnp.asarray(actions), jnp.asarray(mask, dtype))


def _stationary_table(probs: np.ndarray, obs: np.ndarray, mask: np.ndarray, num_obs: int) -> tuple:
    """[O, A] mean of π(·|s_t) per observation over logged steps, and whether it is stationary."""
    real = mask > 0
    o = obs[real]
    p = probs[real]
    table = np.full((num_obs, probs.shape[-1]), 1.0 / probs.shape[-1])
    sums = np.zeros_like(table)
    np.add.at(sums, o, p)
    counts = np.bincount(o, minlength=num_obs)[:, None]
    table = np.where(counts > 0, sums / np.maximum(counts, 1), table)
    stationary = bool(np.all(np.abs(p - table[o]) < 1e-6))
    return table, stationary


def tabular_q_terms(kind: str, key, traj: Trajectories, target: np.ndarray, gamma: float,
                    num_steps: Optional[int], notes: List[str]) -> ModelTerms:
    """Cross-fitted Q̂ terms of a tabular model (integer observations): ``fqe`` (horizon-aware
    FQE) or ``model`` (the certainty-equivalence MDP's exact Q^π over the data's horizon)."""
    from offrl_jax.experiments.cross_fit import cross_fitted_fqe_terms, cross_fitted_model_terms

    obs, mask = np.asarray(traj.observations), np.asarray(traj.mask)
    num_obs = int(max(obs[mask > 0].max(), np.asarray(traj.next_observations)[mask > 0].max())) + 1
    table, stationary = _stationary_table(target, obs, mask, num_obs)
    if not stationary:
        notes.append("the target's probabilities differ between visits of one observation; "
                     "the Q-hat model used their average per observation")
    pi = jnp.asarray(table, traj.rewards.dtype)
    if kind == "fqe":
        return cross_fitted_fqe_terms(key, traj, num_obs, target.shape[-1], pi, gamma, num_steps=num_steps)
    return cross_fitted_model_terms(traj, num_obs, target.shape[-1], pi, gamma, mask.shape[1])


def target_next_probs(pi: np.ndarray, traj: Trajectories, at_next: Optional[np.ndarray], notes: List[str]) -> np.ndarray:
    """π(·|s'_t) ``[N, T, A]``: ``at_next`` when the target gave it, else π(·|s_{t+1}) within each
    trajectory and, at its last real step, that step's own π (exact where s' = s, as for a
    d3rlpy time-out kept with ``unknown_next="keep"``, and irrelevant after a termination)."""
    if at_next is not None:
        return at_next
    mask = np.asarray(traj.mask) > 0
    nxt = np.concatenate([pi[:, 1:], pi[:, -1:]], axis=1)
    lengths = mask.sum(1)
    rows = np.flatnonzero(lengths > 0)
    last = lengths[rows] - 1
    nxt[rows, last] = pi[rows, last]
    obs, next_obs, disc = (np.asarray(x) for x in (traj.observations, traj.next_observations, traj.discounts))
    cut = (disc[rows, last] > 0) & (last + 1 < mask.shape[1])
    moved = np.any((obs[rows, last] != next_obs[rows, last]).reshape(rows.size, -1), axis=1)
    if np.any(cut & moved):
        notes.append(f"{int(np.sum(cut & moved))} trajectories end by a time-out before the horizon: FQE bootstrapped "
                     "their last step with that step's own target probabilities (a target file may hold "
                     "target_next_probs [N, T, A]; a module:function target is called on the next observations)")
    return nxt


@functools.lru_cache(maxsize=8)
def _fqe_programs(config: FittedQConfig):
    """Jitted ``train(key, rows, num_rows) -> state`` and ``q_values(params, x) -> [N, T, A]``.

    ``rows`` is a :class:`~offrl_jax.fitted.loop.FittedBatch` padded to a fixed length with its
    ``next_probs`` given, so both folds share one program; minibatches are drawn from the first
    ``num_rows`` rows.
    """
    update = make_update(config, _probs_in_batch)

    def train(key, rows: FittedBatch, num_rows):
        state = init_state(key, config, rows)

        def body(state, _):
            key, k_batch = jax.random.split(state.key)
            idx = jax.random.randint(k_batch, (config.batch_size,), 0, num_rows)
            return update(state.replace(key=key), jax.tree_util.tree_map(lambda x: x[idx], rows))

        return jax.lax.scan(body, state, None, length=config.num_steps)[0]

    def q_values(state, x):
        return state.apply_fn(state.params, x)

    return jax.jit(train), jax.jit(q_values)


def _probs_in_batch(observations):
    """Placeholder target of :func:`make_update`: the batches carry ``next_probs``."""
    raise AssertionError("next_probs are part of every batch")


def vector_fqe_terms(key, traj: Trajectories, pi: np.ndarray, pi_next: np.ndarray, actions: np.ndarray,
                     gamma: float, num_steps: Optional[int]) -> ModelTerms:
    """Cross-fitted neural FQE terms for vector observations ``[N, T, D]`` and discrete actions.

    Args:
      key: PRNG key (folded with the fold index).
      traj: the logs (N >= 2).
      pi: ``[N, T, A]`` π(·|s_t); pi_next: ``[N, T, A]`` π(·|s'_t).
      actions: ``[N, T]`` int logged actions.
      gamma: discount in [0, 1].
      num_steps: gradient steps per fold (default 50 (2T + 20), a target refresh every 50).

    Returns:
      :class:`~offrl_jax.core.ModelTerms` ``[N, T]`` in the rewards' dtype.
    """
    mask = np.asarray(traj.mask)
    n, t = mask.shape
    obs = np.asarray(traj.observations, np.float32).reshape(n, t, -1)
    next_obs = np.asarray(traj.next_observations, np.float32).reshape(n, t, -1)
    dtype = traj.rewards.dtype
    folds = fold_indices(n, 2)
    fits = [np.concatenate([f for j, f in enumerate(folds) if j != k]) for k in range(2)]
    sizes = [int(mask[rows].sum()) for rows in fits]
    cfg = FittedQConfig(
        num_actions=int(pi.shape[-1]), method="fqe", gamma=float(gamma), hidden_sizes=HIDDEN_SIZES,
        num_steps=50 * (2 * t + 20) if num_steps is None else int(num_steps), batch_size=min(256, min(sizes)),
        learning_rate=1e-3, optimizer="adam", target_update_period=50,
    )
    train, q_values = _fqe_programs(cfg)
    q = np.zeros(pi.shape, np.float64)
    for k, (idx, rows) in enumerate(zip(folds, fits)):
        real = obs[rows][mask[rows] > 0]
        mean, scale = real.mean(0), np.where(real.std(0) > 1e-8, real.std(0), 1.0)
        fit = traj.replace(observations=jnp.asarray((obs[rows] - mean) / scale),
                           next_observations=jnp.asarray((next_obs[rows] - mean) / scale),
                           actions=jnp.asarray(actions[rows]), mask=traj.mask[rows], rewards=traj.rewards[rows],
                           discounts=traj.discounts[rows], behavior_log_probs=None, target_log_probs=None)
        data = time_aware_transitions(fit, t, encoding="fraction")
        validate_data(cfg, data, _probs_in_batch)
        rows_batch = _padded_batch(cfg, data, pi_next[rows][mask[rows] > 0], max(sizes))
        state = train(jax.random.fold_in(key, k), rows_batch, jnp.asarray(sizes[k], jnp.int32))
        x = with_time(jnp.asarray((obs - mean) / scale), jnp.arange(t)[None, :], t, encoding="fraction")
        q[idx] = np.asarray(q_values(state, x))[idx]
    return model_terms(jnp.asarray(q, dtype), jnp.asarray(pi, dtype), jnp.asarray(actions), jnp.asarray(mask, dtype))


def _padded_batch(config: FittedQConfig, data, next_probs: np.ndarray, size: int) -> FittedBatch:
    """The rows as a :class:`FittedBatch` with ``next_probs``, padded with copies of row 0 to ``size``."""
    dtype = jnp.dtype(config.dtype)

    def pad(x):
        x = np.asarray(x)
        return jnp.asarray(np.concatenate([x, np.repeat(x[:1], size - x.shape[0], axis=0)], axis=0))

    return FittedBatch(
        observations=pad(data.observations).astype(dtype), actions=pad(data.actions).astype(jnp.int32),
        rewards=pad(data.rewards).astype(dtype), next_observations=pad(data.next_observations).astype(dtype),
        discounts=pad(data.discounts).astype(dtype), next_probs=pad(next_probs).astype(dtype),
    )


def check_sampler(sampler, name: str, observation_dim: int, action_dim: int) -> None:
    """``sampler(key, observations [B, D]) -> [B, d]`` traced once on shapes (nothing runs)."""
    obs = jax.ShapeDtypeStruct((2, observation_dim), jnp.float32)
    try:
        out = jax.eval_shape(sampler, jax.random.key(0), obs)
    except Exception as e:  # the user's function does not trace: say so in one line
        text = str(e).splitlines()[0] if str(e) else ""
        raise ValueError(f"target-sampler: {name}(key, observations) cannot run as a JAX function "
                         f"({type(e).__name__}: {text})") from None
    if getattr(out, "shape", None) != (2, action_dim):
        raise ValueError(f"target-sampler: expected {name} to return actions [B, {action_dim}] for observations "
                         f"[B, {observation_dim}], found {getattr(out, 'shape', type(out).__name__)} for B = 2")


def continuous_fqe_terms(key, traj: Trajectories, sampler, sampler_name: str, gamma: float,
                         num_steps: Optional[int]) -> ModelTerms:
    """Cross-fitted neural FQE terms for vector observations ``[N, T, D]`` and continuous actions
    ``[N, T, d]``, with the target's JAX sampler ``sample(key, observations [B, D]) -> [B, d]``.

    Args:
      key: PRNG key (folded with the fold index; the V̂ draws use another fold).
      traj: the logs (N >= 2), actions ``[N, T, d]``.
      sampler: the user's function (see :func:`check_sampler`); sampler_name: its
        ``module:function`` (for errors).
      gamma: discount in [0, 1).
      num_steps: gradient steps per fold (default 50 (2T + 20)).

    Returns:
      :class:`~offrl_jax.core.ModelTerms` ``[N, T]`` in the rewards' dtype.
    """
    mask = np.asarray(traj.mask)
    n, t = mask.shape
    obs = np.asarray(traj.observations, np.float32).reshape(n, t, -1)
    next_obs = np.asarray(traj.next_observations, np.float32).reshape(n, t, -1)
    actions = np.asarray(traj.actions, np.float32)
    check_sampler(sampler, sampler_name, obs.shape[-1], actions.shape[-1])
    real = obs[mask > 0]
    mean, scale = real.mean(0), np.where(real.std(0) > 1e-8, real.std(0), 1.0)
    dim = obs.shape[-1]

    def policy(k, x):  # x: standardised observations with t / T appended, [B, D + 1]
        lead = (1,) * (x.ndim - 1)
        return sampler(k, x[..., :dim] * scale.reshape(lead + (dim,)) + mean.reshape(lead + (dim,)))

    folds = fold_indices(n, 2)
    fits = [np.concatenate([f for j, f in enumerate(folds) if j != k]) for k in range(2)]
    cfg = FittedQConfig(
        action_dim=int(actions.shape[-1]), method="fqe", gamma=float(gamma), hidden_sizes=HIDDEN_SIZES,
        num_steps=50 * (2 * t + 20) if num_steps is None else int(num_steps),
        batch_size=min(256, min(int(mask[rows].sum()) for rows in fits)), learning_rate=1e-3, optimizer="adam",
        target_update_period=50,
    )
    train = make_train(cfg, policy)
    x_all = with_time(jnp.asarray((obs - mean) / scale), jnp.arange(t)[None, :], t, encoding="fraction")
    terms = _continuous_terms_program(policy)
    q_taken, v_hat = np.zeros((n, t)), np.zeros((n, t))
    for k, (idx, rows) in enumerate(zip(folds, fits)):
        fit = traj.replace(observations=jnp.asarray((obs[rows] - mean) / scale),
                           next_observations=jnp.asarray((next_obs[rows] - mean) / scale),
                           actions=jnp.asarray(actions[rows]), mask=traj.mask[rows], rewards=traj.rewards[rows],
                           discounts=traj.discounts[rows], behavior_log_probs=None, target_log_probs=None)
        data = time_aware_transitions(fit, t, encoding="fraction")
        data = data.replace(rewards=data.rewards.astype(jnp.float32), discounts=data.discounts.astype(jnp.float32))
        validate_data(cfg, data, policy)  # the sampler itself was checked by check_sampler
        state = train(jax.random.fold_in(key, k), data).state
        qt, vh = terms(state, x_all, jnp.asarray(actions), jax.random.fold_in(key, 2 + k))
        q_taken[idx], v_hat[idx] = np.asarray(qt)[idx], np.asarray(vh)[idx]
    dtype = traj.rewards.dtype
    return ModelTerms(*(jnp.asarray(np.where(mask > 0, x, 0.0), dtype) for x in (q_taken, v_hat)))


def _continuous_terms_program(policy):
    """Jitted ``(state, x [N, T, D + 1], actions [N, T, d], key) -> (Q̂(s_t, a_t), V̂(s_t))``."""

    def terms(state, x, actions, key):
        n, t = actions.shape[:2]
        flat_x, flat_a = x.reshape(n * t, -1), actions.reshape(n * t, -1)
        q_fn = functools.partial(state.apply_fn, state.params)
        v = jnp.mean(sampled_next_values(key, q_fn, policy, flat_x, VALUE_SAMPLES), axis=-1)
        return q_fn(flat_x, flat_a).reshape(n, t), v.reshape(n, t)

    return jax.jit(terms)
