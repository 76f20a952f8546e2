"""received and inbox (§A17)."""

from __future__ import annotations

import json
import os


def test_received_listing_and_clear(cli, home) -> None:  # type: ignore[no-untyped-def]
    assert json.loads(cli("received", "--json").out)["data"] == {"files": [], "total": 0}
    assert cli("received").out.splitlines()[0] == "no received files"
    d = os.path.join(home, ".pilot", "received")
    os.makedirs(d)
    assert json.loads(cli("received", "--json").out)["data"] == {"dir": d, "files": None, "total": 0}
    with open(os.path.join(d, "b-20250101-000000.000.txt"), "wb") as f:
        f.write(b"x" * 1536)
    lines = cli("received").out.splitlines()
    assert lines[0] == f"Received files ({d}):"
    assert lines[2] == "  NAME                                      SIZE        RECEIVED"
    assert lines[3].startswith("  b-20250101-000000.000.txt                 1.5 KB      ")
    assert lines[-1] == "total: 1"
    assert cli("received", "--clear").out == "cleared 1 received file(s)\n"
    os.rmdir(d)
    assert json.loads(cli("received", "--clear", "--json").err)["message"] == "no received files"


def test_inbox(cli, home) -> None:  # type: ignore[no-untyped-def]
    d = os.path.join(home, ".pilot", "inbox")
    os.makedirs(d)
    msg = {"bytes": 5, "data": "hello", "from": "0:0000.0000.0009", "received_at": "2025-01-15T12:34:56Z", "type": "TEXT"}
    with open(os.path.join(d, "TEXT-20250115-123456.789.json"), "w") as f:
        json.dump(msg, f)
    with open(os.path.join(d, "junk.json"), "w") as f:
        f.write("{")
    data = json.loads(cli("inbox", "--json").out)["data"]
    assert data == {"dir": d, "messages": [msg], "total": 1}
    assert cli("inbox").out.splitlines() == [
        "Inbox (1 messages):",
        "",
        "  [2025-01-15T12:34:56Z] from 0:0000.0000.0009 type=TEXT",
        "    hello",
        "",
        "clear with: pilotctl inbox --clear",
    ]
    assert cli("inbox", "--clear").out == "cleared 2 message(s)\n"
