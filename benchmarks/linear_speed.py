"""Speed and memory of batched LSTDQ: accumulation FLOP rate, numpy baselines, chunked peak memory.

Measures, in one run on this machine (float32):
  * plain numpy matmul GFLOP/s on the accumulation's shape ([K, N] @ [N, K]) and on a square
    1024 matmul; the better of the two is the machine's reference rate;
  * batched LSTDQ, B policies evaluated on one dataset of N transitions with K features:
    ``jax.jit(jax.vmap(lstdq, in_axes=(None, 0, None, None)))`` with chunked accumulation.
    The accumulation does 2 N K^2 FLOP per problem (A = Φᵀ(Φ − γ D Φ'_π)); we report the
    achieved GFLOP/s of the accumulation alone (``td_system``) and of accumulation + solve,
    against numpy's rate, and against a Python loop of numpy accumulations and
    ``np.linalg.solve`` over the B problems;
  * peak memory of chunked accumulation at N = 1e7, K = 64 in a fresh subprocess: features are
    built per block from 1-D states (Fourier basis of order 63), so only the states (4 arrays of
    N float32 = 160 MB) and one block of features are ever in memory. Measured: the child's peak
    resident set size (``/proc/self/status`` VmHWM; not ``ru_maxrss``, which Linux carries over
    from the parent across fork + exec) and its RSS just before the call (VmRSS), so the
    accumulation's own share is visible.
    Materialising Φ and Φ' at that size would take 2 x 1e7 x 64 x 4 B = 5.1 GB.

Compile time (``lower().compile()``) is reported apart from run time; run times are medians of
repeats around ``jax.block_until_ready`` (numpy: one warm-up call, then the median of repeats).

Usage: python benchmarks/linear_speed.py [--quick] [--repeats R] [--out DIR]
Writes benchmarks/results/linear_speed[_quick].{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

GAMMA = 0.95


def _proc_status_mb(field: str) -> float:
    """``VmRSS`` (current) or ``VmHWM`` (peak) resident set size of this process, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def memory_child(n: int, k: int, chunk: int) -> None:
    """Runs in a fresh process: chunked accumulation at N = n, features built per block."""
    import jax.numpy as jnp

    from offrl_jax import linear as L

    feats = L.fourier(k - 1, low=0.0, high=1.0)
    rng = np.random.default_rng(0)
    s_np = rng.random(n, dtype=np.float32)
    states = jnp.asarray(s_np)
    nxt = jnp.asarray(np.clip(s_np + np.float32(0.05) * rng.standard_normal(n, dtype=np.float32), 0.0, 1.0))
    rewards = jnp.asarray(np.cos(np.float32(3.0) * s_np))
    discounts = jnp.asarray((rng.random(n, dtype=np.float32) > 0.001).astype(np.float32))
    del s_np

    def featurize(block):
        s, s2, r, d = block
        return L.featurize(feats, s[:, None]), L.featurize(feats, s2[:, None]), r, d

    def run(data):
        system = L.streaming_td_system(featurize, data, GAMMA, chunk_size=chunk)
        return L.solve(system.a, system.b, 1e-3)

    data = (states, nxt, rewards, discounts)
    compiled, compile_s = harness.compile_jit(run, data)
    rss_before = _proc_status_mb("VmRSS")
    peak_before = _proc_status_mb("VmHWM")
    res, run_s = harness.timed_call(compiled, data)
    peak = _proc_status_mb("VmHWM")
    print(json.dumps(dict(n=n, k=k, chunk=chunk, compile_s=compile_s, run_s=run_s, rss_before_mb=rss_before, peak_before_call_mb=peak_before,
                          peak_rss_mb=peak, data_mb=4 * n * 4 / 2**20, ok=bool(res.ok),
                          condition=float(res.condition))))


