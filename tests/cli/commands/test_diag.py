"""info, peers, connections, disconnect, ping, traceroute, bench (§A16)."""

from __future__ import annotations

import json

from pilotgw.cli.commands.diag import MAX_ROWS

CONN = {
    "bytes_recv": 100, "bytes_sent": 2048, "cong_win": 40960, "dup_acks": 0, "fast_retx": 0, "id": 3,
    "in_flight": 0, "in_recovery": True, "local_port": 49152, "ooo_buf": 0, "peer_recv_win": 2097152,
    "recv_win": 2097152, "remote_addr": "0:0000.0000.0009", "remote_port": 7, "retransmits": 1,
    "rttvar_ms": 1, "sack_recv": 0, "sack_sent": 2, "segs_recv": 4, "segs_sent": 5, "srtt_ms": 2,
    "ssthresh": 65535, "state": "ESTABLISHED", "unacked": 0,
}  # fmt: skip


def test_info_text(cli, fake) -> None:  # type: ignore[no-untyped-def]
    r = cli("info")
    assert r.status == 0
    assert r.out.splitlines() == [
        "Pilot Protocol Daemon",
        "  Node ID:     5",
        "  Address:     0:0000.0000.0005",
        "  Hostname:    alice",
        "  Uptime:      01:02:05",
        "  Connections: 0",
        "  Ports:       4",
        "  Peers:       1",
        "  Encryption:  enabled (X25519 + AES-256-GCM), 1/1 peers encrypted, 1 authenticated",
        "  Identity:    persistent (Ed25519 6kpsY+KcUgq+9VB7...)",
        "  Traffic:     1.5 KB sent / 2.0 KB recv",
        "  Packets:     10 sent / 20 recv",
    ]


def test_info_json_is_the_daemon_object(cli, fake) -> None:  # type: ignore[no-untyped-def]
    r = cli("--json", "info")
    assert json.loads(r.out) == {"data": fake.info, "status": "ok"}
    assert r.out.startswith('{"data":{"address":"0:0000.0000.0005","authenticated_peers":1,')


def test_info_with_connections(cli, fake) -> None:  # type: ignore[no-untyped-def]
    fake.info["conn_list"] = [CONN] * (MAX_ROWS + 2)
    lines = cli("info").out.splitlines()
    assert "Active connections: 52" in lines
    assert "  ID    LOCAL   REMOTE ADDR             RPORT   STATE        CWND      FLIGHT    SRTT  " in lines
    assert "  3     49152   0:0000.0000.0009        7       ESTABLISHED  40.0 KB   0 B       2ms [RECOVERY]" in lines
    assert lines[-1] == "  ... and 2 more connections (showing first 50)"


def test_connections_table(cli, fake) -> None:  # type: ignore[no-untyped-def]
    assert cli("connections").out.splitlines()[0] == "no active connections"
    fake.info["conn_list"] = [CONN]
    lines = cli("connections").out.splitlines()
    assert lines[0] == "Active connections: 1"
    assert lines[3] == (
        "3     49152   0:0000.0000.0009        7       ESTABLISHED  40.0 KB   0 B       2     ms  0       0       2.0 MB    2.0 MB  "
    )
    assert lines[4] == "      tx: 2.0 KB (5 segs)  rx: 100 B (4 segs)  retx: 1  fast-retx: 0  sack: 2/0  dup-ack: 0"
    assert json.loads(cli("connections", "--json").out)["data"]["total"] == 1


def test_peers_search(cli, fake) -> None:  # type: ignore[no-untyped-def]
    lines = cli("peers").out.splitlines()
    assert lines == [
        "NODE ID     ENDPOINT                        ENCRYPTED             AUTH",
        "9           127.0.0.1:4000                  yes (AES-256-GCM)     yes (Ed25519)",
    ]
    assert cli("peers", "--search", "xyz").out == 'no peers matching "xyz"\n'
    assert json.loads(cli("peers", "--search", "xyz", "--json").out)["data"] == {"peers": None, "total": 0}
    assert json.loads(cli("peers", "--search=127.0", "--json").out)["data"]["total"] == 1


