"""DM, DR and WDR: recursion by hand, identities, exact-Q properties, padding, long horizons."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax import ope
from offrl_jax.envs import TabularMDP, q_values, rollout, state_values


METHODS = ("scan", "associative", "weights")
DR_JIT = {m: jax.jit(lambda *a, m=m: ope.doubly_robust(*a, method=m)) for m in METHODS}
WDR_JIT = jax.jit(ope.weighted_doubly_robust_with_info)
PDIS_JIT = jax.jit(ope.per_decision_is)
WPDIS_JIT = jax.jit(ope.weighted_per_decision_is)
ROLLOUT = jax.jit(rollout, static_argnums=(3, 4))


def _random_data(seed, n=5, t=6, ragged=True):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, t + 1, size=n) if ragged else np.full(n, t)
    m = (np.arange(t)[None, :] < lengths[:, None]).astype(float)
    r, lr = rng.normal(size=(n, t)) * m, 0.4 * rng.normal(size=(n, t)) * m
    q, v = rng.normal(size=(n, t)) * m, rng.normal(size=(n, t)) * m
    return r, lr, m, q, v


def _dr_by_hand(r, lr, m, q, v, gamma):
    """Jiang & Li's backward recursion with explicit Python loops (per trajectory, real steps)."""
    out = []
    for i in range(r.shape[0]):
        length = int(m[i].sum())
        v_dr = 0.0
        for t in reversed(range(length)):
            v_dr = v[i, t] + np.exp(lr[i, t]) * (r[i, t] + gamma * v_dr - q[i, t])
        out.append(v_dr)
    return np.mean(out)


def _wdr_by_hand(r, lr, m, q, v, gamma):
    n, t_max = r.shape
    w = np.exp(np.cumsum(lr * m, axis=1))  # finished trajectories keep their weight
    wb = w / w.sum(0, keepdims=True)
    total = 0.0
    for t in range(t_max):
        for i in range(n):
            prev = 1.0 / n if t == 0 else wb[i, t - 1]
            total += gamma**t * m[i, t] * (wb[i, t] * (r[i, t] - q[i, t]) + prev * v[i, t])
    return total


def test_dr_matches_hand_recursion_for_every_method():
    r, lr, m, q, v = _random_data(0)
    want = _dr_by_hand(r, lr, m, q, v, 0.9)
    for meth in METHODS:
        np.testing.assert_allclose(DR_JIT[meth](r, lr, m, 0.9, q, v), want, rtol=1e-12)
    np.testing.assert_allclose(ope.doubly_robust(r, lr, m, 0.9, q, v), want, rtol=1e-12)


def test_wdr_matches_hand_computation():
    r, lr, m, q, v = _random_data(1)
    res = WDR_JIT(r, lr, m, 0.9, q, v)
    np.testing.assert_allclose(res.estimate, _wdr_by_hand(r, lr, m, q, v, 0.9), rtol=1e-12)
    assert not bool(res.zero_weight_sum)


def test_per_step_values_and_associative_scan_equal_scan():
    r, lr, m, q, v = _random_data(2, n=1, t=7)
    args = (r[0], lr[0], m[0], 0.95, q[0], v[0])
    scan = ope.doubly_robust_values(*args)
    assoc = jax.jit(lambda *a: ope.doubly_robust_values(*a, method="associative"))(*args)
    np.testing.assert_allclose(assoc, scan, rtol=1e-12)
    # V_DR(t) for every t, by hand.
    length = int(m[0].sum())
    want, acc = np.zeros(7), 0.0
    for t in reversed(range(length)):
        acc = v[0, t] + np.exp(lr[0, t]) * (r[0, t] + 0.95 * acc - q[0, t])
        want[t] = acc
    np.testing.assert_allclose(scan, want, rtol=1e-12)


def test_q_zero_gives_pdis_and_wpdis():
    r, lr, m, _, _ = _random_data(3)
    z = np.zeros_like(r)
    for meth in METHODS:
        np.testing.assert_allclose(DR_JIT[meth](r, lr, m, 0.9, z, z), PDIS_JIT(r, lr, m, 0.9), rtol=1e-12)
    np.testing.assert_allclose(WDR_JIT(r, lr, m, 0.9, z, z).estimate, WPDIS_JIT(r, lr, m, 0.9), rtol=1e-12)


