"""Confidence intervals and lower bounds: formulas, coverage against the exact J, validation."""

import contextlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from offrl_jax.envs.rollout import rollout
from offrl_jax.envs.suite import model_fail
from offrl_jax.envs.tabular import policy_value
from offrl_jax.ope.bootstrap import bootstrap_indices, bootstrap_interval
from offrl_jax.ope.hcope import hcope_lower_bound, hcope_split
from offrl_jax.ope.intervals import (
    empirical_bernstein_bound,
    hoeffding_bound,
    student_t_interval,
    student_t_quantile,
)

# ModelFail (horizon 2, one aliased observation) with mild policies, so the per-trajectory
# importance-weighted returns X = w G are bounded: w in [(0.3/0.5)^2, (0.7/0.5)^2], G in {-1, 1}.
MDP = model_fail(gamma=1.0, dtype=jnp.float64)
BEHAVIOR = jnp.asarray([[0.5, 0.5]], jnp.float64)
TARGET = jnp.asarray([[0.7, 0.3]], jnp.float64)
W_MAX = (0.7 / 0.5) ** 2
NUM_DATASETS = 400
CONFIDENCE = 0.95
# Binomial tolerance for 400 datasets at 95%: coverage >= 0.95 - 3 sd.
COVERAGE_FLOOR = CONFIDENCE - 3 * math.sqrt(CONFIDENCE * (1 - CONFIDENCE) / NUM_DATASETS)


def _per_trajectory(key, n):
    tr = rollout(key, MDP, BEHAVIOR, n, 2, target_policy=TARGET)
    log_w = jnp.sum(jnp.where(tr.mask > 0, tr.target_log_probs - tr.behavior_log_probs, 0.0), axis=1)
    returns = jnp.sum(tr.rewards, axis=1)
    return log_w, returns


_datasets = jax.jit(jax.vmap(_per_trajectory, in_axes=(0, None)), static_argnums=1)


@contextlib.contextmanager
def _fast_compiles():
    """XLA with most optimisations off (as the demo compiles) for programs that run once on little
    data, where compiling is most of the cost. Numerics are unaffected at the tolerances used."""
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    try:
        yield
    finally:
        jax.config.update("jax_disable_most_optimizations", previous)


