"""The accuracy and selection study of every estimator on the suite and on gymnax tasks.

In the style of "Empirical Study of Off-Policy Policy Evaluation for Reinforcement Learning",
Voloshin et al. 2019 (COBS): for each problem, many datasets are drawn under the behaviour
policy, every estimator evaluates a family of K candidate policies on each dataset, and the
estimates are scored against the true values:

* accuracy: relative RMSE sqrt((1/D) Σ_d (Ĵ_d − J)²) / |J| of each estimator for each policy
  over D datasets (:func:`offrl_jax.selection.relative_rmse`);
* selection: on each dataset, Spearman's rank correlation of the K estimates with the K true
  values and the normalised regret@1 of picking the argmax (:mod:`offrl_jax.selection`, Fu et al.
  2021), averaged over datasets.

The candidate family of a tabular problem (:func:`candidate_policies`) holds the *mismatch*
policies (1 − α) π_b + α π_e for α from 0 (on-policy) to 1 (the problem's target) and the
*selection* candidates (1 − α) π_poor + α π_e, π_poor ∝ 1 − π_e (the target's actions avoided).
Exact truths come from backward induction over the T-step episodes
(:func:`~offrl_jax.envs.suite.problem_value`); gymnax tasks use ε-mixtures of a hand-written
controller and Monte-Carlo truths (:func:`~offrl_jax.envs.monte_carlo_value`).

Every dataset of every estimator and policy is one program: :func:`make_tabular_run` and
:func:`make_control_run` return ``run(keys[D]) -> {name: [D, K]}`` to be jitted once, with the
rollouts, the model and the K-policy estimators (:func:`offrl_jax.ope.evaluate_policies`,
:func:`offrl_jax.mis.many.tabular_time_mis_policies`) vmapped over datasets.

Model-based rows on tabular problems use the certainty-equivalence model estimated from the same
dataset (:func:`~offrl_jax.envs.estimate_mdp`, time-indexed Q̂^π by backward induction): it is the
fixed point of tabular, horizon-aware FQE (regressions solved exactly), so ``DM`` is FQE's
estimate and ``DR``/``WDR``/``MAGIC`` use the FQE Q̂.

Model-based rows on gymnax tasks use neural FQE (:mod:`offrl_jax.fitted`), cross-fitted by
trajectory halves (:func:`cross_fitted_control_terms`): the Q̂ that corrects a trajectory never
saw it ("Double/debiased machine learning", Chernozhukov et al. 2018). The network reads the
standardised observation and t / T, the horizon step is terminal ("Time Limits in Reinforcement
Learning", Pardo et al. 2018), so its fixed point is the value of episodes cut at T that the
Monte-Carlo truth measures. The D datasets × 2 folds × K policies train as one program.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax.core import ModelTerms
from offrl_jax.data import Trajectories, Transitions
from offrl_jax.envs import controller, control_rollout, estimate_mdp, model_q_hat, monte_carlo_value, rollout
from offrl_jax.envs.control import make_env
from offrl_jax.envs.suite import Problem, problem_value
from offrl_jax.fitted import FittedQConfig, make_train, q_model_terms, with_time
from offrl_jax.mis.many import tabular_time_mis_policies
from offrl_jax.ope.many import evaluate_policies, policy_log_ratios, stacked_log_probs, tabular_log_probs
from offrl_jax.selection import regret_at_k, spearman_rank_correlation

Array = Any

__all__ = [
    "TABULAR_ESTIMATORS",
    "CONTROL_ESTIMATORS",
    "CONTROL_IS_ESTIMATORS",
    "Candidates",
    "candidate_policies",
    "tabular_true_values",
    "make_tabular_run",
    "control_candidates",
    "control_true_values",
    "control_fqe_config",
    "time_aware_rows",
    "cross_fitted_control_terms",
    "make_control_run",
    "relative_rmse_table",
    "selection_scores",
]

_OPE_NAMES = {
    "IS": "is", "PDIS": "pdis", "WIS": "wis", "WPDIS": "wpdis", "DM": "dm", "DR": "dr", "WDR": "wdr", "MAGIC": "magic",
}
TABULAR_ESTIMATORS = ("IS", "PDIS", "WIS", "WPDIS", "DM", "DR", "WDR", "MAGIC", "MIS")
CONTROL_ESTIMATORS = ("IS", "PDIS", "WIS", "WPDIS", "DM", "DR", "WDR", "MAGIC")
CONTROL_IS_ESTIMATORS = CONTROL_ESTIMATORS[:4]


class Candidates(NamedTuple):
    """A family of K candidate policies.

    Attributes:
      policies: ``[K, O, A]`` tables (tabular) or a stacked pytree of parameters (control).
      labels: K short names (``"mix 0.50"``, ``"sel 0.25"``, ``"eps 0.30"``).
      mismatch: ``[K]`` bool, the policies of the mismatch sweep (π_b to π_e).
      selection: ``[K]`` bool, the policies of the selection family.
      alpha: ``[K]`` the mixture weight (or ε for control tasks).
    """

    policies: Any
    labels: tuple
    mismatch: np.ndarray
    selection: np.ndarray
    alpha: np.ndarray


def candidate_policies(problem: Problem, num_mismatch: int = 5, num_selection: int = 6) -> Candidates:
    """Mismatch sweep (1 − α) π_b + α π_e and selection family (1 − α) π_poor + α π_e.

    π_poor(a|o) = (1 − π_e(a|o)) / (A − 1), the policy that prefers what the target avoids. The
    α grids are ``linspace(0, 1, num_mismatch)`` and ``linspace(0, 1, num_selection)``.

    Raises:
      ValueError: if the behaviour policy does not cover a candidate (π_b = 0 where it acts).
    """
    b = np.asarray(problem.behavior, np.float64)
    e = np.asarray(problem.target, np.float64)
    a = e.shape[-1]
    poor = (1.0 - e) / (a - 1)
    am = np.linspace(0.0, 1.0, num_mismatch)
    asel = np.linspace(0.0, 1.0, num_selection)
    pols = [(1 - x) * b + x * e for x in am] + [(1 - x) * poor + x * e for x in asel]
    pols = np.stack(pols)
    if np.any((pols > 0) & (b[None] <= 0)):
        raise ValueError(f"problem: the behaviour policy of {problem.name!r} does not cover the candidate policies")
    labels = tuple(f"mix {x:.2f}" for x in am) + tuple(f"sel {x:.2f}" for x in asel)
    k1, k2 = num_mismatch, num_selection
    return Candidates(
        jnp.asarray(pols, problem.behavior.dtype), labels,
        np.r_[np.ones(k1, bool), np.zeros(k2, bool)], np.r_[np.zeros(k1, bool), np.ones(k2, bool)], np.r_[am, asel],
    )


def tabular_true_values(problem: Problem, policies: Array, horizon: int) -> np.ndarray:
    """``[K]`` exact J_T(π_k) of T-step episodes (float64 when x64 is on)."""
    dt = jnp.result_type(float)
    cast = lambda x: x.astype(dt) if jnp.issubdtype(x.dtype, jnp.floating) else x  # noqa: E731
    p = problem._replace(mdp=jax.tree.map(cast, problem.mdp), horizon=horizon)
    value = jax.jit(jax.vmap(lambda pi: problem_value(p, pi)))
    return np.asarray(value(jnp.asarray(policies, dt)), np.float64)


def make_tabular_run(
    num_episodes: int, horizon: int, *, num_resamples: int = 50
) -> Callable[[Array, Any, Array, Array], dict]:
    """``run(keys[D], mdp, behavior[O, A], policies[K, O, A]) -> {estimator: [D, K]}``.

    D datasets of N T-step episodes, K policies each. Per dataset: a
    :func:`~offrl_jax.envs.rollout` under ``behavior``; the K policies' log ratios
    (:func:`~offrl_jax.ope.tabular_log_probs`); the certainty-equivalence model and its
    time-indexed Q̂^{π_k} along the data (model terms); the OPE estimators of
    :data:`TABULAR_ESTIMATORS` (one :func:`~offrl_jax.ope.evaluate_policies`, MAGIC with
    ``num_resamples`` bootstrap resamples) and pooled time-indexed MIS. The MDP and the policies
    are arguments, not constants of the program (XLA would fold them at compile time); jit the
    result.
    """

    def run(keys, mdp, behavior, policies):
        o, a = behavior.shape
        gamma = mdp.gamma

        def one(key):
            tr = rollout(key, mdp, behavior, num_episodes, horizon)
            lp = tabular_log_probs(policies, tr.observations, tr.actions, tr.mask)
            lr = policy_log_ratios(lp, tr.behavior_log_probs, tr.mask)
            model = estimate_mdp(tr, o, a, gamma, horizon)
            terms = jax.vmap(lambda pi: model_q_hat(model, pi, tr))(policies)
            dt = tr.rewards.dtype
            out = evaluate_policies(
                tr.rewards, lr, tr.mask, gamma, terms.q_taken.astype(dt), terms.v_hat.astype(dt),
                estimators=tuple(_OPE_NAMES.values()), key=jax.random.fold_in(key, 1), num_resamples=num_resamples,
                validate=False,
            )
            out = {name: out[_OPE_NAMES[name]] for name in _OPE_NAMES}
            out["MIS"] = tabular_time_mis_policies(
                tr.observations, tr.actions, tr.next_observations, tr.discounts, tr.mask, tr.rewards, policies, gamma,
                pooled=True,
            )
            return out

        return jax.vmap(one)(keys)

    return run


def control_candidates(task: str, epsilons: Sequence[float], dtype: Any = jnp.float32) -> Candidates:
    """The ε-mixtures of a task's controller (:func:`~offrl_jax.envs.controller`) as a stacked pytree.

    Every candidate belongs to both the mismatch sweep and the selection family.
    """
    params = [controller(task, e, dtype).params for e in epsilons]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *params)
    k = len(epsilons)
    labels = tuple(f"eps {e:.2f}" for e in epsilons)
    return Candidates(stacked, labels, np.ones(k, bool), np.ones(k, bool), np.asarray(epsilons))


def control_true_values(
    key: Array, task: str, epsilons: Sequence[float], horizon: int, gamma: float, num_episodes: int
) -> tuple:
    """``([K] Monte-Carlo means, [K] standard errors)`` of the controller's ε-mixtures."""
    pol = controller(task, 0.0).policy
    cands = control_candidates(task, epsilons)
    mc = jax.jit(jax.vmap(lambda p: monte_carlo_value(key, task, pol, p, num_episodes, horizon, gamma)))(
        cands.policies
    )
    return np.asarray(mc.mean, np.float64), np.asarray(mc.standard_error, np.float64)


