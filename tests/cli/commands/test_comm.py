"""connect, send, recv, send-file, send-message, subscribe, publish, listen (§A13)."""

from __future__ import annotations

import io
import json
import os
import struct
import threading
import time

import pytest


def test_connect_and_send(cli, fake) -> None:  # type: ignore[no-untyped-def]
    assert cli("connect", "9", "7", "--message", "hello").out == "hello\n"
    data = json.loads(cli("send", "bob", "7", "--data", "hi", "--json").out)["data"]
    assert data == {"port": 7, "response": "hi", "sent": "hi", "target": "0:0000.0000.0009"}
    assert json.loads(cli("send", "9", "7", "--json").err)["message"] == "--data is required"
    assert json.loads(cli("send", "9", "99999", "--data", "x", "--json").err)["message"] == (
        'invalid port "99999": strconv.ParseUint: parsing "99999": value out of range'
    )


def test_send_timeout_and_refused(cli, fake) -> None:  # type: ignore[no-untyped-def]
    fake.silent_ports.add(1000)
    err = json.loads(cli("connect", "9", "--message", "x", "--timeout", "200ms", "--json").err)
    assert err == {
        "code": "timeout",
        "hint": "increase with --timeout, or check if the target is listening on that port",
        "message": "no response within 200ms",
        "status": "error",
    }
    fake.refuse_ports.add(80)
    err = json.loads(cli("send", "9", "80", "--data", "x", "--json").err)
    assert err["code"] == "connection_failed" and err["message"] == "cannot connect to 0:0000.0000.0009 port 80"
    assert err["hint"] == "check that 0:0000.0000.0009 is reachable: pilotctl ping 0:0000.0000.0009"