def main() -> None:
    ap = harness.make_parser(__doc__, quick_repeats=3, repeats=5)
    ap.add_argument("--memory-child", nargs=3, type=int, metavar=("N", "K", "CHUNK"), help=argparse.SUPPRESS)
    args = harness.parse_args(ap)
    if args.memory_child:
        memory_child(*args.memory_child)
        return

    import jax
    import jax.numpy as jnp

    from offrl_jax import linear as L

    b, n, k = (8, 20_000, 64) if args.quick else (64, 100_000, 64)
    chunk = 8192
    repeats = args.repeats
    mem_n = 1_000_000 if args.quick else 10_000_000
    meta = harness.metadata("float32")
    rng = np.random.default_rng(0)
    phi = rng.normal(size=(n, k)).astype(np.float32)
    phi_next = rng.normal(size=(b, n, k)).astype(np.float32)
    rewards = rng.normal(size=n).astype(np.float32)
    discounts = (rng.uniform(size=n) > 0.01).astype(np.float32)

    # numpy reference rates (same shapes as the accumulation, and a square 1024 matmul)
    x = rng.normal(size=(n, k)).astype(np.float32)
    phi_t = np.ascontiguousarray(phi.T)  # numpy is faster with a contiguous [K, N] left operand
    t_view, _ = harness.time_calls(lambda: phi.T @ x, repeats=repeats)
    t_contig, _ = harness.time_calls(lambda: phi_t @ x, repeats=repeats)
    t_np_acc = min(t_view.run_s, t_contig.run_s)
    sq = rng.normal(size=(1024, 1024)).astype(np.float32)
    t_np_sq = harness.time_calls(lambda: sq @ sq, repeats=repeats)[0].run_s
    np_acc_gflops = 2 * n * k * k / t_np_acc / 1e9
    np_sq_gflops = 2 * 1024**3 / t_np_sq / 1e9
    np_ref_gflops = max(np_acc_gflops, np_sq_gflops)  # the better of the two is the reference rate

    def numpy_loop():
        out = []
        for i in range(b):
            a = phi_t @ (phi - (GAMMA * discounts)[:, None] * phi_next[i])
            out.append(np.linalg.solve(a + 1e-3 * np.eye(k, dtype=np.float32), phi_t @ rewards))
        return out

    loop_timing, ref = harness.time_calls(numpy_loop, repeats=max(1, repeats // 2))
    t_np_loop = loop_timing.run_s

    args_j = [jnp.asarray(v) for v in (phi, phi_next, rewards, discounts)]
    in_axes = (None, 0, None, None)
    acc = jax.vmap(lambda p, pn, r, d: L.td_system(p, pn, r, d, GAMMA, chunk_size=chunk), in_axes=in_axes)
    full = jax.vmap(lambda p, pn, r, d: L.lstdq(p, pn, r, d, GAMMA, 1e-3, chunk_size=chunk, return_info=True),
                    in_axes=in_axes)
    rows, outputs = {}, {}
    for name, f in (("accumulation (td_system)", acc), ("accumulation + solve (lstdq)", full)):
        timing, outputs[name], _ = harness.time_jit(f, *args_j, repeats=repeats)
        gflops = 2 * b * n * k * k / timing.run_s / 1e9
        rows[name] = dict(**timing.as_dict(), gflops=gflops, fraction_of_numpy_matmul=gflops / np_ref_gflops,
                          speedup_vs_numpy_loop=t_np_loop / timing.run_s)
    res = outputs["accumulation + solve (lstdq)"]
    max_rel_err = float(max(np.max(np.abs(np.asarray(res.weights[i]) - ref[i])) / np.max(np.abs(ref[i])) for i in range(b)))

    child = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-child", str(mem_n), "64", "65536"],
                           capture_output=True, text=True, check=True)
    memory = json.loads(child.stdout.strip().splitlines()[-1])

    out = dict(
        numpy_matmul_gflops_accumulation_shape=np_acc_gflops, numpy_matmul_gflops_square_1024=np_sq_gflops,
        numpy_reference_gflops=np_ref_gflops, numpy_loop=loop_timing.as_dict(), numpy_loop_s=t_np_loop, jax=rows,
        max_relative_difference_vs_numpy=max_rel_err, memory=memory,
    )
    lines = [
        f"# Batched LSTDQ: B = {b} policies, N = {n:,} samples, K = {k}",
        "",
        f"{harness.describe(meta)}.",
        "",
        f"numpy matmul: {np_acc_gflops:.1f} GFLOP/s on [K, N] @ [N, K] (best of Φᵀ view and contiguous copy), "
        f"{np_sq_gflops:.1f} GFLOP/s on 1024^2; "
        f"Python loop of numpy accumulate + solve over B problems: {t_np_loop:.3f} s.",
        "",
    ]
    lines += harness.markdown_table(
        ["jitted vmapped call", "compile (s)", "run (s, median)", "GFLOP/s (2BNK^2 / run)",
         "vs numpy matmul (the better rate)", "speed-up vs numpy loop"],
        [[name, f"{r['compile_s']:.2f}", f"{r['run_s']:.3f}", f"{r['gflops']:.1f}",
          f"{100 * r['fraction_of_numpy_matmul']:.0f}%", f"{r['speedup_vs_numpy_loop']:.2f}x"] for name, r in rows.items()],
    )
    lines += [
        "",
        f"Max relative difference of the weights vs the numpy loop: {max_rel_err:.1e}.",
        "",
        f"# Chunked accumulation memory: N = {memory['n']:,}, K = {memory['k']}, chunk {memory['chunk']:,} "
        "(features built per block from states; fresh process)",
        "",
    ]
    lines += harness.markdown_table(
        ["data in memory (MB)", "RSS before call (MB)", "peak RSS before call (MB)", "peak RSS after call (MB)",
         "compile (s)", "run (s)", "ok"],
        [[f"{memory['data_mb']:.0f}", f"{memory['rss_before_mb']:.0f}", f"{memory['peak_before_call_mb']:.0f}",
          f"{memory['peak_rss_mb']:.0f}", f"{memory['compile_s']:.2f}", f"{memory['run_s']:.2f}", memory["ok"]]],
    )
    lines += [
        "",
        "Peak RSS = VmHWM of the whole child process (Python, JAX runtime, data and the accumulation); "
        f"materialising Φ and Φ' would need {2 * memory['n'] * memory['k'] * 4 / 1e9:.1f} GB.",
    ]
    settings = dict(batch=b, samples=n, features=k, chunk_size=chunk, repeats=repeats, quick=args.quick,
                    memory_samples=mem_n, gamma=GAMMA, ridge=1e-3)
    harness.write_results("linear_speed", out, lines, meta=meta, settings=settings, out=args.out, quick=args.quick)


if __name__ == "__main__":
    main()
