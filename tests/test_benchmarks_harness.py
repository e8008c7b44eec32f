"""The benchmark harness (benchmarks/harness.py): blocking timers, compile time apart, metadata,
atomic writers, ``--peer-python`` resolution. No timed assertions: clocks are faked where the
split between compile and run time is checked."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("offrl_benchmarks_harness", BENCHMARKS / "harness.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


class FakeClock:
    """``time.perf_counter`` stand-in that only moves when told to."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


# ------------------------------------------------------------------------------------------------
# Timing.
# ------------------------------------------------------------------------------------------------
def test_timed_call_blocks_on_the_output(harness, monkeypatch):
    blocked = []
    real = jax.block_until_ready
    monkeypatch.setattr(jax, "block_until_ready", lambda x: blocked.append(x) or real(x))
    out, seconds = harness.timed_call(lambda x: {"y": x * 2.0}, jnp.arange(3.0))
    assert len(blocked) == 1 and blocked[0] is out
    np.testing.assert_array_equal(out["y"], [0.0, 2.0, 4.0])
    assert seconds >= 0.0


def test_time_jit_compiles_once_blocks_every_call_and_keeps_compile_apart(harness, monkeypatch):
    traces, blocked = [], []
    real = jax.block_until_ready
    monkeypatch.setattr(jax, "block_until_ready", lambda x: blocked.append(x) or real(x))

    def f(x, y):
        traces.append(None)
        return jnp.sin(x) @ y

    x = jnp.ones((4, 4))
    timing, out, compiled = harness.time_jit(f, x, x, repeats=3)
    assert len(traces) == 1  # one trace, one compile: the repeats reuse the executable
    assert len(blocked) == 1 + 1 + 3  # the arguments, the first call, each repeat
    assert timing.compile_s is not None and timing.compile_s >= 0.0
    assert timing.first_call_s >= 0.0 and timing.repeats == 3 and len(timing.times_s) == 3
    assert timing.min_s <= timing.run_s
    np.testing.assert_allclose(out, jnp.sin(x) @ x, rtol=1e-6)
    assert harness.compiled_bytes(compiled) is None or harness.compiled_bytes(compiled) > 0


