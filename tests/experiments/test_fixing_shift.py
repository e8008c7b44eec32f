"""Fixing distribution shift on tabular MDPs: thinks vs does of FQI, CQL, BCQ, IQL and BC, and stitching.

The data set lists every (s, a, s'_j) of an enumerated Garnet c(s, a) times (c in {1, 2, 3}), so
its empirical model is the true model and its empirical behaviour policy is c(s, ·) / Σ_a c(s, a):
exact values to check against.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.data import Transitions
from offrl_jax.envs import policy_value, value_iteration
from offrl_jax.experiments import fixing_shift as fs
from offrl_jax.offline import bc, bcq, cql

S_ALL, A, B = 7, 3, 2  # 6 states + 1 terminal, 3 actions, branching 2
STEPS, CHUNKS, SEEDS = 1200, 3, 2
NAMES = ("FQI", "CQL", "BCQ", "BC")


@pytest.fixture(scope="module", autouse=True)
def _fast_compiles():
    """Most XLA optimisations off: these tabular programs run once on tiny data, so compiling is
    most of their cost (float64 results agree to ~1e-15)."""
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)


@pytest.fixture(scope="module")
def problem(make_enumerated):
    """(mdp, data, empirical behaviour [S_ALL, A], J*) with repeated rows (module docstring)."""
    mdp, ds = make_enumerated(0, S_ALL - 1, A, B)
    counts = np.random.default_rng(1).integers(1, 4, size=(S_ALL - 1, A))
    reps = np.repeat(counts.reshape(-1), B)  # rows are ordered (s, a, j)
    data = Transitions.create(**{f: np.repeat(np.asarray(getattr(ds, f)), reps, axis=0)
                                 for f in ("observations", "actions", "rewards", "next_observations", "discounts")})
    emp = np.full((S_ALL, A), 1.0 / A)
    emp[:-1] = counts / counts.sum(1, keepdims=True)
    j_star = float(jnp.dot(mdp.initial, jnp.max(value_iteration(mdp).q_star, -1)))
    return mdp, data, emp, j_star


@pytest.fixture(scope="module")
def methods():
    return fs.tabular_methods(S_ALL, A, 0.9, num_steps=STEPS, batch_size=None, learning_rate=0.05,
                              target_update_period=20, names=NAMES, dtype="float64")


@pytest.fixture(scope="module")
def table(problem, methods):
    """One shift_table over every method (each method one vmapped program of SEEDS seeds)."""
    mdp, data, _, _ = problem
    return fs.shift_table(jax.random.key(3), mdp, {"full": data}, methods, num_seeds=SEEDS, num_chunks=CHUNKS)


def test_tabular_methods_share_settings_and_select_by_name():
    ms = fs.tabular_methods(5, 2, 0.8, num_steps=30, learning_rate=0.1, batch_size=8, cql_alpha=0.5,
                            bcq_threshold=0.2, names=("BC", "CQL"))
    assert list(ms) == ["BC", "CQL"]
    assert all(m.name == n for n, m in ms.items())
    cfg = ms["CQL"].config
    assert (cfg.num_observations, cfg.num_actions, cfg.gamma, cfg.alpha, cfg.hidden_sizes) == (5, 2, 0.8, 0.5, ())
    assert (cfg.num_steps, cfg.learning_rate, cfg.batch_size) == (30, 0.1, 8)
    assert ms["BC"].config.num_steps == 30
    assert fs.tabular_methods(5, 2, 0.8, bcq_threshold=0.2)["BCQ"].config.threshold == 0.2
    assert list(fs.tabular_methods(5, 2, 0.8)) == list(fs.METHODS)


def test_method_curves_refuses_a_chunk_count_that_does_not_divide_the_steps(problem, methods):
    mdp, data, _, _ = problem
    with pytest.raises(ValueError, match="num_chunks"):
        fs.method_curves(jax.random.key(0), data, mdp, methods["FQI"], 7)


def test_shift_table_rows_summarise_the_final_chunk_over_seeds(table, problem):
    _, _, _, j_star = problem
    assert table["optimal"] == pytest.approx(j_star, rel=1e-12)
    assert [(r["method"], r["data"]) for r in table["rows"]] == [(m, "full") for m in NAMES]
    for r in table["rows"]:
        c = table["curves"][(r["method"], "full")]
        assert np.shape(c.does) == (SEEDS, CHUNKS)
        does = np.asarray(c.does)[:, -1]
        assert r["does"] == pytest.approx(does.mean(), rel=1e-12)
        assert r["does_se"] == pytest.approx(does.std(ddof=1) / np.sqrt(SEEDS), rel=1e-9, abs=1e-12)
        if r["method"] == "BC":  # no Q-function: "thinks" is undefined
            assert np.isnan(r["thinks"]) and np.all(np.isnan(np.asarray(c.thinks)))
        else:
            gap = np.asarray(c.thinks)[:, -1] - does
            assert r["overestimate"] == pytest.approx(gap.mean(), rel=1e-9, abs=1e-12)


def test_fqi_on_full_coverage_reaches_the_optimum(table, problem):
    # The empirical model is the true one, so FQI's fixed point is Q*; after 60 target refreshes
    # (gamma^60 ~ 2e-3 of the initial error) its greedy policy is optimal and it thinks J*.
    _, _, _, j_star = problem
    c = table["curves"][("FQI", "full")]
    np.testing.assert_allclose(np.asarray(c.does)[:, -1], j_star, rtol=1e-8)
    np.testing.assert_allclose(np.asarray(c.thinks)[:, -1], j_star, atol=0.05 * abs(j_star))


@pytest.mark.parametrize("name, seed", [("CQL", 0), ("BCQ", 1), ("BC", 1)])
def test_does_is_the_exact_value_of_the_trained_policy(table, problem, methods, name, seed):
    # Retrain one seed alone and in one piece (seeds_curves vmaps the seeds and cuts the steps in
    # chunks: the same steps) and score the policy with this file's own reading of the tables:
    # argmax Q (CQL), argmax over the allowed actions (BCQ), the cloned probabilities (BC).
    mdp, data, emp, _ = problem
    method = methods[name]
    module = {"CQL": cql, "BCQ": bcq, "BC": bc}[name]
    keys = jax.random.split(jax.random.key(3), SEEDS)
    state = jax.jit(module.make_train(method.config))(keys[seed], data).state
    obs = jnp.arange(S_ALL)
    if name == "BC":
        pi = bc.action_probs(state, obs)
    else:
        q = state.apply_fn(state.params, obs)  # the tabular network one-hot encodes integer observations
        if name == "BCQ":
            logits = state.behavior.apply_fn(state.behavior.params, obs)
            p = jax.nn.softmax(logits, -1)
            q = jnp.where(p / p.max(-1, keepdims=True) > method.config.threshold, q, -jnp.inf)
        pi = jax.nn.one_hot(jnp.argmax(q, -1), A, dtype=jnp.float64)
    c = table["curves"][(name, "full")]
    np.testing.assert_allclose(np.asarray(c.does)[seed, -1], policy_value(mdp, pi), rtol=1e-10)
    if name == "BC":
        # Maximum likelihood on full-coverage data: the empirical behaviour policy (states seen).
        np.testing.assert_allclose(pi[:-1], emp[:-1], atol=2e-3)
        np.testing.assert_allclose(np.asarray(c.does)[:, -1], policy_value(mdp, jnp.asarray(emp)), atol=1e-2)
    else:
        thinks = jnp.dot(mdp.initial, jnp.sum(pi * jnp.where(jnp.isfinite(q), q, 0.0), -1))
        np.testing.assert_allclose(np.asarray(c.thinks)[seed, -1], thinks, rtol=1e-10)


@pytest.fixture(scope="module")
def stitching():
    mdp, data, pols = fs.stitching_data(jax.random.key(0), num_episodes=60, epsilon=0.1)
    ms = fs.tabular_methods(mdp.num_observations, 4, 0.95, num_steps=1500, names=("BCQ", "IQL", "BC"))
    return mdp, data, pols, fs.stitching_table(jax.random.key(1), ms, mdp, data, pols, num_seeds=2)


@pytest.mark.slow
def test_stitching_data_mixes_the_two_behaviour_policies(stitching):
    mdp, data, pols, _ = stitching
    assert mdp.horizon is None and mdp.gamma == pytest.approx(0.95)
    obs, act, nxt = (np.asarray(x) for x in (data.observations, data.actions, data.next_observations))
    np.testing.assert_array_equal(mdp.obs_of_state, np.arange(mdp.num_states))  # observations are states
    p = np.asarray(mdp.transitions)[obs, act, nxt]
    assert np.all(p > 0)  # every logged transition is possible
    # Each policy is 0.1-soft around one action per state; the mixture takes both policies' actions.
    main_first, main_second = np.asarray(pols.first).argmax(1), np.asarray(pols.second).argmax(1)
    takes_first = np.mean(act == main_first[obs])
    takes_second = np.mean(act == main_second[obs])
    assert takes_first > 0.5 and takes_second > 0.5 and np.mean(main_first != main_second) > 0


@pytest.mark.slow
def test_stitching_in_support_methods_beat_cloning(stitching):
    mdp, _, pols, tab = stitching
    # J* = gamma^(3n + L - 3) = 0.95^9 (stitching_gridworld's docstring), behaviours exact.
    assert tab["optimal"] == pytest.approx(0.95**9, rel=1e-6)
    assert tab["behavior_first"] == pytest.approx(float(policy_value(mdp, pols.first)), rel=1e-6)
    assert tab["behavior_second"] == pytest.approx(float(policy_value(mdp, pols.second)), rel=1e-6)
    rows = {r["method"]: r for r in tab["rows"]}
    for r in rows.values():
        assert r["fraction_of_optimal"] == pytest.approx(r["value"] / tab["optimal"], rel=1e-9)
    # Dynamic programming stitches the two behaviours into a near-optimal policy; BC cannot.
    for name in ("BCQ", "IQL"):
        assert rows[name]["value"] >= 0.9 * tab["optimal"]
        assert rows[name]["value"] - rows["BC"]["value"] > 0.15
    assert rows["BC"]["value"] < max(tab["behavior_first"], tab["behavior_second"]) + 0.05
