"""Run pilotctl in-process against the scripted fake daemon, with HOME in a
temporary directory so nothing touches the real ~/.pilot."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from typing import Callable, Iterator, NamedTuple

import pytest


from tests.client.fakedaemon import FakeDaemon

from pilotgw.cli.main import run
from pilotgw.cli.output import Output


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
