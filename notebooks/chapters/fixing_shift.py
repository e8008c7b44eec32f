# %% [markdown]
# # 6. Fixing distribution shift: conservative and in-support offline RL against exact truth
#
# Chapter 5 ended on a failure: on narrow data, fitted Q iteration *thinks* its greedy policy is
# worth far more than it *does*. The greedy step $\max_{a'} \hat Q(s', a')$ picks actions the data
# never tried, whose $\hat Q$ is whatever the function class extrapolates, and the Bellman backup
# feeds that error back into every state. Offline RL methods change what the learner may believe
# about such actions:
#
# * **CQL** (Kumar, Zhou, Tucker & Levine 2020) adds $\alpha\,\mathbb{E}_s[\log\sum_a e^{Q(s,a)} - Q(s, a_{\text{data}})]$
#   to the TD loss, pushing $Q$ down off the data and up on it;
# * **BCQ** (Fujimoto, Conti, Ghavamzadeh & Pineau 2019) only maximises over actions whose estimated
#   behaviour probability is at least $\tau$ times that of the most likely action;
# * **IQL** (Kostrikov, Nair & Levine 2022) never evaluates an unseen action: $V$ is an upper
#   expectile of $Q(s, a_{\text{data}})$, $Q$ regresses on $r + \gamma V(s')$, and the policy is
#   advantage-weighted behaviour cloning;
# * **BC** clones the behaviour policy: the baseline every table includes.
#
# On a tabular MDP we can score each of them exactly. After training, each method has a policy
# $\pi$ (greedy in $\hat Q$, greedy among allowed actions, or the extracted policy's mode) and
# its own value of it, $\text{thinks} = \sum_s d_0(s) \sum_a \pi(a|s)\hat Q(s,a)$, which we set
# against $\text{does} = J(\pi)$ from a linear solve.

# %%
import sys

import jax
import jax.numpy as jnp
import numpy as np

try:  # figures are optional
    import matplotlib

    if "ipykernel" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    plt = None

from offrl_jax import policies
from offrl_jax.data import to_transitions
from offrl_jax.envs import policy_value, rollout
from offrl_jax.envs.suite import garnet
from offrl_jax.experiments import fixing_shift as fs

results = {}  # key numbers of this chapter

# %% [markdown]
# ## Narrow and broad data on a Garnet MDP
#
# Garnet(20 states, 4 actions, branching 3), $\gamma = 0.9$. The behaviour policy mixes a fixed
# random deterministic policy with the uniform policy: narrow data $\varepsilon = 0.02$, broad data
# $\varepsilon = 0.5$; 50 episodes of 40 steps each. Every method uses a tabular network (one-hot
# states, no hidden layer) and the same optimiser and number of steps; all seeds of a method are
# one vmapped program.

# %%
S, A = 20, 4
mdp = garnet(0, S, A, 3, gamma=0.9, reward_std=1.0)
base = policies.deterministic(jnp.asarray(np.random.default_rng(0).integers(0, A, S)), A)
eps = {"narrow": 0.02, "broad": 0.5}
data = {n: to_transitions(rollout(jax.random.key(1), mdp, policies.mixture(base, policies.uniform(S, A), 1 - e), 50, 40))
        for n, e in eps.items()}
behavior = {n: float(policy_value(mdp, policies.mixture(base, policies.uniform(S, A), 1 - e))) for n, e in eps.items()}
methods = fs.tabular_methods(S, A, 0.9, num_steps=2000)
shift = fs.shift_table(jax.random.key(2), mdp, data, methods, num_seeds=3, num_chunks=10)
print(f"J(pi*) = {shift['optimal']:.2f}; behaviour: " + ", ".join(f"{n} {v:.2f}" for n, v in behavior.items()))
for r in shift["rows"]:
    print(f"{r['method']:4s} {r['data']:7s} thinks {r['thinks']:6.2f}  does {r['does']:6.2f}  "
          f"thinks - does {r['overestimate']:6.2f}")
results["shift"] = {(r["method"], r["data"]): (r["thinks"], r["does"]) for r in shift["rows"]}
results.update(optimal=shift["optimal"], behavior=behavior)

# %%
if plt is not None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, d in zip(axes, eps):
        for i, m in enumerate(["FQI", "CQL", "BCQ", "IQL"]):
            c = shift["curves"][(m, d)]
            ax.plot(np.asarray(c.thinks).mean(0), color=f"C{i}", label=f"{m} thinks")
            ax.plot(np.asarray(c.does).mean(0), color=f"C{i}", ls="--", label=f"{m} does")
        ax.axhline(shift["optimal"], color="gray", lw=1, label="J(pi*)")
        ax.set_title(f"{d} data")
        ax.set_xlabel("training chunk")
    axes[0].set_ylabel("value at the start states")
    axes[0].legend(fontsize=7, ncol=2)
    plt.show()

# %% [markdown]
# What to read off: on narrow data FQI's "thinks" climbs far above its "does" (the extrapolation
# error of chapter 5), while CQL, BCQ and IQL stay much closer to the truth: they do not
# overestimate like FQI. They also cannot do much better than the data allow: near-deterministic
# data from a poor behaviour policy leave them close to that policy. On broad data CQL and IQL
# *under*estimate (conservatism); IQL's policy is close to optimal, while CQL with $\alpha = 1$ stays
# more cautious. BCQ with $\tau = 0.3$ keeps only the behaviour mode when the behaviour puts 0.625
# on one action and 0.125 on the others, so it stays with the behaviour.
#
# ## Stitching: dynamic programming beats cloning
#
# Two rooms joined by a corridor. One behaviour policy leaves the start room the short way and
# then idles in the goal room; the other detours out of the start room and then walks to the goal.
# The optimal path uses the first policy's moves in the start room and the second's in the goal
# room: every step of it is in the data, but no trajectory follows it. Dynamic programming stitches
# the pieces together; cloning averages the two behaviours (Kumar, Hong, Singh & Levine 2022).

# %%
smdp, sdata, spols = fs.stitching_data(jax.random.key(3), num_episodes=100, epsilon=0.1)
smethods = fs.tabular_methods(smdp.num_observations, 4, 0.95, num_steps=2000, cql_alpha=0.1)
stitch = fs.stitching_table(jax.random.key(4), smethods, smdp, sdata, spols, num_seeds=3)
print(f"J(pi*) = {stitch['optimal']:.3f}; behaviour: first {stitch['behavior_first']:.3f}, "
      f"second {stitch['behavior_second']:.3f}")
for r in stitch["rows"]:
    print(f"{r['method']:4s} J = {r['value']:.3f}  ({100 * r['fraction_of_optimal']:.0f}% of optimal)")
results["stitching"] = {r["method"]: r["value"] for r in stitch["rows"]}
results.update(stitching_optimal=stitch["optimal"],
               stitching_behavior=(stitch["behavior_first"], stitch["behavior_second"]))

# %% [markdown]
# The in-support methods reach the optimal value from two suboptimal behaviours; BC, which has
# no value function, gets a mixture of the two and falls well short. Plain FQI, with every action
# covered only by the 10% exploration, overestimates rarely tried moves and can fail here too: the
# same extrapolation error as on the Garnet.
#
# The full tables (more steps and seeds) regenerate with `python benchmarks/offline_exact.py`;
# gymnax tasks with datasets of graded quality are in `benchmarks/offline_gymnax.py`.
