"""Small tabular problems with exact truths for the experiment tests."""

import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.data import Transitions
from offrl_jax.envs import TabularMDP


def _cost_chain(num_states=6, gamma=0.9):
    """Walk right to a terminal goal: reward -1 per step, actions 0 = L, 1 = R (p = 0.9), start 0."""
    s = num_states
    p = np.zeros((s, 2, s))
    for i in range(s - 1):
        p[i, 0, max(i - 1, 0)] += 0.9
        p[i, 0, i + 1] += 0.1
        p[i, 1, i + 1] += 0.9
        p[i, 1, max(i - 1, 0)] += 0.1
    p[-1, :, -1] = 1.0
    r = -np.ones((s, 2))
    r[-1] = 0.0
    term = np.zeros(s, bool)
    term[-1] = True
    return TabularMDP.create(p, r, np.eye(s)[0], gamma, terminal=term, dtype=jnp.float64)


@pytest.fixture
def cost_chain():
    return _cost_chain


def _random_mdp(seed, num_states=5, num_actions=3, gamma=0.9):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(num_states), size=(num_states, num_actions))
    r = rng.normal(size=(num_states, num_actions))
    return TabularMDP.create(p, r, rng.dirichlet(np.ones(num_states)), gamma, dtype=jnp.float64)


@pytest.fixture
def random_mdp():
    return _random_mdp


def _one_hot_table(num_states, num_actions):
    """[S, A, S*A] one-hot (s, a) features, block a*S + s (replicated per action)."""
    eye = np.eye(num_states * num_actions).reshape(num_actions, num_states, -1)
    return jnp.asarray(eye.transpose(1, 0, 2))


@pytest.fixture
def one_hot_table():
    return _one_hot_table


@pytest.fixture(scope="session")
def garnet_data():
    """(mdp, dataset): a Garnet with 6 states + 1 terminal, 3 actions, branching 2, gamma 0.9,
    with a dataset listing every (s, a, s'_j) once, so its empirical model is the true model
    (as tests/fitted/conftest.py's ``enumerated_garnet(0, 6, 3, 2)``)."""
    num_states, num_actions, branching = 6, 3, 2
    rng = np.random.default_rng(0)
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
    mdp = TabularMDP.create(p, r, initial, 0.9, terminal=terminal, dtype=jnp.float64)
    s, a, j = (x.ravel() for x in np.meshgrid(np.arange(num_states), np.arange(num_actions), np.arange(branching), indexing="ij"))
    s_next = nxt[s, a, j]
    ds = Transitions.create(
        observations=s, actions=a, rewards=r[s, a], next_observations=s_next,
        discounts=(s_next != num_states).astype(np.float64),
    )
    return mdp, ds
