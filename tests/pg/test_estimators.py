"""Policy-gradient surrogates against the exact policy gradient and hand computations.

The exact gradient is ``jax.grad`` of the exact finite-horizon value J(π_θ) of a tabular softmax
policy (a backward ``lax.scan``, differentiable). Monte-Carlo means over many vmapped datasets
use fixed keys, so every statistical check is deterministic.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax import core
from offrl_jax.envs import TabularMDP, policy_value, q_values, rollout, state_distributions, state_values
from offrl_jax.pg import (
    PGConfig,
    first_order_surrogate,
    per_decision_surrogate,
    pg_batch,
    returns_to_go,
    state_marginal_surrogate,
    tabular_state_weights,
    trajectory_surrogate,
)
from offrl_jax.pg.batch import _validate_pg_data
from offrl_jax.policies import tabular_softmax
from offrl_jax.pg.train import _diagnostics

S, A, H, GAMMA = 4, 3, 4, 0.9
M, N = 3000, 8  # datasets x trajectories per dataset


def _mdp():
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(S) * 0.7, size=(S, A))
    p[:, :, S - 1] += 0.1  # state S-1 is terminal: episodes end early (padding)
    p /= p.sum(-1, keepdims=True)
    p[S - 1] = 0.0
    p[S - 1, :, S - 1] = 1.0
    r = rng.normal(size=(S, A))
    r[S - 1] = 0.0
    init = np.array([0.6, 0.3, 0.1, 0.0])
    term = np.arange(S) == S - 1
    return TabularMDP.create(p, r, init, GAMMA, horizon=H, terminal=term, dtype=jnp.float64)


MDP = _mdp()
POLICY = tabular_softmax(S, A)
OBS = jnp.arange(S)
BETA = jax.nn.softmax(jnp.asarray(np.random.default_rng(4).normal(size=(S, A)) * 0.4), -1)
THETA = jnp.asarray(np.random.default_rng(5).normal(size=(S, A)) * 1.2)


def _exact_value(theta):
    return policy_value(MDP, POLICY.probs(theta, OBS))


def _first_order_mean(theta, beta=BETA):
    """Exact expectation of the first-order estimator with Q̂ = Q^π: states from d^β_t."""
    pi = POLICY.probs(theta, OBS)
    q = jax.lax.stop_gradient(q_values(MDP, pi))  # [H, S, A]
    d_beta = state_distributions(MDP, beta, H)  # [H, S]
    disc = GAMMA ** jnp.arange(H)
    return jnp.einsum("t,ts,sa,tsa->", disc, d_beta, pi, q)


def _mc_gradients(theta, keys):
    """``{estimator: [M, S, A]}`` gradient estimates on M datasets of N behaviour trajectories."""
    pi = POLICY.probs(theta, OBS)
    q = q_values(MDP, pi)
    v = state_values(MDP, pi)
    ratio_s = state_distributions(MDP, pi, H) / state_distributions(MDP, BETA, H)
    ratio_s = jnp.where(jnp.isfinite(ratio_s), ratio_s, 0.0)

    def one(key):
        tr = rollout(key, MDP, BETA, N, H)
        t = jnp.arange(H)[None, :]
        q_hat = q[t, tr.states, tr.actions] * tr.mask
        base = v[t, tr.states] * tr.mask
        w_s = ratio_s[t, tr.states]
        common = (tr.behavior_log_probs,)
        ests = {
            "trajectory": lambda lp: trajectory_surrogate(lp, *common, tr.rewards, tr.mask, GAMMA),
            "trajectory_const_baseline": lambda lp: trajectory_surrogate(
                lp, *common, tr.rewards, tr.mask, GAMMA, baseline=0.7
            ),
            "trajectory_rtg": lambda lp: trajectory_surrogate(
                lp, *common, tr.rewards, tr.mask, GAMMA, reward_to_go=True, baseline=base
            ),
            "per_decision": lambda lp: per_decision_surrogate(lp, *common, tr.rewards, tr.mask, GAMMA),
            "per_decision_baseline": lambda lp: per_decision_surrogate(
                lp, *common, tr.rewards, tr.mask, GAMMA, baseline=base
            ),
            "per_decision_q": lambda lp: per_decision_surrogate(
                lp, *common, tr.rewards, tr.mask, GAMMA, q_hat=q_hat, baseline=base
            ),
            "state_marginal": lambda lp: state_marginal_surrogate(
                lp, *common, q_hat, w_s, tr.mask, GAMMA, baseline=base
            ),
            "first_order": lambda lp: first_order_surrogate(lp, *common, q_hat, tr.mask, GAMMA),
        }
        return {
            k: jax.grad(lambda th: f(POLICY.log_prob(th, tr.observations, tr.actions)))(theta)
            for k, f in ests.items()
        }

    return jax.vmap(one)(keys)


@pytest.fixture(scope="module")
def mc_gradients():
    keys = jax.random.split(jax.random.key(2024), M)
    out = jax.device_get(jax.jit(_mc_gradients)(THETA, keys))
    out["exact"] = np.asarray(jax.jit(jax.grad(_exact_value))(THETA))
    out["first_order_exact"] = np.asarray(jax.jit(jax.grad(_first_order_mean))(THETA))
    return out


UNBIASED = [
    "trajectory",
    "trajectory_const_baseline",
    "trajectory_rtg",
    "per_decision",
    "per_decision_baseline",
    "per_decision_q",
    "state_marginal",
]


@pytest.mark.parametrize("name", UNBIASED)
def test_unbiased_estimators_match_exact_gradient(mc_gradients, name):
    g_true = mc_gradients["exact"]
    g = mc_gradients[name]
    mean, se = g.mean(0), g.std(0, ddof=1) / np.sqrt(M)
    # Informative: the Monte-Carlo error is small next to the gradient itself.
    assert np.linalg.norm(se) < 0.15 * np.linalg.norm(g_true)
    np.testing.assert_array_less(np.abs(mean - g_true), 4 * se + 1e-12)


def test_first_order_is_biased_where_state_distributions_differ(mc_gradients):
    g_true = mc_gradients["exact"]
    g_fo_exact = mc_gradients["first_order_exact"]
    g = mc_gradients["first_order"]
    mean, se = g.mean(0), g.std(0, ddof=1) / np.sqrt(M)
    # It estimates its own (wrong) expectation without bias ...
    np.testing.assert_array_less(np.abs(mean - g_fo_exact), 4 * se + 1e-12)
    # ... which differs from the true gradient by many standard errors.
    z = np.abs(mean - g_true) / np.maximum(se, 1e-12)
    assert z.max() > 10
    assert np.linalg.norm(g_fo_exact - g_true) > 4 * np.linalg.norm(se)


def test_mis_state_weights_are_consistent():
    """Estimated per-step state ratios approach d^π_t/d^β_t on a large dataset, and the
    state-marginal gradient with them approaches the exact gradient (first order does not)."""
    pi = POLICY.probs(THETA, OBS)
    tr = jax.jit(rollout, static_argnums=(3, 4))(jax.random.key(11), MDP, BETA, 8000, H)

    @jax.jit
    def run(tr):
        sw = tabular_state_weights(tr.states, tr.actions, tr.next_states, tr.discounts, tr.mask, pi)
        t = jnp.arange(H)[None, :]
        q_hat = q_values(MDP, pi)[t, tr.states, tr.actions] * tr.mask
        base = state_values(MDP, pi)[t, tr.states] * tr.mask

        def grad(w):
            return jax.grad(
                lambda th: state_marginal_surrogate(
                    POLICY.log_prob(th, tr.observations, tr.actions), tr.behavior_log_probs, q_hat, w, tr.mask,
                    GAMMA, baseline=base,
                )
            )(THETA)

        return sw, grad(sw.weights), grad(jnp.ones_like(sw.weights))

    sw, g_mis, g_first_order = run(tr)
    exact = jax.jit(lambda: state_distributions(MDP, pi, H) / state_distributions(MDP, BETA, H))()
    np.testing.assert_allclose(sw.table[:, : S - 1], exact[:, : S - 1], atol=0.08)
    assert np.all(np.asarray(sw.unsupported_mass) < 1e-12)
    g_true = jax.jit(jax.grad(_exact_value))(THETA)
    err = lambda g: float(jnp.linalg.norm(g - g_true) / jnp.linalg.norm(g_true))  # noqa: E731
    print(f"relative gradient error: MIS state weights {err(g_mis):.4f}, first order {err(g_first_order):.4f}")
    assert err(g_mis) < 0.03 < err(g_first_order)


def test_first_order_is_exact_on_policy_state_distribution(mc_gradients):
    """With π_β = π_θ the first-order estimator's expectation equals the true gradient."""
    on_policy = jax.jit(jax.grad(_first_order_mean))(THETA, POLICY.probs(THETA, OBS))
    np.testing.assert_allclose(on_policy, mc_gradients["exact"], atol=1e-12)