def test_bandit_dr_is_the_one_step_case():
    rng = np.random.default_rng(4)
    n, a = 50, 3
    pi_e = rng.dirichlet(np.ones(a), size=n)
    pi_b = rng.dirichlet(np.ones(a), size=n)
    acts = np.array([rng.choice(a, p=p) for p in pi_b])
    rewards = rng.normal(size=n)
    r_hat = rng.normal(size=(n, a))
    rho = pi_e[np.arange(n), acts] / pi_b[np.arange(n), acts]
    want = np.mean((pi_e * r_hat).sum(1) + rho * (rewards - r_hat[np.arange(n), acts]))
    terms = ope.model_terms(r_hat[:, None, :], pi_e[:, None, :], acts[:, None], np.ones((n, 1)))
    got = ope.doubly_robust(rewards[:, None], np.log(rho)[:, None], np.ones((n, 1)), 0.9, *terms)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_two_episodes_in_one_trace_equal_two_traces():
    r, lr, m, q, v = _random_data(5, n=2, t=4, ragged=False)
    cat = lambda x: np.concatenate([x[0], x[1]])
    disc = np.ones(8)
    disc[3] = 0.0  # s_4 is terminal for the first episode: cut the bootstrap there
    for meth in ("scan", "associative"):
        joint = ope.doubly_robust_values(cat(r), cat(lr), cat(m), 0.9, cat(q), cat(v), discounts=disc, method=meth)
        first = ope.doubly_robust_values(r[0], lr[0], m[0], 0.9, q[0], v[0], method=meth)
        second = ope.doubly_robust_values(r[1], lr[1], m[1], 0.9, q[1], v[1], method=meth)
        np.testing.assert_allclose(joint, np.concatenate([first, second]), rtol=1e-12)


def test_padded_equals_unpadded():
    r, lr, m, q, v = _random_data(6, ragged=False)
    rng = np.random.default_rng(7)
    pad = lambda x: np.concatenate([x, 100 * rng.normal(size=(x.shape[0], 3))], 1)
    m_p = np.concatenate([m, np.zeros((m.shape[0], 3))], 1)
    for meth in METHODS:
        np.testing.assert_allclose(
            DR_JIT[meth](pad(r), pad(lr), m_p, 0.9, pad(q), pad(v)), DR_JIT[meth](r, lr, m, 0.9, q, v), rtol=1e-12
        )
    np.testing.assert_allclose(
        WDR_JIT(pad(r), pad(lr), m_p, 0.9, pad(q), pad(v)).estimate, WDR_JIT(r, lr, m, 0.9, q, v).estimate, rtol=1e-12
    )


def test_jit_equals_no_jit_and_vmap_equals_loop(fast_compiles):
    data = [_random_data(10 + k) for k in range(2)]
    stacked = [np.stack(x) for x in zip(*data)]
    r, lr, m, q, v = data[0]
    eager = float(ope.doubly_robust(r, lr, m, 0.9, q, v))
    np.testing.assert_allclose(DR_JIT["scan"](r, lr, m, 0.9, q, v), eager, rtol=1e-12)
    wdr_eager = float(ope.weighted_doubly_robust(r, lr, m, 0.9, q, v))
    np.testing.assert_allclose(WDR_JIT(r, lr, m, 0.9, q, v).estimate, wdr_eager, rtol=1e-12)
    both = lambda *a: jnp.stack([ope.doubly_robust(*a), ope.weighted_doubly_robust(*a)])
    loop = np.stack([jax.jit(both)(d[0], d[1], d[2], 0.9, d[3], d[4]) for d in data])
    vm = jax.jit(jax.vmap(both, in_axes=(0, 0, 0, None, 0, 0)))(*stacked[:3], 0.9, *stacked[3:])
    np.testing.assert_allclose(vm, loop, rtol=1e-12)
    core = jax.jit(lambda *a: ope.doubly_robust_values(a[0], a[1], a[2], 0.9, a[3], a[4]))
    loop = np.stack([core(r[i], lr[i], m[i], q[i], v[i]) for i in range(r.shape[0])])
    np.testing.assert_allclose(jax.vmap(core)(r, lr, m, q, v), loop, rtol=1e-12)
    np.testing.assert_allclose(ope.doubly_robust_values(r[0], lr[0], m[0], 0.9, q[0], v[0]), loop[0], rtol=1e-12)


