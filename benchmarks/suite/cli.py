"""``python -m benchmarks``: run the scenarios, print the table, write the JSON.

Exit status: 0 when every scenario that could run produced its figures
(missed goals are reported, not errors), 1 when a scenario failed or the
profiler could not run, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from benchmarks.suite import registry
from benchmarks.suite.model import Scenario
from benchmarks.suite.profile import ProfileError, profile
from benchmarks.suite.report import document, number, table
from benchmarks.suite.runner import Progress, Row, RunRecord, run_scenario

DEFAULT_REPEAT = 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run pilotgw's benchmark scenarios interleaved with their baselines; print one table.",
    )
    p.add_argument("--quick", action="store_true", help="smaller sizes and the short scenarios only (< 2 minutes)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH ('-': stdout, no table)")
    p.add_argument("--only", metavar="NAME,...", help="run only these scenarios (see --list)")
    p.add_argument("--repeat", type=int, metavar="N", help=f"runs of each scenario and of its baseline (default {DEFAULT_REPEAT})")
    p.add_argument("--profile", metavar="NAME", help="run one scenario under py-spy and save the profile in benchmarks/out/")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return p


def _progress_to(stream: TextIO) -> Progress:
    def emit(line: str) -> None:
        print(line, file=stream, flush=True)

    return emit


def run_suite(
    scenarios: list[Scenario], *, repeat: int, quick: bool, is_root: bool, progress: Progress | None
) -> tuple[list[Row], list[RunRecord]]:
    """Every scenario in turn; rows and runs in the order they happened."""
    rows: list[Row] = []
    runs: list[RunRecord] = []
    for scenario in scenarios:
        got_rows, got_runs = run_scenario(scenario, repeat=repeat, quick=quick, is_root=is_root, progress=progress)
        rows += got_rows
        runs += got_runs
    return rows, runs


def _profile(name: str, quick: bool) -> int:
    try:
        (scenario,) = registry.by_name([name])
    except KeyError as exc:
        print(f"benchmarks: {exc.args[0]}", file=sys.stderr)
        return 2
    try:
        path, stdout, samples, costs = profile(scenario, quick)
    except ProfileError as exc:
        print(f"benchmarks: {exc}", file=sys.stderr)
        return 1
    if stdout.strip():
        print(stdout.strip())
    print(f"profile: {path} ({samples} samples; open it in speedscope or flamegraph.pl)")
    print(f"{'self %':>7} {'total %':>8}  function")
    for cost in costs:
        share = 100 / samples if samples else 0.0
        print(f"{number(cost.self_samples * share):>7} {number(cost.total_samples * share):>8}  {cost.function}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.list:
        for s in registry.SCENARIOS:
            where = "" if s.quick else "  (full run only)"
            print(f"{s.name:16s} {s.program.script}{where}")
        return 0
    if args.profile:
        return _profile(args.profile, args.quick)
    if args.repeat is not None and args.repeat < 1:
        _parser().error("--repeat must be at least 1")
    try:
        scenarios = registry.by_name(args.only.split(",")) if args.only else list(registry.SCENARIOS)
    except KeyError as exc:
        print(f"benchmarks: {exc.args[0]}", file=sys.stderr)
        return 2
    to_stdout = args.json == "-"
    show_progress = not to_stdout and sys.stderr.isatty()
    is_root = os.geteuid() == 0
    repeat = args.repeat or DEFAULT_REPEAT
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    t0 = time.perf_counter()
    rows, runs = run_suite(
        scenarios, repeat=repeat, quick=args.quick, is_root=is_root, progress=_progress_to(sys.stderr) if show_progress else None
    )
    seconds = time.perf_counter() - t0
    doc = document(rows, runs, quick=args.quick, repeat=repeat, started=started, seconds=seconds, is_root=is_root)
    if to_stdout:
        print(json.dumps(doc, indent=2))
    else:
        print(table(rows))
        skipped = sum(1 for r in rows if r.status == "skipped")
        failed = sum(1 for r in rows if r.status == "failed")
        print(f"\n{len(rows)} rows ({skipped} skipped, {failed} failed) in {seconds:.0f} s")
        if args.json:
            Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
            print(f"JSON written to {args.json}")
    return 1 if any(r.status == "failed" for r in rows) else 0
