"""Operator HTTP surface of ``-http`` (rendezvous.md §1.14).

* ``/healthz`` -> 200 ``ok``;
* ``/metrics`` -> Prometheus text, loopback peers only;
* ``/api/stats`` -> the reference's stats JSON (CORS ``*``).

The client address is always the TCP peer: ``X-Real-IP`` is ignored, so the
loopback check cannot be bypassed (R-D9). Per-node details (``nodes``,
``edges``) in ``/api/stats`` go only to loopback peers (R-D6); others get
the counts. A tiny HTTP/1.0-style server (one request per connection, 8 KiB
header limit, 5 s deadline) is enough for this and needs no dependency.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Callable

from pilotgw.overlay.address import format_addr
from pilotgw.rendezvous.metrics import prometheus_text

LOOPBACK = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})
ONLINE_WINDOW = 180.0


def stats(rv: Any, detailed: bool) -> dict[str, Any]:
    svc = rv.service
    now = time.time()
    links = svc.trust_links()
    link_count: dict[int, int] = {}
    for a, b in links:
        link_count[a] = link_count.get(a, 0) + 1
        link_count[b] = link_count.get(b, 0) + 1
    online = svc.online(now)
    tags = {t for node in svc.nodes.values() for t in (node.tags or ())}
    executors = sum(1 for node in svc.nodes.values() if node.task_exec)
    body: dict[str, Any] = {
        "total_nodes": len(svc.nodes),
        "active_nodes": online,
        "total_trust_links": len(links),
        "total_requests": svc.metrics.total_requests,
        "unique_tags": len(tags),
        "task_executors": executors,
        "networks": [{"id": 0, "name": "backbone", "members": len(svc.nodes), "online_members": online}],
        "nodes": [],
        "edges": [],
        "uptime_secs": int(now - rv.started),
    }
    if detailed:
        body["nodes"] = sorted(
            (
                {
                    "address": format_addr(0, n.id),
                    "tags": list(n.tags or ()),
                    "online": now - n.last_seen <= ONLINE_WINDOW,
                    "trust_links": link_count.get(n.id, 0),
                    "task_exec": n.task_exec,
                    "polo_score": n.polo,
                }
                for n in svc.nodes.values()
            ),
            key=lambda e: e["address"],
        )
        body["edges"] = [
            {"source": format_addr(0, a), "target": format_addr(0, b)}
            for a, b in links
            if a in svc.nodes and b in svc.nodes
        ]
    return body


def metrics_text(rv: Any) -> str:
    svc = rv.service
    now = time.time()
    gauges = [
        ("pilot_nodes_total", "Registered nodes.", len(svc.nodes)),
        ("pilot_nodes_online", "Nodes seen in the last 3 minutes.", svc.online(now)),
        ("pilot_trust_links", "Trust pairs that count for resolve.", len(svc.trust_links())),
        ("pilot_task_executors", "Nodes advertising task execution.", sum(1 for n in svc.nodes.values() if n.task_exec)),
        ("pilot_uptime_seconds", "Seconds since start.", int(now - rv.started)),
        ("pilot_registry_connections", "Open registry connections.", len(rv.connections)),
        ("pilot_beacon_nodes", "Node endpoints known to the beacon.", len(rv.beacon.nodes)),
        ("pilot_store_saves", "Snapshots written since start.", rv.saves),
    ]
    return prometheus_text(svc.metrics, gauges)


def _response(status: str, body: bytes, content_type: str, extra: str = "") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        f"{extra}Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def route(rv: Any, path: str, peer_ip: str) -> bytes:
    path = path.split("?", 1)[0]
    local = peer_ip in LOOPBACK
    if path == "/healthz":
        return _response("200 OK", b"ok\n", "text/plain; charset=utf-8")
    if path == "/metrics":
        if not local:
            return _response("403 Forbidden", b"Forbidden\n", "text/plain; charset=utf-8")
        return _response("200 OK", metrics_text(rv).encode(), "text/plain; version=0.0.4; charset=utf-8")
    if path == "/api/stats":
        body = json.dumps(stats(rv, local), separators=(",", ":")).encode() + b"\n"
        return _response("200 OK", body, "application/json", "Access-Control-Allow-Origin: *\r\n")
    return _response("404 Not Found", b"404 page not found\n", "text/plain; charset=utf-8")


def handler(rv: Any) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            if len(parts) != 3:
                writer.write(_response("400 Bad Request", b"bad request\n", "text/plain"))
            else:
                writer.write(route(rv, parts[1], peer[0]))
            await asyncio.wait_for(writer.drain(), 5.0)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    return serve


async def start(rv: Any, host: str | None, port: int) -> asyncio.AbstractServer:
    return await asyncio.start_server(handler(rv), host, port, limit=8192)
