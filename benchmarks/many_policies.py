"""K candidate policies on one dataset: one vmapped call against a Python loop over K.

Off-policy selection evaluates K policies on the same log. ``offrl_jax.ope.evaluate_policies``
(the IS and DR families and MAGIC), ``offrl_jax.mis.many.tabular_time_mis_policies`` (tabular
MIS) and ``offrl_jax.fitted.many.make_train_policies`` (FQE: K networks trained as one program)
vmap over the policy axis. Each is timed for K = 1, 16, 64 against a Python loop of K calls to the
single-policy function, jitted once (its compile is paid once and reported apart). Data: the
COBS gridworld (64 states, 4 actions), N episodes of T = 25 steps under the 0.6-greedy behaviour;
the K targets are ε-greedy policies with ε from 0.05 to 0.95.

Reported per method and K: compile time of the vmapped program and of the single-policy program,
median run time of both routes over ``--repeats`` calls, and the speed-up loop / vmapped (of the
medians, and of the fastest calls, the steadier figure on a loaded machine).

Usage: python benchmarks/many_policies.py [--quick] [--repeats R] [--out DIR]
"""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from offrl_jax import ope
from offrl_jax.data import to_transitions
from offrl_jax.envs import rollout
from offrl_jax.envs.suite import gridworld, gridworld_policies
from offrl_jax.fitted import FittedQConfig, initial_value, make_train
from offrl_jax.fitted.many import initial_values_policies, make_train_policies
from offrl_jax.mis.many import tabular_time_mis_policies

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

KS = (1, 16, 64)
OPE_NAMES = ("is", "pdis", "wis", "wpdis", "dm", "dr", "wdr", "magic")


def methods(tr, cfg_fqe, num_resamples: int):
    """name -> (many(policies) -> [K], single(policy) -> scalar-or-dict), both pure."""
    key = jax.random.key(5)
    o = tr.observations
    s0 = o[:, 0]
    data = to_transitions(tr)

    def ope_many(pols):
        lr = ope.policy_log_ratios(ope.tabular_log_probs(pols, o, tr.actions, tr.mask), tr.behavior_log_probs, tr.mask)
        q = jnp.zeros(pols.shape[:1] + tr.rewards.shape + (pols.shape[-1],), tr.rewards.dtype)
        terms = ope.policy_model_terms(q + tr.rewards[None, :, :, None], pols[:, o], tr.actions, tr.mask)
        return ope.evaluate_policies(tr.rewards, lr, tr.mask, 1.0, *terms, key=key, num_resamples=num_resamples, validate=False)

    def ope_single(pi):
        out = ope_many(pi[None])
        return {k: v[0] for k, v in out.items()}

    def mis_many(pols):
        return tabular_time_mis_policies(o, tr.actions, tr.next_observations, tr.discounts, tr.mask, tr.rewards, pols, 1.0, pooled=True)

    def mis_single(pi):
        return mis_many(pi[None])[0]

    train_many = make_train_policies(cfg_fqe)

    def fqe_many(pols):
        return initial_values_policies(train_many(key, data, pols), s0, pols)

    def fqe_single(pi):
        res = make_train(cfg_fqe, pi)(key, data)
        return initial_value(res.state.apply_fn, res.state.params, s0, pi)

    return {"OPE (8 estimators)": (ope_many, ope_single), "MIS (tabular, time-indexed)": (mis_many, mis_single),
            "FQE (tabular, K networks)": (fqe_many, fqe_single)}


def main() -> None:
    args = harness.parse_args(harness.make_parser(__doc__, quick_repeats=3, repeats=5))
    n = 128 if args.quick else 1024
    fqe_steps = 100 if args.quick else 1000
    meta = harness.metadata()
    mdp = gridworld()
    behavior = gridworld_policies(0.6)
    tr = rollout(jax.random.key(0), mdp, behavior, n, 25)
    eps = np.linspace(0.05, 0.95, max(KS))
    all_pols = gridworld_policies(list(eps))
    cfg = FittedQConfig(
        num_actions=4, num_observations=mdp.num_observations, hidden_sizes=(), gamma=0.9, num_steps=fqe_steps,
        batch_size=None, learning_rate=0.1,
    )
    results, rows = [], []
    for name, (many, single) in methods(tr, cfg, 20 if args.quick else 200).items():
        single_jit = jax.jit(single)
        _, single_compile = harness.compile_jit(single_jit, all_pols[0])
        for k in KS:
            pols = all_pols[:k]
            t_many, out_many, _ = harness.time_jit(many, pols, repeats=args.repeats)

            def loop(p=pols):
                return [single_jit(p[i]) for i in range(k)]

            t_loop, out_loop = harness.time_calls(loop, repeats=args.repeats)
            first = jax.tree.map(lambda x: float(np.asarray(x)[0]), out_many)
            same = jax.tree.map(lambda a, b: bool(np.isclose(a, float(b), rtol=1e-4, atol=1e-5)), first, out_loop[0])
            agree = all(jax.tree.leaves(same))
            speed = t_loop.run_s / t_many.run_s
            speed_min = t_loop.min_s / t_many.min_s
            results.append({"method": name, "K": k, "vmapped": t_many.as_dict(), "loop": t_loop.as_dict(),
                            "single_compile_s": single_compile, "speedup": speed, "speedup_min": speed_min,
                            "first_policy_agrees": agree})
            rows.append([name, k, f"{t_many.compile_s:.2f}", f"{single_compile:.2f}", f"{t_many.run_s * 1e3:.1f}",
                         f"{t_loop.run_s * 1e3:.1f}", f"{speed:.1f}x", f"{speed_min:.1f}x", "yes" if agree else "NO"])
    md = [
        "# K policies on one dataset: one vmapped call vs a Python loop over K", "", harness.describe(meta), "",
        f"COBS gridworld, N = {n} episodes x T = 25; FQE {fqe_steps} full-batch steps (tabular). Loop: K calls of the "
        "single-policy function, jitted once (its compile apart). Median of "
        f"{args.repeats} calls.", "",
        *harness.markdown_table(
            ["method", "K", "compile vmapped (s)", "compile single (s)", "vmapped (ms)", "loop (ms)", "speed-up",
             "speed-up (fastest calls)", "k=0 agrees"],
            rows, "lrrrrrrrc",
        ),
    ]
    settings = {"num_episodes": n, "horizon": 25, "fqe_steps": fqe_steps, "Ks": list(KS), "quick": args.quick}
    harness.write_results("many_policies", results, md, meta=meta, settings=settings, out=args.out, quick=args.quick)


if __name__ == "__main__":
    main()
