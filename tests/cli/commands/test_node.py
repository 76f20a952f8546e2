"""find, hostnames, visibility, tags, webhook (§A12)."""

from __future__ import annotations

import json
import os


def _config(home: str) -> dict:  # type: ignore[type-arg]
    with open(os.path.join(home, ".pilot", "config.json")) as f:
        return json.load(f)


def test_find(cli, fake) -> None:  # type: ignore[no-untyped-def]
    assert cli("find", "bob").out.splitlines() == [
        "Hostname:  bob",
        "Node ID:   9",
        "Address:   0:0000.0000.0009",
        "Visible:   private",
    ]
    r = cli("find", "nobody", "--json")
    assert json.loads(r.err) == {
        "code": "not_found",
        "hint": 'establish trust first: pilotctl handshake nobody "reason"',
        "message": 'cannot find "nobody" — hostname not found or no mutual trust',
        "status": "error",
    }


def test_set_and_clear_hostname_persist(cli, fake, home) -> None:  # type: ignore[no-untyped-def]
    assert cli("set-hostname", "carol").out == "hostname set: carol\n"
    assert _config(home)["hostname"] == "carol"
    assert json.loads(cli("set-hostname", "carol", "--json").out)["data"] == {"hostname": "carol", "node_id": 5}
    assert cli("clear-hostname").out == "hostname cleared\n"
    assert "hostname" not in _config(home)
    assert json.loads(cli("clear-hostname", "--json").out)["data"] == {"hostname": ""}


def test_overlong_hostname_error_has_code_and_hint(cli, fake) -> None:  # type: ignore[no-untyped-def]
    fake.errors[0x13] = "set_hostname: registry: request failed"
    r = cli("set-hostname", "a" * 64, "--json")
    assert r.status == 1
    assert json.loads(r.err) == {
        "code": "connection_failed",
        "hint": "hostnames are at most 63 characters (this one has 64)",
        "message": "set-hostname: set_hostname: daemon: set_hostname: registry: request failed",
        "status": "error",
    }


def test_visibility_tasks_deregister(cli, fake) -> None:  # type: ignore[no-untyped-def]
    assert json.loads(cli("set-public", "--json").out)["data"] == {
        "node_id": 5,
        "type": "set_visibility_ok",
        "visibility": "public",
    }
    assert json.loads(cli("set-private").out)["visibility"] == "private"
    assert json.loads(cli("enable-tasks", "extra", "--json").out)["data"]["task_exec"] is True
    assert json.loads(cli("deregister").out) == {"type": "deregister_ok"}
    fake.errors[0x17] = "deregister: registry: request failed"
    assert cli("deregister").err == "error: deregister: deregister: daemon: deregister: registry: request failed\n"


def test_tags(cli, fake) -> None:  # type: ignore[no-untyped-def]
    assert cli("set-tags", "#gpu", "llm").out == "tags set: #gpu #llm\n"
    assert fake.requests[-1] == (0x19, b'["#gpu","llm"]')
    r = cli("set-tags", "a", "b", "c", "d", "--json")
    assert json.loads(r.err)["message"] == "set-tags: maximum 3 tags allowed, got 4"
    assert json.loads(cli("clear-tags", "--json").out)["data"] == {"tags": []}
    assert fake.requests[-1] == (0x19, b"[]")


def test_webhook(cli, fake, home) -> None:  # type: ignore[no-untyped-def]
    r = cli("set-webhook", "http://127.0.0.1:8080/hook")
    assert r.out == "webhook set: http://127.0.0.1:8080/hook\napplied to running daemon\n"
    assert _config(home)["webhook"] == "http://127.0.0.1:8080/hook"
    assert json.loads(cli("set-webhook", "ftp://x", "--json").err)["message"] == (
        "webhook URL must start with http:// or https://"
    )
    assert json.loads(cli("clear-webhook", "--json").out)["data"] == {"applied": True, "webhook": ""}
    fake.close()
    assert json.loads(cli("set-webhook", "https://h/", "--json").out)["data"] == {"applied": False, "webhook": "https://h/"}
