"""Plain vectorised numpy reference implementations of the OPE estimators (for benchmarks).

Same conventions and equations as :mod:`offrl_jax.ope`: padded ``[N, T]`` arrays with a prefix
``mask``, log-space cumulative weights (cumsum of masked log ratios, one ``exp``), finished
trajectories keep their weight, per-step self-normalisation with a max-shifted softmax over
trajectories (a 0/0 step contributes 0). ``benchmarks/ope_speed.py`` checks that these give the
same numbers as the JAX versions.
"""

from __future__ import annotations

import numpy as np

__all__ = ["trajectory_is", "per_decision_is", "weighted_is", "weighted_per_decision_is",
           "doubly_robust", "weighted_doubly_robust", "direct_method", "ESTIMATORS"]


def _prep(rewards, log_ratios, mask, gamma):
    real = mask > 0
    r = np.where(real, rewards, 0.0)
    log_w = np.cumsum(np.where(real, log_ratios, 0.0), axis=1)
    t = np.arange(r.shape[1], dtype=r.dtype)
    log_d = t * np.log(gamma) if gamma > 0 else np.where(t == 0, 0.0, -np.inf).astype(r.dtype)
    return real, r, log_w, log_d


def _softmax0(log_w):
    m = np.max(log_w, axis=0, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(log_w - m)
    s = e.sum(axis=0, keepdims=True)
    return np.where(s > 0, e / np.where(s > 0, s, 1.0), 0.0)


def trajectory_is(rewards, log_ratios, mask, gamma, *_):
    """(1/N) sum_n w^n_{0:T-1} G_n."""
    _, r, log_w, log_d = _prep(rewards, log_ratios, mask, gamma)
    return float(np.mean(np.exp(log_w[:, -1]) * (r * np.exp(log_d)[None, :]).sum(1)))


def per_decision_is(rewards, log_ratios, mask, gamma, *_):
    """(1/N) sum_n sum_t gamma^t w^n_{0:t} r^n_t."""
    _, r, log_w, log_d = _prep(rewards, log_ratios, mask, gamma)
    return float(np.mean((np.exp(log_w + log_d[None, :]) * r).sum(1)))


def weighted_is(rewards, log_ratios, mask, gamma, *_):
    """sum_n w^n G_n / sum_n w^n."""
    _, r, log_w, log_d = _prep(rewards, log_ratios, mask, gamma)
    wb = _softmax0(log_w[:, -1:])[:, 0]
    return float((wb * (r * np.exp(log_d)[None, :]).sum(1)).sum())


def weighted_per_decision_is(rewards, log_ratios, mask, gamma, *_):
    """sum_t gamma^t sum_n w^n_{0:t} r^n_t / sum_n w^n_{0:t}."""
    _, r, log_w, log_d = _prep(rewards, log_ratios, mask, gamma)
    return float((np.exp(log_d) * (_softmax0(log_w) * r).sum(0)).sum())


def doubly_robust(rewards, log_ratios, mask, gamma, q_taken, v_hat):
    """(1/N) sum_n sum_t gamma^t [w_{0:t}(r_t - Q_t) + w_{0:t-1} V_t] (Jiang & Li, unrolled)."""
    real, r, log_w, log_d = _prep(rewards, log_ratios, mask, gamma)
    q, v = np.where(real, q_taken, 0.0), np.where(real, v_hat, 0.0)
    log_prev = np.concatenate([np.zeros_like(log_w[:, :1]), log_w[:, :-1]], axis=1)
    terms = np.exp(log_w + log_d[None, :]) * (r - q) + np.exp(log_prev + log_d[None, :]) * v
    return float(np.mean(terms.sum(1)))


def weighted_doubly_robust(rewards, log_ratios, mask, gamma, q_taken, v_hat):
    """sum_t gamma^t sum_n [wbar_t (r_t - Q_t) + wbar_{t-1} V_t] (Thomas & Brunskill)."""
    real, r, log_w, log_d = _prep(rewards, log_ratios, mask, gamma)
    q, v = np.where(real, q_taken, 0.0), np.where(real, v_hat, 0.0)
    wb = _softmax0(log_w)
    wp = np.concatenate([np.full_like(wb[:, :1], 1.0 / wb.shape[0]), wb[:, :-1]], axis=1)
    return float((np.exp(log_d) * (wb * (r - q) + wp * v).sum(0)).sum())


def direct_method(rewards, log_ratios, mask, gamma, q_taken, v_hat):
    """(1/N) sum_n V-hat(s^n_0)."""
    return float(np.mean(v_hat[:, 0]))


ESTIMATORS = {
    "is": trajectory_is,
    "pdis": per_decision_is,
    "wis": weighted_is,
    "wpdis": weighted_per_decision_is,
    "dm": direct_method,
    "dr": doubly_robust,
    "wdr": weighted_doubly_robust,
}