def test_all_zero_weights_in_wdr_are_flagged_not_nan():
    n, t = 3, 4
    lr = np.full((n, t), -np.inf)
    res = WDR_JIT(np.ones((n, t)), lr, np.ones((n, t)), 0.9, np.ones((n, t)), np.full((n, t), 2.0))
    assert bool(res.zero_weight_sum) and np.isfinite(float(res.estimate))
    # Only the t = 0 control variate w_{-1} V-hat(s_0) = (1/N) sum 2 survives.
    assert float(res.estimate) == pytest.approx(2.0)


def test_direct_method_arrays_and_callable():
    rng = np.random.default_rng(8)
    q0, pi0 = rng.normal(size=(6, 3)), rng.dirichlet(np.ones(3), size=6)
    want = np.mean((q0 * pi0).sum(1))
    np.testing.assert_allclose(ope.direct_method((q0 * pi0).sum(1)), want, rtol=1e-12)
    np.testing.assert_allclose(ope.direct_method_from_q(q0, pi0), want, rtol=1e-12)
    table = rng.normal(size=(10, 3))
    obs = rng.integers(0, 10, size=6)
    np.testing.assert_allclose(
        ope.direct_method_from_q(lambda o: table[o], pi0, obs), np.mean((table[obs] * pi0).sum(1)), rtol=1e-12
    )
    with pytest.raises(ValueError, match="v_hat_initial"):
        ope.direct_method(np.zeros(0))
    with pytest.raises(ValueError, match="v_hat_initial"):
        ope.direct_method(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="initial_observations"):
        ope.direct_method_from_q(lambda o: table[o], pi0)
    with pytest.raises(ValueError, match="q_hat"):
        ope.direct_method_from_q(q0[:, :2], pi0)


def test_model_terms_by_hand():
    q = np.arange(12.0).reshape(2, 2, 3)  # [N, T, A]
    pi = np.full((2, 2, 3), 1 / 3)
    acts = np.array([[2, 0], [1, 1]])
    m = np.array([[1.0, 1.0], [1.0, 0.0]])
    terms = ope.model_terms(q, pi, acts, m)
    np.testing.assert_allclose(terms.q_taken, [[2.0, 3.0], [7.0, 0.0]])
    np.testing.assert_allclose(terms.v_hat, [[1.0, 4.0], [7.0, 0.0]])


# ----------------------------------------------------------------------------------------------
# Against the truth: exact Q^pi.
# ----------------------------------------------------------------------------------------------
def _chain(p, horizon=6):
    s = 5
    idx = np.arange(s)
    left, right = np.maximum(idx - 1, 0), np.minimum(idx + 1, s - 1)
    trans = np.zeros((s, 2, s))
    np.add.at(trans, (idx, 0, left), p)
    np.add.at(trans, (idx, 0, right), 1 - p)
    np.add.at(trans, (idx, 1, right), p)
    np.add.at(trans, (idx, 1, left), 1 - p)
    rewards = np.stack([np.linspace(-1, 1, s), np.linspace(1, 0, s)], 1)
    mdp = TabularMDP.create(trans, rewards, np.full(s, 1 / s), 0.9, horizon=horizon, dtype=jnp.float64)
    behavior = np.tile([0.5, 0.5], (s, 1))
    target = np.tile([0.25, 0.75], (s, 1))
    return mdp, behavior, target


def _exact_terms(mdp, target, d):
    q = q_values(mdp, target)  # [H, S, A]
    q_all = q[jnp.arange(mdp.horizon)[None, :], d.states]
    return ope.model_terms(q_all, jnp.asarray(target)[d.states], d.actions, d.mask)


@jax.jit
def _pdis_and_exact_dr(mdp, behavior, target, keys):
    """PDIS and DR with the exact Q^pi over datasets; per-trajectory detail of the first one."""

    def one(k):
        d = rollout(k, mdp, behavior, 20, 6, target_policy=target)
        terms = _exact_terms(mdp, target, d)
        lr = d.log_ratios()
        per_traj = ope.doubly_robust_returns(d.rewards, lr, d.mask, 0.9, *terms)
        v0 = state_values(mdp, target)[0][d.states[:, 0]]
        wdr = ope.weighted_doubly_robust(d.rewards, lr, d.mask, 0.9, *terms)
        return jnp.stack([ope.per_decision_is(d.rewards, lr, d.mask, 0.9), jnp.mean(per_traj)]), (per_traj, v0, wdr)

    return jax.vmap(one)(keys)


