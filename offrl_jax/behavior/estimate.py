"""Cross-fitted behaviour log-probabilities for a dataset, ready for every estimator.

Each trajectory's β̂(a_t|s_t) comes from a model fitted on the other K − 1 folds of
trajectories (contiguous folds, :func:`offrl_jax.core.fold_indices`), so no propensity is
evaluated by a model that saw its own trajectory ("Double/debiased machine learning",
Chernozhukov et al. 2018; cross-fitted propensities for OPE as in "Double Reinforcement Learning
for Efficient Off-Policy Evaluation", Kallus & Uehara 2020). Models:

* ``"tabular"``: smoothed counts (:mod:`.tabular`); all K folds in one pure program (the counts
  of the other folds are the total minus the fold's);
* ``"linear"`` / ``"mlp"`` / a :class:`~offrl_jax.behavior.models.BehaviorConfig`: the softmax
  classifier (discrete actions) or the diagonal Gaussian (continuous actions) of
  :mod:`.models`, one jitted training program shared by the folds (padded index arrays), early
  stopped on trajectories held out from the training folds.

:func:`estimate_behavior` returns a :class:`BehaviorEstimate` (log-probabilities ``[N, T]``,
β̂(·|s_t) ``[N, T, A]`` for discrete actions, :class:`~.diagnostics.BehaviorDiagnostics`);
:func:`with_behavior_log_probs` puts log-probabilities into a
:class:`~offrl_jax.data.Trajectories`.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.behavior.diagnostics import (
    DEFAULT_SUPPORT_THRESHOLD,
    BehaviorDiagnostics,
    behavior_diagnostics,
    gaussian_calibration_error,
)
from offrl_jax.behavior.models import (
    BehaviorConfig,
    BehaviorModel,
    _log_lik,
    _network,
    _features,
    behavior_data,
    fitted_model,
    gaussian_moments,
    make_train,
)
from offrl_jax.behavior.tabular import action_counts, check_indices, smoothed_policy
from offrl_jax.core.model_terms import fold_indices
from offrl_jax.core.validation import check_mask
from offrl_jax.data import Trajectories

Array = Any

__all__ = [
    "BehaviorEstimate",
    "MODELS",
    "cross_fitted_tabular",
    "fit_behavior",
    "estimate_behavior",
    "with_behavior_log_probs",
    "with_estimated_behavior",
]

MODELS = ("tabular", "linear", "mlp")


class BehaviorEstimate(NamedTuple):
    """Cross-fitted behaviour propensities of a dataset.

    Attributes:
      log_probs: ``[N, T]`` log β̂(a_t|s_t) at the logged actions, 0 on padding.
      probs: ``[N, T, A]`` β̂(·|s_t) (discrete actions), else None.
      diagnostics: :class:`~offrl_jax.behavior.diagnostics.BehaviorDiagnostics`.
      folds: ``[N]`` the fold of each trajectory (its propensities come from the other folds).
      config: the :class:`BehaviorConfig` fitted, or None for the tabular model.
    """

    log_probs: Array
    probs: Optional[Array]
    diagnostics: BehaviorDiagnostics
    folds: Array
    config: Optional[BehaviorConfig]


def _fold_ids(num_rows: int, num_folds: int) -> np.ndarray:
    ids = np.zeros(num_rows, np.int32)
    for k, idx in enumerate(fold_indices(num_rows, num_folds)):
        ids[idx] = k
    return ids


def cross_fitted_tabular(
    observations: Array, actions: Array, mask: Array, folds: Array,
    num_observations: int, num_actions: int, num_folds: int, smoothing: float = 1.0,
) -> tuple:
    """Cross-fitted smoothed counts, all folds at once (pure, jit/vmap-safe).

    β̂_{−k}(a|o) = (n(o, a) − n_k(o, a) + α) / (n(o) − n_k(o) + α A) for trajectories of fold k.

    Args:
      observations, actions, mask: ``[N, T]``.
      folds: ``[N]`` int fold of each trajectory in [0, K).
      num_observations, num_actions, num_folds: O, A, K (static).
      smoothing: α ≥ 0.

    Returns:
      ``(log_probs [N, T], probs [N, T, A])``.
    """
    obs = jnp.asarray(observations).astype(jnp.int32)
    act = jnp.asarray(actions).astype(jnp.int32)
    m = jnp.asarray(mask)
    m = m.astype(m.dtype if jnp.issubdtype(m.dtype, jnp.floating) else jnp.float32)
    fold_t = jnp.broadcast_to(jnp.asarray(folds)[:, None], obs.shape)
    per_fold = action_counts(fold_t * num_observations + obs, act, m, num_folds * num_observations, num_actions)
    per_fold = per_fold.reshape(num_folds, num_observations, num_actions)
    tables = jax.vmap(lambda c: smoothed_policy(jnp.sum(per_fold, 0) - c, smoothing))(per_fold)
    probs = tables[fold_t, obs]
    taken = jnp.sum(jnp.where(jax.nn.one_hot(act, num_actions, dtype=bool), probs, 0.0), -1)
    real = m > 0
    lp = jnp.where(real, jnp.log(jnp.where(real & (taken > 0), taken, 1.0)), 0.0)
    lp = jnp.where(real & (taken <= 0), -jnp.inf, lp)
    return lp, probs


def _split_rows(key, traj_ids: np.ndarray, train_trajs: np.ndarray, holdout_fraction: float):
    """Rows of the training trajectories, split by trajectory into (fit rows, held-out rows)."""
    perm = np.asarray(jax.random.permutation(key, train_trajs.size))
    n_valid = int(np.ceil(holdout_fraction * train_trajs.size)) if train_trajs.size > 1 else 0
    n_valid = min(n_valid, train_trajs.size - 1)
    valid = train_trajs[perm[:n_valid]]
    fit = train_trajs[perm[n_valid:]]
    return np.flatnonzero(np.isin(traj_ids, fit)), np.flatnonzero(np.isin(traj_ids, valid))


def fit_behavior(
    key: Array, config: BehaviorConfig, observations: Array, actions: Array, mask: Array,
    *, holdout_fraction: float = 0.2,
):
    """Fits one behaviour model on all trajectories (no cross-fitting); host entry point.

    ``holdout_fraction`` of the trajectories (at random) are held out for early stopping.

    Args:
      key: PRNG key.
      config: :class:`BehaviorConfig`.
      observations: ``[N, T, D]`` float or ``[N, T]`` int (with ``config.num_observations``).
      actions: ``[N, T]`` int or ``[N, T, d]`` float.
      mask: ``[N, T]``.
      holdout_fraction: in [0, 1).

    Returns:
      ``(BehaviorModel, BehaviorMetrics)``.
    """
    flat_obs, flat_act, rows, _ = _flatten(config, observations, actions, mask)
    _check_fraction(holdout_fraction)
    k_split, k_train = jax.random.split(key)
    n = np.asarray(mask).shape[0]
    fit, valid = _split_rows(k_split, rows[:, 0], np.arange(n), holdout_fraction)
    data = behavior_data(flat_obs, flat_act, fit, valid)
    res = _programs(config)[0](k_train, data)
    return fitted_model(res.state), res.metrics


def _check_fraction(holdout_fraction: float) -> None:
    if isinstance(holdout_fraction, bool) or not isinstance(holdout_fraction, (int, float)) or not (
        0.0 <= holdout_fraction < 1.0
    ):
        raise ValueError(f"holdout_fraction: expected a number in [0, 1), found {holdout_fraction!r}")


def _flatten(config: BehaviorConfig, observations, actions, mask):
    """Host checks; the real steps as flat rows plus their (trajectory, step) indices."""
    m = check_mask(mask)
    obs, act = np.asarray(observations), np.asarray(actions)
    if obs.shape[:2] != m.shape:
        raise ValueError(f"observations: expected leading shape {list(m.shape)} (as mask), found {list(obs.shape)}")
    if config.num_observations is not None:
        obs = check_indices(obs, "observations", config.num_observations, m)
    else:
        if obs.ndim != 3:
            raise ValueError(f"observations: expected float features [N, T, D], found shape {list(obs.shape)}")
        if not np.all(np.isfinite(obs[m > 0])):
            raise ValueError("observations: expected finite values on real steps")
    if config.continuous:
        if act.shape != m.shape + (config.action_dim,):
            raise ValueError(f"actions: expected shape {list(m.shape) + [config.action_dim]}, found {list(act.shape)}")
        if not np.all(np.isfinite(act[m > 0])):
            raise ValueError("actions: expected finite values on real steps")
    else:
        act = check_indices(act, "actions", config.num_actions, m)
    rows = np.argwhere(m > 0)
    return obs[rows[:, 0], rows[:, 1]], act[rows[:, 0], rows[:, 1]], rows, m


@functools.lru_cache(maxsize=16)
def _programs(config: BehaviorConfig):
    """The jitted training and prediction programs of a config (compiled once per shapes)."""

    def predict(model: BehaviorModel, obs, act):
        out = _network(config).apply(model.params, _features(config, obs, model.obs_mean, model.obs_scale))
        ll = _log_lik(config, model.params, model.obs_mean, model.obs_scale, obs, act)
        if config.continuous:
            return ll, gaussian_moments(config, out)
        return ll, jax.nn.softmax(out, axis=-1)

    return jax.jit(make_train(config)), jax.jit(predict)


_tabular_jit = jax.jit(cross_fitted_tabular, static_argnums=(4, 5, 6))


@functools.partial(jax.jit, static_argnames=("support_threshold",))
def _diagnostics_jit(lp, mask, probs, actions, target_probs, ece, support_threshold):
    return behavior_diagnostics(lp, mask, probs=probs, actions=actions, target_probs=target_probs,
                                calibration_error=ece, support_threshold=support_threshold)


def _cross_fitted_model(key, config: BehaviorConfig, observations, actions, mask, folds, num_folds, holdout_fraction):
    flat_obs, flat_act, rows, m = _flatten(config, observations, actions, mask)
    traj = rows[:, 0]
    splits = []
    for k in range(num_folds):
        others = np.flatnonzero(folds != k)
        splits.append(_split_rows(jax.random.fold_in(key, 2 * k), traj, others, holdout_fraction))
    p = max(s[0].size for s in splits)
    q = max(max(s[1].size for s in splits), 1)
    train, predict = _programs(config)
    obs_j, act_j = jnp.asarray(flat_obs), jnp.asarray(flat_act)
    ll_flat = np.zeros(rows.shape[0], np.float64)
    extra_flat = None
    for k, (fit, valid) in enumerate(splits):
        data = behavior_data(obs_j, act_j, fit, valid, p, q)
        state = train(jax.random.fold_in(key, 2 * k + 1), data).state
        ll, extra = predict(fitted_model(state), obs_j, act_j)
        sel = folds[traj] == k
        ll_flat[sel] = np.asarray(ll)[sel]
        extra = jax.tree_util.tree_map(np.asarray, extra)
        if extra_flat is None:
            extra_flat = jax.tree_util.tree_map(np.zeros_like, extra)
        for dst, src in zip(jax.tree_util.tree_leaves(extra_flat), jax.tree_util.tree_leaves(extra)):
            dst[sel] = src[sel]
    dtype = jnp.dtype(config.dtype)
    lp = np.zeros(m.shape, np.float64)
    lp[rows[:, 0], rows[:, 1]] = ll_flat
    lp = jnp.asarray(lp, dtype)
    if config.continuous:
        mu, log_std = extra_flat
        ece = gaussian_calibration_error(jnp.asarray(mu), jnp.asarray(log_std), act_j, jnp.ones(rows.shape[0]))
        return lp, None, ece
    probs = np.full(m.shape + (config.num_actions,), 1.0 / config.num_actions, np.float64)
    probs[rows[:, 0], rows[:, 1]] = extra_flat
    return lp, jnp.asarray(probs, dtype), None


def _model_config(model, traj: Trajectories, num_observations, num_actions) -> Optional[BehaviorConfig]:
    if isinstance(model, BehaviorConfig):
        return model
    if model not in MODELS:
        raise ValueError(f"model: expected one of {MODELS} or a BehaviorConfig, found {model!r}")
    obs, act = np.asarray(traj.observations), np.asarray(traj.actions)
    discrete_obs = obs.ndim == 2 and obs.dtype.kind in "iub"
    continuous = act.ndim == 3 or act.dtype.kind == "f" and act.ndim == 2 and not np.all(act == np.round(act))
    if model == "tabular":
        if not discrete_obs or continuous:
            raise ValueError(
                "model: 'tabular' needs integer observations [N, T] and integer actions [N, T]; "
                f"found observations {obs.dtype} {list(obs.shape)}, actions {act.dtype} {list(act.shape)}"
            )
        return None
    hidden = () if model == "linear" else (64, 64)
    if continuous:
        d = 1 if act.ndim == 2 else act.shape[-1]
        return BehaviorConfig(action_dim=d, hidden_sizes=hidden, num_observations=num_observations if discrete_obs else None,
                              learning_rate=1e-2 if model == "linear" else 3e-3)
    return BehaviorConfig(num_actions=num_actions, hidden_sizes=hidden,
                          num_observations=num_observations if discrete_obs else None,
                          learning_rate=1e-2 if model == "linear" else 3e-3)


def _size(value, data: np.ndarray, mask: np.ndarray, name: str) -> int:
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected a positive int, found {value!r}")
        return int(value)
    real = data[mask > 0]
    return int(real.max()) + 1 if real.size else 1


def estimate_behavior(
    key: Array,
    trajectories: Trajectories,
    model: Union[str, BehaviorConfig] = "tabular",
    *,
    num_folds: int = 5,
    num_observations: Optional[int] = None,
    num_actions: Optional[int] = None,
    smoothing: float = 1.0,
    holdout_fraction: float = 0.2,
    target_probs: Optional[Array] = None,
    support_threshold: float = DEFAULT_SUPPORT_THRESHOLD,
) -> BehaviorEstimate:
    """Cross-fitted behaviour propensities and their diagnostics (host entry point).

    Args:
      key: PRNG key (training and the held-out split; unused by ``"tabular"``).
      trajectories: :class:`~offrl_jax.data.Trajectories` ``[N, T]``; its
        ``behavior_log_probs`` are ignored.
      model: ``"tabular"`` (integer observations), ``"linear"`` (linear softmax / linear
        Gaussian), ``"mlp"``, or a :class:`BehaviorConfig`.
      num_folds: K ≥ 2 folds of trajectories (K ≤ N).
      num_observations: O for integer observations (default: largest logged + 1).
      num_actions: A for discrete actions (default: ``target_probs.shape[-1]`` if given, else the
        largest logged action + 1).
      smoothing: α of the tabular model.
      holdout_fraction: share of the training folds' trajectories held out for early stopping.
      target_probs: optional ``[N, T, A]`` π(·|s_t), for the support diagnostic.
      support_threshold: τ of the support diagnostic.

    Returns:
      :class:`BehaviorEstimate`.

    Raises:
      ValueError: naming the argument, before anything is traced.
    """
    if not isinstance(trajectories, Trajectories):
        raise ValueError(f"trajectories: expected a Trajectories container, found {type(trajectories).__name__}")
    m = check_mask(trajectories.mask)
    n = m.shape[0]
    if isinstance(num_folds, bool) or not isinstance(num_folds, (int, np.integer)) or not 2 <= num_folds <= n:
        raise ValueError(f"num_folds: expected an int with 2 <= num_folds <= N = {n}, found {num_folds!r}")
    _check_fraction(holdout_fraction)
    if not (isinstance(support_threshold, (int, float)) and 0.0 < support_threshold < 1.0):
        raise ValueError(f"support_threshold: expected a number in (0, 1), found {support_threshold!r}")
    if target_probs is not None:
        target_probs = _check_target_probs(target_probs, m)
        if num_actions is None:
            num_actions = target_probs.shape[-1]
    obs = np.asarray(trajectories.observations)
    num_obs = _size(num_observations, obs, m, "num_observations") if obs.ndim == 2 and obs.dtype.kind in "iub" else None
    act = np.asarray(trajectories.actions)
    num_act = _size(num_actions, act, m, "num_actions") if act.ndim == 2 else None
    config = _model_config(model, trajectories, num_obs, num_act)
    folds = _fold_ids(n, int(num_folds))
    ece = None
    if config is None:
        check_indices(obs, "observations", num_obs, m)
        check_indices(act, "actions", num_act, m)
        lp, probs = _tabular_jit(obs, act, jnp.asarray(trajectories.mask), folds, num_obs, num_act, int(num_folds), float(smoothing))
    else:
        if act.ndim == 2 and config.continuous:
            act = act[..., None]
        lp, probs, ece = _cross_fitted_model(key, config, obs, act, m, folds, int(num_folds), float(holdout_fraction))
    if target_probs is not None and probs is not None and target_probs.shape != probs.shape:
        raise ValueError(f"target_probs: expected shape {list(probs.shape)} ([N, T, A]), found {list(target_probs.shape)}")
    diag = _diagnostics_jit(
        lp, m, probs, None if probs is None else act, None if probs is None or target_probs is None else
        jnp.asarray(target_probs, probs.dtype), ece, float(support_threshold),
    )._replace(support_threshold=float(support_threshold))
    return BehaviorEstimate(lp, probs, diag, jnp.asarray(folds), config)


def _check_target_probs(target_probs: Array, mask: np.ndarray) -> np.ndarray:
    p = np.asarray(target_probs)
    if p.ndim != 3 or p.shape[:2] != mask.shape:
        raise ValueError(f"target_probs: expected shape [N, T, A] with [N, T] = {list(mask.shape)}, found {list(p.shape)}")
    real = p[mask > 0]
    if not np.all(np.isfinite(real)) or np.any(real < 0) or np.any(real > 1 + 1e-6):
        raise ValueError("target_probs: expected probabilities in [0, 1] on real steps")
    if np.any(np.abs(real.sum(-1) - 1.0) > 1e-3):
        raise ValueError("target_probs: expected each step's action probabilities to sum to 1")
    return p


def with_behavior_log_probs(trajectories: Trajectories, log_probs: Array) -> Trajectories:
    """``trajectories`` with ``behavior_log_probs`` replaced by ``log_probs`` ``[N, T]`` (validated).

    Raises:
      ValueError: naming ``behavior_log_probs``, for a shape other than ``mask``'s, NaN, values
        > 0, or probability 0 at a logged step.
    """
    if not isinstance(trajectories, Trajectories):
        raise ValueError(f"trajectories: expected a Trajectories container, found {type(trajectories).__name__}")
    fields = {k: getattr(trajectories, k) for k in trajectories.__dataclass_fields__ if getattr(trajectories, k) is not None}
    fields["behavior_log_probs"] = log_probs
    return Trajectories.create(**fields)


def with_estimated_behavior(key: Array, trajectories: Trajectories, model: Union[str, BehaviorConfig] = "tabular", **options):
    """``(Trajectories with cross-fitted behavior_log_probs, BehaviorEstimate)``; options as
    :func:`estimate_behavior`."""
    est = estimate_behavior(key, trajectories, model, **options)
    return with_behavior_log_probs(trajectories, est.log_probs), est
