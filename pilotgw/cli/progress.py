"""Progress bars with rate and ETA for send-file and bench, on terminals only.

rich is imported only when a bar is actually shown: with ``--json``, or when
stderr is not a terminal, nothing extra is printed and nothing is loaded.
One bar per row: bench has one, ``send-file`` to N receivers has N (each
receiver of a chain reports its own progress).
"""

from __future__ import annotations

import sys
from typing import Any, Mapping


class Progress:
    """``with Progress(total, {"key": "shown text", ...}, enabled) as p:
    p.update("key", done)`` (or ``p.advance(n)`` for the first row); a plain
    string is one row keyed by itself."""

    def __init__(self, total: int, rows: str | Mapping[str, str], enabled: bool) -> None:
        self.total = total
        self.rows = {rows: rows} if isinstance(rows, str) else dict(rows)
        self.labels = list(self.rows)
        self.enabled = enabled and sys.stderr.isatty()
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> "Progress":
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress as RichProgress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(file=sys.stderr),
                transient=True,
            )
            self._bar.__enter__()
            self._tasks = {key: self._bar.add_task(text, total=self.total) for key, text in self.rows.items()}
        return self

    def advance(self, n: int) -> None:
        """Add ``n`` bytes to the first row."""
        if self._bar is not None and n:
            self._bar.advance(self._tasks[self.labels[0]], n)

    def update(self, key: str, done: int) -> None:
        """Set the row ``key`` to ``done`` bytes (unknown rows are ignored)."""
        task = self._tasks.get(key)
        if task is not None:
            self._bar.update(task, completed=done)

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc_info)
            self._bar = None
