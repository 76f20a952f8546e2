"""Profile mode: one scenario's program under py-spy, saved for later reading.

py-spy samples from outside the process, so the program runs unchanged and
the daemons it starts are sampled too (``--subprocesses``). The output is
py-spy's "raw" collapsed-stack format (one ``frame;frame;... count`` line
per distinct stack), which speedscope and flamegraph.pl read directly, and
from which the top functions are printed here so that the next optimisation
is chosen from data.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from benchmarks.suite.model import Scenario
from benchmarks.suite.runner import ROOT, find_command, kill_session, program_env

OUT_DIR = ROOT / "benchmarks" / "out"
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::\d+)?\)$")


class ProfileError(Exception):
    """The profiler could not run or produced nothing."""


@dataclass(frozen=True)
class FunctionCost:
    function: str
    self_samples: int
    total_samples: int


def _function(frame: str) -> str:
    """``"f (path/x.py:12)"`` -> ``"f (path/x.py)"``: samples on any line of a function add up."""
    m = _FRAME.match(frame)
    return f"{m['func']} ({m['file']})" if m else frame


def top_functions(collapsed: str, limit: int = 15) -> tuple[int, list[FunctionCost]]:
    """Total samples and the ``limit`` functions with the most self samples.

    ``collapsed`` is py-spy's raw output; the leading ``process ...`` frame
    of each stack is dropped. Total samples count a function once per stack
    even when it recurses.
    """
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(f) for f in stack.split(";") if not f.startswith("process ")]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            total[name] += count
    costs = [FunctionCost(name, n, total[name]) for name, n in own.most_common(limit)]
    return samples, costs


def profile(scenario: Scenario, quick: bool, rate: int = 250) -> tuple[Path, str, int, list[FunctionCost]]:
    """Run ``scenario``'s program (not its baseline) under py-spy.

    Returns the output path, the program's stdout, the sample count and the
    top functions. Raises :class:`ProfileError` when py-spy is missing or
    records nothing.
    """
    py_spy = find_command("py-spy")
    if py_spy is None:
        raise ProfileError("py-spy is not installed: pip install py-spy (it is in pilotgw's test extras)")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / f"{scenario.name}-{time.strftime('%Y%m%d-%H%M%S')}.collapsed.txt"
    argv = [py_spy, "record", "--format", "raw", "--rate", str(rate), "--subprocesses", "--output", str(out), "--"]
    argv += scenario.program.argv(sys.executable, quick)
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=program_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=scenario.program.timeout)
    except BaseException:
        kill_session(proc)
        raise
    if not out.exists():
        detail = " | ".join(stderr.strip().splitlines()[-3:]) or f"exit {proc.returncode}"
        raise ProfileError(f"py-spy wrote no profile: {detail}")
    samples, costs = top_functions(out.read_text())
    # py-spy writes its own "py-spy> ..." notices into the program's stdout.
    program_out = "\n".join(line for line in stdout.splitlines() if not line.startswith("py-spy> "))
    return out, program_out.strip(), samples, costs
