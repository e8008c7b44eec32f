"""Classic small MDPs with exact ground truth: chain walk, ModelFail, ModelWin and Garnet.

Every constructor builds the tables on the host with NumPy and returns a validated
:class:`~offrl_jax.envs.tabular.TabularMDP` (float32 by default; pass ``dtype=jnp.float64``
with x64 enabled for float64 ground truth). States and actions are 0-based throughout; where a
paper numbers states from 1 the docstring says so.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence

import jax.numpy as jnp
import numpy as np

from offrl_jax.envs.tabular import TabularMDP

Array = Any

__all__ = [
    "CHAIN_WALK_REWARD_STATES",
    "chain_walk",
    "model_fail",
    "model_fail_policies",
    "model_win",
    "model_win_policies",
    "garnet",
    "PolicyPair",
]

# 0-based reward states of the chain walks of Lagoudakis & Parr 2003 (their states are 1-based:
# 4 states -> {2, 3}; 20 states -> {1, 20}; 50 states -> {10, 41}).
CHAIN_WALK_REWARD_STATES = {4: (1, 2), 20: (0, 19), 50: (9, 40)}


class PolicyPair(NamedTuple):
    """A behaviour policy and a target (evaluation) policy, each ``[O, A]``."""

    behavior: Array
    target: Array


def _check_prob(x: float, name: str, low_open: bool = False) -> float:
    x = float(x)
    if not np.isfinite(x) or x < 0.0 or x > 1.0 or (low_open and x == 0.0):
        rng = "(0, 1]" if low_open else "[0, 1]"
        raise ValueError(f"{name}: expected a probability in {rng}, found {x}")
    return x


def _check_int(x: int, name: str, minimum: int) -> int:
    if isinstance(x, bool) or int(x) != x or x < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, found {x!r}")
    return int(x)


def chain_walk(
    num_states: int = 20,
    success_prob: float = 0.9,
    gamma: float = 0.9,
    reward_states: Optional[Sequence[int]] = None,
    reward: float = 1.0,
    dtype: Any = None,
    horizon: Optional[int] = None,
) -> TabularMDP:
    """The chain walk of Lagoudakis & Parr (LSPI), a line of states with actions L and R.

    Actions 0 = L and 1 = R. The intended move happens w.p. ``success_prob`` (0.9 in the paper),
    the opposite move w.p. ``1 - success_prob``; moving off either end means staying put:

      P(max(s-1, 0) | s, L) += p,  P(min(s+1, S-1) | s, L) += 1 - p   (and mirrored for R).

    The reward depends on the current state only, R(s, a) = ``reward`` * 1[s in reward_states];
    there are no terminal states, gamma = 0.9 and the start state is uniform. All numbers follow
    the authors' Matlab code (``chain_learn.m``) and its Python port (``lspiframework``).

    Default reward placement (``reward_states=None``), 0-based here, 1-based in the paper:
    4 states -> {1, 2} (the paper's states 2 and 3, Koller & Parr's 4-state chain);
    20 states -> {0, 19} (1 and 20, the Python port); 50 states -> {9, 40} (10 and 41).
    The exact optimal policies (gamma = 0.9, p = 0.9) are RRLL for 4 states (V* = 8.1, 9.1,
    9.1, 8.1), L on the paper's states 1-10 and R on 11-20 for 20 states.

    See "Least-Squares Policy Iteration", Lagoudakis & Parr 2003 (JMLR 4).

    Args:
      num_states: S >= 2.
      success_prob: probability p in [0, 1] that the intended move happens.
      gamma: discount in [0, 1).
      reward_states: 0-based indices of the rewarding states; ``None`` takes the literature
        placement for S in {4, 20, 50} (other sizes must pass it).
      reward: reward collected in each rewarding state.
      dtype: float dtype of the tables (default float32).
      horizon: optional finite horizon H (``None``: discounted, infinite horizon).

    Returns:
      A :class:`TabularMDP` with S states and 2 actions.

    Raises:
      ValueError: naming the argument, for bad sizes, probabilities or reward states.
    """
    s = _check_int(num_states, "num_states", 2)
    p = _check_prob(success_prob, "success_prob")
    if reward_states is None:
        if s not in CHAIN_WALK_REWARD_STATES:
            raise ValueError(
                f"reward_states: no literature placement for num_states={s} "
                f"(known: {sorted(CHAIN_WALK_REWARD_STATES)}); pass reward_states explicitly"
            )
        reward_states = CHAIN_WALK_REWARD_STATES[s]
    rs = np.asarray(reward_states)
    if rs.ndim != 1 or rs.dtype.kind not in "iu" or np.any(rs < 0) or np.any(rs >= s):
        raise ValueError(
            f"reward_states: expected 0-based ints in [0, {s}), found {reward_states!r}"
        )
    if not np.isfinite(reward):
        raise ValueError(f"reward: expected a finite number, found {reward}")
    idx = np.arange(s)
    left, right = np.maximum(idx - 1, 0), np.minimum(idx + 1, s - 1)
    trans = np.zeros((s, 2, s))
    np.add.at(trans, (idx, 0, left), p)
    np.add.at(trans, (idx, 0, right), 1.0 - p)
    np.add.at(trans, (idx, 1, right), p)
    np.add.at(trans, (idx, 1, left), 1.0 - p)
    r_state = np.zeros(s)
    r_state[rs] = reward
    rewards = np.repeat(r_state[:, None], 2, axis=1)
    initial = np.full(s, 1.0 / s)
    return TabularMDP.create(
        trans, rewards, initial, gamma, horizon=horizon, name=f"chain_walk_{s}", dtype=dtype
    )


def model_fail(gamma: float = 1.0, dtype: Any = None) -> TabularMDP:
    """ModelFail: a two-step problem whose states are all aliased to one observation.

    States 0 = s0 (start), 1 = up, 2 = down, 3 = absorbing terminal. At t = 0, a0 -> up and
    a1 -> down with reward 0; at t = 1 any action gives +1 from up and -1 from down and the
    episode ends (L = 2, ``horizon = 2``). Every state emits observation 0, so a policy is one
    distribution (p, 1 - p) over {a0, a1} used at both steps, and

      J(pi) = gamma (2 p - 1),   p = pi(a0).

    A model fitted to observations is wrong even with infinite data, which is the point of the
    example. See "Data-Efficient Off-Policy Policy Evaluation for Reinforcement Learning",
    Thomas & Brunskill 2016 (ICML); the layout follows the public C++, Python
    and gym ports of it.

    Args:
      gamma: discount in [0, 1] (the paper uses 1).
      dtype: float dtype (default float32).

    Returns:
      A :class:`TabularMDP` with S = 4 states, 2 actions, 1 observation and horizon 2.
    """
    trans = np.zeros((4, 2, 4))
    trans[0, 0, 1] = trans[0, 1, 2] = 1.0
    trans[1:, :, 3] = 1.0
    rewards = np.zeros((4, 2))
    rewards[1], rewards[2] = 1.0, -1.0
    initial = np.eye(4)[0]
    terminal = np.array([False, False, False, True])
    return TabularMDP.create(
        trans, rewards, initial, gamma, horizon=2, terminal=terminal,
        obs_of_state=np.zeros(4, np.int32), name="model_fail", dtype=dtype,
    )


def model_fail_policies(dtype: Any = None) -> PolicyPair:
    """Behaviour pi_b(a0) = 0.88 and target pi_e(a0) = 0.12 for :func:`model_fail`, ``[1, 2]``.

    The paper's own policy files are not public; these values come from the replication
    aurelienbibaut2/LTMLE_OPE (``R/MDP_modelFail.R``, citing Thomas & Brunskill 2016). There
    the step-1 state is observed (ratio 1 at t = 1); in our aliased ModelFail the same
    distribution is used at both steps. Exact values: J(pi_b) = 0.76 gamma, J(pi_e) = -0.76 gamma.

    Args:
      dtype: float dtype (default float32).

    Returns:
      :class:`PolicyPair` of ``[1, 2]`` arrays (one row: the single observation).
    """
    dtype = jnp.dtype(dtype or jnp.float32)
    return PolicyPair(jnp.asarray([[0.88, 0.12]], dtype), jnp.asarray([[0.12, 0.88]], dtype))


def model_win(gamma: float = 1.0, horizon: int = 20, dtype: Any = None) -> TabularMDP:
    """ModelWin: a fully observed three-state problem where a model-based estimate is accurate.

    From s0 (state 0): a0 -> s1 (reward +1) w.p. 0.4 and -> s2 (reward -1) w.p. 0.6; a1 does the
    opposite (0.6 / 0.4). From s1 or s2 any action returns to s0 with reward 0. The rewards are
    R(s, a, s'), so R(s0, a0) = -0.2 and R(s0, a1) = +0.2. Horizon L = 20. s0 is visited at
    t = 0, 2, 4, ..., so

      J(pi) = 0.2 (pi(a1|s0) - pi(a0|s0)) sum_{k=0}^{ceil(H/2)-1} gamma^{2k}

    (= 2 (pi(a1|s0) - pi(a0|s0)) for gamma = 1, H = 20). The policy in s1/s2 only affects the
    variance of estimators. See Thomas & Brunskill 2016 (ICML); transition
    probabilities as in COBS ``ope/envs/model_win.py`` (Voloshin et al. 2019).

    Args:
      gamma: discount in [0, 1].
      horizon: episode length L (positive int).
      dtype: float dtype (default float32).

    Returns:
      A :class:`TabularMDP` with 3 states, 2 actions and finite horizon ``horizon``.
    """
    horizon = _check_int(horizon, "horizon", 1)
    trans = np.zeros((3, 2, 3))
    trans[0, 0, 1], trans[0, 0, 2] = 0.4, 0.6
    trans[0, 1, 1], trans[0, 1, 2] = 0.6, 0.4
    trans[1:, :, 0] = 1.0
    table = np.zeros((3, 2, 3))
    table[0, :, 1], table[0, :, 2] = 1.0, -1.0
    return TabularMDP.create(
        trans, table, np.eye(3)[0], gamma, horizon=horizon, name="model_win", dtype=dtype
    )


def model_win_policies(dtype: Any = None) -> PolicyPair:
    """Behaviour pi_b(.|s0) = (0.99, 0.01) and target pi_e(.|s0) = (0.01, 0.99), ``[3, 2]``.

    Uniform in s1 and s2. Values from the replication aurelienbibaut2/LTMLE_OPE
    (``R/MDP_modelWin.R``, citing Thomas & Brunskill 2016, p. 24); the paper's own policies are
    not public, and another revision of that file uses (0.73, 0.27) / (0.27, 0.73).
    Exact values (gamma = 1, H = 20): J(pi_b) = -1.96, J(pi_e) = +1.96.

    Args:
      dtype: float dtype (default float32).

    Returns:
      :class:`PolicyPair` of ``[3, 2]`` arrays.
    """
    dtype = jnp.dtype(dtype or jnp.float32)
    b = np.array([[0.99, 0.01], [0.5, 0.5], [0.5, 0.5]])
    return PolicyPair(jnp.asarray(b, dtype), jnp.asarray(b[:, ::-1].copy(), dtype))


def garnet(
    seed: int,
    num_states: int,
    num_actions: int,
    branching: int,
    gamma: float = 0.95,
    reward_std: float = 0.0,
    dtype: Any = None,
    horizon: Optional[int] = None,
) -> TabularMDP:
    """A random Garnet(n_S, n_A, b) MDP, deterministic given ``seed``.

    For every (s, a): draw b distinct next states uniformly without replacement, and split the
    unit interval at b - 1 sorted uniform cut points u_(1) <= ... <= u_(b-1):

      P(s'_j | s, a) = u_(j) - u_(j-1),   u_(0) = 0, u_(b) = 1.

    Mean rewards R(s, a) ~ N(0, 1) independently; rollouts add N(0, reward_std^2) noise per
    transition. The start distribution is uniform; there are no terminal states.
    See "On the generation of Markov decision processes", Archibald, McKinnon & Thomas 1995
    (J. Oper. Res. Soc.), and "Natural actor-critic algorithms", Bhatnagar, Sutton,
    Ghavamzadeh & Lee 2009 (Automatica; TR09-10 section 8).

    Not verified against the paper texts: the cut-point
    construction of the probabilities (it follows the description in "Off-policy learning with
    eligibility traces: a survey", Geist & Scherrer 2014, JMLR; some ports normalise b uniforms
    instead), the N(0, 1) reward means on (s, a), and the uniform start. The generator is
    ``numpy.random.default_rng(seed)`` (PCG64) on the host: the same seed gives the same MDP on
    every platform for a given NumPy version.

    Args:
      seed: non-negative int seed.
      num_states: n_S >= 1.
      num_actions: n_A >= 1.
      branching: b in [1, n_S], the number of possible next states per (s, a).
      gamma: discount in [0, 1).
      reward_std: std sigma >= 0 of the per-transition reward noise in rollouts.
      dtype: float dtype (default float32).
      horizon: optional finite horizon H (``None``: discounted, infinite horizon).

    Returns:
      A :class:`TabularMDP` with ``num_states`` states and ``num_actions`` actions.
    """
    seed = _check_int(seed, "seed", 0)
    s = _check_int(num_states, "num_states", 1)
    a = _check_int(num_actions, "num_actions", 1)
    b = _check_int(branching, "branching", 1)
    if b > s:
        raise ValueError(f"branching: expected an int in [1, num_states = {s}], found {b}")
    if not np.isfinite(reward_std) or reward_std < 0:
        raise ValueError(f"reward_std: expected a finite std >= 0, found {reward_std}")
    rng = np.random.default_rng(seed)
    # b distinct next states: the b smallest of S i.i.d. uniform keys (a uniform random subset).
    nxt = np.argsort(rng.random((s, a, s)), axis=-1, kind="stable")[..., :b]
    cuts = np.sort(rng.random((s, a, b - 1)), axis=-1)
    edges = np.concatenate([np.zeros((s, a, 1)), cuts, np.ones((s, a, 1))], axis=-1)
    probs = np.diff(edges, axis=-1)
    trans = np.zeros((s, a, s))
    np.put_along_axis(trans, nxt, probs, axis=-1)
    rewards = rng.standard_normal((s, a))
    std = None if reward_std == 0 else np.full((s, a), float(reward_std))
    return TabularMDP.create(
        trans, rewards, np.full(s, 1.0 / s), gamma, horizon=horizon, reward_std=std,
        name="garnet", dtype=dtype,
    )
