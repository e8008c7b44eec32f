"""Shared data and estimator calls of the sharding checks (imported by the subprocess scripts).

Every case is a function of the real rows only, so the same call runs unsharded (plain
``jax.jit``) and sharded (:func:`offrl_jax.core.sharding.sharded`) and the two must agree.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax import linear, mis, ope
from offrl_jax.core import make_train_seeds
from offrl_jax.data import Transitions
from offrl_jax.fitted import FittedQConfig, make_train

S, A, T, GAMMA = 4, 3, 6, 0.9


def target_policy() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.dirichlet(np.ones(A), size=S)


def trajectories(n: int, seed: int = 0, horizon: int = T) -> dict:
    """``n`` padded trajectories of a random 4-state, 3-action problem (numpy, float64)."""
    rng = np.random.default_rng(seed)
    pi = target_policy()
    beta = rng.dirichlet(np.ones(A), size=S)
    s = rng.integers(0, S, size=(n, horizon + 1))
    u = rng.random(size=(n, horizon, 1))
    a = np.minimum((u > np.cumsum(beta[s[:, :-1]], axis=-1)).sum(-1), A - 1)
    lengths = rng.integers(1, horizon + 1, size=n)
    mask = (np.arange(horizon)[None, :] < lengths[:, None]).astype(np.float64)
    q_all = rng.normal(size=(S, A))
    tlp = np.log(pi[s[:, :-1], a]) * mask
    blp = np.log(beta[s[:, :-1], a]) * mask
    return dict(
        states=s[:, :-1].astype(np.int32),
        actions=a.astype(np.int32),
        next_states=s[:, 1:].astype(np.int32),
        rewards=rng.normal(size=(n, horizon)) * mask,
        log_ratios=tlp - blp,
        target_log_probs=tlp,
        behavior_log_probs=blp,
        mask=mask,
        discounts=np.where(np.arange(horizon)[None, :] == lengths[:, None] - 1, rng.integers(0, 2, size=(n, 1)), 1).astype(np.float64),
        q_taken=q_all[s[:, :-1], a] * mask,
        v_hat=(pi * q_all).sum(-1)[s[:, :-1]] * mask,
    )


def transitions(traj: dict) -> dict:
    """The real steps of ``traj`` as flat transitions with one-hot (s, a) features."""
    real = traj["mask"] > 0
    s, a, s2 = traj["states"][real], traj["actions"][real], traj["next_states"][real]
    eye = np.eye(S * A).reshape(S, A, S * A)
    pi = target_policy()
    return dict(
        observations=s, actions=a, next_observations=s2,
        rewards=traj["rewards"][real], discounts=traj["discounts"][real],
        phi_sa=eye[s, a], phi_next_pi=np.einsum("ma,mak->mk", pi[s2], eye[s2]), phi_next_all=eye[s2],
    )


def _args(d):
    return d["rewards"], d["log_ratios"], d["mask"], GAMMA


def _dr_returns(d):
    return ope.doubly_robust_returns(*_args(d), d["q_taken"], d["v_hat"])


TRAJECTORY_CASES = {
    "trajectory_is": lambda d: ope.trajectory_is(*_args(d)),
    "trajectory_is_truncated": lambda d: ope.trajectory_is(*_args(d), max_log_weight=0.5),
    "per_decision_is": lambda d: ope.per_decision_is(*_args(d), max_log_ratio=0.7),
    "weighted_is": lambda d: ope.weighted_is_with_info(*_args(d)),
    "weighted_per_decision_is": lambda d: ope.weighted_per_decision_is_with_info(*_args(d)),
    "doubly_robust": lambda d: ope.doubly_robust(*_args(d), d["q_taken"], d["v_hat"]),
    "weighted_doubly_robust": lambda d: ope.weighted_doubly_robust_with_info(*_args(d), d["q_taken"], d["v_hat"]),
    "magic": lambda d: ope.magic(jax.random.key(3), *_args(d), d["q_taken"], d["v_hat"], num_resamples=20),
    "student_t": lambda d: ope.student_t_interval(_dr_returns(d)),
    "hoeffding": lambda d: ope.hoeffding_bound(jnp.clip(_dr_returns(d), -20, 20), -20.0, 20.0),
    "bernstein": lambda d: ope.empirical_bernstein_bound(jnp.clip(_dr_returns(d), -20, 20), -20.0, 20.0),
    "bootstrap_percentile": lambda d: ope.bootstrap_interval(jax.random.key(1), _dr_returns(d), num_resamples=64),
    "bootstrap_bca": lambda d: ope.bootstrap_interval(
        jax.random.key(2), (d["rewards"], d["log_ratios"], d["mask"]),
        lambda x: ope.weighted_per_decision_is(*x, GAMMA, validate=False), num_resamples=16, method="bca"),
    "hcope": lambda d: ope.hcope_lower_bound(
        jax.random.key(4), jnp.sum(d["log_ratios"], axis=1), jnp.clip(jnp.sum(d["rewards"], axis=1), -6, 6), -6.0, 6.0, split=0.2),
    "mis_counts": lambda d: mis.flow_counts(
        d["states"], d["actions"], d["next_states"], d["discounts"], d["mask"], d["states"][:, 0], target_policy()),
    "mis_ratios": lambda d: mis.tabular_ratios(
        d["states"], d["actions"], d["next_states"], d["discounts"], d["mask"], d["states"][:, 0], target_policy(),
        GAMMA, ridge=1e-3),
}

TRANSITION_CASES = {
    "lstd": lambda d: linear.lstd(d["phi_sa"], d["phi_next_pi"], d["rewards"], d["discounts"], GAMMA, 1e-3),
    "lstdq": lambda d: linear.lstdq(d["phi_sa"], d["phi_next_pi"], d["rewards"], d["discounts"], GAMMA, 1e-3),
    "lspi": lambda d: linear.lspi(d["phi_sa"], d["phi_next_all"], d["rewards"], d["discounts"], GAMMA, 1e-3).weights,
}

FQE_CONFIG = FittedQConfig(
    num_actions=A, num_observations=S, hidden_sizes=(), gamma=GAMMA, batch_size=16,
    learning_rate=0.1, num_steps=40, target_update_period=5, dtype="float64",
)


def fqe_data(d: dict) -> Transitions:
    fields = ("observations", "actions", "rewards", "next_observations", "discounts")
    return Transitions(**{k: d[k] for k in fields})


def fqe_case(d: dict):
    """A short minibatch FQE run (data-parallel when ``d`` is sharded): final parameters."""
    train = make_train(FQE_CONFIG, jnp.asarray(target_policy()))
    return train(jax.random.key(5), fqe_data(d)).state.params


def behavior_case(d: dict):
    """A short minibatch behaviour-policy fit (data-parallel when ``d`` is sharded): parameters."""
    from offrl_jax.behavior import BehaviorConfig, behavior_data
    from offrl_jax.behavior import make_train as make_behavior_train

    obs = jax.nn.one_hot(d["states"].reshape(-1), S)
    act = d["actions"].reshape(-1)
    rows = np.arange(obs.shape[0])
    config = BehaviorConfig(num_actions=A, hidden_sizes=(8,), num_steps=40, batch_size=16, eval_every=20,
                            patience=None)
    data = behavior_data(obs, act, rows, rows[:16])
    return make_behavior_train(config)(jax.random.key(4), data).state.params


def fqe_seeds():
    return make_train_seeds(make_train(FQE_CONFIG, jnp.asarray(target_policy())))


def close(a, b, rtol=1e-9, atol=1e-10) -> list:
    """Names of the leaves where ``a`` and ``b`` differ (empty when every leaf agrees)."""
    fa, _ = jax.tree_util.tree_flatten_with_path(a)
    fb = jax.tree_util.tree_leaves(b)
    bad = []
    for (path, x), y in zip(fa, fb):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape or not np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True):
            bad.append(f"{jax.tree_util.keystr(path)}: {x.ravel()[:4]} vs {y.ravel()[:4]}")
    return bad