# ----------------------------------------------------------------------------------------------
# Hand computations on a tiny padded dataset (numpy loops over the defining sums).
# ----------------------------------------------------------------------------------------------
def _tiny():
    rng = np.random.default_rng(0)
    n, t = 3, 4
    obs = rng.integers(0, S, size=(n, t))
    act = rng.integers(0, A, size=(n, t))
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]], float)
    rew = rng.normal(size=(n, t)) * mask
    beta = np.asarray(BETA)
    blp = np.log(beta[obs, act]) * mask
    q_hat = rng.normal(size=(n, t)) * mask
    base = rng.normal(size=(n, t)) * mask
    sw = rng.uniform(0.5, 2.0, size=(n, t))
    return obs, act, mask, rew, blp, q_hat, base, sw


def _scores(theta, obs, act):
    """g[n, t] = ∇_θ log π(a|o) = e_o ⊗ (e_a − π(·|o)) for the tabular softmax."""
    pi = np.asarray(POLICY.probs(theta, OBS))
    n, t = obs.shape
    g = np.zeros((n, t, S, A))
    for i in range(n):
        for k in range(t):
            g[i, k, obs[i, k]] = -pi[obs[i, k]]
            g[i, k, obs[i, k], act[i, k]] += 1.0
    return g


def _reference(kind, theta, clip=None, sn=False, rtg=False, with_q=False, with_base=False):
    obs, act, mask, rew, blp, q_hat, base, sw = _tiny()
    pi = np.asarray(POLICY.probs(theta, OBS))
    n, t = obs.shape
    lr = np.where(mask > 0, np.log(pi[obs, act]) - blp, 0.0)
    g = _scores(theta, obs, act)
    disc = GAMMA ** np.arange(t)
    b = base if with_base else np.zeros_like(base)
    out = np.zeros((S, A))
    if kind == "trajectory":
        w = np.exp(lr.sum(1))
        if clip:
            w = np.minimum(w, clip)
        w = w / w.sum() if sn else w / n
        ret = (disc * rew).sum(1)
        for i in range(n):
            for k in range(t):
                if mask[i, k]:
                    c = (disc[k:] * rew[i, k:]).sum() - disc[k] * b[i, k] if rtg else ret[i] - b[i, k]
                    out += w[i] * c * g[i, k]
        return out
    if kind == "per_decision":
        w = np.exp(np.cumsum(lr, 1))
        if clip:
            w = np.minimum(w, clip)
        w = w / w.sum(0, keepdims=True) if sn else w / n
        for i in range(n):
            for k in range(t):
                if not mask[i, k]:
                    continue
                if with_q:
                    c = disc[k] * w[i, k] * (q_hat[i, k] - b[i, k])
                else:
                    c = sum(disc[j] * w[i, j] * rew[i, j] for j in range(k, t)) - disc[k] * w[i, k] * b[i, k]
                out += c * g[i, k]
        return out
    # state-marginal (sw) / first-order (sw = 1)
    wsv = sw if kind == "state_marginal" else np.ones_like(sw)
    w = wsv * np.exp(lr)
    if clip:
        w = np.minimum(w, clip)
    w = w / w.sum(0, keepdims=True) if sn else w / n
    for i in range(n):
        for k in range(t):
            if mask[i, k]:
                out += disc[k] * w[i, k] * (q_hat[i, k] - b[i, k]) * g[i, k]
    return out


