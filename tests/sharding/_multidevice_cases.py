"""Sharded == unsharded on 8 forced host devices, padding included (run as a script).

Launched by ``test_sharding.py`` in its own process, because
``--xla_force_host_platform_device_count`` must be set before JAX starts. Prints one line per
check and exits 1 if any sharded result differs from the unsharded one.
"""

import os
import sys
import time

START = time.perf_counter()

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
# Programs run once on little data: most of their cost is compiling (results agree to ~1e-15).
jax.config.update("jax_disable_most_optimizations", True)


import _cases  # noqa: E402
from offrl_jax import ope  # noqa: E402
from offrl_jax.core import ModelTerms, sharding  # noqa: E402
from offrl_jax.data import Trajectories  # noqa: E402

failures = []


def check(name, got, want, **tolerances):
    print(f"{time.perf_counter() - START:6.1f}s", end=" ")
    bad = _cases.close(got, want, **tolerances)
    print(f"{'ok  ' if not bad else 'FAIL'} {name}" + ("" if not bad else ": " + "; ".join(bad[:3])))
    if bad:
        failures.append(name)


def main():
    assert jax.device_count() == 8, jax.devices()
    mesh = sharding.data_mesh()
    traj = _cases.trajectories(21)  # 21 rows: padded to 24 on 8 devices
    trans = _cases.transitions(traj)
    placed_traj = sharding.shard_rows(traj, mesh)
    placed_trans = sharding.shard_rows(trans, mesh)
    assert placed_traj.data["rewards"].shape[0] == 24 and placed_traj.num_rows == 21
    assert len(placed_traj.data["rewards"].sharding.device_set) == 8

    for cases, data, placed in (
        (_cases.TRAJECTORY_CASES, traj, placed_traj),
        (_cases.TRANSITION_CASES, trans, placed_trans),
    ):
        # All cases of a kind in one program each way (one compile sharded, one unsharded).
        def all_cases(d, cases=cases):
            return {name: fn(d) for name, fn in cases.items()}

        got, want = sharding.sharded(all_cases, mesh)(placed), jax.jit(all_cases)(data)
        for name in cases:
            check(name, got[name], want[name])

    # Data-parallel FQE: parameters replicated, minibatches drawn from the sharded rows.
    fqe_sharded = sharding.sharded(_cases.fqe_case, mesh)(placed_trans)
    check("fqe", fqe_sharded, jax.jit(_cases.fqe_case)(trans))
    leaf = jax.tree_util.tree_leaves(fqe_sharded)[0]
    assert leaf.sharding.is_fully_replicated

    # Data-parallel behaviour-policy fit (minibatches split over the devices).
    # (float32 parameters: the per-device gradient sums change the summation order, ~1e-7.)
    check("behavior", sharding.sharded(_cases.behavior_case, mesh)(placed_traj), jax.jit(_cases.behavior_case)(traj),
          rtol=1e-5, atol=1e-6)

    # Sharded seeds: 3 seeds (padded to 8) equal the vmapped run seed by seed.
    keys = jax.random.split(jax.random.key(11), 3)
    fqe_data = _cases.fqe_data(trans)
    seeds = _cases.fqe_seeds()
    got = sharding.shard_seeds(seeds, mesh)(keys, fqe_data)
    want = jax.jit(seeds)(keys, fqe_data)
    check("fqe_seeds", got.state.params, want.state.params)
    check("fqe_seeds_metrics", got.metrics, want.metrics)

    # Row-blocked estimators: 2100 x 128 rows loop over blocks unsharded; sharded they run one
    # block per device, with the max-shifted sums merged across devices and no gather of rows.
    big = _cases.trajectories(2100, seed=1, horizon=128)
    big = {k: big[k] for k in ("rewards", "log_ratios", "mask", "q_taken", "v_hat")}
    names = ("weighted_per_decision_is", "weighted_doubly_robust", "per_decision_is")

    def blocked(d):
        return {name: _cases.TRAJECTORY_CASES[name](d) for name in names}

    compiled = sharding.sharded(blocked, mesh).lower(sharding.shard_rows(big, mesh)).compile()
    got, want = compiled(sharding.shard_rows(big, mesh)), jax.jit(blocked)(big)
    for name in names:
        check(f"{name}_blocked", got[name], want[name])
    gathered = "all-gather" in compiled.as_text()
    print(f"{'FAIL' if gathered else 'ok  '} blocked estimators run without gathering rows")
    if gathered:
        failures.append("no_all_gather")

    # The README's example: a (Trajectories, ModelTerms) pair placed and estimated.
    t = Trajectories.create(
        observations=traj["states"], actions=traj["actions"], rewards=traj["rewards"],
        next_observations=traj["next_states"], discounts=traj["discounts"], mask=traj["mask"],
        target_log_probs=traj["target_log_probs"], behavior_log_probs=traj["behavior_log_probs"])
    terms = ModelTerms(traj["q_taken"], traj["v_hat"])

    @sharding.sharded
    def wdr(data):
        t, m = data
        return ope.weighted_doubly_robust(t.rewards, t.log_ratios(), t.mask, 0.99, m.q_taken, m.v_hat)

    check("readme_example", wdr(sharding.shard_rows((t, terms), mesh)),
          ope.weighted_doubly_robust(t.rewards, t.log_ratios(), t.mask, 0.99, terms.q_taken, terms.v_hat))

    # The rows() view of the padded, placed data is exactly the original rows.
    check("rows_roundtrip", jax.jit(lambda p: p.rows())(placed_traj), traj)

    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
