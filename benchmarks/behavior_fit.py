"""Time to fit a behaviour policy to a given held-out log-likelihood: ours vs scikit-learn.

Data: M logged steps (10^6; ``--quick`` 10^5) with 8-dimensional Gaussian observations and 4
actions drawn from a linear-softmax β(a|s) = softmax(W s + b)_a (W, b fixed by a seed). The
last 20% of the rows are held out. The target is the held-out mean log-likelihood of the true β
minus 0.01 nats per step; each method's time to reach it is reported:

* ours, linear softmax (``BehaviorConfig(hidden_sizes=())``, Adam, minibatches of 4096 drawn
  inside jit) and an MLP (64, 64): one jitted call that stops (``lax.cond`` skips the remaining
  chunks) at the first held-out evaluation, every 10 steps, that reaches the target. Compile time
  is reported apart; the run time is the median of ``--repeats`` calls.
* scikit-learn ``LogisticRegression`` (lbfgs, multinomial, the propensity model offline_rl_ope
  ships): fitted with ``max_iter`` = 1, 2, 4, 8, ... until its held-out log-likelihood reaches
  the target; the time of that fit (median of ``--repeats``) is its time to reach it. Its fit to
  its own convergence (``tol=1e-4``) is reported too.

Both run on this machine's CPUs in one process. Usage:
python benchmarks/behavior_fit.py [--quick] [--repeats R] [--out DIR]
"""

from __future__ import annotations

import os
import sys

import jax
import numpy as np

from offrl_jax import behavior

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

D, A, GAP = 8, 4, 0.01


def make_data(m: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(D, A)).astype(np.float32)
    b = rng.normal(size=A).astype(np.float32)
    x = rng.normal(size=(m, D)).astype(np.float32)
    logits = x @ w + b
    logp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    a = (np.cumsum(np.exp(logp), 1) > rng.random((m, 1))).argmax(1).astype(np.int32)
    return x, a, logp[np.arange(m), a]


def ours(x, a, fit, valid, target, hidden, repeats):
    cfg = behavior.BehaviorConfig(num_actions=A, hidden_sizes=hidden, num_steps=4000, batch_size=4096,
                                  learning_rate=0.05 if not hidden else 0.005, eval_every=10, patience=None,
                                  target_log_likelihood=float(target))
    data = behavior.behavior_data(x, a, fit, valid)
    train = jax.jit(behavior.make_train(cfg))
    timing, res, _ = harness.time_jit(train, jax.random.key(0), data, repeats=repeats)
    hist = np.asarray(res.metrics.heldout_log_likelihood)
    evals = int(np.sum(np.isfinite(hist)))
    return dict(method=f"offrl_jax {'linear softmax' if not hidden else 'MLP ' + str(hidden)}",
                timing=timing.as_dict(), seconds=timing.run_s, compile_s=timing.compile_s,
                heldout_ll=float(res.state.best_log_likelihood), reached=bool(res.state.best_log_likelihood >= target),
                steps=evals * cfg.eval_every)


def sklearn_rows(x, a, fit, valid, target, repeats):
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return [dict(method="scikit-learn LogisticRegression", skipped="scikit-learn is not installed")]
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    def fit_ll(max_iter, tol=1e-4):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = LogisticRegression(max_iter=max_iter, tol=tol).fit(x[fit], a[fit])
        lp = clf.predict_log_proba(x[valid])
        return clf, float(np.mean(lp[np.arange(valid.size), a[valid]]))

    rows = []
    it = 1
    while it <= 1280:
        _, ll = fit_ll(it)
        if ll >= target:
            break
        it *= 2
    timing, (clf, ll) = harness.time_calls(lambda: fit_ll(it), repeats=repeats)
    rows.append(dict(method=f"scikit-learn LogisticRegression (lbfgs, max_iter={it})", timing=timing.as_dict(),
                     seconds=timing.run_s, compile_s=None, heldout_ll=ll, reached=ll >= target, steps=it))
    timing, (clf, ll) = harness.time_calls(lambda: fit_ll(1000), repeats=max(1, repeats // 2))
    rows.append(dict(method="scikit-learn LogisticRegression (lbfgs, to convergence)", timing=timing.as_dict(),
                     seconds=timing.run_s, compile_s=None, heldout_ll=ll, reached=ll >= target,
                     steps=int(np.max(clf.n_iter_))))
    return rows


def main():
    args = harness.parse_args(harness.make_parser(__doc__, quick_repeats=3, repeats=3))
    meta = harness.metadata("float32")
    m = 100_000 if args.quick else 1_000_000
    x, a, true_lp = make_data(m)
    cut = int(0.8 * m)
    fit, valid = np.arange(cut), np.arange(cut, m)
    true_ll = float(np.mean(true_lp[valid]))
    target = true_ll - GAP
    rows = [ours(x, a, fit, valid, target, (), args.repeats), ours(x, a, fit, valid, target, (64, 64), args.repeats)]
    rows += sklearn_rows(x, a, fit, valid, target, args.repeats)
    base = next((r["seconds"] for r in rows if r["method"].startswith("scikit-learn") and "seconds" in r), None)
    lines = [
        "# Behaviour-policy fit: time to a held-out log-likelihood", "",
        f"M = {m} steps ({cut} fit, {m - cut} held out), {D}-dim observations, {A} actions, true β linear softmax. "
        f"Target: held-out mean log-likelihood ≥ {target:.4f} (true β: {true_ll:.4f}, minus {GAP}). "
        f"{harness.describe(meta)}.", "",
    ]
    table = []
    for r in rows:
        if "skipped" in r:
            table.append([r["method"], "skipped: " + r["skipped"], "", "", "", "", ""])
            continue
        speed = f"{base / r['seconds']:.1f}x" if base and r["seconds"] else ""
        comp = f"{r['compile_s']:.2f}" if r["compile_s"] is not None else "n/a"
        table.append([r["method"], f"{r['seconds']:.3f}", comp, f"{r['heldout_ll']:.4f}", "yes" if r["reached"] else "NO",
                      str(r["steps"]), speed])
    lines += harness.markdown_table(
        ["method", "time to target (s, median)", "compile (s)", "held-out LL", "reached", "steps / iterations",
         "speed-up vs sklearn (first row)"], table)
    settings = dict(num_steps=m, obs_dim=D, num_actions=A, target=target, true_ll=true_ll, gap=GAP, repeats=args.repeats)
    harness.write_results("behavior_fit", rows, lines, meta=meta, settings=settings, out=args.out, quick=args.quick)


if __name__ == "__main__":
    main()