def _ours(kind, theta, clip=None, sn=False, rtg=False, with_q=False, with_base=False):
    obs, act, mask, rew, blp, q_hat, base, sw = map(jnp.asarray, _tiny())
    b = base if with_base else None

    # The reference truncates weights at c; ours bounds the log weight by log c.
    opts = {"max_log_weight": None if clip is None else float(np.log(clip)), "self_normalize": sn}

    def f(th):
        lp = POLICY.log_prob(th, obs, act)
        if kind == "trajectory":
            return trajectory_surrogate(lp, blp, rew, mask, GAMMA, baseline=b, reward_to_go=rtg, **opts)
        if kind == "per_decision":
            return per_decision_surrogate(
                lp, blp, rew, mask, GAMMA, q_hat=q_hat if with_q else None, baseline=b, **opts
            )
        if kind == "state_marginal":
            return state_marginal_surrogate(lp, blp, q_hat, sw, mask, GAMMA, baseline=b, **opts)
        return first_order_surrogate(lp, blp, q_hat, mask, GAMMA, baseline=b, **opts)

    return jax.grad(f)(theta)


CASES = [
    ("trajectory", {}),
    ("trajectory", {"rtg": True, "with_base": True}),
    ("trajectory", {"clip": 1.5, "with_base": True}),
    ("trajectory", {"sn": True}),
    ("per_decision", {}),
    ("per_decision", {"with_base": True, "clip": 1.2}),
    ("per_decision", {"sn": True}),
    ("per_decision", {"with_q": True, "with_base": True, "sn": True}),
    ("state_marginal", {"with_base": True}),
    ("state_marginal", {"clip": 1.1, "sn": True}),
    ("first_order", {}),
    ("first_order", {"sn": True, "with_base": True}),
]


