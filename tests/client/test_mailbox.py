"""Reading what the daemon saved under ~/.pilot: inbox and received files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pilotgw.client import NotFound, PilotError, SyncClient
from pilotgw.client import mailbox


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_missing_folders_are_none(tmp_path: Path) -> None:
    assert mailbox.read_inbox(str(tmp_path)) is None
    assert mailbox.read_received(str(tmp_path)) is None
    with pytest.raises(NotFound, match="^inbox is empty$"):
        mailbox.clear_inbox(str(tmp_path))
    with pytest.raises(NotFound, match="^no received files$"):
        mailbox.clear_received(str(tmp_path))


def test_inbox_in_name_order_skips_garbage_and_prefers_raw_binary(tmp_path: Path) -> None:
    doc = {"bytes": 3, "data": "\x00\ufffd", "from": "0:0000.0000.0009", "received_at": "2026-01-01T00:00:00Z",
           "type": "BINARY"}
    _write(tmp_path / "inbox" / "BINARY-20260101-000000.000.json", json.dumps(doc).encode())
    _write(tmp_path / "inbox-raw" / "BINARY-20260101-000000.000.bin", b"\x00\xff\x01")
    text = dict(doc, type="TEXT", data="hi", bytes=2)
    _write(tmp_path / "inbox" / "TEXT-20260101-000000.000.json", json.dumps(text).encode())
    _write(tmp_path / "inbox" / "TEXT-20260101-000001.000.json", b"{not json")
    (tmp_path / "inbox" / "subdir").mkdir()
    messages = mailbox.read_inbox(str(tmp_path))
    assert messages is not None
    assert [m.type for m in messages] == ["BINARY", "TEXT"]
    assert messages[0].payload == b"\x00\xff\x01"  # exact bytes, not the lossy data
    assert messages[0].doc == doc and messages[0].sender == "0:0000.0000.0009"
    assert messages[1].payload == b"hi" and messages[1].raw is None
    assert mailbox.clear_inbox(str(tmp_path)) == 3
    assert mailbox.read_inbox(str(tmp_path)) == []
    assert os.listdir(tmp_path / "inbox-raw") == []


def test_json_message_parses(tmp_path: Path) -> None:
    doc = {"bytes": 7, "data": '{"a":1}', "from": "0:0000.0000.0009", "received_at": "x", "type": "JSON"}
    _write(tmp_path / "inbox" / "JSON-1.json", json.dumps(doc).encode())
    (message,) = mailbox.read_inbox(str(tmp_path)) or []
    assert message.json() == {"a": 1}


def test_received_lists_files_not_partials(tmp_path: Path) -> None:
    _write(tmp_path / "received" / "b.txt", b"12345")
    _write(tmp_path / "received" / "a.bin", b"")
    _write(tmp_path / "received" / ".partial" / "x.part", b"zz")
    files = mailbox.read_received(str(tmp_path))
    assert [(f.name, f.bytes) for f in files or []] == [("a.bin", 0), ("b.txt", 5)]
    assert files and files[1].path == str(tmp_path / "received" / "b.txt") and files[1].modified > 0
    assert mailbox.clear_received(str(tmp_path)) == 2
    assert (tmp_path / "received" / ".partial" / "x.part").exists()


def test_default_folder_is_home_dot_pilot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HOME", str(tmp_path))
    _write(tmp_path / ".pilot" / "received" / "f.txt", b"x")
    assert mailbox.default_dir() == str(tmp_path / ".pilot")
    with SyncClient(fake.path) as c:
        assert [f.name for f in c.received()] == ["f.txt"]
        assert c.inbox() == []
    monkeypatch.setenv("HOME", "")
    monkeypatch.setattr(os.path, "expanduser", lambda p: p)
    with pytest.raises(PilotError, match="cannot determine home directory"):
        mailbox.default_dir()
