"""Fixtures: a scripted fake daemon on a short-path Unix socket."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakedaemon import FakeDaemon  # noqa: E402


@pytest.fixture
def sockdir() -> Iterator[str]:
    # AF_UNIX paths are limited to 108 bytes; pytest's tmp_path can be longer.
    path = tempfile.mkdtemp(prefix="pgw-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def fake(sockdir: str) -> Iterator[FakeDaemon]:
    daemon = FakeDaemon(os.path.join(sockdir, "pilot.sock"))
    yield daemon
    daemon.close()