def control_fqe_config(
    task: str,
    gamma: float,
    *,
    hidden_sizes: tuple = (64, 64),
    num_steps: int = 3000,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    target_update_period: int = 10,
) -> FittedQConfig:
    """The FQE config of the gymnax rows: an MLP Q̂ over the task's actions, Adam, hard target copies.

    With the defaults (MLP 64x64, 3000 steps, a target copy every 10 steps: 300 Bellman backups,
    enough for γ = 0.99 at T = 200), datasets of N = 128 CartPole episodes under the ε = 0.5
    controller give cross-fitted FQE estimates of the five ε-mixtures with relative RMSE 2–13%
    against their Monte-Carlo values (two datasets).
    """
    env, _ = make_env(task)
    return FittedQConfig(
        num_actions=int(env.num_actions), method="fqe", gamma=float(gamma), hidden_sizes=tuple(hidden_sizes),
        num_steps=num_steps, batch_size=batch_size, learning_rate=learning_rate,
        target_update_period=target_update_period,
    )


def time_aware_rows(key: Array, traj: Trajectories, horizon: int) -> Transitions:
    """``[N T]`` time-aware transitions of padded trajectories, inside jit (fixed shapes).

    Row (n, t) is (o_t ⊕ t/T, a_t, r_t, o_{t+1} ⊕ (t+1)/T, d_t), with d_t = 0 where the episode
    terminates or t + 1 = T (:func:`~offrl_jax.fitted.with_time`; the host-side
    :func:`~offrl_jax.fitted.time_aware_transitions` drops padding instead, which changes the
    shape). A padded row is replaced by a real one: with C real rows in an order drawn from
    ``key``, row i holds real row ``order[i mod C]``, so every real transition appears ⌊NT/C⌋ or
    ⌈NT/C⌉ times (the extra copies on a random subset) and the FQE regression sees real
    transitions only.

    Args:
      key: PRNG key of the order of the real rows.
      traj: float observations ``[N, T, D]``, ``mask`` a prefix of ones per row.
      horizon: T, the step at which every episode is cut (Python int).

    Returns:
      :class:`~offrl_jax.data.Transitions` ``[N T]`` with observations ``[N T, D + 1]``.
    """
    n, t = traj.rewards.shape
    steps = jnp.broadcast_to(jnp.arange(t), (n, t))
    obs = with_time(traj.observations, steps, horizon)
    nxt = with_time(traj.next_observations, steps + 1, horizon)
    disc = jnp.where(steps + 1 >= horizon, 0.0, traj.discounts).astype(traj.discounts.dtype)
    real = traj.mask.reshape(-1) > 0
    order = jnp.argsort(jnp.where(real, jax.random.uniform(key, real.shape), 2.0))
    idx = order[jnp.arange(n * t) % jnp.maximum(jnp.sum(real), 1)]
    take = lambda x: x.reshape((n * t,) + x.shape[2:])[idx]  # noqa: E731
    return Transitions(observations=take(obs), actions=take(traj.actions), rewards=take(traj.rewards),
                       next_observations=take(nxt), discounts=take(disc))


