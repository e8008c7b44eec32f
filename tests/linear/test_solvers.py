"""LSTD, LSTDQ, the linear model route, chunked accumulation and guarded solves against exact values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax import linear as L
from offrl_jax.envs import q_values, rollout, state_values
from offrl_jax.linear.systems import factorize

# Jitted once per module (value checks run eagerly in the validation tests below).
_STATIC = ("chunk_size", "return_info")
_lstd = jax.jit(L.lstd, static_argnames=_STATIC)
_lstdq = jax.jit(L.lstdq, static_argnames=_STATIC)
_model_value = jax.jit(L.linear_model_value, static_argnames=_STATIC)
_model = jax.jit(L.linear_model, static_argnames=("chunk_size",))
_td_system = jax.jit(L.td_system, static_argnames=("chunk_size",))


def _random_system(seed, m=50, k=6, dtype=jnp.float64):
    r = np.random.default_rng(seed)
    phi = r.normal(size=(m, k))
    phi_next = r.normal(size=(m, k))
    rewards = r.normal(size=m)
    discounts = (r.uniform(size=m) > 0.2).astype(float)
    weights = r.uniform(0.5, 1.5, size=m)
    return [jnp.asarray(x, dtype) for x in (phi, phi_next, rewards, discounts, weights)]


def test_lstd_one_hot_expected_features_recovers_v_pi(random_mdp, random_policy):
    """One row per state, φ = e_s, φ' = P_π[s] (exact expected next features): w = V^π."""
    mdp = random_mdp(0, num_states=6, num_actions=3)
    pi = random_policy(1, 6, 3)
    p_pi = jnp.einsum("sa,sat->st", pi, mdp.transitions)
    r_pi = jnp.sum(pi * mdp.rewards, -1)
    w = _lstd(jnp.eye(6), p_pi, r_pi, jnp.ones(6), mdp.gamma)
    np.testing.assert_allclose(w, state_values(mdp, pi), atol=1e-8, rtol=0)


def test_lstdq_one_hot_recovers_q_pi_with_terminal(random_mdp, random_policy, one_hot_table, triples):
    """Every (s, a, s') weighted by P(s'|s, a); φ'_π = Σ_a' π(a'|s') φ(s', a'); terminal s' has d = 0."""
    mdp = random_mdp(2, num_states=5, num_actions=3, terminal_last=True)
    pi = random_policy(3, 5, 3)
    table = one_hot_table(5, 3)
    d = triples(mdp, table)
    phi_next_pi = L.expected_features(d["phi_next_all"], pi[d["t"]])
    res = _lstdq(d["phi_sa"], phi_next_pi, d["rewards"], d["discounts"], mdp.gamma,
                  sample_weights=d["weights"], return_info=True)
    assert bool(res.ok)
    q_hat = res.weights.reshape(3, 5).T
    np.testing.assert_allclose(q_hat, q_values(mdp, pi), atol=1e-8, rtol=0)
    assert np.all(np.asarray(q_hat[-1]) == pytest.approx(0.0, abs=1e-12))


def test_lstdq_expected_rows_recover_q_pi(random_mdp, random_policy, one_hot_table):
    """M = S·A rows with model-based φ'_π(s, a) = Σ_s' P(s'|s,a) Σ_a' π(a'|s') φ(s', a')."""
    mdp = random_mdp(4, num_states=4, num_actions=2)
    pi = random_policy(5, 4, 2)
    table = one_hot_table(4, 2)
    next_pi = L.expected_features(table, pi)  # [S, K]
    phi_sa = table.reshape(-1, 8)
    phi_next = jnp.einsum("sat,tk->sak", mdp.transitions, next_pi).reshape(-1, 8)
    w = _lstdq(phi_sa, phi_next, mdp.rewards.reshape(-1), jnp.ones(8), mdp.gamma)
    np.testing.assert_allclose(w.reshape(2, 4).T, q_values(mdp, pi), atol=1e-8, rtol=0)