def test_ping_echo(cli, fake) -> None:  # type: ignore[no-untyped-def]
    r = cli("ping", "bob", "--count", "2", "--timeout", "5s")
    lines = r.out.splitlines()
    assert lines[0] == "PING 0:0000.0000.0009" and lines[1].startswith("seq=0 bytes=6 time=")
    assert lines[2].startswith("seq=1 bytes=6 time=")
    assert r.err == 'resolved "bob" → 0:0000.0000.0009\n'
    data = json.loads(cli("--json", "ping", "9", "--count", "1").out)["data"]
    assert data["target"] == "0:0000.0000.0009" and data["timeout"] is False
    assert data["results"][0]["bytes"] == 6 and data["results"][0]["seq"] == 0


def test_ping_count_zero_and_unreachable(cli, fake) -> None:  # type: ignore[no-untyped-def]
    assert json.loads(cli("ping", "9", "--count", "0", "--json").out)["data"] == {
        "results": None,
        "target": "0:0000.0000.0009",
        "timeout": False,
    }
    data = json.loads(cli("ping", "404", "--count", "1", "--json").out)["data"]
    assert data["results"] == [{"error": "dial: daemon: dial timeout", "seq": 0}]


def test_ping_unknown_hostname(cli, fake) -> None:  # type: ignore[no-untyped-def]
    r = cli("ping", "nobody", "--json")
    assert r.status == 1
    err = json.loads(r.err)
    assert err["code"] == "not_found"
    assert err["message"] == (
        'cannot resolve "nobody" — is the hostname correct and is there mutual trust? (see: pilotctl handshake)'
    )


def test_ping_read_timeout(cli, fake) -> None:  # type: ignore[no-untyped-def]
    fake.silent_ports.add(7)
    r = cli("ping", "9", "--count", "3", "--timeout", "300ms")
    assert r.status == 0
    assert r.out.splitlines()[1:] == ["seq=0 error: i/o timeout", "timeout"]


def test_traceroute(cli, fake) -> None:  # type: ignore[no-untyped-def]
    r = cli("traceroute", "0:0000.0000.0009")
    lines = r.out.splitlines()
    assert lines[0] == "TRACEROUTE 0:0000.0000.0009" and lines[1].startswith("  1  0:0000.0000.0009  setup=")
    assert lines[2].startswith("     rtt=") and lines[2].endswith(" bytes=7")
    assert lines[-2:] == ["setup includes: tunnel negotiation + SYN/ACK handshake", "rtt is: data round-trip over established connection"]
    r = cli("traceroute", "bob", "--json")
    assert json.loads(r.err)["message"].startswith('parse address: invalid address: "bob"')


def test_bench(cli, fake) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(cli("bench", "9", "0.5", "--json").out)["data"]
    assert data["sent_bytes"] == data["recv_bytes"] == 524288
    assert list(data) == sorted(data)
    r = cli("bench", "9", "0.25")
    assert r.out.splitlines()[0] == "BENCH 0:0000.0000.0009 — sending 256.0 KB via echo port"
    assert r.out.splitlines()[1].startswith("  Sent:     256.0 KB in ")
    assert json.loads(cli("bench", "9", "big", "--json").err)["message"] == (
        'invalid size: strconv.ParseFloat: parsing "big": invalid syntax'
    )


def test_disconnect(cli, fake) -> None:  # type: ignore[no-untyped-def]
    assert json.loads(cli("disconnect", "12", "--json").out)["data"] == {"conn_id": 12}
    assert json.loads(cli("disconnect", "x", "--json").err)["message"] == (
        'invalid connection ID: strconv.ParseUint: parsing "x": invalid syntax'
    )