def cross_fitted_control_terms(
    key: Array, traj: Trajectories, log_prob: Callable, policies: Any, config: FittedQConfig, horizon: int
) -> ModelTerms:
    """Neural FQE Q̂ of K policies on a gymnax dataset as cross-fitted ``[K, N, T]`` model terms.

    The trajectories are split in halves (rows [0, N/2) and [N/2, N)); for each half and each
    policy k, FQE (``config``, :func:`~offrl_jax.fitted.make_train`) fits Q̂_k on the *other*
    half's :func:`time_aware_rows` and gives q_taken = Q̂_k(s_t, a_t), v_hat = Σ_a π_k(a|s_t)
    Q̂_k(s_t, a) on this half (:func:`~offrl_jax.fitted.q_model_terms`). The network reads
    observations standardised with the fitting half's mean and standard deviation and t / T, and
    trains on rewards scaled by c = 1 − γ (c = 1 when γ = 1; the FQE fixed point is linear in
    the rewards, so the terms are divided by c). Both halves and all K policies are vmapped: one
    program. See "Batch Policy Learning under Constraints", Le, Voloshin & Yue 2019, and
    "Doubly Robust Off-policy Value Evaluation for Reinforcement Learning", Jiang & Li 2016.

    Args:
      key: PRNG key (network initialisation and minibatches; the same for every policy).
      traj: float observations ``[N, T, D]``, N even.
      log_prob: ``(params, obs [D], action) -> log π(action | obs)`` of the candidates (static).
      policies: stacked parameters, leading axis K.
      config: an FQE :class:`~offrl_jax.fitted.FittedQConfig` (discrete actions).
      horizon: T (Python int).

    Returns:
      :class:`~offrl_jax.core.ModelTerms` with ``[K, N, T]`` fields in the rewards' dtype.
    """
    n, t = traj.rewards.shape
    if n % 2 or n < 2:
        raise ValueError(f"traj: cross-fitting by halves needs an even number of trajectories N >= 2, found {n}")
    h, d = n // 2, traj.observations.shape[-1]
    dt = traj.rewards.dtype
    scale = 1.0 - config.gamma if config.gamma < 1 else 1.0
    actions = jnp.arange(config.num_actions)
    halves = jax.tree.map(lambda x: jnp.stack([x[:h], x[h:]]), traj)

    def fold(f):
        fit = jax.tree.map(lambda x: x[1 - f], halves)
        use = jax.tree.map(lambda x: x[f], halves)
        k_rows, k_net = jax.random.split(jax.random.fold_in(key, f))
        rows = time_aware_rows(k_rows, fit, horizon)
        real = fit.mask.reshape(-1, 1) > 0
        raw = fit.observations.reshape(-1, d)
        cnt = jnp.maximum(jnp.sum(real), 1)
        mu = jnp.sum(jnp.where(real, raw, 0.0), 0, keepdims=True) / cnt
        sd = jnp.sqrt(jnp.sum(jnp.where(real, (raw - mu) ** 2, 0.0), 0, keepdims=True) / cnt)
        sd = jnp.where(sd > 0, sd, 1.0)

        def std(x):  # [..., D + 1]: the observation standardised, t / T kept
            lead = x.shape[:-1]
            o = (x[..., :d].reshape(-1, d) - mu) / sd
            return jnp.concatenate([o.reshape(lead + (d,)), x[..., d:]], -1)
        rows = rows.replace(observations=std(rows.observations), next_observations=std(rows.next_observations),
                            rewards=rows.rewards * scale)
        x_use = std(with_time(use.observations, jnp.arange(t), horizon))

        def one_policy(params):
            def probs(x):  # [B, D + 1] -> [B, A]: the candidate reads the raw observation
                o = x[:, :d] * sd + mu
                return jnp.exp(jax.vmap(lambda ob: jax.vmap(lambda a: log_prob(params, ob, a))(actions))(o))

            state = make_train(config, probs).unchecked(k_net, rows).state
            terms = q_model_terms(state.apply_fn, state.params, x_use, use.actions, use.mask, probs)
            return ModelTerms(*(a.astype(dt) / scale for a in terms))

        return jax.vmap(one_policy)(policies)

    terms = jax.vmap(fold)(jnp.arange(2))  # [2, K, N/2, T]: fold f holds the terms of half f
    return ModelTerms(*(jnp.moveaxis(a, 0, 1).reshape(a.shape[1], n, t) for a in terms))