@jax.jit
def _sampled_q_error(keys, mdp_pi):
    """RMSE of LSTDQ to Q^π from the first 25 and from all 400 episodes of each rollout."""
    mdp, pi, behavior, table, q_true = mdp_pi

    def one(key):
        data = rollout(key, mdp, behavior, 400, 20)
        o, a, n = (x.reshape(-1) for x in (data.observations, data.actions, data.next_observations))
        phi_next_pi = L.expected_features(table[n], pi[n])

        def err(num_episodes):
            mask = data.mask * (jnp.arange(400) < num_episodes)[:, None]
            w = _lstdq(table[o, a], phi_next_pi, data.rewards.reshape(-1), data.discounts.reshape(-1),
                        mdp.gamma, 1e-6, sample_weights=mask.reshape(-1))
            return jnp.sqrt(jnp.mean((w.reshape(3, 5).T - q_true) ** 2))

        return jax.vmap(err)(jnp.asarray([25, 400]))

    return jax.vmap(one)(keys)


def test_lstdq_sampled_error_shrinks_with_n(random_mdp, random_policy, one_hot_table):
    """Off-policy sampled data (uniform behaviour): RMSE to Q^π falls ~1/sqrt(N); 16x data, < 0.45x error."""
    mdp = random_mdp(6, num_states=5, num_actions=3)
    pi = random_policy(7, 5, 3)
    behavior = jnp.full((5, 3), 1.0 / 3.0)
    stuff = (mdp, pi, behavior, one_hot_table(5, 3), q_values(mdp, pi))
    errors = _sampled_q_error(jax.random.split(jax.random.key(11), 8), stuff)
    small, large = np.mean(errors, axis=0)
    assert large < 0.45 * small
    assert large < 0.5


@pytest.mark.parametrize("ridge", [0.0, 0.7])
def test_linear_model_route_equals_lstd(ridge):
    phi, phi_next, r, d, w = _random_system(1)
    a = _lstd(phi, phi_next, r, d, 0.9, ridge, sample_weights=w)
    b = _model_value(phi, phi_next, r, d, 0.9, ridge, sample_weights=w)
    np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
    model = _model(phi, phi_next, r, d, ridge, sample_weights=w)
    gram = phi.T @ (w[:, None] * phi) + ridge * jnp.eye(6)
    np.testing.assert_allclose(model.reward_weights, jnp.linalg.solve(gram, phi.T @ (w * r)), rtol=1e-10)
    np.testing.assert_allclose(model.transition, jnp.linalg.solve(gram, phi.T @ (w[:, None] * d[:, None] * phi_next)),
                               rtol=1e-9, atol=1e-12)


def test_td_system_matches_definition():
    phi, phi_next, r, d, w = _random_system(2)
    sys = _td_system(phi, phi_next, r, d, 0.8, sample_weights=w)
    a = sum(w[m] * jnp.outer(phi[m], phi[m] - 0.8 * d[m] * phi_next[m]) for m in range(50))
    np.testing.assert_allclose(sys.a, a, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(sys.b, phi.T @ (w * r), rtol=1e-10)
    assert float(sys.count) == pytest.approx(float(jnp.sum(w)))


@pytest.mark.parametrize("chunk", [1, 7, 16, 50, 64])
def test_chunked_equals_one_shot(chunk):
    """M = 50 rows: chunks that divide it, that don't (masked clamped last block), and larger than M."""
    phi, phi_next, r, d, w = _random_system(3)
    full = _td_system(phi, phi_next, r, d, 0.95, sample_weights=w)
    chunked = _td_system(phi, phi_next, r, d, 0.95, sample_weights=w, chunk_size=chunk)
    for x, y in zip(chunked, full):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_lstd(phi, phi_next, r, d, 0.95, chunk_size=chunk), _lstd(phi, phi_next, r, d, 0.95),
                               rtol=1e-10)
    np.testing.assert_allclose(
        _model_value(phi, phi_next, r, d, 0.95, 0.1, chunk_size=chunk),
        _model_value(phi, phi_next, r, d, 0.95, 0.1), rtol=1e-10)