def test_connect_from_stdin(cli, fake, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    class Stdin(io.TextIOWrapper):
        def isatty(self) -> bool:
            return False

    monkeypatch.setattr("sys.stdin", Stdin(io.BytesIO(b"line1\r\nline2\n")))
    data = json.loads(cli("connect", "9", "7", "--json").out)["data"]
    assert data["sent"] == "line1\nline2" and data["response"] == "line1\nline2"


def test_recv(cli, fake) -> None:  # type: ignore[no-untyped-def]
    def push() -> None:
        for _ in range(100):
            if 1000 in fake._bound:
                break
            time.sleep(0.01)
        fake.push_accept(1000, 9, 49152, b"incoming")

    threading.Thread(target=push).start()
    r = cli("recv", "1000", "--json")
    assert json.loads(r.out)["data"] == {
        "messages": [{"bytes": 8, "data": "incoming", "port": 1000, "seq": 0}],
        "timeout": False,
    }
    r = cli("recv", "1001", "--timeout", "100ms", "--json")
    assert json.loads(r.out)["data"] == {"messages": None, "timeout": True} and r.status == 0


def test_send_file_single_and_many(cli, fake, home) -> None:  # type: ignore[no-untyped-def]
    path = os.path.join(home, "a.txt")
    with open(path, "wb") as f:
        f.write(b"hello world!")
    r = cli("--json", "send-file", "5", path)
    assert r.out == (
        '{"data":{"ack":"ACK FILE 12 bytes","bytes":12,"destination":"0:0000.0000.0005","filename":"a.txt"},'
        '"status":"ok"}\n'
    )
    sent = fake.stream_received(1)
    assert sent == struct.pack(">IIH", 4, 2 + 5 + 12, 5) + b"a.txt" + b"hello world!"
    data = json.loads(cli("--json", "send-file", "5", "bob", path).out)["data"]
    assert [x["destination"] for x in data["results"]] == ["0:0000.0000.0005", "0:0000.0000.0009"]
    assert all(x["ack"] == "ACK FILE 12 bytes" for x in data["results"])


def test_send_file_large_is_chunked(cli, fake, home) -> None:  # type: ignore[no-untyped-def]
    path = os.path.join(home, "big.bin")
    with open(path, "wb") as f:
        f.write(os.urandom(3 * 1024 * 1024))
    data = json.loads(cli("--json", "send-file", "9", path).out)["data"]
    assert data["ack"] == f"ACK FILE {3 * 1024 * 1024} bytes"


def test_send_file_errors(cli, fake, home) -> None:  # type: ignore[no-untyped-def]
    err = json.loads(cli("--json", "send-file", "9", "/nonexistent/file").err)
    assert (err["code"], err["message"]) == ("not_found", "file not found: /nonexistent/file")
    path = os.path.join(home, "x")
    open(path, "w").close()
    err = json.loads(cli("--json", "send-file", "ghost", path).err)
    assert err["code"] == "invalid_argument" and err["message"].startswith('cannot resolve "ghost"')
    fake.refuse_ports.add(1001)
    err = json.loads(cli("--json", "send-file", "9", path).err)
    assert err["message"] == "cannot connect to 0:0000.0000.0009 (data exchange port 1001)"
    assert cli("send-file", "9").err == "error: usage: pilotctl send-file <address|hostname> <filepath>\n"


def test_send_file_reference_limit_and_partial_failure(cli, fake, home) -> None:  # type: ignore[no-untyped-def]
    big = os.path.join(home, "big.bin")
    with open(big, "wb") as f:
        f.truncate((16 << 20) + 1)  # over a reference node's single-frame limit
    err = json.loads(cli("--json", "send-file", "9", big).err)
    assert err["code"] == "invalid_argument" and err["message"].startswith("file too large: 16777217 bytes")
    assert "not a pilotgw node" in err["message"]
    small = os.path.join(home, "s.txt")
    with open(small, "wb") as f:
        f.write(b"abc")
    r = cli("--json", "send-file", "9", "404", small)  # node 404: the fake's dial times out
    assert r.status == 1 and r.out == ""
    err = json.loads(r.err)
    assert err["code"] == "connection_failed"
    assert err["message"] == (
        "send-file: 1 of 2 targets failed: 0:0000.0000.0194: cannot connect to 0:0000.0000.0194 (data exchange port 1001)"
    )
    err = json.loads(cli("--json", "send-file", "404", small).err)
    assert err == {
        "code": "connection_failed",
        "hint": "check that 0:0000.0000.0194 is reachable: pilotctl ping 0:0000.0000.0194",
        "message": "cannot connect to 0:0000.0000.0194 (data exchange port 1001)",
        "status": "error",
    }


def test_send_message(cli, fake) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(cli("send-message", "9", "--data", '{"a":1}', "--type", "json", "--json").out)["data"]
    assert data == {"ack": "ACK JSON 7 bytes", "bytes": 7, "target": "0:0000.0000.0009", "type": "json"}
    err = json.loads(cli("send-message", "9", "--data", "x", "--type", "xml", "--json").err)
    assert err["message"] == 'unknown type "xml" (use text, json, or binary)'


def test_publish_and_subscribe(cli, fake) -> None:  # type: ignore[no-untyped-def]
    result: dict[str, str] = {}

    def subscriber() -> None:
        result["out"] = cli("subscribe", "9", "news", "--count", "1", "--timeout", "5s", "--json").out

    t = threading.Thread(target=subscriber)
    t.start()
    for _ in range(200):
        if any(s.topic == b"news" for s in fake._streams.values()):
            break
        time.sleep(0.01)
    assert json.loads(cli("publish", "9", "news", "--data", "hello", "--json").out)["data"] == {
        "bytes": 5,
        "target": "0:0000.0000.0009",
        "topic": "news",
    }
    t.join(5)
    assert json.loads(result["out"])["data"] == {
        "events": [{"bytes": 5, "data": "hello", "topic": "news"}],
        "timeout": False,
    }
    r = cli("subscribe", "9", "quiet", "--timeout", "100ms")
    assert r.status == 0 and r.err.endswith("timeout\n")


def test_listen_ndjson_and_count(cli, fake) -> None:  # type: ignore[no-untyped-def]
    def push() -> None:
        time.sleep(0.2)
        fake.push_datagram(9, 40000, 6000, b"other")
        fake.push_datagram(9, 40000, 5000, b"dg1")
        fake.push_datagram(9, 40001, 5000, b"dg2")

    threading.Thread(target=push).start()
    r = cli("listen", "5000", "--count", "2", "--timeout", "5s", "--json")
    assert json.loads(r.out)["data"] == {
        "messages": [
            {"bytes": 3, "data": "dg1", "src_addr": "0:0000.0000.0009", "src_port": 40000},
            {"bytes": 3, "data": "dg2", "src_addr": "0:0000.0000.0009", "src_port": 40001},
        ],
        "timeout": False,
    }


def test_broadcast_unavailable(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("broadcast", "1", "hi", "--json")
    assert r.status == 1 and json.loads(r.err)["code"] == "unavailable"