def make_control_run(
    task: str,
    behavior_epsilon: float,
    epsilons: Sequence[float],
    num_episodes: int,
    horizon: int,
    gamma: float,
    *,
    fqe: Optional[FittedQConfig] = None,
    num_resamples: int = 50,
) -> Callable[[Array], dict]:
    """``run(keys[D]) -> {estimator: [D, K]}`` on a gymnax task, one vmap over the D datasets.

    Per dataset: :func:`~offrl_jax.envs.control_rollout` of N episodes of at most T steps under
    the controller with ``behavior_epsilon``; the K candidates' log-probabilities from their
    stacked parameters (:func:`~offrl_jax.ope.stacked_log_probs`); the IS family
    (:data:`CONTROL_IS_ESTIMATORS`) for all K and, with ``fqe`` given, DM, DR, WDR and MAGIC
    (``num_resamples`` bootstrap resamples) from :func:`cross_fitted_control_terms` (all of
    :data:`CONTROL_ESTIMATORS`). Jit the result.
    """
    pol, b_params = controller(task, behavior_epsilon)
    cands = control_candidates(task, epsilons)
    names = CONTROL_IS_ESTIMATORS if fqe is None else CONTROL_ESTIMATORS
    if fqe is not None and (num_episodes % 2 or abs(fqe.gamma - gamma) > 1e-12):
        raise ValueError(f"fqe: expected an even num_episodes and fqe.gamma = gamma, found N = {num_episodes}, "
                         f"fqe.gamma = {fqe.gamma}, gamma = {gamma}")

    def one(key):
        tr = control_rollout(key, task, pol, b_params, num_episodes, horizon)
        lp = stacked_log_probs(pol.log_prob, cands.policies, tr.observations, tr.actions, tr.mask)
        lr = policy_log_ratios(lp, tr.behavior_log_probs, tr.mask)
        q = v = None
        if fqe is not None:
            q, v = cross_fitted_control_terms(jax.random.fold_in(key, 2), tr, pol.log_prob, cands.policies, fqe, horizon)
        out = evaluate_policies(
            tr.rewards, lr, tr.mask, jnp.asarray(gamma, tr.rewards.dtype), q, v,
            estimators=tuple(_OPE_NAMES[n] for n in names), key=jax.random.fold_in(key, 1),
            num_resamples=num_resamples, validate=False,
        )
        return {name: out[_OPE_NAMES[name]] for name in names}

    return jax.vmap(one)


