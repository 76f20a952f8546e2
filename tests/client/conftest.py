"""Fixtures: a scripted fake daemon on a short-path Unix socket."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Iterator

import pytest


from tests.client.fakedaemon import FakeDaemon


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
