"""Test configuration: float64 for exact solvers, strict rank promotion."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.data import Transitions
from offrl_jax.envs import TabularMDP

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def fast_compiles():
    """XLA with most optimisations off (as ``offrl-jax demo`` compiles) for programs that run once
    on little data, where compiling is most of the cost; float64 results agree to ~1e-15."""
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)


# Small tabular problems with exact truths, shared by the linear, fitted and experiment tests.
def _random_mdp(seed, num_states=5, num_actions=3, gamma=0.9, terminal_last=False):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(num_states), size=(num_states, num_actions))
    r = rng.normal(size=(num_states, num_actions))
    term = None
    if terminal_last:
        term = np.zeros(num_states, bool)
        term[-1] = True
        p[-1] = 0.0
        p[-1, :, -1] = 1.0
        r[-1] = 0.0
    d0 = rng.dirichlet(np.ones(num_states))
    return TabularMDP.create(p, r, d0, gamma, terminal=term, dtype=jnp.float64)


def _one_hot_table(num_states, num_actions):
    """[S, A, S*A] one-hot (s, a) features, block a*S + s (replicated per action)."""
    eye = np.eye(num_states * num_actions).reshape(num_actions, num_states, -1)
    return jnp.asarray(eye.transpose(1, 0, 2))


def enumerated_garnet(seed: int, num_states: int, num_actions: int, branching: int, gamma: float = 0.9):
    """A Garnet with equal next-state probabilities 1/b and one absorbing terminal state, plus a
    dataset listing every (s, a, s'_j) once: its empirical model *is* the true model, so the
    FQE/FQI fixed points on it are exactly Q^pi / Q* of the MDP.

    State ``num_states`` (the last) is terminal: entering it sets ``discounts = 0``.
    """
    rng = np.random.default_rng(seed)
    s_all = num_states + 1
    p = np.zeros((s_all, num_actions, s_all))
    nxt = np.zeros((num_states, num_actions, branching), int)
    for s in range(num_states):
        for a in range(num_actions):
            nxt[s, a] = rng.choice(s_all, branching, replace=False)
            p[s, a, nxt[s, a]] = 1.0 / branching
    p[num_states, :, num_states] = 1.0
    r = np.zeros((s_all, num_actions))
    r[:num_states] = rng.normal(size=(num_states, num_actions))
    terminal = np.zeros(s_all, bool)
    terminal[num_states] = True
    initial = np.r_[np.ones(num_states) / num_states, 0.0]
    mdp = TabularMDP.create(p, r, initial, gamma, terminal=terminal, dtype=jnp.float64)
    s, a, j = (x.ravel() for x in np.meshgrid(np.arange(num_states), np.arange(num_actions), np.arange(branching), indexing="ij"))
    s_next = nxt[s, a, j]
    ds = Transitions.create(
        observations=s,
        actions=a,
        rewards=r[s, a],
        next_observations=s_next,
        discounts=(s_next != num_states).astype(np.float64),
    )
    return mdp, ds


@pytest.fixture
def random_mdp():
    return _random_mdp


@pytest.fixture
def one_hot_table():
    return _one_hot_table


@pytest.fixture(scope="session")
def make_enumerated():
    """The :func:`enumerated_garnet` builder (any size or seed)."""
    return enumerated_garnet