@pytest.mark.parametrize("kind,opts", CASES)
def test_gradient_matches_hand_computation(kind, opts):
    np.testing.assert_allclose(_ours(kind, THETA, **opts), _reference(kind, THETA, **opts), rtol=1e-10, atol=1e-12)


def test_gradients_are_derivatives_of_the_is_and_pdis_values():
    """Unclipped, unnormalised: ∇ of the IS / PDIS value with differentiable weights."""
    obs, act, mask, rew, blp, *_ = map(jnp.asarray, _tiny())
    disc = GAMMA ** jnp.arange(mask.shape[1])

    def log_w(th):
        lp = POLICY.log_prob(th, obs, act)
        return jnp.cumsum(jnp.where(mask > 0, lp - blp, 0.0), axis=1)

    def is_value(th):
        return jnp.mean(jnp.exp(log_w(th)[:, -1]) * jnp.sum(disc[None, :] * rew, 1))

    def pdis_value(th):
        return jnp.sum(jnp.exp(log_w(th)) * disc[None, :] * rew) / mask.shape[0]

    def surr(th, f):
        return f(POLICY.log_prob(th, obs, act), blp, rew, mask, GAMMA)

    np.testing.assert_allclose(jax.grad(surr)(THETA, trajectory_surrogate), jax.grad(is_value)(THETA), atol=1e-12)
    np.testing.assert_allclose(jax.grad(surr)(THETA, per_decision_surrogate), jax.grad(pdis_value)(THETA), atol=1e-12)
    # The surrogate values are the IS / PDIS estimates.
    np.testing.assert_allclose(surr(THETA, trajectory_surrogate), is_value(THETA), rtol=1e-12)
    np.testing.assert_allclose(surr(THETA, per_decision_surrogate), pdis_value(THETA), rtol=1e-12)


def test_on_policy_identities():
    """π = β: every weight is 1; values are the mean return; per-decision with Q̂ = reward-to-go
    equals the first-order estimator with the same Q̂."""
    obs, act, mask, rew, _, *_ = map(jnp.asarray, _tiny())
    lp_fixed = POLICY.log_prob(THETA, obs, act) * mask
    mean_return = jnp.mean(jnp.sum(GAMMA ** jnp.arange(4)[None, :] * rew, 1))
    rtg = returns_to_go(rew, mask, GAMMA)

    def f(th, which):
        lp = POLICY.log_prob(th, obs, act)
        if which == "pd":
            return per_decision_surrogate(lp, lp_fixed, rew, mask, GAMMA, q_hat=rtg)
        return first_order_surrogate(lp, lp_fixed, rtg, mask, GAMMA)

    np.testing.assert_allclose(
        trajectory_surrogate(lp_fixed, lp_fixed, rew, mask, GAMMA, self_normalize=True), mean_return, rtol=1e-12
    )
    np.testing.assert_allclose(per_decision_surrogate(lp_fixed, lp_fixed, rew, mask, GAMMA), mean_return, rtol=1e-12)
    np.testing.assert_allclose(jax.grad(f)(THETA, "pd"), jax.grad(f)(THETA, "fo"), atol=1e-12)
    # Causal per-decision gradient == trajectory reward-to-go gradient when all weights are 1.
    g1 = jax.grad(lambda th: per_decision_surrogate(POLICY.log_prob(th, obs, act), lp_fixed, rew, mask, GAMMA))(THETA)
    g2 = jax.grad(
        lambda th: trajectory_surrogate(POLICY.log_prob(th, obs, act), lp_fixed, rew, mask, GAMMA, reward_to_go=True)
    )(THETA)
    np.testing.assert_allclose(g1, g2, atol=1e-12)


