"""Runs every benchmark script and writes one results page (``offrl-jax bench`` with no name).

Usage (from the repository root)::

    offrl-jax bench --quick                       # every script, small sizes (minutes on 2 CPU cores)
    offrl-jax bench --quick --peer-python /path/to/peer/python
    offrl-jax bench                               # full sizes (meant for an accelerator)
    offrl-jax bench --list                        # the script names
    python benchmarks/run_all.py --quick --only ope_speed fitted_speed

Each script of ``benchmarks/`` (every ``*.py`` but the harness, this runner, the figure script
and names starting with ``_``) runs in its own process with the common harness options given here
(``--quick``, ``--repeats``, ``--out``, ``--peer-python``), one after another; its output is
shown as it comes. A failing script is reported and the run goes on; the exit status is 1 when
any failed. The device, each script's status, wall time and CPU time (user + system of the script
and the processes it waited for: on a machine shared with other work, the wall time grows with the
load and the CPU time hardly does) are printed, and the results page
``<out>/index.md`` (``index_quick.md`` for ``--quick``) is written atomically: the command, this
machine's metadata, a status table, then each benchmark's markdown table(s) as written by the
harness (``<out>/<name>[_quick].md``) with the command and metadata of its JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import threading
import time
from typing import List, NamedTuple, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import harness  # noqa: E402

NOT_BENCHMARKS = ("harness", "run_all", "figures")
TAIL_LINES = 15


class ScriptRun(NamedTuple):
    """One script's run: name, exit code (None when it timed out), wall seconds, output tail,
    the markdown files it wrote (paths, in the order written) and its CPU seconds (user + system)."""

    name: str
    returncode: Optional[int]
    seconds: float
    tail: List[str]
    written: List[str]
    cpu_seconds: float = float("nan")

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def discover(folder: str = HERE) -> List[str]:
    """Sorted names (without ``.py``) of the benchmark scripts in ``folder``: files with a
    ``__main__`` block, except the harness, this runner, the figure script and ``_``-names
    (modules such as ``numpy_ope.py`` that only serve other scripts have no ``__main__`` block)."""
    if not os.path.isdir(folder):
        raise ValueError(f"folder: expected a benchmarks folder, found no folder {folder!r}")
    names = []
    for f in sorted(os.listdir(folder)):
        if not f.endswith(".py") or f.startswith("_") or f[:-3] in NOT_BENCHMARKS:
            continue
        with open(os.path.join(folder, f), encoding="utf-8") as fh:
            if "__name__ == \"__main__\"" in fh.read():
                names.append(f[:-3])
    return names


def _markdown_files(out: str) -> dict:
    """``{path: (mtime_ns, size)}`` of the ``.md`` files of ``out`` (the index pages excluded)."""
    if not os.path.isdir(out):
        return {}
    paths = [os.path.join(out, f) for f in os.listdir(out) if f.endswith(".md") and not f.startswith("index")]
    return {p: (os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in paths}


def _written(before: dict, out: str) -> List[str]:
    """Markdown files of ``out`` that are new or changed since ``before``, oldest first."""
    after = _markdown_files(out)
    return sorted((p for p, stamp in after.items() if before.get(p) != stamp), key=lambda p: after[p])


def run_script(name: str, flags: Sequence[str], *, folder: str = HERE, out: str, python: str = sys.executable,
               timeout: Optional[float] = None, echo: bool = True) -> ScriptRun:
    """Runs ``python <folder>/<name>.py <flags> --out <out>``, streaming its output; never raises on failure."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.abspath(folder))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    command = [python, "-u", os.path.join(folder, name + ".py"), *flags, "--out", out]
    before = _markdown_files(out)
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    tail: List[str] = []
    proc = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    timer = threading.Timer(timeout, proc.kill) if timeout is not None else None
    if timer is not None:
        timer.start()
    try:
        for line in proc.stdout:
            if echo:
                print("    " + line, end="", flush=True)
            tail = (tail + [line.rstrip("\n")])[-TAIL_LINES:]
        returncode = proc.wait()
    finally:
        if timer is not None:
            timer.cancel()
    if timeout is not None and returncode != 0 and time.monotonic() - t0 >= timeout:
        returncode = None  # stopped by the timer
    seconds = time.monotonic() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (usage.ru_utime - usage0.ru_utime) + (usage.ru_stime - usage0.ru_stime)
    return ScriptRun(name, returncode, seconds, tail, _written(before, out), cpu)


def _cut(line: str, width: int = 300) -> str:
    return line if len(line) <= width else line[:width] + " ..."


def _status(run: ScriptRun) -> str:
    if run.ok:
        return "ok"
    return "timed out" if run.returncode is None else f"failed (exit {run.returncode})"