def test_streaming_features_equal_materialised():
    """Features built per block from states (never the full [M, K] matrix) give the same system."""
    feats = L.fourier(3, low=(-1.0, -2.0), high=(1.0, 2.0))
    r = np.random.default_rng(0)
    states = jnp.asarray(r.uniform(-1, 1, size=(103, 2)) * np.array([1.0, 2.0]))
    nxt = jnp.asarray(r.uniform(-1, 1, size=(103, 2)) * np.array([1.0, 2.0]))
    rew, disc = jnp.asarray(r.normal(size=103)), jnp.ones(103)

    def featurize(block):
        s, s2, rr, dd = block
        return L.featurize(feats, s), L.featurize(feats, s2), rr, dd

    stream = L.streaming_td_system(featurize, (states, nxt, rew, disc), 0.9, chunk_size=10)
    full = _td_system(L.featurize(feats, states), L.featurize(feats, nxt), rew, disc, 0.9)
    for x, y in zip(stream, full):
        np.testing.assert_allclose(x, y, rtol=1e-11, atol=1e-11)


def test_vmapped_over_datasets_and_ridges_equals_loop():
    data = [_random_system(s, m=40, k=5) for s in range(4)]
    stacked = [jnp.stack(x) for x in zip(*data)]
    ridges = jnp.asarray([0.0, 0.1, 1.0, 10.0])
    f = jax.jit(jax.vmap(lambda p, pn, r, d, w, lam: _lstdq(p, pn, r, d, 0.9, lam, sample_weights=w, chunk_size=16)))
    batched = f(*stacked, ridges)
    for i in range(4):
        p, pn, r, d, w = data[i]
        np.testing.assert_allclose(batched[i], _lstdq(p, pn, r, d, 0.9, float(ridges[i]), sample_weights=w),
                                   rtol=1e-10)


def test_vmapped_over_policies_equals_loop(random_mdp, random_policy, one_hot_table, triples):
    mdp = random_mdp(8, num_states=4, num_actions=2)
    table = one_hot_table(4, 2)
    d = triples(mdp, table)
    pis = jnp.stack([random_policy(s, 4, 2) for s in range(3)])

    def q_of(pi):
        nxt = L.expected_features(d["phi_next_all"], pi[d["t"]])
        return _lstdq(d["phi_sa"], nxt, d["rewards"], d["discounts"], mdp.gamma, sample_weights=d["weights"])

    batched = jax.jit(jax.vmap(q_of))(pis)
    for i in range(3):
        np.testing.assert_allclose(batched[i], q_of(pis[i]), rtol=1e-10)
        np.testing.assert_allclose(batched[i].reshape(2, 4).T, q_values(mdp, pis[i]), atol=1e-8)


def test_jit_equals_eager():
    phi, phi_next, r, d, w = _random_system(4)
    eager = L.lstd(phi, phi_next, r, d, 0.9, 0.2, sample_weights=w, return_info=True)
    jitted = jax.jit(lambda *a: L.lstd(*a, 0.9, 0.2, sample_weights=w, return_info=True))(phi, phi_next, r, d)
    for x, y in zip(eager, jitted):
        np.testing.assert_allclose(x, y, rtol=1e-12)


def test_singular_system_is_flagged_not_garbage():
    """A feature never active makes A singular: ok=False and NaN weights; a ridge fixes it."""
    phi, phi_next, r, d, _ = _random_system(5)
    phi = phi.at[:, 2].set(0.0)
    phi_next = phi_next.at[:, 2].set(0.0)
    res = _lstd(phi, phi_next, r, d, 0.9, return_info=True)
    assert not bool(res.ok)
    assert np.all(np.isnan(res.weights))
    assert float(res.condition) > 1e15
    fixed = _lstd(phi, phi_next, r, d, 0.9, 1e-3, return_info=True)
    assert bool(fixed.ok) and np.all(np.isfinite(fixed.weights)) and float(fixed.weights[2]) == 0.0
    # Nearly collinear columns in float32: the condition number exceeds 1/eps, so the flag is raised.
    p32 = jnp.asarray(np.stack([np.ones(50), np.ones(50) + 1e-9 * np.arange(50)], 1), jnp.float32)
    res32 = _lstd(p32, 0 * p32, jnp.ones(50, jnp.float32), jnp.ones(50, jnp.float32), 0.5, return_info=True)
    assert not bool(res32.ok)