def test_compile_time_goes_to_compile_s_not_run_s(harness, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(harness.time, "perf_counter", clock)

    class Compiled:
        calls = 0

        def __call__(self, x):
            Compiled.calls += 1
            clock.now += 10.0 if Compiled.calls == 1 else 1.0  # first call slower (one-off costs)
            return x

    class Lowered:
        def compile(self):
            clock.now += 100.0
            return Compiled()

    class Jitted:
        def lower(self, *args):
            return Lowered()

    timing, out, _ = harness.time_jit(Jitted(), np.float32(1.0), repeats=4)
    assert (timing.compile_s, timing.first_call_s, timing.run_s, timing.min_s, timing.iqr_s) == (100.0, 10.0, 1.0, 1.0, 0.0)
    assert timing.times_s == (1.0,) * 4 and out == 1.0


def test_time_calls_warms_up_once_and_has_no_compile_time(harness, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(harness.time, "perf_counter", clock)
    steps = iter([5.0, 3.0, 1.0, 2.0])
    calls = []

    def fn(a):
        calls.append(a)
        clock.now += next(steps)
        return a + 1

    timing, out = harness.time_calls(fn, 1, repeats=3)
    assert calls == [1] * 4 and out == 2
    assert timing.compile_s is None and timing.first_call_s == 5.0
    assert (timing.run_s, timing.min_s, timing.times_s) == (2.0, 1.0, (3.0, 1.0, 2.0))


def test_summarize_median_min_iqr(harness):
    t = harness.summarize([4.0, 1.0, 3.0, 2.0, 5.0], first_call_s=9.0, compile_s=7.0)
    assert (t.run_s, t.min_s, t.iqr_s, t.first_call_s, t.compile_s) == (3.0, 1.0, 2.0, 9.0, 7.0)
    d = t.as_dict()
    assert d["repeats"] == 5 and d["times_s"] == [4.0, 1.0, 3.0, 2.0, 5.0]
    assert harness.summarize([2.0], 1.0).iqr_s == 0.0
    with pytest.raises(ValueError, match="times"):
        harness.summarize([], 1.0)
    called = []
    with pytest.raises(ValueError, match="repeats"):
        harness.time_calls(lambda: called.append(1), repeats=0)
    assert not called  # checked before any call


# ------------------------------------------------------------------------------------------------
# Metadata.
# ------------------------------------------------------------------------------------------------
def test_metadata_has_the_fixed_keys(harness):
    meta = harness.metadata(argv=["bench.py", "--quick"])
    assert tuple(meta) == harness.METADATA_KEYS
    assert meta["jax_version"] == jax.__version__ and meta["backend"] == jax.default_backend()
    assert meta["dtype"] == ("float64" if jax.config.read("jax_enable_x64") else "float32")
    assert meta["command"].endswith("bench.py --quick") and meta["cpu_count"] == os.cpu_count()
    assert meta["numpy_version"] == np.__version__
    assert harness.metadata("bfloat16")["dtype"] == "bfloat16"
    assert meta["device_kind"] in harness.describe(meta)


# ------------------------------------------------------------------------------------------------
# Writers.
# ------------------------------------------------------------------------------------------------
def test_write_results_json_and_markdown(harness, tmp_path):
    meta = {"dtype": "float32"}
    results = [{"x": np.float32(1.5), "y": np.arange(2), "bad": float("nan")}]
    lines = ["# t", ""] + harness.markdown_table(["a", "b"], [[1, "x"], [2, "y"]], align="lr")
    js, md = harness.write_results("demo", results, lines, meta=meta, settings={"n": 1}, out=str(tmp_path),
                                   quick=True, echo=False)
    assert (js, md) == (str(tmp_path / "demo_quick.json"), str(tmp_path / "demo_quick.md"))
    doc = json.loads(pathlib.Path(js).read_text())
    assert doc == {"benchmark": "demo", "meta": meta, "settings": {"n": 1},
                   "results": [{"x": 1.5, "y": [0, 1], "bad": None}]}
    assert pathlib.Path(md).read_text() == "# t\n\n| a | b |\n|---|---:|\n| 1 | x |\n| 2 | y |\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo_quick.json", "demo_quick.md"]  # no temporaries
    assert harness.write_results("demo", [], [], meta=meta, out=str(tmp_path), echo=False)[0].endswith("demo.json")


def test_writes_are_atomic(harness, tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(harness.os, "replace", lambda a, b: replaced.append((a, b)) or real_replace(a, b))
    harness.write_atomic(str(path), "old\n")
    (src, dst), = replaced
    assert dst == str(path) and os.path.dirname(src) == str(tmp_path) and src != dst  # temp file, same folder
    assert path.read_text() == "old\n"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not mkstemp's private 0600

    def broken(a, b):
        raise OSError("disk full")

    monkeypatch.setattr(harness.os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        harness.write_atomic(str(path), "new\n")
    assert path.read_text() == "old\n"  # a failed write leaves the old result whole
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # and no temporary behind


def test_markdown_table_checks_row_width(harness):
    with pytest.raises(ValueError, match="rows"):
        harness.markdown_table(["a", "b"], [[1]])


# ------------------------------------------------------------------------------------------------
# Command line and peers.
# ------------------------------------------------------------------------------------------------
def test_peer_python_defaults_to_the_environment_variable(harness, monkeypatch):
    monkeypatch.setenv(harness.PEER_PYTHON_ENV, sys.executable)
    parser = harness.make_parser("doc line\nmore", quick_repeats=2, repeats=7)
    args = harness.parse_args(parser, [])
    assert args.peer_python == sys.executable and args.repeats == 7 and not args.quick
    assert args.out == harness.RESULTS_DIR
    args = harness.parse_args(parser, ["--quick", "--peer-python", "other-python", "--out", "x"])
    assert (args.peer_python, args.repeats, args.out) == ("other-python", 2, "x")
    assert harness.resolve_peer_python(sys.executable) == (sys.executable, None)

    monkeypatch.delenv(harness.PEER_PYTHON_ENV)
    args = harness.parse_args(harness.make_parser(None), ["--repeats", "4"])
    assert args.peer_python is None and args.repeats == 4
    path, reason = harness.resolve_peer_python(args.peer_python)
    assert path is None and harness.PEER_PYTHON_ENV in reason
    path, reason = harness.resolve_peer_python("/nonexistent/python")
    assert path is None and "not an executable" in reason
    with pytest.raises(SystemExit):
        harness.parse_args(harness.make_parser(None), ["--repeats", "0"])


def test_run_peer_reads_the_workers_json(harness, tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(
        "import sys, json\n"
        "if sys.argv[1] == 'fail':\n    raise SystemExit('no module named peer_lib')\n"
        "print('log line')\nprint(json.dumps({'value': float(sys.argv[1])}))\n"
    )
    assert harness.run_peer(sys.executable, str(worker), ["2.5"]) == ({"value": 2.5}, None)
    result, reason = harness.run_peer(sys.executable, str(worker), ["fail"])
    assert result is None and "peer_lib" in reason
    result, reason = harness.run_peer(None, str(worker), ["1"])
    assert result is None and harness.PEER_PYTHON_ENV in reason


def test_every_script_uses_the_harness():
    scripts = sorted(p for p in BENCHMARKS.glob("*.py") if p.name not in ("harness.py", "numpy_ope.py", "figures.py"))  # figures.py only redraws PNGs
    assert len(scripts) >= 10
    for p in scripts:
        src = p.read_text()
        assert "import harness" in src, p.name
        for private in ("perf_counter", "json.dump(", "argparse.ArgumentParser(", "/work/", "block_until_ready("):
            assert private not in src, (p.name, private)


def _load_script(name):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(f"offrl_benchmarks_{name}", BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def test_results_page_has_wall_and_cpu_seconds_and_totals(harness):
    run_all = _load_script("run_all")
    runs = [run_all.ScriptRun("a", 0, 10.0, ["x"], [], 4.5), run_all.ScriptRun("b", None, 2.0, ["y"], [], 1.25)]
    page = run_all.results_page(runs, harness.metadata(), "offrl-jax bench --quick")
    assert "| benchmark | status | wall s | CPU s | tables |" in page
    assert "| a | ok | 10.0 | 4.5 | - |" in page and "| b | timed out | 2.0 | 1.2 | - |" in page
    assert "| **total** | 1 ok | 12.0 | 5.8 |" in page


def test_accuracy_figure_draws_a_panel_per_problem(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = _load_script("figures")
    cond = lambda n, v: {"N": n, "T": 5, "rel_rmse": {"IS": [9.0, v], "DM": [9.0, v / 2]}}  # noqa: E731
    res = {name: {"kind": kind, "T0": 5, "target": 1, "estimators": ["IS", "DM"],
                  "conditions": [cond(8, 0.4), cond(32, 0.2), {**cond(8, 1.0), "T": 9}]}
           for name, kind in (("chain", "tabular"), ("CartPole-v1", "control"))}
    fig = figures.ope_accuracy({"benchmark": "ope_accuracy", "results": res, "settings": {"size": "medium"}}, plt)
    axes = [ax for ax in fig.axes if ax.lines]
    assert [ax.get_title() for ax in axes] == ["chain (T=5, exact truth)", "CartPole-v1 (T=5, Monte-Carlo truth)"]
    for ax in axes:  # one curve per estimator over the standard T's sizes, the target's column
        (is_line, dm_line) = ax.lines
        np.testing.assert_allclose(is_line.get_xdata(), [8, 32])
        np.testing.assert_allclose(is_line.get_ydata(), [0.4, 0.2])
        np.testing.assert_allclose(dm_line.get_ydata(), [0.2, 0.1])
    plt.close(fig)
