"""Shared tabular problems with exact expected data for the linear-solver tests."""

import jax.numpy as jnp
import numpy as np
import pytest

from offrl_jax.envs import TabularMDP


def _random_policy(seed, num_states, num_actions):
    return jnp.asarray(np.random.default_rng(seed).dirichlet(np.ones(num_actions), size=num_states))


def _triples(mdp, table):
    """Every (s, a, s') once, weighted by P(s'|s, a): the exact expected LSTDQ/LSPI data."""
    s_, a_ = mdp.num_states, mdp.num_actions
    s, a, t = (x.reshape(-1) for x in np.meshgrid(np.arange(s_), np.arange(a_), np.arange(s_), indexing="ij"))
    return dict(
        s=s, a=a, t=t,
        phi_sa=table[s, a],
        phi_next_all=table[t],
        rewards=mdp.rewards[s, a],
        discounts=1.0 - mdp.terminal[t].astype(jnp.float64),
        weights=mdp.transitions[s, a, t],
    )


@pytest.fixture
def random_policy():
    return _random_policy


@pytest.fixture
def triples():
    return _triples


def _chain_walk(num_states=20, p=0.9, gamma=0.9, reward_states=(0, 19)):
    """Lagoudakis & Parr's chain walk (actions 0 = L, 1 = R; reward 1 in the reward states)."""
    s = num_states
    idx = np.arange(s)
    left, right = np.maximum(idx - 1, 0), np.minimum(idx + 1, s - 1)
    trans = np.zeros((s, 2, s))
    np.add.at(trans, (idx, 0, left), p)
    np.add.at(trans, (idx, 0, right), 1 - p)
    np.add.at(trans, (idx, 1, right), p)
    np.add.at(trans, (idx, 1, left), 1 - p)
    r = np.zeros(s)
    r[list(reward_states)] = 1.0
    return TabularMDP.create(trans, np.repeat(r[:, None], 2, 1), np.full(s, 1.0 / s), gamma, dtype=jnp.float64)


@pytest.fixture
def chain_walk():
    return _chain_walk