def _draw(seed, num_datasets, n):
    """``num_datasets`` independent datasets of ``n`` trajectories, ``(log_w, g)`` each ``[D, n]``.

    Every dataset of the module comes from the one compiled program ``_datasets(400 keys, 100)``
    (trajectories are i.i.d., so blocks of them are regrouped into datasets of any size);
    ``_draw(42, 400, 100)`` is exactly ``_datasets(split(key(42), 400), 100)``.
    """
    total = num_datasets * n
    calls = -(-total // (NUM_DATASETS * 100))
    parts = []
    for c in range(calls):
        key = jax.random.key(seed) if c == 0 else jax.random.fold_in(jax.random.key(seed), c)
        with _fast_compiles():
            parts.append(_datasets(jax.random.split(key, NUM_DATASETS), 100))
    lw, g = (jnp.concatenate([p[i].reshape(-1) for p in parts])[:total].reshape(num_datasets, n) for i in (0, 1))
    return lw, g


@pytest.fixture(scope="module")
def exact_value():
    value = float(policy_value(MDP, TARGET))
    assert value == pytest.approx(2 * 0.7 - 1, abs=1e-12)  # closed form gamma (2p - 1)
    return value


@pytest.fixture(scope="module")
def samples_100():
    log_w, g = _draw(42, NUM_DATASETS, 100)
    return log_w, g, jnp.exp(log_w) * g


def _exact_bounds(k, lw, g, x):
    """Hoeffding, empirical Bernstein (x = w G in [-W_MAX, W_MAX]) and HCOPE lower bounds."""
    return (
        hoeffding_bound(x, -W_MAX, W_MAX),
        empirical_bernstein_bound(x, -W_MAX, W_MAX),
        hcope_lower_bound(k, lw, g, -1.0, 1.0, split=0.1),
    )


def _all_bounds(k, lw, g, x):
    """Every interval and bound of the module on one dataset (95%)."""
    k1, k2 = jax.random.split(k)
    out = {
        "t two-sided": student_t_interval(x),
        "t lower": student_t_interval(x, side="lower"),
    }
    for method in ("percentile", "bca"):
        for side in ("two-sided", "lower"):
            out[f"bootstrap {method} {side}"] = bootstrap_interval(k1, x, method=method, side=side)
    out["hoeffding"], out["bernstein"], out["hcope"] = _exact_bounds(k2, lw, g, x)
    return out


# One compiled program per batch shape: every method on the 400 datasets of n = 100 (shared by
# the coverage and width tests), the exact bounds on the 200 datasets of n = 400.
_all_bounds_batched = jax.jit(jax.vmap(_all_bounds))
_exact_bounds_batched = jax.jit(jax.vmap(_exact_bounds))


@pytest.fixture(scope="module")
def bounds_100(samples_100):
    log_w, g, x = samples_100
    # Optimised: its 4 x 400 bootstraps run 4x slower without XLA's optimisations.
    return _all_bounds_batched(jax.random.split(jax.random.key(3), NUM_DATASETS), log_w, g, x)


def _same_under_jit(fn, eager, *args):
    """The one jit-vs-eager check of a function: ``jax.jit(fn)(*args)`` equals its eager result."""
    jitted = jax.jit(fn)(*args)
    for got, want in zip(jax.tree_util.tree_leaves(jitted), jax.tree_util.tree_leaves(eager)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)


def test_student_t_quantile_matches_scipy():
    ps = jnp.asarray([1e-4, 0.025, 0.05, 0.3, 0.5, 0.9, 0.975, 0.9995])
    dfs = (1, 29, 30, 10**5)
    # One program for every df (static) and the float32 case; the eager path runs in
    # test_student_t_interval_matches_scipy.
    got, got32 = jax.jit(lambda p, p32: ([student_t_quantile(p, df) for df in dfs], student_t_quantile(p32, 9999)))(
        ps, jnp.asarray([0.975], jnp.float32)
    )
    for df, g in zip(dfs, got):
        np.testing.assert_allclose(np.asarray(g), scipy.stats.t.ppf(np.asarray(ps), df), rtol=2e-5, atol=1e-9)
    assert got32.dtype == jnp.float32
    np.testing.assert_allclose(got32, scipy.stats.t.ppf(0.975, 9999), rtol=1e-5)


def test_student_t_interval_matches_scipy():
    x = jax.random.normal(jax.random.key(1), (37,), jnp.float64) * 2 + 1
    res = student_t_interval(x, confidence=0.9)
    lo, hi = scipy.stats.t.interval(0.9, 36, loc=np.mean(x), scale=scipy.stats.sem(x))
    np.testing.assert_allclose([res.lower, res.upper], [lo, hi], rtol=1e-6)
    _same_under_jit(lambda x: student_t_interval(x, confidence=0.9), res, x)
    one = student_t_interval(x, confidence=0.9, side="lower")
    expected = np.mean(x) - scipy.stats.t.ppf(0.9, 36) * scipy.stats.sem(x)
    np.testing.assert_allclose(one.lower, expected, rtol=1e-6)
    assert np.isposinf(one.upper)
    up = student_t_interval(x, confidence=0.9, side="upper")
    assert np.isneginf(up.lower) and up.upper > res.estimate


def test_hoeffding_and_bernstein_formulas():
    x = jax.random.uniform(jax.random.key(2), (50,), jnp.float64, -1.0, 3.0)
    a, b, delta, n = -1.0, 3.0, 0.1, 50
    h = hoeffding_bound(x, a, b, confidence=0.9)
    np.testing.assert_allclose(h.lower, np.mean(x) - 4 * math.sqrt(math.log(1 / delta) / (2 * n)), rtol=1e-12)
    assert float(h.upper) == b
    h2 = hoeffding_bound(x, a, b, confidence=0.9, side="two-sided")
    half = 4 * math.sqrt(math.log(2 / delta) / (2 * n))
    np.testing.assert_allclose([h2.lower, h2.upper], [np.mean(x) - half, np.mean(x) + half], rtol=1e-12)
    e = empirical_bernstein_bound(x, a, b, confidence=0.9)
    z = (np.asarray(x) - a) / (b - a)
    width = math.sqrt(2 * np.var(z, ddof=1) * math.log(2 / delta) / n) + 7 * math.log(2 / delta) / (3 * (n - 1))
    np.testing.assert_allclose(e.lower, np.mean(x) - (b - a) * width, rtol=1e-12)
    both = lambda x: (hoeffding_bound(x, a, b, confidence=0.9), empirical_bernstein_bound(x, a, b, confidence=0.9))  # noqa: E731
    _same_under_jit(both, (h, e), x)
    # Clipping: a bound can never leave [a, b].
    tiny = hoeffding_bound(jnp.asarray([0.0, 0.1]), 0.0, 1.0, side="two-sided")
    assert float(tiny.lower) == 0.0 and float(tiny.upper) <= 1.0


def test_widths_shrink_as_inverse_sqrt_n(samples_100, bounds_100):
    lw400, g400 = _draw(7, 200, 400)
    x400 = jnp.exp(lw400) * g400
    _, _, x100 = samples_100
    with _fast_compiles():
        b400 = _exact_bounds_batched(jax.random.split(jax.random.key(8), 200), lw400, g400, x400)
    b100 = (bounds_100["hoeffding"], bounds_100["bernstein"], bounds_100["hcope"])
    # Hoeffding: exactly 1/sqrt(n).
    w100 = jnp.mean(x100, 1) - b100[0].lower
    w400 = jnp.mean(x400, 1) - b400[0].lower
    np.testing.assert_allclose(w100[:200] / w400, 2.0, rtol=1e-10)
    # Empirical Bernstein: width = (b - a) [sqrt(2 V ln(2/delta) / n) + 7 ln(2/delta) / (3 (n - 1))].
    # The variance term shrinks as 1/sqrt(n) (ratio 2 up to the change in mean sqrt(V)); the total
    # width ratio lies between 2 and (4n - 1)/(n - 1).
    ln = math.log(2 / 0.05)

    def eb_terms(x, eb):
        width = jnp.mean(x, 1) - eb.lower
        n = x.shape[1]
        return width, width - 2 * W_MAX * 7 * ln / (3 * (n - 1))

    (w100, v100), (w400, v400) = eb_terms(x100, b100[1]), eb_terms(x400, b400[1])
    r_var = float(jnp.mean(v100) / jnp.mean(v400))
    r_eb = float(jnp.mean(w100) / jnp.mean(w400))
    assert 1.9 < r_var < 2.1, r_var
    assert 2.0 < r_eb < 399 / 99, r_eb
    # HCOPE: gap between the IS estimate and the bound (same two kinds of term, plus a truncation
    # bias that shrinks as c grows with n).
    gap100, gap400 = b100[2], b400[2]
    r_hc = float(jnp.mean(gap100.estimate - gap100.lower) / jnp.mean(gap400.estimate - gap400.lower))
    print("width ratios n=100 / n=400: EB", r_eb, "EB variance term", r_var, "HCOPE", r_hc)
    assert 2.0 < r_hc < 399 / 99, r_hc


def test_coverage(bounds_100, exact_value):
    """Each method's 95% promise holds for the exact J over 400 independent datasets."""
    b = bounds_100
    covered = {}
    for name in ("t two-sided", "bootstrap percentile two-sided", "bootstrap bca two-sided"):
        covered[name] = (b[name].lower <= exact_value) & (exact_value <= b[name].upper)
    for name in ("t lower", "bootstrap percentile lower", "bootstrap bca lower", "hoeffding", "bernstein", "hcope"):
        covered[name] = b[name].lower <= exact_value
    rates = {k: float(jnp.mean(v)) for k, v in covered.items()}
    print("coverage at 95% over", NUM_DATASETS, "datasets of n = 100:", rates)
    for name, rate in rates.items():
        assert rate >= COVERAGE_FLOOR, (name, rate)
    # The exact bounds are informative, not vacuous: above the trivial lower end -W_MAX on average.
    assert float(jnp.mean(b["bernstein"].lower)) > -0.5 and float(jnp.mean(b["hcope"].lower)) > -0.5


def test_bootstrap_percentile_and_bca_match_numpy():
    x = jax.random.exponential(jax.random.key(5), (60,), jnp.float64)
    key = jax.random.key(6)
    p = bootstrap_interval(key, x, num_resamples=500, confidence=0.9)
    idx = np.asarray(bootstrap_indices(key, 60, 500))
    theta = np.asarray(x)[idx].mean(1)
    np.testing.assert_allclose(p.resampled, theta, rtol=1e-12)
    np.testing.assert_allclose([p.lower, p.upper], np.quantile(theta, [0.05, 0.95]), rtol=1e-12)
    b = bootstrap_interval(key, x, num_resamples=500, confidence=0.9, method="bca")
    xs, mean = np.asarray(x), float(np.mean(x))
    z0 = scipy.stats.norm.ppf((np.sum(theta < mean) + 0.5 * np.sum(theta == mean)) / 500)
    jack = np.array([np.delete(xs, i).mean() for i in range(60)])
    d = jack.mean() - jack
    acc = np.sum(d**3) / (6 * np.sum(d**2) ** 1.5)
    ends = []
    for z in scipy.stats.norm.ppf([0.05, 0.95]):
        ends.append(np.quantile(theta, scipy.stats.norm.cdf(z0 + (z0 + z) / (1 - acc * (z0 + z)))))
    np.testing.assert_allclose([b.bias_correction, b.acceleration], [z0, acc], rtol=1e-9)
    np.testing.assert_allclose([b.lower, b.upper], ends, rtol=1e-9)
    _same_under_jit(lambda x: bootstrap_interval(key, x, num_resamples=500, confidence=0.9, method="bca"), b, x)
    # Skewed data: BCa shifts the interval right relative to the percentile one.
    assert b.upper > p.upper
    # The generic jackknife (any estimator) equals the closed form for the mean.
    g = bootstrap_interval(key, x, estimator=lambda s: jnp.mean(s), num_resamples=500, confidence=0.9, method="bca")
    np.testing.assert_allclose([g.lower, g.upper, g.acceleration], [b.lower, b.upper, b.acceleration], rtol=1e-10)


def test_bootstrap_weighted_estimator_renormalises_per_resample():
    """A dataset-level self-normalised estimator (WIS) is recomputed on each resample."""
    log_w, g = _draw(9, 1, 80)
    data = (log_w[0], g[0])

    def wis(d):
        w = jax.nn.softmax(d[0])
        return jnp.sum(w * d[1])

    key = jax.random.key(10)
    res = jax.jit(lambda d: bootstrap_interval(key, d, estimator=wis, num_resamples=300))(data)
    idx = np.asarray(bootstrap_indices(key, 80, 300))
    lw, gg = np.asarray(data[0])[idx], np.asarray(data[1])[idx]
    w = np.exp(lw - lw.max(1, keepdims=True))
    expected = np.sum(w * gg, 1) / np.sum(w, 1)
    np.testing.assert_allclose(res.resampled, expected, rtol=1e-12)
    chunked = jax.jit(lambda d: bootstrap_interval(key, d, estimator=wis, num_resamples=300, batch_size=64))(data)
    np.testing.assert_allclose(chunked.resampled, res.resampled, rtol=1e-12)
    np.testing.assert_allclose(res.estimate, wis(data), rtol=1e-12)


def test_bootstrap_indices_uniform():
    idx = np.asarray(bootstrap_indices(jax.random.key(11), 50, 4000))
    assert idx.min() == 0 and idx.max() == 49
    counts = np.bincount(idx.ravel(), minlength=50)
    chi2 = np.sum((counts - 4000) ** 2 / 4000)
    assert chi2 < scipy.stats.chi2.ppf(0.999, 49)
    big = bootstrap_indices(jax.random.key(11), 70_000, 2)
    assert big.shape == (2, 70_000) and int(big.max()) < 70_000


def test_hcope_threshold_uses_only_pre_split():
    log_w, g = _draw(12, 1, 200)
    log_w, g = log_w[0], g[0]
    key = jax.random.key(13)
    hc = jax.jit(lambda lw, gg: hcope_lower_bound(key, lw, gg, -1.0, 1.0, split=0.1))
    base = hc(log_w, g)
    pre, post = hcope_split(key, 200, 0.1)
    assert int(base.num_pre) == 20 and int(base.num_post) == 180
    assert len(set(np.asarray(pre).tolist()) | set(np.asarray(post).tolist())) == 200
    # Changing D_post (returns and weights) leaves c unchanged but moves the bound.
    g2 = g.at[post].set(-g[post])
    lw2 = log_w.at[post].add(0.3)
    moved = hc(lw2, g2)
    assert float(moved.threshold) == float(base.threshold)
    assert float(moved.lower) != float(base.lower)
    # Changing D_pre changes c.
    lw3 = log_w.at[pre].set(jnp.linspace(-2.0, 2.0, 20))
    assert float(hc(lw3, g).threshold) != float(base.threshold)


def test_hcope_bound_formula():
    log_w, g = _draw(14, 1, 200)
    log_w, g = np.asarray(log_w[0]), np.asarray(g[0])
    key = jax.random.key(15)
    res = hcope_lower_bound(key, log_w, g, -1.0, 1.0, confidence=0.9, split=0.1)
    _same_under_jit(lambda lw, gg: hcope_lower_bound(key, lw, gg, -1.0, 1.0, confidence=0.9, split=0.1)[:4], res[:4],
                    log_w, g)
    pre, post = (np.asarray(i) for i in hcope_split(key, 200, 0.1))
    x = np.exp(log_w) * (g + 1) / 2
    c, n, ln = float(res.threshold), len(post), math.log(2 / 0.1)

    def lb(vals, c, n):
        y = np.minimum(vals, c)
        return y.mean() - 7 * c * ln / (3 * (n - 1)) - math.sqrt(2 * ln * np.var(y, ddof=1) / n)

    np.testing.assert_allclose(res.lower, -1 + 2 * max(lb(x[post], c, n), 0.0), rtol=1e-9)
    # c maximises the D_pre objective (with n_post) over a fine grid, up to the candidate set.
    grid = np.exp(np.linspace(np.log(x[pre][x[pre] > 0].min()), np.log(x[pre].max()), 2000))
    best = max(lb(x[pre], cc, n) for cc in grid)
    assert lb(x[pre], c, n) >= best - 1e-3
    np.testing.assert_allclose(res.estimate, -1 + 2 * x.mean(), rtol=1e-12)


def test_hcope_huge_weights_stay_finite():
    log_w = jnp.concatenate([jnp.full((5,), 200.0), jnp.full((95,), -1.0)]).astype(jnp.float32)
    g = jnp.linspace(0.0, 1.0, 100, dtype=jnp.float32)
    res = jax.jit(lambda lw, gg: hcope_lower_bound(jax.random.key(0), lw, gg, 0.0, 1.0, split=0.2))(log_w, g)
    assert res.lower.dtype == jnp.float32
    assert np.isfinite(float(res.lower)) and np.isfinite(float(res.threshold))


def test_vmap_matches_loop():
    """Vmapped over datasets equals one jitted call per dataset (jit vs eager: the formula tests)."""
    keys = jax.random.split(jax.random.key(16), 3)
    log_w, g = _draw(16, 3, 60)
    x = jnp.exp(log_w) * g
    fns = {
        "t": lambda k, lw, gg, s: student_t_interval(s),
        "hoeffding": lambda k, lw, gg, s: hoeffding_bound(s, -W_MAX, W_MAX),
        "bernstein": lambda k, lw, gg, s: empirical_bernstein_bound(s, -W_MAX, W_MAX, side="two-sided"),
        "bootstrap": lambda k, lw, gg, s: bootstrap_interval(k, s, num_resamples=200, method="bca"),
        "hcope": lambda k, lw, gg, s: hcope_lower_bound(k, lw, gg, -1.0, 1.0, split=0.1),
    }

    def all_methods(*a):
        return {name: fn(*a)[:3] for name, fn in fns.items()}

    with _fast_compiles():
        batched = jax.jit(jax.vmap(all_methods))(keys, log_w, g, x)
        jitted = jax.jit(all_methods)
        ones = [jitted(keys[i], log_w[i], g[i], x[i]) for i in range(3)]
    for i, one in enumerate(ones):
        for name in fns:
            for j in range(3):
                np.testing.assert_allclose(one[name][j], batched[name][j][i], rtol=1e-10, err_msg=name)


def test_float32_stays_float32():
    x = jnp.linspace(0.0, 1.0, 20, dtype=jnp.float32)

    def all_methods(x):
        return (
            student_t_interval(x),
            hoeffding_bound(x, 0.0, 1.0),
            empirical_bernstein_bound(x, 0.0, 1.0),
            bootstrap_interval(jax.random.key(0), x, num_resamples=50, method="bca"),
            hcope_lower_bound(jax.random.key(0), x, x, 0.0, 1.0, split=0.2),
        )

    for res in jax.jit(all_methods)(x):
        assert res.lower.dtype == jnp.float32 and res.estimate.dtype == jnp.float32


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda x: student_t_interval(x, confidence=1.0), "confidence"),
        (lambda x: student_t_interval(x, confidence=0.0), "confidence"),
        (lambda x: student_t_interval(x[:1]), "samples"),
        (lambda x: student_t_interval(x, side="both"), "side"),
        (lambda x: student_t_interval(x.at[3].set(jnp.nan)), "samples"),
        (lambda x: student_t_interval(x.reshape(2, -1)), "samples"),
        (lambda x: hoeffding_bound(x, 1.0, 1.0), "a < b"),
        (lambda x: hoeffding_bound(x, 0.0, 0.5), r"samples: expected values in \[a, b\]"),
        (lambda x: empirical_bernstein_bound(x, jnp.nan, 1.0), "a, b"),
        (lambda x: empirical_bernstein_bound(x[:1], 0.0, 1.0), "samples"),
        (lambda x: bootstrap_interval(jax.random.key(0), x, method="basic"), "method"),
        (lambda x: bootstrap_interval(jax.random.key(0), x, num_resamples=1), "num_resamples"),
        (lambda x: bootstrap_interval(jax.random.key(0), x.at[0].set(jnp.inf)), "data"),
        (lambda x: bootstrap_interval(jax.random.key(0), (x, x[:5]), estimator=jnp.mean), "data"),
        (lambda x: bootstrap_interval(jax.random.key(0), x, estimator=3), "estimator"),
        (lambda x: hcope_lower_bound(jax.random.key(0), x, x, 0.0, 1.0, split=0.05), "split"),
        (lambda x: hcope_lower_bound(jax.random.key(0), x[:5], x, 0.0, 1.0), "log_weights"),
        (lambda x: hcope_lower_bound(jax.random.key(0), x, x * 3, 0.0, 1.0, split=0.2), "returns"),
        (lambda x: hcope_lower_bound(jax.random.key(0), x.at[0].set(jnp.nan), x, 0.0, 1.0, split=0.2), "log_weights"),
    ],
)
def test_bad_input_raises(call, match):
    x = jnp.linspace(0.0, 1.0, 20)
    with pytest.raises(ValueError, match=match):
        call(x)