def test_returns_to_go_hand_computed():
    rew = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 0.0]])
    mask = jnp.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    expect = [[1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3], [4 + 0.5 * 5, 5, 0]]
    np.testing.assert_allclose(returns_to_go(rew, mask, 0.5), expect)


def test_padding_is_a_no_op():
    obs, act, mask, rew, blp, q_hat, base, sw = map(jnp.asarray, _tiny())
    pad = lambda x: jnp.concatenate([x, jnp.zeros((x.shape[0], 3), x.dtype)], axis=1)  # noqa: E731

    @jax.jit  # one program per shape, not one compilation per primitive
    def grads(o, a, m, r, b, q, bs, w):
        lp = lambda th: POLICY.log_prob(th, o, a)  # noqa: E731
        fs = [
            lambda th: trajectory_surrogate(lp(th), b, r, m, GAMMA, self_normalize=True),
            lambda th: per_decision_surrogate(lp(th), b, r, m, GAMMA, baseline=bs, self_normalize=True),
            lambda th: state_marginal_surrogate(lp(th), b, q, w, m, GAMMA, max_log_weight=np.log(1.5)),
            lambda th: first_order_surrogate(lp(th), b, returns_to_go(r, m, GAMMA), m, GAMMA, self_normalize=True),
        ]
        return [jax.grad(f)(THETA) for f in fs]

    plain = grads(obs, act, mask, rew, blp, q_hat, base, sw)
    sw_padded = jnp.concatenate([sw, jnp.full((sw.shape[0], 3), 7.0)], axis=1)  # absorbing-state weight
    padded = grads(*[pad(x) for x in (obs, act, mask, rew, blp, q_hat, base)], sw_padded)
    for x, y in zip(plain, padded):
        np.testing.assert_allclose(x, y, atol=1e-12)


def test_jit_equals_nojit_and_vmap_equals_loop():
    obs, act, mask, rew, blp, q_hat, base, sw = map(jnp.asarray, _tiny())

    def g(theta, rew):
        def f(th):
            lp = POLICY.log_prob(th, obs, act)
            return (
                per_decision_surrogate(lp, blp, rew, mask, GAMMA, baseline=base, max_log_weight=np.log(2.0))
                + trajectory_surrogate(lp, blp, rew, mask, GAMMA, self_normalize=True)
                + state_marginal_surrogate(lp, blp, q_hat, sw, mask, GAMMA)
            )

        return jax.grad(f)(theta)

    g_jit = jax.jit(g)
    np.testing.assert_allclose(g_jit(THETA, rew), g(THETA, rew), rtol=1e-12)
    thetas = jnp.stack([THETA, -0.5 * THETA])
    rews = jnp.stack([rew, 2 * rew])
    batched = jax.jit(jax.vmap(g))(thetas, rews)
    for i in range(2):
        np.testing.assert_allclose(batched[i], g_jit(thetas[i], rews[i]), rtol=1e-12)


def test_float32_stays_float32():
    obs, act, mask, rew, blp, q_hat, base, sw = [jnp.asarray(x, jnp.float32) for x in _tiny()]
    obs, act = obs.astype(jnp.int32), act.astype(jnp.int32)
    th32 = THETA.astype(jnp.float32)
    for f in (
        lambda th: per_decision_surrogate(POLICY.log_prob(th, obs, act), blp, rew, mask, GAMMA),
        lambda th: trajectory_surrogate(POLICY.log_prob(th, obs, act), blp, rew, mask, GAMMA, self_normalize=True),
        lambda th: first_order_surrogate(
            POLICY.log_prob(th, obs, act), blp, q_hat, mask, GAMMA, max_log_weight=float(np.log(2.0))
        ),
    ):
        value, grad = jax.jit(jax.value_and_grad(f))(th32)
        assert value.dtype == jnp.float32 and grad.dtype == jnp.float32
    assert returns_to_go(rew, mask, GAMMA).dtype == jnp.float32


