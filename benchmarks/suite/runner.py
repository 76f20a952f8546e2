"""Running scenarios: interleaved with their baselines, as subprocesses.

Each repetition runs the scenario and then its baseline (A, B, A, B, ...),
so both halves of every ratio see the same load on a shared machine. A
program is started in its own session so that a timeout or Ctrl-C can end
it together with every daemon it started. A program whose file, command or
privilege is missing gives "skipped" rows with the reason; one that fails
stops its scenario and gives "failed" rows with the tail of its stderr --
never a missing row.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from benchmarks.suite.model import Metric, Program, Scenario, lookup
from benchmarks.suite.stats import ratio, summarize

ROOT = Path(__file__).resolve().parents[2]

Progress = Callable[[str], None]


class RunError(Exception):
    """A program run that produced no figures (exit, timeout or unreadable output)."""


@dataclass
class RunRecord:
    """One program run, in the order it happened."""

    scenario: str
    role: str  # "scenario" or "baseline"
    index: int
    seconds: float
    error: str | None = None


@dataclass
class Row:
    """One line of the table: a metric of a scenario, summarized over its runs."""

    scenario: str
    metric: str
    unit: str
    size: str
    status: str  # "ok", "skipped" or "failed"
    median: float | None = None
    min: float | None = None
    max: float | None = None
    samples: list[float] = field(default_factory=list)
    baseline: str = ""
    baseline_median: float | None = None
    baseline_samples: list[float] = field(default_factory=list)
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


Execute = Callable[[Program, bool], dict[str, Any]]


def program_env() -> dict[str, str]:
    """The environment programs run in: ours, with the repository root importable."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


def find_command(name: str) -> str | None:
    """``name`` in the venv's bin directory or on PATH."""
    return shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


def kill_session(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the program's whole session (daemons it started too), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(text: str, limit: int = 300) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    tail = " | ".join(lines[-3:])
    return tail if len(tail) <= limit else "..." + tail[-limit:]


def execute(program: Program, quick: bool) -> dict[str, Any]:
    """Run ``program`` to completion and return its parsed figures.

    A non-zero exit is accepted when stdout still parses: several scripts
    exit 1 to say "target missed" while printing valid figures.
    """
    proc = subprocess.Popen(
        program.argv(sys.executable, quick),
        cwd=ROOT,
        env=program_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=program.timeout)
    except subprocess.TimeoutExpired:
        kill_session(proc)
        raise RunError(f"timed out after {program.timeout:g} s") from None
    except BaseException:
        kill_session(proc)
        raise
    try:
        return program.parse(stdout)
    except (ValueError, KeyError) as exc:
        detail = _tail(stderr) or _tail(stdout) or "no output"
        raise RunError(f"exit {proc.returncode}, {exc}: {detail}") from None


def skip_reason(program: Program, is_root: bool) -> str | None:
    """Why ``program`` cannot run on this machine now, or None."""
    script = ROOT / program.script
    if not script.exists():
        return f"{program.script} not in the tree yet"
    if program.needs_root and not is_root:
        return "needs root (network namespaces)"
    for need in program.requires:
        if "/" in need:
            if not (ROOT / need).exists():
                return f"{need} not in the tree yet"
        elif find_command(need) is None:
            return f"command {need!r} not found"
    return None


def _row(scenario: Scenario, metric: Metric, quick: bool, status: str, note: str) -> Row:
    return Row(
        scenario=scenario.name,
        metric=metric.name,
        unit=metric.unit,
        size=scenario.program.size_for(quick),
        status=status,
        baseline=scenario.baseline_label,
        goal=metric.goal.describe(metric.unit) if metric.goal else "",
        note=note,
    )


def _rows_without_runs(scenario: Scenario, quick: bool, status: str, note: str) -> list[Row]:
    return [_row(scenario, m, quick, status, note) for m in scenario.metrics]


def run_scenario(
    scenario: Scenario,
    *,
    repeat: int,
    quick: bool,
    is_root: bool,
    execute: Execute = execute,
    progress: Progress | None = None,
) -> tuple[list[Row], list[RunRecord]]:
    """Run ``scenario`` and its baseline interleaved; one row per metric."""
    if quick and not scenario.quick:
        return _rows_without_runs(scenario, quick, "skipped", "skipped: full run only (not in --quick)"), []
    for program in (scenario.program, scenario.baseline):
        reason = program and skip_reason(program, is_root)
        if reason:
            return _rows_without_runs(scenario, quick, "skipped", f"skipped: {reason}"), []

    runs: list[RunRecord] = []
    outputs: list[dict[str, Any]] = []
    baseline_outputs: list[dict[str, Any]] = []
    failure = baseline_failure = ""
    count = scenario.repeat or repeat
    for index in range(count):
        roles: list[tuple[str, Program]] = [("scenario", scenario.program)]
        if scenario.baseline is not None and not baseline_failure:
            roles.append(("baseline", scenario.baseline))
        for role, program in roles:
            start = time.perf_counter()
            try:
                output = execute(program, quick)
                error = None
            except RunError as exc:
                output, error = None, str(exc)
            seconds = time.perf_counter() - start
            runs.append(RunRecord(scenario.name, role, index, round(seconds, 3), error))
            if progress is not None:
                state = "ok" if error is None else f"FAILED: {error}"
                progress(f"{scenario.name} [{role} {index + 1}/{count}] {seconds:.1f} s {state}")
            if output is None:
                if role == "scenario":
                    failure = error or ""
                else:
                    baseline_failure = error or ""
            elif role == "scenario":
                outputs.append(output)
            else:
                baseline_outputs.append(output)
        if failure:
            break
    if failure:
        return _rows_without_runs(scenario, quick, "failed", f"failed: {failure}"), runs
    rows = [_metric_row(scenario, m, quick, outputs, baseline_outputs) for m in scenario.metrics]
    if baseline_failure:
        for row in rows:
            row.note = "; ".join(filter(None, [row.note, f"baseline failed: {baseline_failure}"]))
    return rows, runs


def _metric_row(
    scenario: Scenario,
    metric: Metric,
    quick: bool,
    outputs: list[dict[str, Any]],
    baseline_outputs: list[dict[str, Any]],
) -> Row:
    row = _row(scenario, metric, quick, "ok", scenario.note)
    try:
        row.samples = [lookup(doc, metric.key) for doc in outputs]
        if metric.baseline_key is not None:
            source = baseline_outputs if scenario.baseline is not None else outputs
            row.baseline_samples = [lookup(doc, metric.baseline_key) for doc in source]
    except KeyError as exc:
        row.status, row.note = "failed", f"failed: {exc.args[0]}"
        return row
    here, base = summarize(row.samples), summarize(row.baseline_samples)
    if here is not None:
        row.median, row.min, row.max = here.median, here.min, here.max
    row.baseline_median = base.median if base is not None else None
    row.ratio = ratio(row.median, row.baseline_median)
    row.met = metric.goal.met(row.median, row.ratio) if metric.goal else None
    return row