def test_solve_condition_number_and_cholesky():
    a = jnp.asarray([[4.0, 1.0], [1.0, 3.0]])
    b = jnp.asarray([1.0, 2.0])
    solve = jax.jit(L.solve, static_argnames=("method",))  # one program per method (lstd's jit == eager: below)
    for method in ("lu", "cholesky"):
        res = solve(a, b, method=method)
        np.testing.assert_allclose(res.weights, jnp.linalg.solve(a, b), rtol=1e-12)
        # Equilibration D = diag(1/2, 1/sqrt(3)); kappa_1 of D A D computed by hand.
        dad = np.array([[1.0, 1 / (2 * np.sqrt(3))], [1 / (2 * np.sqrt(3)), 1.0]])
        want = np.abs(dad).sum(0).max() * np.abs(np.linalg.inv(dad)).sum(0).max()
        assert float(res.condition) == pytest.approx(want, rel=1e-10)
    assert not bool(solve(jnp.asarray([[1.0, 1.0], [1.0, 1.0]]), b, method="cholesky").ok)
    assert not bool(solve(jnp.asarray([[1.0, 2.0], [1.0, 2.0]]), b).ok)


def test_factorization_is_reused_and_matches_solve():
    """One factorisation serves many right-hand sides (linear FQI) and agrees with solve()."""
    phi, phi_next, r, d, w = _random_system(9)
    a = phi.T @ (w[:, None] * phi)
    fac = factorize(a, 0.3, method="cholesky")
    for rhs in (phi.T @ r, phi.T @ phi_next):
        ref = L.solve(a, rhs, 0.3, method="cholesky")
        np.testing.assert_allclose(fac.solve(rhs), ref.weights, rtol=1e-10)
        np.testing.assert_allclose(fac.solve(rhs), jnp.linalg.solve(a + 0.3 * jnp.eye(6), rhs), rtol=1e-10)
        assert bool(fac.ok) and float(fac.condition) == pytest.approx(float(ref.condition), rel=1e-12)
    assert not bool(factorize(jnp.zeros((3, 3)), method="cholesky").ok)


def test_float32_stays_float32():
    phi, phi_next, r, d, w = _random_system(6, dtype=jnp.float32)
    res = _lstd(phi, phi_next, r, d, 0.9, 0.1, return_info=True, chunk_size=16)
    assert res.weights.dtype == jnp.float32 and res.condition.dtype == jnp.float32
    assert _model_value(phi, phi_next, r, d, 0.9, 0.1).dtype == jnp.float32
    np.testing.assert_allclose(res.weights, _lstd(*(x.astype(jnp.float64) for x in (phi, phi_next, r, d)), 0.9, 0.1),
                               rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(phi_next=jnp.ones((50, 5))), "phi_next"),
        (dict(rewards=jnp.ones(49)), "rewards"),
        (dict(discounts=jnp.full(50, 2.0)), "discounts"),
        (dict(rewards=jnp.full(50, jnp.nan)), "rewards"),
        (dict(phi=jnp.full((50, 6), jnp.inf)), "phi"),
        (dict(gamma=1.5), "gamma"),
        (dict(ridge=-1.0), "ridge"),
        (dict(sample_weights=-jnp.ones(50)), "sample_weights"),
        (dict(chunk_size=0), "chunk_size"),
        (dict(phi=jnp.ones((0, 6)), phi_next=jnp.ones((0, 6)), rewards=jnp.ones(0), discounts=jnp.ones(0)), "empty"),
    ],
)
def test_validation_names_the_argument(change, match):
    phi, phi_next, r, d, _ = _random_system(7)
    args = dict(phi=phi, phi_next=phi_next, rewards=r, discounts=d, gamma=0.9, ridge=0.0)
    extra = {k: change.pop(k) for k in ("sample_weights", "chunk_size") if k in change}
    args.update(change)
    with pytest.raises(ValueError, match=match):
        L.lstd(**args, **extra)


def test_lstdq_validation_uses_its_argument_names():
    phi, phi_next, r, d, _ = _random_system(8)
    with pytest.raises(ValueError, match="phi_next_pi"):
        L.lstdq(phi, phi_next[:, :3], r, d, 0.9)
    with pytest.raises(ValueError, match="method"):
        L.solve(jnp.eye(2), jnp.ones(2), method="qr")
    with pytest.raises(ValueError, match="chunk_size"):
        L.streaming_td_system(lambda x: x, (phi,), 0.9, None)
