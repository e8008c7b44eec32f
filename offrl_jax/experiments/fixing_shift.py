"""Fixing distribution shift, measured against exact truth on tabular MDPs.

FQI "thinks" its greedy policy is worth far more than it "does" on narrow data
(:mod:`offrl_jax.experiments.shift`). The offline methods of :mod:`offrl_jax.offline` change what
the learner may believe about actions the data never took: CQL pushes their Q down, BCQ never
takes them, IQL never evaluates them. Here each method trains on logged data of a tabular MDP
(tabular networks: one-hot input, no hidden layer) and, after every chunk of steps, we read

    thinks_k = Σ_s d0(s) Σ_a π_k(a|o(s)) Q̂_k(o(s), a)      (its own value of its policy π_k)
    does_k   = J(π_k)                                         (exact, by a linear solve)

where π_k is the method's evaluation policy: greedy in Q̂ (FQI, CQL), greedy inside the allowed
actions (BCQ), the mode of the extracted policy (IQL), or the cloned policy itself (BC, which has
no Q̂; its "thinks" is NaN). thinks − does > 0 is overestimation. See "Conservative Q-Learning
for Offline Reinforcement Learning", Kumar, Zhou, Tucker & Levine 2020; "Off-Policy Deep
Reinforcement Learning without Exploration", Fujimoto, Meger & Precup 2019; "Offline
Reinforcement Learning with Implicit Q-Learning", Kostrikov, Nair & Levine 2022; and, for
stitching, "When Should We Prefer Offline Reinforcement Learning Over Behavioral Cloning?",
Kumar, Hong, Singh & Levine 2022.

* :class:`TabularMethod` and :func:`tabular_methods`: FQI, CQL, BCQ, IQL and BC with tabular
  networks and one set of defaults;
* :func:`method_curves`: thinks/does per chunk for one method and one dataset (pure; vmap it
  over seeds);
* :func:`shift_table`: methods x datasets, mean and standard error over seeds;
* :func:`stitching_table`: exact values on the stitching gridworld from two suboptimal
  behaviour policies;
* :func:`control_methods`, :func:`control_dataset`, :func:`train_and_evaluate`: gymnax tasks
  with datasets from the hand-written controllers, every seed and dataset of a method trained
  and evaluated by Monte Carlo in one program;
* :func:`continuous_methods`: Gaussian BC, continuous IQL and TD3+BC for continuous-action tasks
  (Pendulum-v1), evaluated the same way with their deterministic (mean) policies.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax import fitted
from offrl_jax.data import Transitions, to_transitions
from offrl_jax.envs.control import control_returns, control_rollout
from offrl_jax.envs.control_policies import controller
from offrl_jax.envs.rollout import rollout
from offrl_jax.envs.suite_stitching import stitching_gridworld, stitching_policies
from offrl_jax.envs.tabular import TabularMDP, policy_value, value_iteration
from offrl_jax.offline import BCConfig, BCQConfig, CQLConfig, IQLConfig, TD3BCConfig, bc, bcq, cql, iql, td3_bc

Array = Any

__all__ = [
    "TabularMethod",
    "MethodCurves",
    "tabular_methods",
    "method_curves",
    "seeds_curves",
    "shift_table",
    "stitching_data",
    "stitching_table",
    "METHODS",
    "ControlMethod",
    "control_methods",
    "continuous_methods",
    "control_dataset",
    "stack_datasets",
    "train_and_evaluate",
]

METHODS = ("FQI", "CQL", "BCQ", "IQL", "BC")


class TabularMethod(NamedTuple):
    """A learner and how to read its Q̂ table and policy table over observations 0..O−1.

    Attributes:
      name: display name.
      config: the method's config (hashable; static).
      make_learner: ``config -> core.Learner``.
      tables: ``(state, observations [O]) -> (q [O, A] (NaN if none), policy [O, A])``.
    """

    name: str
    config: Any
    make_learner: Callable
    tables: Callable


class MethodCurves(NamedTuple):
    """Per-chunk curves of one method (``[K]``, or ``[S, K]`` over seeds).

    Attributes:
      thinks: Σ_s d0(s) Σ_a π_k(a|s) Q̂_k(s, a) (NaN for BC).
      does: exact J(π_k).
      optimal: J(π*) of the MDP.
    """

    thinks: Array
    does: Array
    optimal: Array


def _one_hot_greedy(actions: Array, num_actions: int, dtype: Any) -> Array:
    return jax.nn.one_hot(actions, num_actions, dtype=dtype)


def tabular_methods(num_observations: int, num_actions: int, gamma: float, *, num_steps: int = 3000,
                    batch_size: int = 256, learning_rate: float = 0.05, hidden_sizes: tuple = (),
                    target_update_period: int = 100, cql_alpha: float = 1.0, bcq_threshold: float = 0.3,
                    iql_expectile: float = 0.9, iql_temperature: float = 3.0,
                    names: Sequence[str] = METHODS, dtype: str = "float32") -> Dict[str, TabularMethod]:
    """FQI, CQL, BCQ, IQL and BC on one-hot observations with shared settings (Adam)."""
    shared = dict(num_observations=num_observations, hidden_sizes=tuple(hidden_sizes), num_steps=num_steps,
                  batch_size=batch_size, learning_rate=learning_rate, dtype=dtype)
    q_shared = dict(num_actions=num_actions, gamma=gamma, target_update_period=target_update_period, **shared)

    def q_tables(read_q, read_actions):
        def tables(state, obs):
            q = read_q(state, obs)
            return q, _one_hot_greedy(read_actions(state, obs), num_actions, q.dtype)
        return tables

    def fqi_q(state, obs):
        return state.apply_fn(state.params, obs)

    cfgs = {
        "FQI": fitted.FittedQConfig(method="fqi", **q_shared),
        "CQL": CQLConfig(alpha=cql_alpha, **q_shared),
        "BCQ": BCQConfig(threshold=bcq_threshold, **q_shared),
        "IQL": IQLConfig(num_actions=num_actions, gamma=gamma, expectile=iql_expectile, temperature=iql_temperature,
                         tau=1.0 / target_update_period, **shared),
        "BC": BCConfig(num_actions=num_actions, **shared),
    }
    bcq_cfg, iql_cfg = cfgs["BCQ"], cfgs["IQL"]

    def bc_tables(state, obs):
        probs = bc.action_probs(state, obs)
        return jnp.full(probs.shape, jnp.nan, probs.dtype), probs

    out = {
        "FQI": TabularMethod("FQI", cfgs["FQI"], fitted.make_learner,
                             q_tables(fqi_q, lambda s, o: jnp.argmax(fqi_q(s, o), -1))),
        "CQL": TabularMethod("CQL", cfgs["CQL"], cql.make_learner, q_tables(cql.q_values, cql.act)),
        "BCQ": TabularMethod("BCQ", bcq_cfg, bcq.make_learner,
                             q_tables(bcq.q_values, lambda s, o: bcq.act(bcq_cfg, s, o))),
        "IQL": TabularMethod("IQL", iql_cfg, iql.make_learner,
                             q_tables(iql.q_values, lambda s, o: iql.act(iql_cfg, s, o))),
        "BC": TabularMethod("BC", cfgs["BC"], bc.make_learner, bc_tables),
    }
    return {n: out[n] for n in names}


def _discounted(mdp: TabularMDP) -> TabularMDP:
    return mdp if mdp.horizon is None else mdp.replace(horizon=None)


def method_curves(key: Array, data: Transitions, mdp: TabularMDP, method: TabularMethod,
                  num_chunks: int) -> MethodCurves:
    """Trains ``method`` on ``data`` in ``num_chunks`` equal chunks of its ``num_steps`` and returns
    thinks/does after each (module docstring). Pure and jit-able (sizes static); ``data`` must
    be validated first (``Transitions.create`` and the config's checks run when called eagerly).

    Args:
      key: PRNG key of the run.
      data: :class:`~offrl_jax.data.Transitions` with integer observations of ``mdp``.
      mdp: discounted tabular MDP (a finite horizon is dropped); gamma as the config's.
      method: a :class:`TabularMethod`.
      num_chunks: K, dividing ``config.num_steps``.

    Returns:
      :class:`MethodCurves` with ``[K]`` curves.
    """
    steps = method.config.num_steps
    if num_chunks < 1 or steps % num_chunks:
        raise ValueError(f"num_chunks: expected a divisor of num_steps = {steps}, found {num_chunks}")
    learner = method.make_learner(method.config)
    disc = _discounted(mdp)
    obs = jnp.arange(mdp.num_observations)

    def chunk(state, _):
        state, _ = learner.run(state, data, steps // num_chunks)
        q, pi = method.tables(state, obs)
        thinks = jnp.sum(pi * q, -1)[mdp.obs_of_state] @ mdp.initial.astype(q.dtype)
        return state, (thinks, policy_value(disc, pi.astype(mdp.rewards.dtype)))

    _, (thinks, does) = jax.lax.scan(chunk, learner.init(key, data), None, length=num_chunks)
    optimal = jnp.dot(disc.initial, jnp.max(value_iteration(disc).q_star, -1))
    return MethodCurves(thinks, does, optimal)


def seeds_curves(keys: Array, data: Transitions, mdp: TabularMDP, method: TabularMethod,
                 num_chunks: int) -> MethodCurves:
    """:func:`method_curves` for every key ``[S]`` as one jitted, vmapped program (``[S, K]``)."""
    method.make_learner(method.config).init(keys[0], data)  # host checks of the data
    fn = jax.jit(jax.vmap(lambda k, d: method_curves(k, d, mdp, method, num_chunks), in_axes=(0, None)))
    return fn(keys, data)


def _summary(curves: MethodCurves) -> Dict[str, float]:
    th, do = np.asarray(curves.thinks)[:, -1], np.asarray(curves.does)[:, -1]
    s = len(do)
    se = lambda x: float(np.std(x, ddof=1) / np.sqrt(s)) if s > 1 else float("nan")  # noqa: E731
    return {"thinks": float(np.mean(th)), "thinks_se": se(th), "does": float(np.mean(do)), "does_se": se(do),
            "overestimate": float(np.mean(th - do)), "overestimate_se": se(th - do)}


def shift_table(key: Array, mdp: TabularMDP, datasets: Dict[str, Transitions], methods: Dict[str, TabularMethod],
                num_seeds: int = 5, num_chunks: int = 10) -> Dict[str, Any]:
    """Thinks vs does of every method on every dataset, over ``num_seeds`` seeds.

    Returns:
      ``{"optimal": J(π*), "rows": [{"method", "data", "thinks", "does", "overestimate" (+ "_se"
      standard errors over seeds of the final chunk)}], "curves": {(method, data): MethodCurves}}``.
    """
    keys = jax.random.split(key, num_seeds)
    rows, curves, optimal = [], {}, None
    for dname, data in datasets.items():
        for mname, method in methods.items():
            c = seeds_curves(keys, data, mdp, method, num_chunks)
            optimal = float(np.asarray(c.optimal)[0])
            curves[(mname, dname)] = c
            rows.append({"method": mname, "data": dname, **_summary(c)})
    return {"optimal": optimal, "rows": rows, "curves": curves}


def stitching_data(key: Array, num_episodes: int = 200, epsilon: float = 0.1, horizon: int = 20,
                   room_size: int = 3, corridor_length: int = 3, gamma: float = 0.95):
    """The stitching gridworld (discounted) and a dataset: half the episodes from each behaviour
    policy of :func:`~offrl_jax.envs.suite_stitching.stitching_policies` (ε-soft).

    Returns:
      ``(mdp, data, policies)``.
    """
    mdp = stitching_gridworld(room_size, corridor_length, gamma=gamma, horizon=None)
    pols = stitching_policies(room_size, corridor_length, epsilon=epsilon)
    k1, k2 = jax.random.split(key)
    half = max(1, num_episodes // 2)
    parts = [to_transitions(rollout(k, mdp, p, half, horizon)) for k, p in ((k1, pols.first), (k2, pols.second))]
    data = Transitions.create(**{f: np.concatenate([np.asarray(getattr(p, f)) for p in parts])
                                 for f in ("observations", "actions", "rewards", "next_observations", "discounts")})
    return mdp, data, pols


def stitching_table(key: Array, methods: Dict[str, TabularMethod], mdp: TabularMDP, data: Transitions,
                    policies: Any, num_seeds: int = 5) -> Dict[str, Any]:
    """Exact J of each method's policy on the stitching gridworld (mean, se over seeds), next to
    J(π*), J of each behaviour policy and of their 50/50 mixture.

    Returns:
      ``{"optimal", "behavior_first", "behavior_second", "rows": [{"method", "value", "value_se",
      "fraction_of_optimal"}]}``.
    """
    keys = jax.random.split(key, num_seeds)
    optimal = float(jnp.dot(mdp.initial, jnp.max(value_iteration(mdp).q_star, -1)))
    rows = []
    for name, method in methods.items():
        s = _summary(seeds_curves(keys, data, mdp, method, 1))
        rows.append({"method": name, "value": s["does"], "value_se": s["does_se"],
                     "fraction_of_optimal": s["does"] / optimal, "thinks": s["thinks"]})
    return {
        "optimal": optimal,
        "behavior_first": float(policy_value(mdp, policies.first)),
        "behavior_second": float(policy_value(mdp, policies.second)),
        "rows": rows,
    }



# ---------------------------------------------------------------------------------------------
# gymnax control tasks: graded datasets from the hand-written controllers, Monte-Carlo returns.
# ---------------------------------------------------------------------------------------------
class ControlMethod(NamedTuple):
    """A learner on vector observations and its deterministic evaluation policy.

    Attributes:
      name: display name. config: its config. make_train: ``config -> train``.
      act: ``(state, observations [B, D]) -> actions [B]`` (discrete) or ``[B, d]`` (continuous).
      make_learner: ``config -> core.Learner`` (for runs in chunks, e.g. checkpoints).
    """

    name: str
    config: Any
    make_train: Callable
    act: Callable
    make_learner: Optional[Callable] = None


def control_methods(num_actions: int, gamma: float = 0.99, *, num_steps: int = 5000, batch_size: int = 256,
                    hidden_sizes: tuple = (64, 64), learning_rate: float = 1e-3, target_update_period: int = 500,
                    cql_alpha: float = 1.0, bcq_threshold: float = 0.3,
                    names: Sequence[str] = ("BC", "CQL", "BCQ", "IQL")) -> Dict[str, ControlMethod]:
    """BC, CQL, BCQ and IQL (and FQI) with MLPs on vector observations, shared settings (Adam)."""
    shared = dict(hidden_sizes=tuple(hidden_sizes), num_steps=num_steps, batch_size=batch_size,
                  learning_rate=learning_rate)
    q = dict(num_actions=num_actions, gamma=gamma, target_update_period=target_update_period, loss="huber", **shared)
    bcq_cfg = BCQConfig(threshold=bcq_threshold, **q)
    iql_cfg = IQLConfig(num_actions=num_actions, gamma=gamma, expectile=0.7, temperature=3.0,
                        tau=1.0 / target_update_period, **shared)
    bc_cfg = BCConfig(num_actions=num_actions, **shared)
    out = {
        "BC": ControlMethod("BC", bc_cfg, bc.make_train, lambda s, o: bc.act(bc_cfg, s, o), bc.make_learner),
        "FQI": ControlMethod("FQI", fitted.FittedQConfig(method="fqi", **q), fitted.make_train,
                             lambda s, o: jnp.argmax(s.apply_fn(s.params, o), -1), fitted.make_learner),
        "CQL": ControlMethod("CQL", CQLConfig(alpha=cql_alpha, **q), cql.make_train, cql.act, cql.make_learner),
        "BCQ": ControlMethod("BCQ", bcq_cfg, bcq.make_train, lambda s, o: bcq.act(bcq_cfg, s, o), bcq.make_learner),
        "IQL": ControlMethod("IQL", iql_cfg, iql.make_train, lambda s, o: iql.act(iql_cfg, s, o), iql.make_learner),
    }
    return {n: out[n] for n in names}


def continuous_methods(action_dim: int, max_action: float, gamma: float = 0.99, *, num_steps: int = 5000,
                       batch_size: int = 256, hidden_sizes: tuple = (64, 64), learning_rate: float = 1e-3,
                       tau: float = 0.005, iql_expectile: float = 0.7, iql_temperature: float = 3.0,
                       td3_alpha: float = 2.5,
                       names: Sequence[str] = ("BC", "IQL", "TD3+BC")) -> Dict[str, ControlMethod]:
    """Gaussian BC, continuous IQL and TD3+BC with MLPs on vector observations, shared settings (Adam).

    Actions are ``[d]`` floats in [−a_max, a_max]; every method is evaluated by its deterministic
    policy: the clipped Gaussian mean (BC, IQL) or the tanh actor (TD3+BC, target smoothing noise
    0.2 a_max clipped at 0.5 a_max as in Fujimoto & Gu 2021). See :mod:`offrl_jax.offline`.
    """
    shared = dict(hidden_sizes=tuple(hidden_sizes), num_steps=num_steps, batch_size=batch_size,
                  learning_rate=learning_rate, action_dim=action_dim, max_action=float(max_action))
    bc_cfg = BCConfig(**shared)
    iql_cfg = IQLConfig(gamma=gamma, expectile=iql_expectile, temperature=iql_temperature, tau=tau, **shared)
    td3_cfg = TD3BCConfig(gamma=gamma, alpha=td3_alpha, tau=tau, policy_noise=0.2 * float(max_action),
                          noise_clip=0.5 * float(max_action), **shared)
    out = {
        "BC": ControlMethod("BC", bc_cfg, bc.make_train, lambda s, o: bc.act(bc_cfg, s, o), bc.make_learner),
        "IQL": ControlMethod("IQL", iql_cfg, iql.make_train, lambda s, o: iql.act(iql_cfg, s, o), iql.make_learner),
        "TD3+BC": ControlMethod("TD3+BC", td3_cfg, td3_bc.make_train, td3_bc.act, td3_bc.make_learner),
    }
    return {n: out[n] for n in names}


def control_dataset(key: Array, env_name: str, epsilon: float, num_episodes: int, num_transitions: int,
                    horizon: Optional[int] = None) -> Transitions:
    """The first ``num_transitions`` logged steps of ``num_episodes`` episodes of the task's
    controller mixed with uniform actions (weight ``epsilon``: 0 the controller, 1 random);
    discrete actions ``[M]`` or, for Pendulum-v1, torques ``[M, 1]``."""
    ctrl = controller(env_name, epsilon)
    data = to_transitions(control_rollout(key, env_name, ctrl.policy, ctrl.params, num_episodes, horizon))
    if data.size < num_transitions:
        raise ValueError(f"num_episodes: {num_episodes} episodes gave {data.size} < num_transitions = "
                         f"{num_transitions} steps")
    return jax.tree_util.tree_map(lambda x: x[:num_transitions], data)


def stack_datasets(datasets: Sequence[Transitions]) -> Transitions:
    """``[D, M, ...]`` stack of equal-size datasets (for one program over datasets)."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *datasets)


def train_and_evaluate(keys: Array, eval_key: Array, datasets: Transitions, env_name: str, method: ControlMethod,
                       num_eval_episodes: int, gamma: float = 1.0, horizon: Optional[int] = None) -> Array:
    """Trains ``method`` for every key ``[S]`` on every stacked dataset ``[D, M, ...]`` and returns
    the Monte-Carlo returns of each learned policy, ``[D, S, num_eval_episodes]``, as one program
    (vmapped over datasets and seeds; callers jit it).

    Returns of the deterministic evaluation policy (``method.act``; discrete actions or
    continuous ``[d]`` ones), discount ``gamma`` (1: the task's undiscounted score), episodes
    ending at termination or the time limit."""
    train = method.make_train(method.config)

    def sample(state, obs, key):
        del key
        return method.act(state, obs[None])[0], jnp.zeros((), jnp.float32)

    def one(key, data):
        state = train(key, data).state
        return control_returns(eval_key, env_name, sample, state, num_eval_episodes, horizon, gamma)

    return jax.vmap(jax.vmap(one, in_axes=(0, None)), in_axes=(None, 0))(keys, datasets)
