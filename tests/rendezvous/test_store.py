"""FileStore: atomic replace, private modes, clear errors."""

from __future__ import annotations

import os
import stat

import pytest

from pilotgw.rendezvous.store import FileStore, MemoryStore, StoreError


def test_file_store_creates_private_dir_and_round_trips(tmp_path):
    store = FileStore(str(tmp_path / "state" / "registry.json"))
    assert stat.S_IMODE(os.stat(tmp_path / "state").st_mode) == 0o700
    assert store.load() is None
    store.save(b"{}")
    store.save(b'{"a":1}')
    assert store.load() == b'{"a":1}'
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert not os.path.exists(store.path + ".tmp")


def test_file_store_write_error_names_the_file(tmp_path):
    store = FileStore(str(tmp_path / "registry.json"))
    os.mkdir(store.path + ".tmp")  # a directory where the temp file must go
    with pytest.raises(StoreError, match="registry.json"):
        store.save(b"{}")


def test_memory_store():
    store = MemoryStore()
    assert store.load() is None
    store.save(b"x")
    assert store.load() == b"x"
