"""LSPI against exact policy iteration and on Lagoudakis & Parr's chain walk."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax import linear as L
from offrl_jax.envs import q_values, rollout, value_iteration


def _exact_policy_iteration(mdp, num_iterations):
    """π_0 = first action everywhere; Q_k = Q^{π_k}; π_{k+1} = argmax Q_k (ties to the first action)."""
    actions = np.zeros(mdp.num_states, int)
    qs, policies = [], [actions]
    for _ in range(num_iterations):
        q = np.asarray(q_values(mdp, jax.nn.one_hot(actions, mdp.num_actions, dtype=jnp.float64)))
        actions = np.argmax(q, -1)
        qs.append(q)
        policies.append(actions)
    return qs, policies


def test_lspi_with_tabular_features_is_exact_policy_iteration(random_mdp, one_hot_table, triples):
    """Exact expected data (every (s, a, s') weighted by P) and one-hot features: w_{k+1} = Q^{π_k}."""
    mdp = random_mdp(10, num_states=5, num_actions=3, terminal_last=True)
    table = one_hot_table(5, 3)
    d = triples(mdp, table)
    run = jax.jit(lambda *args, **kw: L.lspi(*args, max_iterations=10, **kw))
    res = run(d["phi_sa"], d["phi_next_all"], d["rewards"], d["discounts"], mdp.gamma,
              sample_weights=d["weights"], state_features=table)
    n = int(res.iterations)
    qs, policies = _exact_policy_iteration(mdp, n)
    assert bool(res.converged) and bool(res.ok) and 2 <= n < 10
    for k in range(n):
        np.testing.assert_allclose(res.weights_history[k + 1].reshape(3, 5).T, qs[k], atol=1e-8)
        np.testing.assert_array_equal(res.greedy_history[k], policies[k])
        assert int(res.policy_changes[k]) == int(np.sum(policies[k] != policies[k + 1]))
    q_star, _ = value_iteration(mdp)
    np.testing.assert_allclose(res.weights.reshape(3, 5).T, q_star, atol=1e-8)
    # Fixed-size history: rows past the stop repeat the final weights; changes are NaN / -1 there.
    np.testing.assert_array_equal(res.weights_history[n:], np.broadcast_to(res.weights, (11 - n, 15)))
    assert np.all(np.isnan(res.weight_change[n:])) and np.all(res.policy_changes[n:] == -1)
    changes = np.linalg.norm(np.diff(np.asarray(res.weights_history[: n + 1]), axis=0), axis=1)
    np.testing.assert_allclose(res.weight_change[:n], changes, rtol=1e-10, atol=1e-12)
    assert float(res.weight_change[n - 1]) <= 1e-5 < float(res.weight_change[n - 2])


_S = 20


def _chain_table():
    feats = L.per_action(L.polynomial(4, scale=10 / _S), 2)  # chain_basis_pol: (10 s / S)^k, k = 0..4
    return L.all_action_features(feats, jnp.arange(1, _S + 1, dtype=jnp.float64), 2)


@jax.jit
def _chain_lspi(keys, mdp):
    table = _chain_table()

    def one(key):
        data = rollout(key, mdp, jnp.full((_S, 2), 0.5), 10, 500)  # chain_learn.m: 10 episodes x 500 steps
        o, a, n = (x.reshape(-1) for x in (data.observations, data.actions, data.next_observations))
        return L.lspi(table[o, a], table[n], data.rewards.reshape(-1), data.discounts.reshape(-1), mdp.gamma,
                      state_features=table)

    return jax.vmap(one)(keys)


def test_lspi_chain_walk_reaches_optimal_policy(chain_walk):
    """Lagoudakis & Parr's 20-state chain walk with their degree-4 polynomial basis.

    Setup from the authors' code ("Least-Squares Policy Iteration", Lagoudakis & Parr 2003, JMLR 4;
    ``chain_learn.m``, ``chain_basis_pol.m``): p = 0.9, γ = 0.9, reward 1 in states 1 and 20,
    5000 samples from 10 episodes of 500 uniformly random actions, features (10 s / S)^k for
    k = 0..4 per action, w_0 = 0, at most 8 iterations and ε = 1e-5 (their defaults). The
    paper's own iteration counts for this chain could not be checked (see REFERENCES §7); the
    public reproduction (qdevpsi3/rl-lspi, ``notebooks/experiment_1.ipynb``) reports Hamming
    distance 0 to the optimal policy (L on states 1-10, R on 11-20) from iteration 4. Over 16
    fixed seeds we check that: the median first optimal iterate is w_4, and at least 15 of 16 runs
    end at the optimal policy within the 8 iterations (one of 32 seeds tried does not).
    """
    mdp = chain_walk(_S)
    res = _chain_lspi(jax.random.split(jax.random.key(0), 16), mdp)
    optimal = np.r_[np.zeros(10, int), np.ones(10, int)]
    np.testing.assert_array_equal(np.argmax(np.asarray(value_iteration(mdp)[0]), -1), optimal)
    hamming = np.sum(np.asarray(res.greedy_history) != optimal, axis=-1)  # [seeds, 9]
    assert np.all(hamming[:, 0] == 10)  # w_0 = 0: the first action (L) everywhere
    first = np.where(np.any(hamming == 0, 1), np.argmax(hamming == 0, 1), 99)
    assert np.median(first) == 4
    assert np.sum(hamming[:, -1] == 0) >= 15 and np.all(np.asarray(res.iterations) <= 8)
    assert bool(np.all(res.ok))


def test_lspi_vmapped_equals_loop_and_jit_equals_eager(one_hot_table):
    table = one_hot_table(4, 2)
    rng = np.random.default_rng(1)
    datas = [dict(o=rng.integers(0, 4, 60), a=rng.integers(0, 2, 60), n=rng.integers(0, 4, 60),
                  r=rng.normal(size=60), d=(rng.uniform(size=60) > 0.1).astype(float)) for _ in range(3)]

    def flat(data):
        return table[data["o"], data["a"]], table[data["n"]], jnp.asarray(data["r"]), jnp.asarray(data["d"])

    stacked = [jnp.stack(x) for x in zip(*map(flat, datas))]
    ridges = jnp.asarray([0.01, 0.1, 1.0])
    run = lambda p, pn, r, d, lam: L.lspi(p, pn, r, d, 0.9, lam, max_iterations=6, state_features=table)  # noqa: E731
    batched = jax.jit(jax.vmap(run))(*stacked, ridges)
    single = jax.jit(run)
    for i, data in enumerate(datas):
        looped = single(*flat(data), ridges[i])
        for x, y in zip(looped, jax.tree_util.tree_map(lambda z: z[i], batched)):
            np.testing.assert_allclose(np.asarray(x, float), np.asarray(y, float), rtol=1e-9, atol=1e-12)
    eager = run(*flat(datas[0]), float(ridges[0]))
    for x, y in zip(eager, single(*flat(datas[0]), ridges[0])):
        np.testing.assert_allclose(np.asarray(x, float), np.asarray(y, float), rtol=1e-9, atol=1e-12)


def test_lspi_stops_at_max_iterations_and_flags_singular():
    r = np.random.default_rng(0)
    phi = jnp.asarray(r.normal(size=(30, 4)))
    nxt = jnp.asarray(r.normal(size=(30, 2, 4)))
    lspi = jax.jit(L.lspi, static_argnames=("max_iterations",))  # jit == eager is checked above
    res = lspi(phi, nxt, jnp.ones(30), jnp.ones(30), 0.5, max_iterations=1)
    assert int(res.iterations) == 1 and res.weights_history.shape == (2, 4)
    dead = lspi(phi.at[:, 0].set(0.0), nxt.at[..., 0].set(0.0), jnp.ones(30), jnp.ones(30), 0.5)
    assert not bool(dead.ok) and int(dead.iterations) == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(phi_next_all=jnp.ones((30, 4))), "phi_next_all"),
        (dict(phi_next_all=jnp.ones((30, 2, 3))), "phi_next_all"),
        (dict(max_iterations=0), "max_iterations"),
        (dict(epsilon=-1.0), "epsilon"),
        (dict(initial_weights=jnp.ones(3)), "initial_weights"),
        (dict(state_features=jnp.ones((5, 3, 4))), "state_features"),
        (dict(rewards=jnp.full(30, jnp.nan)), "rewards"),
        (dict(gamma=-0.1), "gamma"),
    ],
)
def test_lspi_validation(kwargs, match):
    args = dict(phi_sa=jnp.ones((30, 4)), phi_next_all=jnp.ones((30, 2, 4)), rewards=jnp.ones(30),
                discounts=jnp.ones(30), gamma=0.9)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        L.lspi(**args)
