"""Where the registry snapshot lives: a two-method interface and two stores.

:class:`FileStore` is the embedded default: the snapshot is written to
``<path>.tmp``, fsynced, renamed over ``<path>`` and the directory fsynced,
so after a crash (kill -9, power loss) the file holds either the previous or
the new snapshot, never a mix. The directory is created (0700) at start, the
file is 0600. :class:`MemoryStore` keeps the bytes in memory (no ``-store``;
also the test double). A distributed store only has to implement
:class:`Store`.
"""

from __future__ import annotations

import os
from typing import Protocol


class StoreError(Exception):
    """The store cannot be read or written; the message names the file."""


class Store(Protocol):
    description: str

    def load(self) -> bytes | None:
        """The last saved snapshot, or ``None`` when nothing was ever saved."""

    def save(self, data: bytes) -> None:
        """Replace the snapshot atomically. May run in a worker thread."""


class MemoryStore:
    description = "memory (not persisted)"

    def __init__(self) -> None:
        self.data: bytes | None = None

    def load(self) -> bytes | None:
        return self.data

    def save(self, data: bytes) -> None:
        self.data = data


class FileStore:
    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.description = self.path
        directory = os.path.dirname(self.path)
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create store directory {directory}: {exc.strerror}") from None

    def load(self) -> bytes | None:
        try:
            with open(self.path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read store {self.path}: {exc.strerror}") from None

    def save(self, data: bytes) -> None:
        tmp = self.path + ".tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dir_fd = os.open(os.path.dirname(self.path), os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise StoreError(f"cannot write store {self.path}: {exc.strerror}") from None
