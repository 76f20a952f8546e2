"""Run pilotctl in-process against the scripted fake daemon, with HOME in a
temporary directory so nothing touches the real ~/.pilot."""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "client"))

from fakedaemon import FakeDaemon  # noqa: E402

from pilotgw.cli.main import run  # noqa: E402
from pilotgw.cli.output import Output  # noqa: E402


class Result(NamedTuple):
    status: int
    out: str
    err: str


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="pgwh-", dir="/tmp")
    monkeypatch.setenv("HOME", path)
    monkeypatch.setenv("PILOT_SOCKET", os.path.join(path, "pilot.sock"))
    monkeypatch.delenv("PILOT_REGISTRY", raising=False)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def fake(home: str) -> Iterator[FakeDaemon]:
    daemon = FakeDaemon(os.environ["PILOT_SOCKET"])
    yield daemon
    daemon.close()


@pytest.fixture
def cli(home: str) -> Callable[..., Result]:
    def invoke(*args: str) -> Result:
        out, err = io.StringIO(), io.StringIO()
        status = run(list(args), Output(False, out, err))
        return Result(status, out.getvalue(), err.getvalue())

    return invoke