KEYS = jax.random.split(jax.random.key(3), 256)


def test_exact_q_on_deterministic_mdp_has_zero_variance(fast_compiles):
    mdp, behavior, target = _chain(p=1.0)
    _, (per_traj, v0, wdr) = _pdis_and_exact_dr(mdp, behavior, target, KEYS)
    # Every trajectory's DR value is exactly V^pi(s_0): zero variance given the start state.
    np.testing.assert_allclose(per_traj, v0, rtol=1e-10, atol=1e-12)
    # WDR telescopes to the mean of V^pi(s_0) as well.
    np.testing.assert_allclose(wdr, jnp.mean(v0, axis=1), rtol=1e-10)


def test_exact_q_cuts_variance_far_below_pdis(fast_compiles):
    mdp, behavior, target = _chain(p=0.8)
    est, _ = _pdis_and_exact_dr(mdp, behavior, target, KEYS)
    var = np.asarray(est).var(0, ddof=1)
    assert var[1] < 0.1 * var[0], var


# ----------------------------------------------------------------------------------------------
# Long horizons in float32.
# ----------------------------------------------------------------------------------------------
LONG_JIT = jax.jit(
    lambda *a: jnp.stack([ope.doubly_robust(*a, method=m) for m in METHODS] + [ope.weighted_doubly_robust(*a)])
)


def _np_dr_wdr(r, lr, m, gamma, q, v):
    """float64 numpy DR (unrolled form) and WDR, weights in log space."""
    log_w = np.cumsum(lr * m, axis=1)
    log_prev = np.concatenate([np.zeros((r.shape[0], 1)), log_w[:, :-1]], 1)
    log_d = np.arange(r.shape[1]) * np.log(gamma)
    dr = np.mean((np.exp(log_w + log_d) * (r - q) + np.exp(log_prev + log_d) * v).sum(1))
    wb = np.exp(log_w - log_w.max(0, keepdims=True))
    wb /= wb.sum(0, keepdims=True)
    wp = np.concatenate([np.full((r.shape[0], 1), 1 / r.shape[0]), wb[:, :-1]], 1)
    wdr = (np.exp(log_d) * (wb * (r - q) + wp * v).sum(0)).sum()
    return dr, wdr


