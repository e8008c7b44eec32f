"""The command line and its demo: end to end on a small problem, listing, argument errors, cache."""

import os

import jax
import numpy as np
import pytest

from offrl_jax import cli
from offrl_jax.envs.suite import make_problem, problem_value
from offrl_jax.experiments import demo


@pytest.fixture(autouse=True)
def _no_persistent_cache(monkeypatch):
    # cli.main would otherwise point JAX's compilation cache at the user's home for the session.
    monkeypatch.setenv("OFFRL_JAX_NO_CACHE", "1")


def test_demo_with_fqe_q_hat(capsys):
    # N = 200 as in test_demo_reports_exact_values: the estimators' program compiles once.
    args = ["demo", "--env", "model_fail", "--num-episodes", "200", "--quiet", "--q-hat", "fqe"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "exact J(target)" in out and "behaviour returns" in out and "DR (cross-fitted FQE)" in out
    assert not jax.config.read("jax_disable_most_optimizations")  # the demo's fast compiles end with main()


def test_demo_reports_exact_values():
    # Compiled as ``offrl-jax demo`` compiles (most XLA optimisations off): its programs run once.
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    try:
        rows = demo.run_demo("model_fail", 200, None, 0, 0.95, quiet=True)
    finally:
        jax.config.update("jax_disable_most_optimizations", previous)
    assert any(r["method"].startswith("DR (cross-fitted tabular model)") for r in rows)
    exact = {r["method"]: r["estimate"] for r in rows}
    p = make_problem("model_fail")
    np.testing.assert_allclose(exact["exact J(target)"], float(problem_value(p)), rtol=1e-6)
    for r in rows[2:]:
        assert np.isfinite(r["estimate"])
        np.testing.assert_allclose(r["error"], r["estimate"] - exact["exact J(target)"], rtol=1e-6)


def test_envs_lists_problems(capsys):
    assert cli.main(["envs"]) == 0
    assert "model_win" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, match",
    [
        (["demo", "--env", "nope"], "--env"),
        (["demo", "--confidence", "1.5"], "--confidence"),
        (["demo", "--num-episodes", "0"], "--num-episodes"),
        (["demo", "-n", "1"], "--num-episodes"),
        (["demo", "--horizon", "-3"], "--horizon"),
        (["demo", "--seed", "x"], "--seed"),
        (["nope"], "command"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(argv, match, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err and "Traceback" not in err


def test_run_demo_errors_name_the_argument():
    with pytest.raises(ValueError, match="num_episodes"):
        demo.run_demo("model_win", 1, None, 0, 0.95, quiet=True)
    with pytest.raises(ValueError, match="q_hat"):
        demo.run_demo("model_win", 10, None, 0, 0.95, q_hat="nope", quiet=True)


def test_compilation_cache_is_opt_out(monkeypatch, tmp_path):
    calls = {}
    monkeypatch.setattr(jax.config, "update", lambda k, v: calls.__setitem__(k, v))
    assert cli.enable_compilation_cache() is None and not calls  # OFFRL_JAX_NO_CACHE=1 (fixture)
    monkeypatch.setenv("OFFRL_JAX_NO_CACHE", "0")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = cli.enable_compilation_cache()
    assert path == str(tmp_path / "offrl_jax" / "jax")
    assert calls["jax_compilation_cache_dir"] == path
    assert calls["jax_persistent_cache_min_compile_time_secs"] == 0.0
    assert calls["jax_persistent_cache_min_entry_size_bytes"] == 0


# ------------------------------------------------------------------------------------------------
# `offrl-jax bench`: every script of ./benchmarks, one results page (benchmarks/run_all.py).
# ------------------------------------------------------------------------------------------------
_TINY = '''import os, sys
if __name__ == "__main__":
    out = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else "results"
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "tiny_quick.md" if "--quick" in sys.argv else "tiny.md"), "w") as f:
        f.write("# tiny\\n\\n| answer |\\n|---|\\n| 42 |\\n")
    print("tiny ran with", sys.argv[1:])
'''
_BROKEN = '''if __name__ == "__main__":
    print("broken is about to fail")
    raise SystemExit(3)
'''


@pytest.fixture
def bench_folder(tmp_path, monkeypatch):
    """A repository root holding benchmarks/ with the real runner and harness and two tiny scripts."""
    import pathlib
    import shutil

    real = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    for name in ("run_all.py", "harness.py"):
        shutil.copy(real / name, folder / name)
    (folder / "tiny.py").write_text(_TINY)
    (folder / "broken.py").write_text(_BROKEN)
    (folder / "helper.py").write_text("VALUE = 1\n")  # no __main__ block: not a benchmark
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_bench_runs_every_script_and_writes_a_results_page(bench_folder, capsys):
    assert cli.main(["bench", "--list"]) == 0
    assert capsys.readouterr().out.split() == ["broken", "tiny"]
    out = bench_folder / "results"
    # One script fails: the run goes on, the page is written, the exit status says so.
    assert cli.main(["bench", "--quick", "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "device: " in printed and "tiny ran with ['--quick', '--out'" in printed
    assert "[1/2] broken: failed (exit 3)" in printed and "[2/2] tiny: ok" in printed
    page = (out / "index_quick.md").read_text()
    assert "`offrl-jax bench --quick --out " in page
    assert "| broken | failed (exit 3) |" in page and "| tiny | ok |" in page
    assert "broken is about to fail" in page and "| 42 |" in page
    assert "\n## tiny\n" in page and "\n### tiny\n" in page  # its own title nests under its section
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]  # written atomically
    # --only picks scripts; a full-size run writes index.md beside index_quick.md.
    assert cli.main(["bench", "--only", "tiny", "--out", str(out)]) == 0
    assert "| tiny | ok |" in (out / "index.md").read_text() and "broken" not in (out / "index.md").read_text()


def test_bench_name_runs_one_script_and_errors_are_one_line(bench_folder, capsys):
    assert cli.main(["bench", "tiny", "--quick", "--out", "r"]) == 0
    assert (bench_folder / "r" / "tiny_quick.md").exists()
    for argv, match in ((["bench", "nope"], "name: expected one of ['broken', 'tiny']"),
                        (["bench", "--only", "nope"], "--only: expected names from"),
                        (["bench", "--bogus"], "unrecognized arguments: --bogus")):
        try:
            code = cli.main(argv)
        except SystemExit as stop:  # argparse's exit after its one-line error
            code = stop.code
        err = capsys.readouterr().err
        assert code == 2 and match in err and len(err.strip().splitlines()) == 1, (argv, err)
