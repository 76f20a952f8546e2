"""What a benchmark scenario is, as data: programs, metrics, goals.

Every scenario is a program the suite starts as a subprocess and whose
figures it reads from stdout (one JSON object, unless the program only prints
text and the scenario names a parser for it). A scenario has an optional
baseline program, run interleaved with it so that both see the same machine
load; a metric may instead take its baseline from the scenario's own output
(when the program measures both, as ``overlay_segment.py`` does).
"""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass
from typing import Any, Callable, Literal

Parser = Callable[[str], dict[str, Any]]

_OPS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le, "<": operator.lt, ">": operator.gt}


def parse_json(stdout: str) -> dict[str, Any]:
    """The last line of stdout that holds a JSON object (earlier lines may be chatter).

    Raises ``ValueError`` when there is none.
    """
    text = stdout.strip()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = None
        for line in reversed(text.splitlines()):
            try:
                doc = json.loads(line)
                break
            except json.JSONDecodeError:
                continue
    if not isinstance(doc, dict):
        raise ValueError("no JSON object on stdout")
    return doc


def lookup(doc: dict[str, Any], key: str) -> float:
    """``doc``'s number at dotted path ``key`` (``"phases.register.req_per_s"``).

    Raises ``KeyError`` naming the keys that do exist at the level where the
    path broke, so an output format change reads as a clear error.
    """
    node: Any = doc
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            have = ", ".join(sorted(node)) if isinstance(node, dict) else type(node).__name__
            raise KeyError(f"output has no {key!r} (found: {have})")
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        raise KeyError(f"output {key!r} is not a number: {node!r}")
    return float(node)


@dataclass(frozen=True)
class Program:
    """A command that prints its figures, with a full-size and a quick argument list.

    ``script`` is a path relative to the repository root (or absolute), run
    with the suite's Python. ``requires`` lists what must exist first: paths
    relative to the root, or command names looked up in the venv and on
    PATH; the first missing one skips the scenario with a note.
    """

    script: str
    args: tuple[str, ...] = ()
    quick_args: tuple[str, ...] | None = None
    size: str = ""
    quick_size: str | None = None
    parse: Parser = parse_json
    needs_root: bool = False
    requires: tuple[str, ...] = ()
    timeout: float = 900.0

    def argv(self, python: str, quick: bool) -> list[str]:
        args = self.quick_args if quick and self.quick_args is not None else self.args
        return [python, self.script, *args]

    def size_for(self, quick: bool) -> str:
        return self.quick_size if quick and self.quick_size is not None else self.size


@dataclass(frozen=True)
class Goal:
    """A target from the issues: ``op`` ``value`` on the median, or on the ratio to the baseline."""

    op: Literal[">=", "<=", "<", ">"]
    value: float
    on: Literal["median", "ratio"] = "median"

    def met(self, median: float | None, ratio: float | None) -> bool | None:
        """Whether the goal holds; None when the figure it is about is missing."""
        figure = ratio if self.on == "ratio" else median
        if figure is None:
            return None
        return _OPS[self.op](figure, self.value)

    def describe(self, unit: str) -> str:
        if self.on == "ratio":
            return f"ratio {self.op} {self.value:g}x"
        return f"{self.op} {self.value:g} {unit}"


@dataclass(frozen=True)
class Metric:
    """One figure of a scenario: where to read it and what it is compared with.

    ``baseline_key`` is read from the baseline program's output, or from the
    scenario's own output when the scenario has no baseline program.
    """

    name: str
    unit: str
    key: str
    baseline_key: str | None = None
    goal: Goal | None = None


@dataclass(frozen=True)
class Scenario:
    """A program, its metrics and its baseline, with how often to run it.

    ``repeat`` overrides the suite's repeat count for runs that are too long
    to repeat (the 4 GiB transfer); ``quick`` says whether ``--quick`` runs it.
    """

    name: str
    program: Program
    metrics: tuple[Metric, ...]
    baseline: Program | None = None
    baseline_label: str = ""
    quick: bool = True
    repeat: int | None = None
    note: str = ""