def _section(run: ScriptRun) -> List[str]:
    lines = ["", f"## {run.name}", ""]
    if not run.ok:
        lines += [f"**{_status(run)}** after {run.seconds:.1f} s; last lines of its output:", "", "```"]
        return lines + [_cut(t) for t in run.tail] + ["```"]
    if not run.written:
        lines += [f"ok in {run.seconds:.1f} s; it wrote no markdown table.", "", "```"]
        return lines + [_cut(t) for t in run.tail] + ["```"]
    for path in run.written:
        json_path = path[:-3] + ".json"
        if os.path.exists(json_path):
            try:
                with open(json_path, encoding="utf-8") as f:
                    meta = json.load(f).get("meta", {})
                lines += [f"`{meta['command']}`", "", f"_{harness.describe(meta)}_", ""]
            except (OSError, ValueError, KeyError, TypeError):
                pass
        with open(path, encoding="utf-8") as f:
            lines += _demote(f.read().rstrip("\n").split("\n")) + [""]
    return lines


def _demote(lines: List[str]) -> List[str]:
    """Markdown headings two levels down (a benchmark's ``# title`` nests under its ``## name``)."""
    out, fenced = [], False
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
        out.append("##" + line if line.startswith("#") and not fenced else line)
    return out


def results_page(runs: Sequence[ScriptRun], meta: dict, command: str) -> str:
    """The markdown results page: command, machine, status table, then every benchmark's tables."""
    ok = sum(r.ok for r in runs)
    lines = [
        "# offrl_jax benchmark results",
        "",
        f"Regenerate with `{command}` (from the repository root). {ok} of {len(runs)} scripts ran.",
        "",
        f"_{harness.describe(meta)}_",
        "",
    ]
    rows = [(r.name, _status(r), f"{r.seconds:.1f}", f"{r.cpu_seconds:.1f}",
             ", ".join(os.path.basename(p) for p in r.written) or "-") for r in runs]
    rows.append(("**total**", f"{ok} ok", f"{sum(r.seconds for r in runs):.1f}",
                 f"{sum(r.cpu_seconds for r in runs):.1f}", ""))
    lines += harness.markdown_table(("benchmark", "status", "wall s", "CPU s", "tables"), rows, align="llrrl")
    lines += ["", "wall s: elapsed time of the script's process; CPU s: its user + system time (and that of the "
              "processes it waited for, e.g. a peer library's). On a machine shared with other work the wall "
              "time grows with the load average above; the CPU time hardly does.", ""]
    for run in runs:
        lines += _section(run)
    return "\n".join(lines) + "\n"


def run_all(names: Sequence[str], flags: Sequence[str], *, folder: str = HERE, out: str = harness.RESULTS_DIR,
            quick: bool = False, timeout: Optional[float] = None, python: str = sys.executable,
            command: Optional[str] = None, echo: bool = True) -> tuple[List[ScriptRun], str]:
    """Runs ``names`` one after another with ``flags``; writes the results page; returns ``(runs, page path)``."""
    meta = harness.metadata()
    print(f"device: {harness.describe(meta)}", flush=True)
    runs = []
    for i, name in enumerate(names):
        print(f"[{i + 1}/{len(names)}] {name} ...", flush=True)
        run = run_script(name, flags, folder=folder, out=out, python=python, timeout=timeout, echo=echo)
        print(f"[{i + 1}/{len(names)}] {name}: {_status(run)} in {run.seconds:.1f} s (CPU {run.cpu_seconds:.1f} s)",
              flush=True)
        runs.append(run)
    page = harness.result_stem("index", out, quick) + ".md"
    harness.write_atomic(page, results_page(runs, meta, command or shlex.join(["python", *sys.argv])))
    width = max([len(r.name) for r in runs] + [9])
    print(f"\n{'benchmark':{width}s}  status               wall s    CPU s")
    for r in runs:
        print(f"{r.name:{width}s}  {_status(r):20s} {r.seconds:7.1f}  {r.cpu_seconds:7.1f}")
    print(f"{'total':{width}s}  {'':20s} {sum(r.seconds for r in runs):7.1f}  {sum(r.cpu_seconds for r in runs):7.1f}")
    print(f"results page: {page}")
    return runs, page


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """One line on stderr and exit status 2 (argparse would also print the usage)."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="offrl-jax bench",
        description="Run every benchmark (or `offrl-jax bench NAME [options]` for one) and write a results page.",
        parents=[harness.common_parser()],
    )
    p.add_argument("--list", action="store_true", help="print the benchmark names and exit")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these scripts")
    p.add_argument("--timeout", type=float, default=None, help="seconds per script before it is stopped")
    return p


def main(argv: Optional[Sequence[str]] = None, folder: str = HERE) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    names = discover(folder)
    if args.list:
        print("\n".join(names))
        return 0
    if args.only:
        unknown = [n for n in args.only if n not in names]
        if unknown:
            parser.exit(2, f"{parser.prog}: error: --only: expected names from {names}, found {unknown}\n")
        names = [n for n in names if n in args.only]
    flags = (["--quick"] if args.quick else []) + ([f"--repeats={args.repeats}"] if args.repeats else [])
    if args.peer_python:
        flags += ["--peer-python", args.peer_python]
    out = os.path.abspath(args.out)
    runs, _ = run_all(names, flags, folder=folder, out=out, quick=args.quick, timeout=args.timeout,
                      command=shlex.join(["offrl-jax", "bench", *argv]))
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