def test_long_horizon_float32_dr_and_wdr_stay_finite():
    t = 10_000
    rng = np.random.default_rng(9)
    f32 = lambda *xs: [jnp.asarray(x, jnp.float32) for x in xs]
    r, q, v = rng.uniform(size=(4, t)), rng.uniform(size=(4, t)), rng.uniform(size=(4, t))
    m = np.ones((4, t))
    # A running product of ratios overflows float32 (1.05^5000 ~ e^244) but DR does not.
    lr = np.where(np.arange(t) < t // 2, np.log(1.05), -np.log(1.05))[None, :] + 0.01 * rng.normal(size=(4, t))
    got = LONG_JIT(*f32(r, lr, m), 0.9, *f32(q, v))
    assert got.dtype == jnp.float32 and np.all(np.isfinite(got))
    dr, wdr = _np_dr_wdr(r, lr, m, 0.9, q, v)
    np.testing.assert_allclose(got, [dr, dr, dr, wdr], rtol=2e-3)
    # Log weights of size e^{+-200}: WDR normalises them exactly.
    lr2 = 2.0 * rng.normal(size=(4, t))
    got = LONG_JIT(*f32(r, lr2, m), 0.9, *f32(q, v))[-1]
    assert np.isfinite(float(got))
    np.testing.assert_allclose(float(got), _np_dr_wdr(r, lr2, m, 0.9, q, v)[1], rtol=1e-3, atol=1e-4)


def test_overflowing_weight_times_zero_reward_is_zero_not_nan():
    """log-ratios [100, -100] with rewards [0, 1]: w_{0:0} = e^100 overflows float32, but its
    reward is 0 and w_{0:1} = 1, so PDIS and DR (Q̂ = 0, weights form) give gamma * 1 exactly."""
    from offrl_jax.ope import per_decision_is

    lr = jnp.asarray([[100.0, -100.0]], jnp.float32)
    r = jnp.asarray([[0.0, 1.0]], jnp.float32)
    m = jnp.ones((1, 2), jnp.float32)
    z = jnp.zeros((1, 2), jnp.float32)
    assert float(per_decision_is(r, lr, m, 0.9)) == pytest.approx(0.9, rel=1e-6)
    assert float(ope.doubly_robust(r, lr, m, 0.9, z, z, method="weights")) == pytest.approx(0.9, rel=1e-6)


# ----------------------------------------------------------------------------------------------
# The overflow guard.
# ----------------------------------------------------------------------------------------------
def _guard_rows():
    """float32 rows whose largest run sum of log(gamma d_t rho_t) is clearly below or above B ~ 44.4."""
    t = 12
    lr = np.zeros((7, t), np.float32)
    lr[0, :8] = 5.0  # 8 (5 + log 0.9) ~ 39 < B: safe
    lr[1, :10] = 5.0  # ~ 49 > B
    lr[2] = np.tile([30.0, -30.0], t // 2)  # runs of ~30: safe
    lr[3, 2:5] = [30.0, -1.0, 30.0]  # a run of ~59 that starts mid-trajectory
    lr[4, :2] = [-100.0, 50.0]  # one ratio above e^B
    lr[5, 2:6] = 20.0  # ~80 in a row, but d = 0 at step 3 cuts it into runs of ~20 and ~40: safe
    lr[6, :3] = 100.0  # e^100 overflows: a non-finite value
    d = np.ones((7, t), np.float32)
    d[5, 3] = 0.0
    rng = np.random.default_rng(0)
    r, q, v = (rng.normal(size=(7, t)).astype(np.float32) for _ in range(3))
    return jnp.ones((7, t), bool), jnp.asarray(r), jnp.asarray(lr), jnp.asarray(q), jnp.asarray(v), jnp.asarray(d)


def test_the_in_scan_guard_equals_the_cumulative_check(fast_compiles):
    import importlib

    drm = importlib.import_module("offrl_jax.ope.doubly_robust")

    @jax.jit
    def both(real, r, lr, q, v, d, g):
        values, flags = jax.vmap(drm._plain_scan, (0, 0, 0, 0, 0, 0, None))(real, r, lr, q, v, d, g)
        return flags, jax.vmap(drm._unsafe)(values, lr, real, g * d)

    flags, want = both(*_guard_rows(), jnp.float32(0.9))
    np.testing.assert_array_equal(flags, want)
    np.testing.assert_array_equal(flags, [False, True, False, True, True, False, True])


def test_eager_dr_runs_the_scaled_form_only_when_needed_and_equals_jit(monkeypatch, fast_compiles):
    import importlib

    drm = importlib.import_module("offrl_jax.ope.doubly_robust")
    calls = []
    scaled = drm._scaled_scan
    monkeypatch.setattr(drm, "_scaled_scan", lambda *a: calls.append(1) or scaled(*a))
    r, lr, m, q, v = (np.asarray(x, np.float32) for x in _random_data(1))
    by_hand = lambda: _dr_by_hand(*(x.astype(np.float64) for x in (r, lr, m, q, v)), 0.9)  # noqa: E731
    np.testing.assert_allclose(ope.doubly_robust(r, lr, m, 0.9, q, v), by_hand(), rtol=1e-5)
    assert not calls  # safe data: the scaled form is never traced
    lr[0, :2] = [60.0, -60.0]  # a ratio above e^B: every row takes the scaled form
    eager = ope.doubly_robust(r, lr, m, 0.9, q, v)
    assert calls
    np.testing.assert_allclose(eager, by_hand(), rtol=1e-5)
    np.testing.assert_allclose(eager, DR_JIT["scan"](r, lr, m, 0.9, q, v), rtol=1e-6)
    calls.clear()
    row = (r[0], lr[0], m[0], 0.9, q[0], v[0])
    first = _dr_by_hand(*(x[:1].astype(np.float64) for x in (r, lr, m, q, v)), 0.9)
    np.testing.assert_allclose(ope.doubly_robust_values(*row)[0], first, rtol=1e-5)
    jax.make_jaxpr(ope.doubly_robust_values)(*row)  # under tracing: a lax.cond, both forms traced
    assert len(calls) == 2
