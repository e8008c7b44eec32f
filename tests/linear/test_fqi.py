"""Linear fitted Q iteration against exact value iteration."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax import linear as L


def test_fqi_tabular_exact_data_is_value_iteration(random_mdp, one_hot_table, triples):
    """One-hot features, every (s, a, s') weighted by P: w_{k+1} = R + γ P d max_a' Q_k exactly."""
    mdp = random_mdp(20, num_states=5, num_actions=2, terminal_last=True)
    table = one_hot_table(5, 2)
    d = triples(mdp, table)
    run = jax.jit(lambda *args, **kw: L.linear_fqi(*args, num_iterations=40, **kw))
    res = run(d["phi_sa"], d["phi_next_all"], d["rewards"], d["discounts"], mdp.gamma, sample_weights=d["weights"])
    p, r, g = np.asarray(mdp.transitions), np.asarray(mdp.rewards), float(mdp.gamma)
    alive = 1.0 - np.asarray(mdp.terminal, float)
    q = np.zeros((5, 2))
    for k in range(40):
        q = r + g * np.einsum("sat,t->sa", p, alive * q.max(-1))
        np.testing.assert_allclose(res.weights_history[k + 1].reshape(2, 5).T, q, atol=1e-10)
    assert bool(res.ok) and res.weights_history.shape == (41, 10)
    np.testing.assert_allclose(res.weight_change,
                               np.linalg.norm(np.diff(np.asarray(res.weights_history), axis=0), axis=1), rtol=1e-10)


def test_fqi_vmapped_equals_loop_and_jit_equals_eager(one_hot_table):
    table = one_hot_table(4, 2)
    rng = np.random.default_rng(1)
    datas = [dict(o=rng.integers(0, 4, 60), a=rng.integers(0, 2, 60), n=rng.integers(0, 4, 60),
                  r=rng.normal(size=60), d=(rng.uniform(size=60) > 0.1).astype(float)) for _ in range(3)]

    def flat(data):
        return table[data["o"], data["a"]], table[data["n"]], jnp.asarray(data["r"]), jnp.asarray(data["d"])

    run = lambda p, pn, r, d: L.linear_fqi(p, pn, r, d, 0.9, 0.1, num_iterations=15)  # noqa: E731
    batched = jax.jit(jax.vmap(run))(*[jnp.stack(x) for x in zip(*map(flat, datas))])
    single = jax.jit(run)
    for i, data in enumerate(datas):
        for x, y in zip(single(*flat(data)), jax.tree_util.tree_map(lambda z: z[i], batched)):
            np.testing.assert_allclose(np.asarray(x, float), np.asarray(y, float), rtol=1e-10, atol=1e-12)
    for x, y in zip(run(*flat(datas[0])), single(*flat(datas[0]))):
        np.testing.assert_allclose(np.asarray(x, float), np.asarray(y, float), rtol=1e-10, atol=1e-12)


def test_fqi_singular_gram_is_flagged():
    phi = jnp.zeros((10, 3)).at[:, 0].set(1.0)  # features 1 and 2 never active
    # Jitted (ridge traced): one program for both calls; jit == eager is checked above.
    fqi = jax.jit(lambda ridge: L.linear_fqi(phi, jnp.zeros((10, 2, 3)), jnp.ones(10), jnp.ones(10), 0.9, ridge,
                                             num_iterations=3))
    res = fqi(0.0)
    assert not bool(res.ok) and np.all(np.isnan(res.weights))
    ok = fqi(1e-6)
    assert bool(ok.ok) and float(ok.weights[0]) == pytest.approx(10 / (10 + 1e-6))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_iterations=0), "num_iterations"),
        (dict(phi_next_all=jnp.ones((10, 3))), "phi_next_all"),
        (dict(initial_weights=jnp.ones(2)), "initial_weights"),
        (dict(ridge=jnp.nan), "ridge"),
    ],
)
def test_fqi_validation(kwargs, match):
    args = dict(phi_sa=jnp.ones((10, 3)), phi_next_all=jnp.ones((10, 2, 3)), rewards=jnp.ones(10),
                discounts=jnp.ones(10), gamma=0.9)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        L.linear_fqi(**args)
