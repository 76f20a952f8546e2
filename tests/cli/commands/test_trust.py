"""handshake, approve, reject, untrust, pending, trust (§A15)."""

from __future__ import annotations

import json
import time

from pilotgw.cli.commands.trust import local_time


def test_handshake_targets(cli, fake) -> None:  # type: ignore[no-untyped-def]
    r = cli("handshake", "9", "please")
    assert r.out.splitlines() == [
        "handshake request sent to node 9",
        "  next: node 9 must approve — or send a handshake back for auto-approval",
        "  check: pilotctl trust",
    ]
    assert fake.requests[-1] == (0x0F, b"\x01\x00\x00\x00\x09please")
    r = cli("handshake", "0:0000.0001.0002")
    assert r.err == "parsed address 0:0000.0001.0002 → node 65538\n"
    r = cli("handshake", "bob", "--json")
    assert r.out == '{"data":{"node_id":9,"status":"sent"},"status":"ok"}\n' and r.err == ""
    r = cli("handshake", "ghost", "--json")
    assert json.loads(r.err)["code"] == "not_found"
    assert json.loads(r.err)["message"].startswith('resolve "ghost": resolve_hostname: daemon: ')
    assert cli("handshake").err == "error: usage: pilotctl handshake <node_id|address|hostname> [justification]\n"


def test_raw_arguments_are_not_flags(cli, fake) -> None:  # type: ignore[no-untyped-def]
    cli("reject", "12", "--because")
    assert fake.requests[-1] == (0x0F, b"\x03\x00\x00\x00\x0c--because")


def test_approve_reject_untrust(cli, fake) -> None:  # type: ignore[no-untyped-def]
    assert cli("approve", "12").out == "trust established with node 12\n  try: pilotctl ping 12\n"
    assert cli("reject", "12").out == "handshake from node 12 rejected\n"
    assert json.loads(cli("approve", "12", "--json").out)["data"] == {"node_id": 12, "status": "approved"}
    assert json.loads(cli("untrust", "9", "--json").out)["data"] == {"node_id": 9}
    r = cli("untrust", "5")
    assert r.status == 1
    assert r.err == "error: untrust: revoke: daemon: handshake revoke: node 5 was not trusted\n"
    r = cli("approve", "abc", "--json")
    assert json.loads(r.err)["message"] == 'invalid node_id "abc": strconv.ParseUint: parsing "abc": invalid syntax'
    assert json.loads(cli("untrust", "-1", "--json").err)["message"] == (
        'invalid node_id: strconv.ParseUint: parsing "-1": invalid syntax'
    )


def test_pending_and_trust_tables(cli, fake) -> None:  # type: ignore[no-untyped-def]
    lines = cli("pending").out.splitlines()
    assert lines[0] == "NODE ID     JUSTIFICATION                             RECEIVED"
    assert lines[1] == f"12          {'let me in':<40}  {local_time(1700000000)}"
    lines = cli("trust").out.splitlines()
    assert lines[0] == "NODE ID     MUTUAL      NETWORK     APPROVED AT"
    assert lines[1] == f"9           yes         -           {local_time(1700000100)}"
    assert json.loads(cli("trust", "--json").out)["data"]["trusted"][0]["public_key"] == "BBBB"
    fake.pending, fake.trusted = [], []
    assert cli("pending").out.splitlines()[0] == "no pending handshake requests"
    assert cli("trust").out.splitlines() == [
        "no trusted peers",
        '  establish trust: pilotctl handshake <node_id|hostname> "reason"',
    ]
    assert json.loads(cli("pending", "--json").out) == {"data": {"pending": []}, "status": "ok"}


def test_local_time_format() -> None:
    assert local_time(0) == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(0))
