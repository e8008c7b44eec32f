"""IS family: hand computations, identities, unbiasedness against exact J, long horizons."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax import ope
from offrl_jax.envs import TabularMDP, policy_value, q_values, rollout
from offrl_jax.envs.suite import make_problem


F64 = jnp.float64
ROLLOUT = jax.jit(rollout, static_argnums=(3, 4))


# ----------------------------------------------------------------------------------------------
# Small finite-horizon problems with behaviour != target (exact J from the tabular solver).
# ----------------------------------------------------------------------------------------------
def chain_walk(num_states=4, horizon=8, gamma=0.9, p=0.9):
    s = num_states
    idx = np.arange(s)
    left, right = np.maximum(idx - 1, 0), np.minimum(idx + 1, s - 1)
    trans = np.zeros((s, 2, s))
    np.add.at(trans, (idx, 0, left), p)
    np.add.at(trans, (idx, 0, right), 1 - p)
    np.add.at(trans, (idx, 1, right), p)
    np.add.at(trans, (idx, 1, left), 1 - p)
    r = np.zeros(s)
    r[[1, 2]] = 1.0
    mdp = TabularMDP.create(trans, np.repeat(r[:, None], 2, 1), np.full(s, 1 / s), gamma, horizon=horizon, dtype=F64)
    behavior = np.tile([0.5, 0.5], (s, 1))
    target = np.tile([0.3, 0.7], (s, 1))
    target[2:] = [0.8, 0.2]
    return mdp, behavior, target


# Literature problems (behaviour != target) with short horizons T; exact J for that horizon.
# Heavier-tailed settings get more episodes per dataset (ModelWin: behaviour takes a1 w.p. 0.01).
SUITE = {"chain_walk_4": (6, 40), "model_fail": (2, 40), "model_win": (2, 100), "graph": (3, 40)}


# ----------------------------------------------------------------------------------------------
# Hand computations.
# ----------------------------------------------------------------------------------------------
R = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 9.0]])
LR = np.log(np.array([[2.0, 0.5, 3.0], [0.25, 4.0, 1.0]]))
M = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])  # second trajectory has length 2
G = 0.9


def _hand():
    """Explicit loops, no vectorisation: returns (IS, PDIS, WIS, WPDIS)."""
    n, t_max = R.shape
    rho = np.exp(LR) * M + (1 - M)  # padding: ratio 1
    w = np.ones((n, t_max))
    for i in range(n):
        acc = 1.0
        for t in range(t_max):
            acc *= rho[i, t]
            w[i, t] = acc
    ret = [sum(G**t * R[i, t] * M[i, t] for t in range(t_max)) for i in range(n)]
    is_ = np.mean([w[i, -1] * ret[i] for i in range(n)])
    pdis = np.mean([sum(G**t * w[i, t] * R[i, t] * M[i, t] for t in range(t_max)) for i in range(n)])
    wis = sum(w[i, -1] * ret[i] for i in range(n)) / sum(w[i, -1] for i in range(n))
    wpdis = sum(
        G**t * sum(w[i, t] * R[i, t] * M[i, t] for i in range(n)) / sum(w[i, t] for i in range(n))
        for t in range(t_max)
    )
    return is_, pdis, wis, wpdis


def test_estimators_match_hand_computation():
    is_, pdis, wis, wpdis = _hand()
    args = (jnp.asarray(R), jnp.asarray(LR), jnp.asarray(M), G)
    np.testing.assert_allclose(ope.trajectory_is(*args), is_, rtol=1e-12)
    np.testing.assert_allclose(ope.per_decision_is(*args), pdis, rtol=1e-12)
    np.testing.assert_allclose(ope.weighted_is(*args), wis, rtol=1e-12)
    np.testing.assert_allclose(ope.weighted_per_decision_is(*args), wpdis, rtol=1e-12)
    # 2 * 0.5 * 3 = 3 is the first trajectory's weight; the second keeps 0.25 * 4 = 1 (frozen).
    np.testing.assert_allclose(ope.trajectory_is_returns(*args), [3.0 * (1 + 1.8 + 0.405), 1.0 * -0.9], rtol=1e-12)


def test_truncation_in_log_space():
    args = (jnp.asarray(R), jnp.asarray(LR), jnp.asarray(M), G)
    # Per-step ratios capped at 2: weights 2, 1, 2 and 0.25, 2.
    got = ope.trajectory_is(*args, max_log_ratio=np.log(2.0))
    np.testing.assert_allclose(got, np.mean([2 * 0.5 * 2 * (1 + 1.8 + 0.405), 0.25 * 2 * -0.9]), rtol=1e-12)
    # Cumulative weights capped at 1.5: first trajectory 1.5, second min(1, 1.5) = 1.
    got = ope.per_decision_is(*args, max_log_weight=np.log(1.5))
    want = np.mean([1.5 * 1 + 0.9 * 1.0 * 2 + 0.81 * 1.5 * 0.5, 0.25 * 0 + 0.9 * 1.0 * -1])
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_identical_policies_give_monte_carlo_mean(key):
    mdp, behavior, _ = chain_walk()
    data = ROLLOUT(key, mdp, behavior, 64, 8, target_policy=behavior)
    lr = data.log_ratios()
    assert np.all(np.asarray(lr) == 0.0)
    mc = float(jnp.mean(data.returns(0.9)))
    args = (data.rewards, lr, data.mask, 0.9)
    np.testing.assert_allclose(JIT_ALL(*args), np.full(4, mc), rtol=1e-12)


def test_weighted_is_is_convex_combination():
    rng = np.random.default_rng(0)
    r, lr = rng.normal(size=(30, 5)), rng.normal(size=(30, 5))
    m = np.ones((30, 5))
    g = (r * 0.95 ** np.arange(5)[None, :]).sum(1)
    est = float(ope.weighted_is(r, lr, m, 0.95))
    assert g.min() <= est <= g.max()


# ----------------------------------------------------------------------------------------------
# Padding, all-zero weights, dtypes, jit/vmap.
# ----------------------------------------------------------------------------------------------
ALL = (ope.trajectory_is, ope.per_decision_is, ope.weighted_is, ope.weighted_per_decision_is)
JIT_ALL = jax.jit(lambda *a: jnp.stack([f(*a) for f in ALL]))


def test_padded_equals_unpadded():
    rng = np.random.default_rng(1)
    n, t = 6, 5
    r, lr = rng.normal(size=(n, t)), 0.5 * rng.normal(size=(n, t))
    m = np.ones((n, t))
    pad = 4
    r_p = np.concatenate([r, rng.normal(size=(n, pad)) * 100], 1)  # garbage on padding
    lr_p = np.concatenate([lr, rng.normal(size=(n, pad)) * 100], 1)
    m_p = np.concatenate([m, np.zeros((n, pad))], 1)
    np.testing.assert_allclose(JIT_ALL(r_p, lr_p, m_p, 0.9), JIT_ALL(r, lr, m, 0.9), rtol=1e-12)


def test_all_zero_weights_give_documented_zero_and_flag():
    r = jnp.ones((3, 4))
    lr = jnp.full((3, 4), -jnp.inf)  # the target never takes the logged actions
    m = jnp.ones((3, 4))
    for f in (ope.weighted_is_with_info, ope.weighted_per_decision_is_with_info):
        res = jax.jit(f, static_argnames="validate")(r, lr, m, 0.9)
        assert float(res.estimate) == 0.0 and bool(res.zero_weight_sum) and float(res.ess) == 0.0
    assert float(ope.trajectory_is(r, lr, m, 0.9)) == 0.0
    assert float(ope.per_decision_is(r, lr, m, 0.9)) == 0.0
    ok = ope.weighted_is_with_info(r, jnp.zeros((3, 4)), m, 0.9)
    assert not bool(ok.zero_weight_sum) and float(ok.ess) == pytest.approx(3.0)


def test_float32_in_float32_out():
    r, lr, m = (jnp.asarray(x, jnp.float32) for x in (R, LR, M))
    got = JIT_ALL(r, lr, m, 0.9)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, _hand(), rtol=1e-5)


def test_jit_equals_no_jit_and_vmap_equals_loop(fast_compiles):
    rng = np.random.default_rng(2)
    r, lr = rng.normal(size=(2, 10, 6)), 0.3 * rng.normal(size=(2, 10, 6))
    m = (np.arange(6)[None, None, :] < rng.integers(1, 7, size=(2, 10, 1))).astype(float)
    eager = np.array([float(f(r[0], lr[0], m[0], 0.9)) for f in ALL])
    np.testing.assert_allclose(JIT_ALL(r[0], lr[0], m[0], 0.9), eager, rtol=1e-12)
    loop = np.stack([JIT_ALL(r[k], lr[k], m[k], 0.9) for k in range(2)])
    vmapped = jax.jit(jax.vmap(JIT_ALL, in_axes=(0, 0, 0, None)))(r, lr, m, 0.9)
    np.testing.assert_allclose(vmapped, loop, rtol=1e-12)
    for core in (ope.trajectory_is_return, ope.per_decision_is_return):
        jitted = jax.jit(core)
        loop = np.array([float(jitted(r[0, i], lr[0, i], m[0, i], 0.9)) for i in range(10)])
        np.testing.assert_allclose(core(r[0, 0], lr[0, 0], m[0, 0], 0.9), loop[0], rtol=1e-12)
        np.testing.assert_allclose(jax.vmap(core, (0, 0, 0, None))(r[0], lr[0], m[0], 0.9), loop, rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# Long horizons in float32.
# ----------------------------------------------------------------------------------------------
def _np_reference(r, lr, m, gamma):
    """float64 numpy (IS, PDIS, WIS, WPDIS) with log-space weights."""
    log_w = np.cumsum(lr * m, axis=1)
    log_d = np.arange(r.shape[1]) * np.log(gamma)
    g = (r * m * np.exp(log_d)).sum(1)
    is_ = np.mean(np.exp(log_w[:, -1]) * g)
    pdis = np.mean((np.exp(log_w + log_d) * r * m).sum(1))
    wb = np.exp(log_w - log_w.max(0, keepdims=True))
    wb /= wb.sum(0, keepdims=True)
    return np.array([is_, pdis, (wb[:, -1] * g).sum(), (np.exp(log_d) * (wb * r * m).sum(0)).sum()])


def test_long_horizon_float32_stays_finite():
    t = 10_000
    rng = np.random.default_rng(3)
    # Ratios 1.05 then 1/1.05: a running product reaches 1.05^5000 ~ e^244 (float32 overflows at
    # e^88), yet every log-space quantity is moderate.
    lr1 = np.where(np.arange(t) < t // 2, np.log(1.05), -np.log(1.05))[None, :].repeat(4, 0)
    lr1[1:] += 0.01 * rng.normal(size=(3, t))
    r = rng.uniform(size=(4, t))
    m = np.ones((4, t))
    with np.errstate(over="ignore"):
        assert not np.all(np.isfinite(np.cumprod(np.exp(lr1.astype(np.float32)), axis=1)))
    f32 = lambda x: jnp.asarray(x, jnp.float32)
    got = JIT_ALL(f32(r), f32(lr1), f32(m), 0.9)
    assert got.dtype == jnp.float32 and np.all(np.isfinite(got))
    np.testing.assert_allclose(got, _np_reference(r, lr1, m, 0.9), rtol=2e-3)
    # Random-walk log weights of size e^{+-200}: the self-normalised estimators stay finite and
    # exact (IS and PDIS are then genuinely astronomically large or small).
    lr2 = 2.0 * rng.normal(size=(4, t))
    assert np.abs(lr2.sum(1)).max() > 88
    got = JIT_ALL(f32(r), f32(lr2), f32(m), 0.9)[2:]
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, _np_reference(r, lr2, m, 0.9)[2:], rtol=1e-3, atol=1e-4)


# ----------------------------------------------------------------------------------------------
# Against the truth: unbiasedness (IS, PDIS, DR with a fixed wrong Q-hat) and consistency.
# ----------------------------------------------------------------------------------------------
NUM_DATASETS = 256


@functools.lru_cache(maxsize=None)
def _estimates(name):
    """[NUM_DATASETS, 3] (IS, PDIS, DR) over independent datasets, plus exact J."""
    h, num_episodes = SUITE[name]
    prob = make_problem(name, dtype=F64)
    mdp, behavior, target = prob.mdp.replace(horizon=h), prob.behavior, prob.target
    q_pi = q_values(mdp, target)  # [H, S, A]
    q_wrong = 0.5 * q_pi + 0.3  # fixed, wrong, independent of the data
    pi_s = jnp.asarray(target)[mdp.obs_of_state]  # [S, A]

    def one(k):
        d = rollout(k, mdp, behavior, num_episodes, h, target_policy=target)
        lr = d.log_ratios()
        tt = jnp.arange(h)[None, :]
        q_all = q_wrong[tt, d.states]  # [N, T, A]
        terms = ope.model_terms(q_all, pi_s[d.states], d.actions, d.mask)
        return jnp.stack([
            ope.trajectory_is(d.rewards, lr, d.mask, mdp.gamma),
            ope.per_decision_is(d.rewards, lr, d.mask, mdp.gamma),
            ope.doubly_robust(d.rewards, lr, d.mask, mdp.gamma, terms.q_taken, terms.v_hat),
        ])

    keys = jax.random.split(jax.random.key(123), NUM_DATASETS)
    est = np.asarray(jax.jit(jax.vmap(one))(keys))
    return est, float(policy_value(mdp, target)), float(policy_value(mdp, behavior))


@pytest.mark.parametrize("name", sorted(SUITE))
def test_unbiased_within_four_standard_errors(name, fast_compiles):
    est, j, j_b = _estimates(name)
    assert abs(j - j_b) > 0.05  # behaviour really differs from the target
    mean = est.mean(0)
    se = est.std(0, ddof=1) / np.sqrt(NUM_DATASETS)
    assert np.all(se > 0)
    for k, label in enumerate(("IS", "PDIS", "DR")):
        assert abs(mean[k] - j) < 4 * se[k], f"{label} on {name}: mean {mean[k]:.4f}, J {j:.4f}, se {se[k]:.4f}"
    # The naive behaviour average would be far off (the test can fail).
    assert abs(j_b - j) > 4 * se.max()


def test_weighted_estimators_are_consistent(fast_compiles):
    mdp, behavior, target = chain_walk()
    j = float(policy_value(mdp, target))

    def one(k):
        d = rollout(k, mdp, behavior, 256, 8, target_policy=target)
        lr = d.log_ratios()
        out = []
        for n in (8, 256):  # the first n trajectories
            args = (d.rewards[:n], lr[:n], d.mask[:n], mdp.gamma)
            out.append(jnp.stack([ope.weighted_is(*args), ope.weighted_per_decision_is(*args)]))
        return jnp.stack(out)

    est = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(7), 64)))
    small, large = np.sqrt(np.mean((est - j) ** 2, axis=0))
    # RMSE ~ 1/sqrt(N): 32x more data should cut it ~5.7x; ask for 3x.
    assert np.all(large < small / 3), (small, large)
