"""Writes the lecture notebooks (``notebooks/*.ipynb``) from the cell sources below.

Each notebook is kept here as plain Python in "percent" format: ``# %%`` starts a code cell and
``# %% [markdown]`` a markdown cell whose lines are ``# ``-commented. The script writes nbformat 4
JSON directly (no nbformat or jupyter needed), without outputs, so the notebooks can be
regenerated after an edit:

    python notebooks/build_notebooks.py

The committed notebooks carry their outputs and figures (embedded PNG), so that a code host shows
them. ``--execute`` runs each notebook in a Jupyter kernel first (nbclient and ipykernel, the
``notebooks`` extra) and writes it with its outputs; every file is written atomically (temporary
file, then ``os.replace``):

    python notebooks/build_notebooks.py --execute [NAME ...]

``tests/test_notebooks.py`` runs the code cells of each written notebook and checks its results.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from typing import Dict, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))

OPE = r'''
# %% [markdown]
# # 1. Off-policy evaluation: importance sampling, doubly robust, MAGIC, confidence bounds
#
# A behaviour policy $\pi_\beta$ logged $N$ trajectories $\tau_n = (s_0, a_0, r_0, \dots, s_{T-1}, a_{T-1}, r_{T-1})$.
# We want the value of another policy $\pi$,
# $$J(\pi) = \mathbb{E}_{\pi}\Big[\sum_{t=0}^{T-1} \gamma^t r_t\Big],$$
# without running $\pi$. Every estimator below is compared with the **exact** $J(\pi)$, computed by
# backward induction on the tabular MDP that generated the data.
#
# Notation (as in the library): per-step ratios $\rho_t = \pi(a_t|s_t)/\pi_\beta(a_t|s_t)$, cumulative
# weights $w_{0:t} = \prod_{k\le t}\rho_k$ (computed in log space), returns $G_n = \sum_t \gamma^t r^n_t$.

# %%
import sys

import jax

jax.config.update("jax_enable_x64", True)  # exact solves and estimators in float64
import jax.numpy as jnp
import numpy as np

try:  # figures are optional
    import matplotlib

    if "ipykernel" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    plt = None

from offrl_jax import core, ope
from offrl_jax.envs import estimate_mdp, model_q_hat, rollout
from offrl_jax.envs.suite import graph_policy, make_problem, problem_value

results = {}  # key numbers of this notebook (checked by tests/test_notebooks.py)

# %% [markdown]
# ## The problem: the COBS Graph
# 32 states in columns, two actions, $T = 16$ steps, $\gamma = 0.98$, stochastic transitions (the
# intended next state with probability 0.75) and a dense reward of $\pm 1$. Both policies ignore the
# state: $\pi_\beta(a_0) = 0.8$ and $\pi(a_0) = 0.2$, so the target does mostly what the behaviour
# rarely does. `make_problem` bundles the MDP, the two policies, $N = 256$ and $T = 16$.

# %%
problem = make_problem("graph", dtype=jnp.float64)
mdp, gamma, N, T = problem.mdp, float(problem.mdp.gamma), problem.num_episodes, problem.horizon
true_value = float(problem_value(problem))                       # exact J(pi), backward induction
behavior_value = float(problem_value(problem, problem.behavior))  # exact J(pi_beta)

collect = jax.jit(rollout, static_argnums=(3, 4))  # one compile, reused below
data = collect(jax.random.key(0), mdp, problem.behavior, N, T, problem.target)
returns = data.returns(gamma)
print(f"J(pi) = {true_value:.4f}   J(pi_beta) = {behavior_value:.4f}")
print(f"mean logged return = {float(returns.mean()):.4f}  (estimates J(pi_beta), not J(pi))")
results.update(true_value=true_value, behavior_value=behavior_value)

# %% [markdown]
# ## Importance sampling (Precup, Sutton & Singh 2000)
# $$\hat J_{IS} = \frac1N\sum_n w^n_{0:T-1} G_n, \qquad
#   \hat J_{PDIS} = \frac1N \sum_n \sum_t \gamma^t w^n_{0:t} r^n_t,$$
# both unbiased (PDIS weights a reward only by the ratios of the actions before it). The
# self-normalised forms divide by the sum of weights instead of $N$:
# $$\hat J_{WIS} = \frac{\sum_n w^n_{0:T-1} G_n}{\sum_n w^n_{0:T-1}}, \qquad
#   \hat J_{WPDIS} = \sum_t \gamma^t \frac{\sum_n w^n_{0:t} r^n_t}{\sum_n w^n_{0:t}},$$
# biased but consistent, and WIS always lies in $[\min_n G_n, \max_n G_n]$.
#
# ## Models: direct method, doubly robust, WDR, MAGIC
# A model $\hat Q$ (here the maximum-likelihood tabular model fitted to the same data, solved exactly
# for $\pi$) gives the *direct method* $\hat J_{DM} = \frac1N\sum_n \hat V(s^n_0)$ with
# $\hat V(s) = \sum_a \pi(a|s)\hat Q(s,a)$. *Doubly robust* (Jiang & Li 2016) uses $\hat Q$ as a control
# variate inside PDIS, by the backward recursion
# $$V_{DR}(T) = 0,\qquad V_{DR}(t) = \hat V(s_t) + \rho_t\big(r_t + \gamma V_{DR}(t+1) - \hat Q(s_t,a_t)\big),
#   \qquad \hat J_{DR} = \frac1N\sum_n V^n_{DR}(0).$$
# WDR self-normalises the weights at each step; MAGIC (Thomas & Brunskill 2016) mixes the off-policy
# $j$-step returns $g^{(j)}$ (model after step $j$, WDR before it) with simplex weights
# $x^\star = \arg\min_{x\in\Delta} x^\top(\hat\Omega + \hat b\hat b^\top)x$ that trade the
# covariance $\hat\Omega$ against a bootstrap bias estimate $\hat b$.
#
# `ope.evaluate` runs them all in one compiled program, with Student-t intervals for the means of
# i.i.d. terms (IS, PDIS, DM, DR) and percentile-bootstrap intervals for the ratio estimators.

# %%
@jax.jit
def fit_model(d):
    """Maximum-likelihood tabular model, solved exactly for pi: Q_hat(s_t, a_t), V_hat(s_t), [N, T]."""
    model = estimate_mdp(d, mdp.num_observations, mdp.num_actions, gamma, horizon=T)
    return model_q_hat(model, problem.target, d)


q_taken, v_hat = fit_model(data)
table = ope.evaluate(
    data, problem.target, gamma, estimators=("is", "pdis", "wis", "wpdis", "dm", "dr", "wdr", "magic"),
    q_hat=ope.ModelTerms(q_taken, v_hat), true_value=true_value, key=jax.random.key(1), num_resamples=200,
)
print(table)
results["estimates"] = table.to_dict()
results["return_range"] = (float(returns.min()), float(returns.max()))

# %% [markdown]
# IS is far off, with a *narrow* interval: the trajectory weights are products of 16 factors in
# $\{0.25, 4\}$, almost all trajectories carry a tiny weight and the rare heavy ones were never drawn.
# The interval is only as good as the sample variance, which is itself badly underestimated. The
# model-based estimators are far better here because the MDP is fully observed and the model is
# nearly right; DR keeps it honest with the importance-weighted correction.
#
# ## Confidence bounds
# With a milder target, $\pi(a_0) = 0.6$, compare an approximate Student-t lower bound
# $\bar X - t_{1-\delta,N-1}\hat\sigma/\sqrt N$ on the IS terms $X_n = w^n G_n$ with the
# finite-sample HCOPE bound (Thomas, Theocharous & Ghavamzadeh 2015): normalise the returns to
# $[0,1]$, truncate $Y_n = \min(X_n, c)$ at a $c$ chosen on 5% of the data, and apply the empirical
# Bernstein inequality on the rest,
# $$LB = \bar Y - \frac{7c\ln(2/\delta)}{3(n-1)} - \sqrt{\frac{2\ln(2/\delta)\, s^2_Y}{n}} .$$

# %%
mild = graph_policy(mdp, 0.6)
mild_value = float(problem_value(problem, mild))
data_mild = collect(jax.random.key(2), mdp, problem.behavior, N, T, mild)  # same shapes: no recompile
log_ratios_mild = ope.log_importance_ratios(data_mild.target_log_probs, data_mild.behavior_log_probs, data_mild.mask)
log_w = jnp.sum(log_ratios_mild, axis=1)             # log w_{0:T-1} per trajectory
g_mild = data_mild.returns(gamma)
g_max = (1 - gamma**T) / (1 - gamma)                 # |r| <= 1, so G in [-g_max, g_max]
t_lower = ope.student_t_interval(jnp.exp(log_w) * g_mild, 0.95, side="lower").lower
hcope = jax.jit(ope.hcope_lower_bound, static_argnames="confidence")(
    jax.random.key(3), log_w, g_mild, -g_max, g_max, confidence=0.95)
print(f"J(pi_mild) = {mild_value:.4f}; IS estimate = {float(hcope.estimate):.4f}")
print(f"95% lower bounds: Student-t {float(t_lower):.4f} (approximate), HCOPE {float(hcope.lower):.4f} (exact)")
results.update(mild_value=mild_value, t_lower=float(t_lower), hcope_lower=float(hcope.lower),
               hcope_estimate=float(hcope.estimate))

# %% [markdown]
# ## Why importance weights explode with the horizon
# Both policies here ignore the state, so the ratios are i.i.d. across steps with
# $\mathbb{E}_\beta[\rho] = 1$ and $c = \mathbb{E}_\beta[\rho^2] = \sum_a \pi(a)^2/\pi_\beta(a)$. Hence
# $$\mathbb{E}_\beta\big[w_{0:t}^2\big] = c^{\,t+1},$$
# exponential in the horizon, and the effective sample size of the weights at step $t$,
# $\mathrm{ESS}_t = (\sum_n w^n_{0:t})^2/\sum_n (w^n_{0:t})^2 \approx N / c^{t+1}$, collapses: for
# $\pi(a_0) = 0.2$, $c = 0.04/0.8 + 0.64/0.2 = 3.25$, so after 4 steps only about 1% of the data
# is effectively used. This is what marginalised importance sampling (notebook 2) fixes.

# %%
def ess_curves(pi_a0, d):
    pi, beta = np.array([pi_a0, 1 - pi_a0]), np.array([0.8, 0.2])
    c = float(np.sum(pi**2 / beta))
    lr = ope.log_importance_ratios(d.target_log_probs, d.behavior_log_probs, d.mask)
    return c, np.asarray(core.per_timestep_ess(lr, d.mask))

c_far, ess_far = ess_curves(0.2, data)
c_mild, ess_mild = ess_curves(0.6, data_mild)
steps = np.arange(T)
for t in (0, 1, 3, 7, 15):
    print(f"t={t:2d}  ESS (pi=0.2): {ess_far[t]:7.2f} vs N/c^(t+1) = {N / c_far ** (t + 1):9.4f}   "
          f"ESS (pi=0.6): {ess_mild[t]:7.2f} vs {N / c_mild ** (t + 1):7.2f}")
results.update(c_far=c_far, c_mild=c_mild, ess_far=ess_far, ess_mild=ess_mild)
if plt is not None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.semilogy(steps, ess_far / N, "o-", label=r"$\pi(a_0)=0.2$: data")
    ax.semilogy(steps, c_far ** -(steps + 1.0), "k--", label=r"$c^{-(t+1)}$, $c=3.25$")
    ax.semilogy(steps, ess_mild / N, "s-", label=r"$\pi(a_0)=0.6$: data")
    ax.semilogy(steps, c_mild ** -(steps + 1.0), "k:", label=r"$c^{-(t+1)}$, $c=1.25$")
    ax.set(xlabel="step t", ylabel="ESS / N", title="Importance weights collapse with the horizon")
    ax.legend(fontsize=8)
    fig.tight_layout()

# %% [markdown]
# The measured ESS sits at or above $N/c^{t+1}$ for large $t$ because the heavy tail of $w$ is not
# sampled: the sample second moment underestimates $c^{t+1}$, which is exactly why IS looked
# confident and was wrong above.
'''

MIS_PG = r'''
# %% [markdown]
# # 2. Marginalised importance sampling and offline policy gradients
#
# Notebook 1 showed that the product of ratios $w_{0:t} = \prod_{k\le t}\rho_k$ has second moment
# $c^{t+1}$: its variance is exponential in the horizon. Marginalised importance sampling (MIS)
# replaces the product by a ratio of *state-action distributions*, which does not compound:
# $$w_t(s,a) = \frac{d^\pi_t(s,a)}{d^{\pi_\beta}_t(s,a)}, \qquad
#   \hat J_{MIS} = \frac1N\sum_n\sum_t \gamma^t\, \hat w_t(s^n_t,a^n_t)\, r^n_t .$$
# The same importance weights then give offline policy gradients.

# %%
import sys

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np
import optax

try:
    import matplotlib

    if "ipykernel" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    plt = None

from offrl_jax import mis, ope, pg, policies
from offrl_jax.envs import exact_ratios, logged_distribution, occupancy, policy_value, rollout
from offrl_jax.envs.suite import make_problem, problem_value

results = {}
collect = jax.jit(rollout, static_argnums=(3, 4))

# %% [markdown]
# ## Finite horizon: time-indexed MIS (Xie, Ma & Wang 2019)
# Estimate the target's marginals forward in time from counts: with $\hat d^D_t(s,a)$ the fraction of
# trajectories at $(s,a)$ at step $t$ and $\hat P$ the empirical transition model,
# $$\hat d^\pi_0(s,a) = \hat d^D_0(s)\pi(a|s),\qquad
#   \hat d^\pi_{t+1}(s',a') = \pi(a'|s')\sum_{s,a}\hat d^\pi_t(s,a)\hat P_t(s'|s,a),\qquad
#   \hat w_t = \hat d^\pi_t / \hat d^D_t .$$
# No behaviour probabilities are needed. On the Graph problem of notebook 1 ($T = 16$, target far
# from behaviour) compare with PDIS on the same data, over 32 independent datasets.

# %%
graph = make_problem("graph", dtype=jnp.float64)
g_mdp, g_gamma = graph.mdp, float(graph.mdp.gamma)
g_true = float(problem_value(graph))


def finite_horizon_estimates(key):
    """One dataset of N = 256 episodes: PDIS and time-indexed MIS (per-step and pooled models)."""
    d = rollout(key, g_mdp, graph.behavior, graph.num_episodes, graph.horizon, graph.target)
    log_ratios = ope.log_importance_ratios(d.target_log_probs, d.behavior_log_probs, d.mask)
    out = {"pdis": ope.per_decision_is(d.rewards, log_ratios, d.mask, g_gamma, validate=False)}
    for name, pooled in (("mis", False), ("mis_pooled", True)):
        r = mis.tabular_time_ratios(d.observations, d.actions, d.next_observations, d.discounts, d.mask,
                                    graph.target, pooled=pooled)
        out[name] = mis.mis_finite_horizon(r.weights, d.rewards, d.mask, g_gamma)
    return out, d


# 32 independent datasets at once: jax.vmap over PRNG keys, one compiled program.
many, datasets = jax.jit(jax.vmap(finite_horizon_estimates))(jax.random.split(jax.random.key(0), 32))
g_data = jax.tree_util.tree_map(lambda x: x[0], datasets)  # the first dataset, reused below
fh = {k: float(v[0]) for k, v in many.items()}
rmse = {k: float(jnp.sqrt(jnp.mean((v - g_true) ** 2))) for k, v in many.items()}
print(f"exact J(pi) = {g_true:.4f}")
for k in many:
    print(f"{k:11s} first dataset {fh[k]:8.4f} (error {fh[k] - g_true:+.4f});  RMSE over 32 datasets {rmse[k]:.3f}")
results.update(graph_true=g_true, graph=fh, graph_rmse=rmse, graph_many={k: np.asarray(v) for k, v in many.items()})

# %% [markdown]
# MIS is as accurate as the model-based estimators of notebook 1, an order of magnitude better than
# PDIS. On this layered graph every state is visited at a single step, so the per-step and pooled
# transition models coincide, and tabular MIS equals the certainty-equivalence (model) estimate.

# %% [markdown]
# ## Discounted, infinite horizon: the Bellman-flow equation
# For $\gamma < 1$ the normalised occupancy $d^\pi(s,a) = (1-\gamma)\sum_t\gamma^t \Pr_\pi(s_t=s,a_t=a)$
# satisfies $d^\pi = (1-\gamma)\,d_0 + \gamma P_\pi^\top d^\pi$, and $J(\pi) = \mathbb{E}_{d^\pi}[r]/(1-\gamma)$.
# `mis.tabular_ratios` solves the empirical flow equation from counts for $w = d^\pi/d^D$
# (`mis.tabular_mis` does the same from a `Trajectories` container, with host-side checks), and
# `mis.mis_estimate` returns $\hat J = \frac{1}{1-\gamma}\frac1M\sum_m w(s_m,a_m)r_m$. On the 20-state chain walk
# (Lagoudakis & Parr 2003; uniform behaviour, target 0.1-greedy on $Q^*$, 100 episodes of 100 steps)
# the product weights over 100 steps are hopeless, while MIS needs only the ratio of two
# distributions over 40 pairs. The exact ratios come from `occupancy` and
# `mis.logged_distribution`.

# %%
chain = make_problem("chain_walk_20", dtype=jnp.float64)
c_mdp, c_gamma = chain.mdp, float(chain.mdp.gamma)
c_true = float(policy_value(c_mdp, chain.target))       # infinite-horizon discounted J(pi)


@jax.jit
def chain_estimates(key):
    d = rollout(key, c_mdp, chain.behavior, chain.num_episodes, chain.horizon, chain.target)
    ratios = mis.tabular_ratios(d.observations, d.actions, d.next_observations, d.discounts, d.mask,
                                d.observations[:, 0], chain.target, c_gamma)
    w = mis.ratios_at(ratios.weights, d.observations, d.actions)          # w(s_m, a_m), [N, T]
    log_ratios = ope.log_importance_ratios(d.target_log_probs, d.behavior_log_probs, d.mask)
    return dict(
        mis=mis.mis_estimate(w, d.rewards, d.mask, c_gamma),
        mis_sn=mis.mis_estimate(w, d.rewards, d.mask, c_gamma, self_normalize=True),
        pdis=ope.per_decision_is(d.rewards, log_ratios, d.mask, c_gamma, validate=False),
        ratios=ratios.weights,
    )


est = chain_estimates(jax.random.key(2))
exact = exact_ratios(occupancy(c_mdp, chain.target), logged_distribution(c_mdp, chain.behavior, chain.horizon))
ratio_err = float(jnp.max(jnp.abs(est["ratios"] - exact.weights)))
print(f"exact J(pi) = {c_true:.4f}; MIS {float(est['mis']):.4f}, self-normalised "
      f"{float(est['mis_sn']):.4f}; PDIS {float(est['pdis']):.4f}")
print(f"max |w_hat - w| over (s, a) = {ratio_err:.3f} (max w = {float(exact.weights.max()):.2f})")
results.update(chain_true=c_true, chain_mis=float(est["mis"]), chain_mis_sn=float(est["mis_sn"]),
               chain_pdis=float(est["pdis"]), chain_ratio_err=ratio_err)
if plt is not None:
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(exact.weights.ravel(), est["ratios"].ravel(), "o", ms=4)
    lim = float(exact.weights.max()) * 1.1
    ax.plot([0, lim], [0, lim], "k--", lw=1)
    ax.set(xlabel="exact $d^\\pi/d^D$", ylabel="estimated ratio", title="Chain walk: MIS ratios")
    fig.tight_layout()

# %% [markdown]
# ## Offline policy gradient with importance weights
# Differentiate the PDIS estimate of $J(\pi_\theta)$ with respect to $\theta$: with
# $g_t = \nabla_\theta\log\pi_\theta(a_t|s_t)$,
# $$\nabla_\theta \hat J = \frac1N\sum_n\sum_t g^n_t\sum_{t'\ge t}\gamma^{t'} w^n_{0:t'} r^n_{t'}$$
# (the causal, per-decision form; the trajectory-wise form multiplies $\sum_t g_t$ by
# $w_{0:T-1}G$). Both are unbiased. `pg.per_decision_surrogate` returns a scalar whose `jax.grad`
# is this estimate. With a tabular softmax policy on the Graph problem, started at
# $\pi_\theta = \pi_\beta$, compare the estimate over 32 datasets with the **exact** gradient,
# obtained by differentiating the exact $J(\pi_\theta)$ (a backward induction) with `jax.grad`.

# %%
num_obs, num_act = g_mdp.num_observations, g_mdp.num_actions
policy = policies.tabular_softmax(num_obs, num_act, init_logits=jnp.log(graph.behavior), dtype=jnp.float64)
theta0 = policy.init(jax.random.key(0))
all_obs = jnp.arange(num_obs)


def exact_value(theta):
    return policy_value(g_mdp, policy.probs(theta, all_obs))


exact_grad = jax.grad(exact_value)(theta0)


def grad_estimates(key):
    d = rollout(key, g_mdp, graph.behavior, 128, graph.horizon)
    def surrogate(theta, kind):
        lp = policy.log_prob(theta, d.observations, d.actions)
        if kind == "per_decision":
            return pg.per_decision_surrogate(lp, d.behavior_log_probs, d.rewards, d.mask, g_gamma)
        return pg.trajectory_surrogate(lp, d.behavior_log_probs, d.rewards, d.mask, g_gamma)
    return {k: jax.grad(surrogate)(theta0, k) for k in ("per_decision", "trajectory")}


grads = jax.jit(jax.vmap(grad_estimates))(jax.random.split(jax.random.key(3), 32))
u = exact_grad / jnp.linalg.norm(exact_grad)              # exact ascent direction
for k, g in grads.items():
    proj = jnp.sum(g * u[None], axis=(1, 2))                 # <g_hat, u> per dataset
    total_var = float(jnp.sum(jnp.var(g, axis=0)))
    print(f"{k:12s} <g_hat, u> = {float(proj.mean()):.3f} +- {float(proj.std(ddof=1) / np.sqrt(32)):.3f}"
          f"  (exact |grad J| = {float(jnp.linalg.norm(exact_grad)):.3f});  total variance {total_var:.2f}")
    results[f"pg_{k}"] = dict(proj_mean=float(proj.mean()), proj_se=float(proj.std(ddof=1) / np.sqrt(32)),
                              total_var=total_var)
results["pg_exact_norm"] = float(jnp.linalg.norm(exact_grad))

# %% [markdown]
# Now learn: Adam on $-\hat J$ from one fixed dataset, 4 rounds of 25 full-batch steps, reporting
# after each round the surrogate's own estimate and the **exact** value of the learned policy. As
# $\pi_\theta$ moves away from $\pi_\beta$ the weights degenerate and the estimate stops being
# trustworthy, the offline version of distribution shift.

# %%
config = pg.PGConfig(estimator="per_decision", gamma=g_gamma, learning_rate=0.05, optimizer="adam")
learner = pg.make_learner(config, policy)                 # init(key, batch), run(state, batch, steps)
train_round = jax.jit(learner.run, static_argnums=2)
batch = pg.pg_batch(g_data)
state = learner.init(jax.random.key(4), batch)
exact_j_of = jax.jit(exact_value)
curve = [(0, float(exact_j_of(state.params)), float("nan"))]
for r in range(4):
    state, metrics = train_round(state, batch, 25)
    curve.append((25 * (r + 1), float(exact_j_of(state.params)), float(metrics.estimate[-1])))
for step, exact_j, est in curve:
    print(f"step {step:3d}: exact J(pi_theta) = {exact_j:.3f}   PDIS estimate = {est:.3f}")
results["pg_curve"] = curve
'''

LINEAR_FITTED = r'''
# %% [markdown]
# # 3. Linear value functions (LSTD, LSTDQ, LSPI), fitted Q evaluation, and distribution shift
#
# Instead of reweighting returns, fit $Q^\pi$ from transitions $(s_m, a_m, r_m, s'_m)$ and read off
# $J(\pi) = \mathbb{E}_{s_0}[\sum_a\pi(a|s_0)Q^\pi(s_0,a)]$. The data come from the 20-state chain walk
# (Lagoudakis & Parr 2003: actions L/R succeed with probability 0.9, reward 1 at both ends,
# $\gamma = 0.9$), 100 episodes of 100 steps under the uniform policy; the target is 0.1-greedy on $Q^*$.

# %%
import sys

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np

try:
    import matplotlib

    if "ipykernel" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    plt = None

from offrl_jax import fitted, linear, policies
from offrl_jax.data import to_transitions
from offrl_jax.envs import estimate_mdp, policy_value, q_values, rollout, value_iteration
from offrl_jax.envs.suite import garnet, make_problem
from offrl_jax.experiments.shift import linear_distribution_shift

results = {}
problem = make_problem("chain_walk_20", dtype=jnp.float64)
mdp, gamma, target = problem.mdp, float(problem.mdp.gamma), problem.target
S, A = mdp.num_states, mdp.num_actions
data = jax.jit(rollout, static_argnums=(3, 4))(jax.random.key(0), mdp, problem.behavior, 100, 100)
s, a, r = data.observations.ravel(), data.actions.ravel(), data.rewards.ravel()
s_next, disc = data.next_observations.ravel(), data.discounts.ravel()
true_q = q_values(mdp, target)                         # exact [S, A] Q^pi
true_value = float(policy_value(mdp, target))
print(f"{s.size} transitions; exact J(pi) = {true_value:.4f}")

# %% [markdown]
# ## LSTDQ (Lagoudakis & Parr 2003)
# With features $\phi(s,a)\in\mathbb{R}^K$ and $\phi'_\pi(s') = \sum_{a'}\pi(a'|s')\phi(s',a')$ (the
# *evaluated* policy's next action, which makes it off-policy), LSTDQ solves the TD fixed point
# $$\Big[\sum_m \phi(s_m,a_m)\big(\phi(s_m,a_m) - \gamma d_m\phi'_\pi(s'_m)\big)^\top\Big] w
#   = \sum_m\phi(s_m,a_m) r_m .$$
# With one-hot (tabular) features and every pair visited, this is exactly $Q^\pi$ of the
# maximum-likelihood model (certainty equivalence): we check that identity, then compare both with
# the true $Q^\pi$.

# %%
phi_onehot = jnp.eye(S * A, dtype=jnp.float64).reshape(S, A, S * A)   # phi(s, a) = e_{(s, a)}


def next_pi(phi_table, pi):
    return linear.expected_features(phi_table[s_next], pi[s_next])     # sum_a' pi(a'|s') phi(s', a')


lstdq = jax.jit(linear.lstdq)                                             # jit once, at the outermost call
w_tab = lstdq(phi_onehot[s, a], next_pi(phi_onehot, target), r, disc, gamma)


@jax.jit
def model_q(data, pi):
    model = estimate_mdp(data, S, A, gamma)                              # S + 1 states (absorbing end)
    return q_values(model, jnp.concatenate([pi, jnp.full((1, A), 1.0 / A)]))[:S]


q_model = model_q(data, target)
lstdq_vs_model = float(jnp.max(jnp.abs(w_tab.reshape(S, A) - q_model)))
lstdq_vs_true = float(jnp.max(jnp.abs(w_tab.reshape(S, A) - true_q)))
print(f"max |LSTDQ - model Q| = {lstdq_vs_model:.2e}   max |LSTDQ - true Q^pi| = {lstdq_vs_true:.3f}")
results.update(lstdq_vs_model=lstdq_vs_model, lstdq_vs_true=lstdq_vs_true)

# %% [markdown]
# ## The linear model identity (Parr et al. 2008)
# Fit a linear *model* in feature space by least squares: the reward model
# $w_r = (\Phi^\top\Phi)^{-1}\Phi^\top r$ and the feature-transition model
# $F = (\Phi^\top\Phi)^{-1}\Phi^\top\Phi'_\pi$; then solve the model, $w = (I - \gamma F)^{-1}w_r$.
# Algebra gives $w = (\Phi^\top\Phi - \gamma\Phi^\top\Phi'_\pi)^{-1}\Phi^\top r$: the same weights as
# LSTDQ, for any features. Check it with the polynomial basis of the LSPI paper,
# $\phi(s,a) = e_a\otimes\big(1, z, z^2, z^3, z^4\big)$, $z = 10(s+1)/S$ (10 features).

# %%
z = 10.0 * (jnp.arange(S, dtype=jnp.float64) + 1) / S
poly_state = jnp.stack([z**k for k in range(5)], axis=-1)              # [S, 5]
phi_poly = jnp.einsum("ab,sk->sabk", jnp.eye(A), poly_state).reshape(S, A, A * 5)
w_lstdq = lstdq(phi_poly[s, a], next_pi(phi_poly, target), r, disc, gamma)
w_model = jax.jit(linear.linear_model_value)(phi_poly[s, a], next_pi(phi_poly, target), r, disc, gamma)
identity_gap = float(jnp.max(jnp.abs(w_lstdq - w_model)) / jnp.max(jnp.abs(w_lstdq)))
q_poly = phi_poly @ w_lstdq                                                # [S, A]
poly_value = float(mdp.initial @ jnp.sum(target * q_poly, -1))
print(f"relative |LSTDQ - linear model| = {identity_gap:.1e}")
print(f"J from the polynomial Q: {poly_value:.3f} vs exact {true_value:.3f} (approximation error of 10 features)")
results.update(identity_gap=identity_gap, poly_value=poly_value, true_value=true_value)

# %% [markdown]
# ## LSPI: policy iteration on a fixed batch
# Repeat: $\pi_k(s) = \arg\max_a \phi(s,a)^\top w_k$, then $w_{k+1} = \mathrm{LSTDQ}(D, \pi_k)$, on the
# same samples, until $\|w_{k+1}-w_k\|_2\le\varepsilon$. We count the states where $\pi_k$ differs
# from the optimal policy (value iteration on the true MDP).

# %%
lspi_res = jax.jit(linear.lspi, static_argnames=("max_iterations",))(
    phi_poly[s, a], phi_poly[s_next], r, disc, gamma, max_iterations=8, state_features=phi_poly)
optimal_actions = jnp.argmax(value_iteration(mdp)[0], -1)
hamming = np.asarray(jnp.sum(lspi_res.greedy_history != optimal_actions[None], axis=1))
print(f"iterations run: {int(lspi_res.iterations)}; converged: {bool(lspi_res.converged)}")
print("states where pi_k != pi*, k = 0, 1, ...:", hamming.tolist())
lspi_policy = policies.deterministic(lspi_res.greedy_history[-1], A, jnp.float64)
results.update(lspi_hamming=hamming, lspi_value=float(policy_value(mdp, lspi_policy)),
               optimal_value=float(policy_value(mdp, value_iteration(mdp)[1])))

# %% [markdown]
# ## Fitted Q evaluation with a network (Le, Voloshin & Yue 2019)
# FQE replaces the linear solve by repeated regression onto frozen targets,
# $$\hat Q_{k} = \arg\min_Q \sum_m\Big(Q(s_m,a_m) - r_m - \gamma d_m\sum_{a'}\pi(a'|s'_m)\hat Q_{k-1}(s'_m,a')\Big)^2,$$
# here with a flax MLP on one-hot states trained by optax (`fitted.fitted_q_iteration`: $K$ outer
# iterations of a few Adam steps, the whole loop one compiled `lax.scan`). The estimate is
# $\hat J = \frac1N\sum_n\sum_a\pi(a|s^n_0)\hat Q_K(s^n_0,a)$.

# %%
transitions = to_transitions(data)
config = fitted.FittedQConfig(num_actions=A, method="fqe", gamma=gamma, hidden_sizes=(32,), num_observations=S,
                              num_steps=50, batch_size=512, learning_rate=1e-2, dtype="float64")
fqi_loop = jax.jit(fitted.fitted_q_iteration, static_argnames=("config", "num_iterations"))
fqe = fqi_loop(jax.random.key(1), transitions, config, num_iterations=60, target_policy=target)
q_fqe = fitted.q_network(config).apply(fqe.state.params, jnp.arange(S))
fqe_value = float(mdp.initial @ jnp.sum(target * q_fqe, -1))
print(f"FQE: J_hat = {fqe_value:.3f}   LSTDQ (tabular) = {float(mdp.initial @ jnp.sum(target * q_model, -1)):.3f}"
      f"   exact = {true_value:.3f}")
results.update(fqe_value=fqe_value, fqe_q_err=float(jnp.max(jnp.abs(q_fqe - q_model))))

# %% [markdown]
# ## Distribution shift: how well it thinks it does vs how well it does
# Learning a policy offline, the learner evaluates its own greedy policy with its own $\hat Q$:
# it *thinks* it gets $\sum_s d_0(s)\max_a\hat Q_k(s,a)$, and it actually *does* get $J(\pi_k)$ (exact).
# The max picks out actions whose values are over-estimated, and where the data never tried those
# actions nothing corrects the error. On a Garnet MDP (20 states, 4 actions, $\gamma = 0.9$, reward noise)
# with tabular features, compare narrow data (a near-deterministic behaviour policy, 2% random) and
# broad data (50% random), running LSPI and linear FQI on each.

# %%
g_mdp = garnet(0, 20, 4, 3, gamma=0.9, reward_std=1.0, dtype=jnp.float64)
base = policies.deterministic(jnp.asarray(np.random.default_rng(0).integers(0, 4, 20)), 4, jnp.float64)
behaviors = jnp.stack([policies.mixture(base, policies.uniform(20, 4, jnp.float64), 1.0 - eps) for eps in (0.02, 0.5)])
phi_g = jnp.eye(80, dtype=jnp.float64).reshape(20, 4, 80)
shift = jax.jit(jax.vmap(lambda b: linear_distribution_shift(
    jax.random.key(2), g_mdp, phi_g, b, 20, 40, ridge=1e-3, lspi_iterations=10, fqi_iterations=30)))(behaviors)
for i, name in enumerate(("narrow", "broad")):
    print(f"{name:6s} coverage {float(shift.coverage[i]):.2f}:  LSPI thinks {float(shift.lspi.thinks[i, -1]):7.2f}, "
          f"does {float(shift.lspi.does[i, -1]):6.2f};  FQI thinks {float(shift.fqi.thinks[i, -1]):7.2f}, "
          f"does {float(shift.fqi.does[i, -1]):6.2f};  optimal {float(shift.optimal[i]):.2f}")
results["shift"] = jax.tree_util.tree_map(np.asarray, shift)
if plt is not None:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
    for i, (ax, name) in enumerate(zip(axes, ("narrow data (2% random)", "broad data (50% random)"))):
        k = np.arange(shift.fqi.thinks.shape[1])
        ax.plot(k, shift.fqi.thinks[i], label="FQI thinks")
        ax.plot(k, shift.fqi.does[i], label="FQI does")
        ax.axhline(float(shift.optimal[i]), color="k", ls="--", lw=1, label="optimal")
        ax.set(title=name, xlabel="iteration k")
    axes[0].set_ylabel("value")
    axes[0].legend(fontsize=8)
    fig.tight_layout()

# %% [markdown]
# With narrow data the learner believes its greedy policy is better than it is and returns a policy
# far from optimal: most (state, action) pairs were never tried, so their values are whatever the
# fit extrapolates to (here the ridge shrinks them to 0), and the max over actions follows those
# guesses rather than evidence. Broad data keep "thinks" close to "does", both near the optimum.
# This is the gap that conservative and policy-constrained offline RL methods are designed to close.
'''

DOUBLY_ROBUST_FQE = r'''
# %% [markdown]
# # 4. Doubly robust with a fitted $\hat Q$: FQE, cross-fitting, DR / WDR / MAGIC
#
# Doubly robust estimators need a model $\hat Q$. Chapter 1 used the maximum-likelihood tabular model;
# here $\hat Q$ is learned from the logged data by **fitted Q evaluation** (FQE), the model-free
# regression that also works with function approximation, and it is **cross-fitted**: the $\hat Q$
# that corrects a trajectory never saw that trajectory. Every estimate is compared with the exact
# $J(\pi)$ of the MDP, and the variance of DR with that of importance sampling.
#
# **FQE for a horizon $T$** (Le, Voloshin & Yue 2019, "Batch Policy Learning under Constraints"):
# with $\hat Q_T \equiv 0$, for $t = T-1, \dots, 0$
# $$\hat Q_t = \arg\min_{f}\ \sum_{n} \Big(f(s^n_t, a^n_t) - r^n_t - \gamma \sum_{a'} \pi(a'|s^n_{t+1})\, \hat Q_{t+1}(s^n_{t+1}, a')\Big)^2 .$$
# The library folds the step into the observation, $x = s\,T + t$, and runs stationary FQE on $x$
# (one-hot features, Adam, full batch, a target network refreshed every 50 steps; 1000 steps give the
# 16 steps of the horizon 20 refreshes to propagate), which fits every $\hat Q_t$ at once.
#
# **Cross-fitting** (Chernozhukov et al. 2018, "Double/debiased machine learning"): split the $N$
# trajectories into two folds, fit $\hat Q^{(1)}$ on fold 2 and $\hat Q^{(2)}$ on fold 1, and use
# $\hat Q^{(k)}$ in the DR terms of fold $k$. Given $\hat Q$, each DR correction
# $\rho_t\,(r_t + \gamma V_{DR}(t+1) - \hat Q_t(s_t, a_t))$ then has the right conditional mean, so DR
# stays unbiased (Jiang & Li 2016 assume $\hat Q$ independent of the data it corrects).

# %%
import sys

import jax

jax.config.update("jax_enable_x64", True)  # exact solves and estimators in float64
import jax.numpy as jnp
import numpy as np

try:  # figures are optional
    import matplotlib

    if "ipykernel" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    plt = None

from offrl_jax import ope
from offrl_jax.envs import policy_value, rollout
from offrl_jax.envs.suite import graph, graph_policy
from offrl_jax.experiments.cross_fit import cross_fitted_fqe_terms

results = {}  # key numbers of this notebook (checked by tests/test_notebooks.py)

# %% [markdown]
# ## The problem: the COBS Graph with deterministic transitions
# 32 states in columns, two actions, $T = 16$, $\gamma = 0.98$, reward $+1$ or $-1$ by the state
# reached; here the intended next state is always reached (COBS's deterministic variant), so all the
# randomness of a return comes from the actions. $\pi_\beta(a_0) = 0.8$, $\pi(a_0) = 0.2$,
# $N = 128$ episodes. The exact value is $J(\pi) = (2\cdot 0.2 - 1)(1 - \gamma^T)/(1 - \gamma)$
# (backward induction gives the same).

# %%
mdp = graph(stochastic=False, dtype=jnp.float64)
gamma, N, T = float(mdp.gamma), 128, mdp.horizon
O, A = mdp.num_observations, mdp.num_actions
behavior, target = graph_policy(mdp, 0.8), graph_policy(mdp, 0.2)
true_value = float(policy_value(mdp, target))
data = jax.jit(rollout, static_argnums=(3, 4))(jax.random.key(0), mdp, behavior, N, T, target)
print(f"exact J(pi) = {true_value:.4f};  {N} episodes of {T} steps")
results["true_value"] = true_value

# %% [markdown]
# ## Cross-fitted FQE and the estimators
# `cross_fitted_fqe_terms` returns $\hat Q_t(s^n_t, a^n_t)$ and $\hat V_t(s^n_t) = \sum_a \pi(a|s^n_t)\hat Q_t(s^n_t, a)$
# for every logged step, each from the fold that did not see it. They go to `ope.evaluate` as
# `ModelTerms`: the direct method $\hat J_{DM} = \frac1N\sum_n \hat V_0(s^n_0)$, DR, WDR and MAGIC,
# next to trajectory-wise and per-decision IS.

# %%
fqe_terms = cross_fitted_fqe_terms(jax.random.key(1), data, O, A, target, gamma, num_steps=1000)
estimators = ("is", "pdis", "dm", "dr", "wdr", "magic")
table = ope.evaluate(data, target, gamma, estimators=estimators, q_hat=fqe_terms,
                     true_value=true_value, key=jax.random.key(2), num_resamples=200)
print(table)
results["estimates"] = table.to_dict()

# %% [markdown]
# ## Variance: DR against importance sampling
# IS, PDIS and DR are means of i.i.d. per-trajectory terms $X_n$, so their variance is
# $\operatorname{Var}(X)/N$, estimated by the sample variance of the terms. DR's terms are PDIS's with
# the control variate $\hat Q$ subtracted: the closer $\hat Q$ is to $Q^\pi$, the smaller the variance.

# %%
log_ratios = ope.log_importance_ratios(data.target_log_probs, data.behavior_log_probs, data.mask)
args = (data.rewards, log_ratios, data.mask, gamma)
terms = {
    "IS": ope.trajectory_is_returns(*args),
    "PDIS": ope.per_decision_is_returns(*args),
    "DR": ope.doubly_robust_returns(*args, fqe_terms.q_taken, fqe_terms.v_hat),
}
variance = {k: float(jnp.var(v, ddof=1)) for k, v in terms.items()}
for k, v in terms.items():
    print(f"{k:10s} estimate {float(v.mean()):8.4f}   standard error {np.sqrt(variance[k] / N):8.4f}"
          f"   variance ratio to PDIS {variance[k] / variance['PDIS']:.4f}")
results["term_variance"] = variance
if plt is not None:
    est = results["estimates"]
    names = [n for n in estimators if n != "magic"]
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    for i, n in enumerate(names):
        e = est[n]
        ax.errorbar(i, e["estimate"], yerr=[[e["estimate"] - e["lower"]], [e["upper"] - e["estimate"]]],
                    fmt="o", capsize=4, color="C1" if n in ("dm", "dr", "wdr") else "C0")
    ax.plot(len(names), est["magic"]["estimate"], "s", color="C1")
    ax.axhline(true_value, color="k", ls="--", lw=1, label="exact J(pi)")
    ax.set_xticks(range(len(names) + 1), [n.upper() for n in names] + ["MAGIC"])
    ax.set(ylabel="estimate (95% interval)", title="Deterministic COBS Graph, cross-fitted FQE Q-hat")
    ax.legend(fontsize=8)
    fig.tight_layout()

# %% [markdown]
# IS is far off with a deceptively narrow interval (almost every trajectory weight is tiny); PDIS is
# unbiased but its standard error is of the size of $|J(\pi)|$. With the cross-fitted FQE $\hat Q$,
# DR's per-trajectory terms have a variance orders of magnitude below PDIS's: the transitions are
# deterministic, so once $\hat Q \approx Q^\pi$ the only randomness left is the actions', and the
# control variate removes most of it (Jiang & Li 2016, Theorem 1: the variance that remains is the
# part the model explains badly). WDR and MAGIC, biased but consistent, land next to DR. On the
# stochastic Graph (chapter 1's problem) the same $\hat Q$ removes much less: there the transition
# noise, multiplied by the squared weights, dominates, and a control variate on the actions does
# not touch it.
'''

THINKS_VS_DOES = r'''
# %% [markdown]
# # 5. How well it thinks it does vs how well it does: distribution shift in batch RL
#
# A batch learner that *improves* a policy (LSPI, FQI) judges its new policy with data collected by
# another one. At iteration $k$ it holds $\hat Q_k$ and acts greedily, $\pi_k(s) = \arg\max_a \hat Q_k(s, a)$.
# It **thinks** that policy is worth
# $$\text{thinks}_k = \sum_s d_0(s)\, \max_a \hat Q_k(s, a),$$
# while on a tabular MDP we can compute what it **does**: the exact value
# $\text{does}_k = J(\pi_k) = d_0^\top (I - \gamma P_{\pi_k})^{-1} r_{\pi_k}$ by one linear solve.
# Where the data never tried an action, $\hat Q_k$ there is whatever the function class extrapolates;
# the max picks exactly those errors, so with narrow data "thinks" drifts above "does"
# (extrapolation error: Fujimoto, Meger & Precup 2019; bootstrapping error: Kumar et al. 2019).
# With data that covers every state-action pair the two agree up to sampling error and both
# approach the optimal value $J(\pi^\star)$ (value iteration).
#
# Learners: LSPI (Lagoudakis & Parr 2003; LSTDQ evaluation, greedy improvement), linear FQI
# ($\hat Q_{k+1}$ = ridge regression of $r + \gamma \max_{a'} \hat Q_k(s', a')$), both on one-hot
# features with a small ridge. (`benchmarks/fitted_shift.py` runs the same experiment with neural FQI,
# `offrl_jax.experiments.shift.fitted_distribution_shift`.)

# %%
import sys

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np

try:
    import matplotlib

    if "ipykernel" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    plt = None

from offrl_jax import policies
from offrl_jax.data import to_transitions
from offrl_jax.envs import policy_value, rollout, value_iteration
from offrl_jax.envs.suite import garnet
from offrl_jax.experiments.shift import fitted_distribution_shift, linear_distribution_shift
from offrl_jax.fitted import FittedQConfig

results = {}

# %% [markdown]
# ## The problem and three datasets
# A Garnet MDP (20 states, 4 actions, 3 successors per pair, $\gamma = 0.9$, Gaussian reward noise
# of standard deviation 1). The behaviour policies mix a fixed random deterministic policy with the
# uniform one: $\pi_\beta = (1-\varepsilon)\,\pi_{\text{det}} + \varepsilon\,\text{uniform}$ with
# $\varepsilon \in \{0.02, 0.1, 0.5\}$ (narrow to broad); each dataset has 50 episodes of 40 steps.

# %%
S, A, gamma = 20, 4, 0.9
mdp = garnet(0, S, A, 3, gamma=gamma, reward_std=1.0, dtype=jnp.float64)
base = policies.deterministic(jnp.asarray(np.random.default_rng(0).integers(0, A, S)), A, jnp.float64)
epsilons = (0.02, 0.1, 0.5)
behaviors = jnp.stack([policies.mixture(base, policies.uniform(S, A, jnp.float64), 1.0 - e) for e in epsilons])
optimal_value = float(mdp.initial @ jnp.max(value_iteration(mdp).q_star, -1))
behavior_values = [float(policy_value(mdp, b)) for b in behaviors]
print(f"J(pi*) = {optimal_value:.3f};  J(pi_beta) = " + ", ".join(f"{v:.3f}" for v in behavior_values))
results.update(optimal_value=optimal_value, behavior_values=behavior_values, epsilons=epsilons)

# %% [markdown]
# ## LSPI and linear FQI, one vmapped program over the three datasets
# `linear_distribution_shift` rolls out the data, runs LSPI and linear FQI on one-hot features
# $\phi(s, a) = e_{(s,a)}$ and returns both curves (`thinks`, `does` per iteration), the coverage
# (fraction of pairs in the data) and the exact $J(\pi^\star)$, $J(\pi_\beta)$.

# %%
phi = jnp.eye(S * A, dtype=jnp.float64).reshape(S, A, S * A)
shift = jax.jit(jax.vmap(lambda b: linear_distribution_shift(
    jax.random.key(1), mdp, phi, b, 50, 40, ridge=1e-3, lspi_iterations=8, fqi_iterations=40)))(behaviors)
print("epsilon  coverage |  LSPI thinks   does |  FQI thinks   does")
for i, e in enumerate(epsilons):
    print(f"{e:7.2f}  {float(shift.coverage[i]):8.2f} | {float(shift.lspi.thinks[i, -1]):11.2f} "
          f"{float(shift.lspi.does[i, -1]):6.2f} | {float(shift.fqi.thinks[i, -1]):10.2f} {float(shift.fqi.does[i, -1]):6.2f}")
results["linear"] = jax.tree_util.tree_map(np.asarray, shift)

# %% [markdown]
# "Does" is exact. As a check, solve $(I - \gamma P_{\pi})V = r_\pi$ again here in numpy for the
# final greedy policies (from the returned $\hat Q$ tables) and compare.

# %%
P, R, d0 = (np.asarray(x) for x in (mdp.transitions, mdp.rewards, mdp.initial))


def exact_greedy_value(q_table):
    pi = np.eye(A)[np.argmax(q_table, -1)]                        # greedy, ties to the first action
    p_pi, r_pi = np.einsum("sa,sat->st", pi, P), np.sum(pi * R, -1)
    return float(d0 @ np.linalg.solve(np.eye(S) - gamma * p_pi, r_pi))


check = [abs(exact_greedy_value(np.asarray(c.q_tables[i, -1])) - float(c.does[i, -1]))
         for c in (shift.lspi, shift.fqi) for i in range(len(epsilons))]
print(f"max |numpy solve - does| = {max(check):.1e}")
results["does_check"] = max(check)

# %%
if plt is not None:
    fig, axes = plt.subplots(1, len(epsilons), figsize=(11, 3.6), sharey=True)
    for i, ax in enumerate(axes):
        for j, (name, c) in enumerate((("LSPI", shift.lspi), ("linear FQI", shift.fqi))):
            ax.plot(np.asarray(c.thinks[i]), color=f"C{j}", label=f"{name} thinks")
            ax.plot(np.asarray(c.does[i]), color=f"C{j}", ls=":", label=f"{name} does")
        ax.axhline(optimal_value, color="k", ls="--", lw=1, label="J(pi*)")
        ax.set(title=f"epsilon = {epsilons[i]}, coverage {float(shift.coverage[i]):.2f}", xlabel="iteration k")
    axes[0].set_ylabel("value at the start states")
    axes[0].legend(fontsize=7)
    fig.tight_layout()

# %% [markdown]
# What the curves show. With narrow data ($\varepsilon = 0.02$: about half of the state-action pairs
# never tried) both learners settle on a policy they believe is worth far more than it is: the greedy
# step goes where the ridge fit has no data, and "does" stays near the behaviour policy's value. At
# $\varepsilon = 0.1$ more pairs are seen, yet the belief is even higher than $J(\pi^\star)$ while the policy
# is no better: a few visits per pair make noisy $\hat Q$ values, and the max picks the lucky ones
# (the overestimation of Thrun & Schwartz 1993). Only with broad data ($\varepsilon = 0.5$, every pair
# seen) does the greedy policy come close to optimal; "thinks" still sits above "does" by the
# maximisation bias, which shrinks with more data. Offline RL methods (BCQ, CQL, IQL) are answers to
# the first two panels: stay where the data is, or be pessimistic where it is not.
'''

def _chapter(name: str) -> str:
    """The percent-format source of a chapter kept as a runnable script in ``chapters/``."""
    with open(os.path.join(HERE, "chapters", name + ".py"), encoding="utf-8") as f:
        return f.read()


FIXING_SHIFT = _chapter("fixing_shift")

NOTEBOOKS: Dict[str, str] = {
    "01_off_policy_evaluation": OPE,
    "02_marginalised_is_and_policy_gradient": MIS_PG,
    "03_linear_and_fitted_q": LINEAR_FITTED,
    "04_doubly_robust_with_fitted_q": DOUBLY_ROBUST_FQE,
    "05_thinks_vs_does": THINKS_VS_DOES,
    "06_fixing_shift": FIXING_SHIFT,
}

_MARKER = re.compile(r"^# %%(?P<kind>.*)$", re.M)


def parse_cells(source: str) -> List[dict]:
    """Splits percent-format ``source`` into nbformat-4 cell dicts (markdown lines un-commented)."""
    cells = []
    marks = list(_MARKER.finditer(source))
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(source)
        text = source[m.end():end].strip("\n")
        if "[markdown]" in m.group("kind"):
            lines = [ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in text.splitlines()]
            cell = {"cell_type": "markdown", "metadata": {}, "source": _lines("\n".join(lines))}
        else:
            cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                    "source": _lines(text)}
        cells.append(cell)
    return cells


def _lines(text: str) -> List[str]:
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + [parts[-1]]


def notebook(source: str) -> dict:
    """The nbformat-4 JSON document of one notebook."""
    return {
        "cells": parse_cells(source),
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


MAX_TEXT_LINES = 40  # longer text outputs are cut (a notebook's outputs stay small)


def execute(nb: dict, folder: str = HERE, timeout: int = 1200) -> dict:
    """Runs ``nb`` in a fresh ``python3`` kernel (nbclient) and returns it with its outputs.

    Text outputs longer than :data:`MAX_TEXT_LINES` lines are cut; execution timestamps are
    dropped, so re-running changes a notebook only where its outputs change.
    """
    import nbclient
    import nbformat

    node = nbformat.reads(json.dumps(nb), as_version=4)
    nbclient.NotebookClient(node, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": folder}}).execute()
    out = json.loads(nbformat.writes(node))
    for cell in out["cells"]:
        cell.get("metadata", {}).pop("execution", None)
        for o in cell.get("outputs", []):
            text = o.get("text")
            if isinstance(text, list) and len(text) > MAX_TEXT_LINES:
                o["text"] = text[:MAX_TEXT_LINES] + [f"... ({len(text) - MAX_TEXT_LINES} more lines)\n"]
    return out


def _write_atomic(path: str, nb: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(nb, f, indent=1, ensure_ascii=False)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def build(folder: str = HERE, names: Optional[Sequence[str]] = None, run: bool = False) -> List[str]:
    """Writes the notebooks ``names`` (default: all) into ``folder``, executed when ``run``; returns the paths."""
    paths = []
    for name in names or list(NOTEBOOKS):
        if name not in NOTEBOOKS:
            raise ValueError(f"names: expected names from {list(NOTEBOOKS)}, found {name!r}")
        nb = notebook(NOTEBOOKS[name])
        for i, cell in enumerate(nb["cells"]):
            cell["id"] = f"{name[:2]}-{i:02d}"
        if run:
            nb = execute(nb, folder)
        path = os.path.join(folder, name + ".ipynb")
        _write_atomic(path, nb)
        paths.append(path)
    return paths


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Write the lecture notebooks (optionally executed, with outputs).")
    ap.add_argument("names", nargs="*", help=f"notebooks to write (default: all of {list(NOTEBOOKS)})")
    ap.add_argument("--execute", action="store_true", help="run each notebook and keep its outputs and figures")
    args = ap.parse_args()
    for p in build(names=args.names, run=args.execute):
        print("wrote", p)