def test_zero_target_probability_gives_finite_gradients():
    """A logged action the target never takes (log π = -inf) has weight 0, not NaN."""
    obs, act, mask, rew, blp, q_hat, base, sw = map(jnp.asarray, _tiny())
    theta = THETA.at[obs[0, 1], act[0, 1]].set(-jnp.inf)
    for f in (trajectory_surrogate, per_decision_surrogate):
        val, grad = jax.value_and_grad(lambda th: f(POLICY.log_prob(th, obs, act), blp, rew, mask, GAMMA))(theta)
        assert np.isfinite(val)
        assert np.all(np.isfinite(np.asarray(grad)[np.isfinite(np.asarray(theta))]))


def test_weight_diagnostics_from_core():
    """The learner's diagnostics are core's, on the batch's log ratios; NaN ratios are counted."""
    obs, act, mask, rew, blp, *_ = map(jnp.asarray, _tiny())
    same, n_bad = _diagnostics(blp, blp, mask)
    np.testing.assert_allclose(same.ess, 3.0)
    np.testing.assert_allclose(same.per_step_ess, np.full(4, 3.0))
    assert int(n_bad) == 0
    lp = POLICY.log_prob(THETA, obs, act)
    d, _ = _diagnostics(lp, blp, mask)
    ref = core.weight_diagnostics(core.log_importance_ratios(lp, blp, mask), mask)
    w = np.exp(np.sum(np.where(np.asarray(mask) > 0, np.asarray(lp) - np.asarray(blp), 0.0), 1))
    np.testing.assert_allclose(d.ess, w.sum() ** 2 / (w**2).sum(), rtol=1e-12)
    np.testing.assert_allclose(d.max_log_weight, np.log(w.max()), rtol=1e-12)
    for a, b in zip(d, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    _, n_bad = _diagnostics(lp.at[0, 0].set(jnp.nan), blp, mask)
    assert int(n_bad) == 1


# ----------------------------------------------------------------------------------------------
# Validation.
# ----------------------------------------------------------------------------------------------
def _trajectories(blp, rew, mask):
    from offrl_jax.data import Trajectories

    z = np.zeros(np.shape(mask), np.int32)
    return Trajectories(z, z, jnp.asarray(rew), z, jnp.ones(np.shape(mask)), jnp.asarray(mask), jnp.asarray(blp))


def test_validation_errors():
    obs, act, mask, rew, blp, q_hat, base, sw = _tiny()
    data = _trajectories(blp, rew, mask)
    batch = pg_batch(data, q_hat=q_hat, baseline=base, state_weights=sw)
    np.testing.assert_array_equal(batch.state_weights, sw)
    assert pg_batch(batch).q_hat is batch.q_hat  # a PGBatch is checked and kept
    PGConfig(gamma=GAMMA, max_log_weight=float(np.log(5.0)))
    with pytest.raises(ValueError, match="rewards"):
        _validate_pg_data(blp, rew[:, :3], mask)
    with pytest.raises(ValueError, match="rewards"):
        pg_batch(_trajectories(blp, np.where(mask > 0, np.nan, 0.0), mask))
    with pytest.raises(ValueError, match="behavior_log_probs"):
        pg_batch(_trajectories(np.where(mask > 0, -np.inf, 0.0), rew, mask))
    with pytest.raises(ValueError, match="behavior_log_probs"):
        pg_batch(_trajectories(blp + 1.0, rew, mask))
    with pytest.raises(ValueError, match="mask"):
        pg_batch(_trajectories(blp, rew, mask[:, ::-1]))
    with pytest.raises(ValueError, match="mask"):
        _validate_pg_data(blp[:0], rew[:0], mask[:0])
    with pytest.raises(ValueError, match="gamma"):
        PGConfig(gamma=1.5)
    with pytest.raises(ValueError, match="state_weights"):
        pg_batch(data, state_weights=-sw)
    with pytest.raises(ValueError, match="q_hat"):
        pg_batch(data, q_hat=q_hat[:2])
    with pytest.raises(ValueError, match="max_log_weight"):
        PGConfig(max_log_weight=float("inf"))
    beta = np.asarray(BETA).copy()
    beta[1] = [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="behavior_policy"):
        _validate_pg_data(blp, rew, mask, behavior_policy=beta)
    with pytest.raises(ValueError, match="max_log_weight"):
        per_decision_surrogate(jnp.asarray(blp), blp, rew, mask, GAMMA, max_log_weight=float("nan"))