def relative_rmse_table(estimates: dict, truth: np.ndarray) -> dict:
    """``{estimator: [K] relative RMSE over datasets}`` from ``{estimator: [D, K]}`` estimates.

    sqrt((1/D) Σ_d (Ĵ_dk − J_k)²) / |J_k| (:func:`offrl_jax.selection.relative_rmse`; NaN where
    J_k = 0).
    """
    truth = np.asarray(truth, np.float64)
    out = {}
    for name, est in estimates.items():
        err = np.asarray(est, np.float64) - truth[None]
        rmse = np.sqrt(np.mean(err**2, axis=0))
        with np.errstate(divide="ignore", invalid="ignore"):
            out[name] = np.where(truth != 0, rmse / np.abs(truth), np.nan)
    return out


def selection_scores(estimates: dict, truth: np.ndarray, members: np.ndarray) -> dict:
    """``{estimator: (mean Spearman ρ, its s.e., mean regret@1, its s.e.)}`` over datasets.

    On each dataset d, ρ_d = Spearman(Ĵ_d[members], J[members]) and regret@1_d as in
    :func:`offrl_jax.selection.regret_at_k` (normalised by the family's max − min); both
    vmapped over datasets in one call each.
    """
    idx = np.flatnonzero(members)
    tru = jnp.asarray(np.asarray(truth, np.float64)[idx])

    def scores(e):
        t = tru.astype(e.dtype)
        return jnp.stack([spearman_rank_correlation(e, t), regret_at_k(e, t, 1)])

    def se(x):
        return float(np.std(x, ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")

    score = jax.jit(jax.vmap(scores))
    out = {}
    for name, est in estimates.items():
        s = np.asarray(score(jnp.asarray(est)[:, idx]), np.float64)
        rho, reg = s[:, 0], s[:, 1]
        rho_ok = rho[np.isfinite(rho)]  # a dataset whose K estimates are all equal has no rank correlation
        out[name] = (float(np.mean(rho_ok)) if len(rho_ok) else float("nan"), se(rho_ok), float(np.mean(reg)), se(reg))
    return out
