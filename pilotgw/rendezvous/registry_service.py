"""Registry request handlers: the rules of rendezvous.md §1.8-2.4, sans-IO.

``RegistryService.handle(msg, conn, now)`` takes one decoded request, the
connection it came on and the wall-clock time, and returns the reply dict
(or a :class:`LongPoll` for the adapter to park). Nothing here blocks,
sleeps or touches a socket; the asyncio adapter (:mod:`.server`) and the
unit tests drive it the same way.

Where the reference is unsafe we keep its wire shapes but not its rules:

* **R-D1** -- a trust pair lets ``resolve`` through only when *both* sides
  reported it, or when the target accepted (``respond_handshake``) a
  ``request_handshake`` that was really made (``--one-sided-trust`` restores
  the reference rule). A one-sided report still gets ``report_trust_ok``.
* **R-D2** -- ``register`` of a live key from a new IP does not move the
  endpoint: it is held on the connection until that node proves its key by
  a signed request on the same connection (a reference daemon sends a signed
  heartbeat within 30 s).
* **R-D3** -- ``owner`` is informational; a key is never replaced through
  ``register``. **R-D4** -- ``rotate_key`` is disabled. **R-D5** -- polo
  score writes need a connection that proved a key, and bounded deltas;
  ``beacon_register`` needs an allowlisted source IP. **R-D6** -- ``punch``
  applies the ``resolve`` privacy rule; ``lookup`` and ``resolve_hostname``
  are rate limited per IP. **R-D10** -- response inboxes are capped.
  **R-D13** -- errors stay ``{"type":"error","error":"request failed"}``
  and add a machine ``"code"``. **R-D18/22** -- IDs start at 4 and never
  reach ``0xFFFFFFFF``.

Every state change calls :meth:`RegistryService._changed` (a node) or
:meth:`RegistryService._touched` (trust, inboxes), which the persister
watches; heartbeats only move ``last_seen``, which is not persisted (loaded
nodes count as seen at load time, R-D16).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

from pilotgw.overlay.address import format_addr
from pilotgw.overlay.errors import DecodeError
from pilotgw.overlay.registry import (
    MAX_POLL_WAIT,
    MAX_U16,
    bool_field,
    challenge_for,
    decode_public_key,
    encode_public_key,
    id_field,
    str_field,
    verify,
)
from pilotgw.rendezvous.metrics import Metrics
from pilotgw.rendezvous.ratelimit import RateLimiter
from pilotgw.rendezvous.records import Node, hostname_problem, join_host_port, parse_tags, split_host_port

log = logging.getLogger("pilotgw.rendezvous.registry")

FIRST_NODE_ID = 4
LAST_NODE_ID = 0xFFFFFFFE
BEACON_TTL = 60.0
ASKED_TTL = 7 * 86400.0
WIRE_ERROR = "request failed"

# Trust-pair bits: which side reported it, or a handshake the target accepted.
LOW_REPORTED, HIGH_REPORTED, HANDSHAKE_ACCEPTED = 1, 2, 4


@dataclass
class Limits:
    """Abuse limits; every one is a command-line option of pilot-rendezvous."""

    max_nodes: int = 1_000_000
    register_per_minute: float = 10.0
    requests_per_second: float = 200.0
    request_burst: float = 400.0
    lookups_per_second: float = 50.0
    lookup_burst: float = 200.0
    inbox_max: int = 100
    responses_max: int = 100
    justification_max: int = 4096
    polo_delta_max: int = 1000
    stale_after: float = 180.0
    one_sided_trust: bool = False
    beacon_allow: frozenset[str] = field(default_factory=frozenset)


class RequestError(Exception):
    """A refused request: ``detail`` goes to the log, ``code`` to the client."""

    def __init__(self, detail: str, code: str) -> None:
        super().__init__(detail)
        self.code = code


class LongPoll(NamedTuple):
    """A ``poll_handshakes`` with ``wait`` that found both inboxes empty: the
    adapter waits for :attr:`RegistryService.notify` or the timeout, then
    answers with :meth:`RegistryService.drain_handshakes`."""

    node_id: int
    timeout: float


class Conn:
    """What the service remembers about one TCP connection."""

    __slots__ = ("ip", "port", "pending", "proven")

    def __init__(self, ip: str, port: int) -> None:
        self.ip = ip
        self.port = port
        self.pending: dict[int, str] | None = None
        """node -> endpoint waiting for that node's signed request (R-D2)."""
        self.proven: set[int] | None = None
        """Nodes that presented a valid signature on this connection."""


class Network:
    """A custom network loaded from a snapshot (creation is disabled)."""

    __slots__ = ("id", "name", "join_rule", "token", "created", "members")

    def __init__(self, net_id: int, name: str, join_rule: str, token: str, created: str, members: set[int]) -> None:
        self.id = net_id
        self.name = name
        self.join_rule = join_rule
        self.token = token
        self.created = created
        self.members = members


def pair_key(a: int, b: int) -> int:
    return (a << 32) | b if a < b else (b << 32) | a


def _side_bit(node: int, peer: int) -> int:
    return LOW_REPORTED if node < peer else HIGH_REPORTED


class RegistryService:
    def __init__(self, limits: Limits | None = None, metrics: Metrics | None = None) -> None:
        self.limits = limits or Limits()
        self.metrics = metrics or Metrics()
        self.nodes: dict[int, Node] = {}
        self.by_key: dict[bytes, int] = {}
        """Every key ever registered -> its ID (kept after reaping: same key, same ID)."""
        self.hostnames: dict[str, int] = {}
        self.networks: dict[int, Network] = {}
        self.next_node = FIRST_NODE_ID
        self.next_net = 1
        self.trust: dict[int, int] = {}
        self.asked: dict[int, dict[int, float]] = {}
        """target -> {requester: time}: handshakes really requested (R-D1);
        survives poll_handshakes so a later acceptance can be matched."""
        self.inbox: dict[int, list[tuple[int, str, float]]] = {}
        self.responses: dict[int, list[tuple[int, bool, float]]] = {}
        self.beacons: dict[int, tuple[str, float]] = {}
        self.version = 0
        """Bumped on every persisted change; the persister saves when it moves."""
        self.notify: Callable[[int], None] = lambda node_id: None
        """Called with a node ID when its handshake inboxes gain an entry."""
        lim = self.limits
        self._register_limit = RateLimiter(lim.register_per_minute / 60.0, 10.0)
        self._request_limit = RateLimiter(lim.requests_per_second, lim.request_burst)
        self._lookup_limit = RateLimiter(lim.lookups_per_second, lim.lookup_burst)
        self._handlers: dict[str, Callable[[dict[str, Any], Conn, float], Any]] = {
            "register": self._register,
            "heartbeat": self._heartbeat,
            "lookup": self._lookup,
            "resolve": self._resolve,
            "resolve_hostname": self._resolve_hostname,
            "set_hostname": self._set_hostname,
            "set_visibility": self._set_visibility,
            "set_tags": self._set_tags,
            "set_task_exec": self._set_task_exec,
            "report_trust": self._report_trust,
            "revoke_trust": self._revoke_trust,
            "request_handshake": self._request_handshake,
            "poll_handshakes": self._poll_handshakes,
            "respond_handshake": self._respond_handshake,
            "deregister": self._deregister,
            "rotate_key": self._disabled("rotate_key is disabled on this registry (R-D4)"),
            "punch": self._punch,
            "update_polo_score": self._update_polo_score,
            "set_polo_score": self._set_polo_score,
            "get_polo_score": self._get_polo_score,
            "list_networks": self._list_networks,
            "list_nodes": self._list_nodes,
            "beacon_register": self._beacon_register,
            "beacon_list": self._beacon_list,
            "create_network": self._disabled("custom networks are WIP — only backbone (network 0) is available"),
            "join_network": self._disabled("custom networks are WIP — only backbone (network 0) is available"),
            "leave_network": self._disabled("custom networks are WIP — only backbone (network 0) is available"),
            "subscribe_replication": self._subscribe_replication,
        }

    # ------------------------------------------------------------------ dispatch

    def handle(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any] | LongPoll:
        kind = msg.get("type")
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        label = kind if handler is not None else "unknown"
        self.metrics.requests[label] += 1  # type: ignore[index]
        try:
            if not self._request_limit.allow(conn.ip, now):
                raise RequestError(f"rate limited: too many requests from {conn.ip}", "rate_limited")
            if handler is None:
                raise RequestError("unknown message type", "unknown_type")
            return handler(msg, conn, now)
        except RequestError as exc:
            self.metrics.errors[label] += 1  # type: ignore[index]
            log.debug("%s from %s: %s", label, conn.ip, exc)
            return {"type": "error", "error": WIRE_ERROR, "code": exc.code}

    def closes_connection(self, msg: dict[str, Any]) -> bool:
        """``subscribe_replication`` errors close the connection (§1.12)."""
        return msg.get("type") == "subscribe_replication"

    # ------------------------------------------------------------------ helpers

    def _changed(self, node: Node | None = None) -> None:
        if node is not None:
            node.frag = None
        self.version += 1

    def _node(self, node_id: int, code: str = "not_found") -> Node:
        node = self.nodes.get(node_id)
        if node is None:
            raise RequestError(f"node {node_id}: node not found", code)
        return node

    def _authenticate(self, msg: dict[str, Any], conn: Conn, node: Node) -> None:
        data, _ = challenge_for(msg)
        try:
            verify(node.key, data, msg.get("signature"))
        except DecodeError as exc:
            raise RequestError(str(exc), "auth") from None
        if conn.proven is None:
            conn.proven = set()
        conn.proven.add(node.id)
        if conn.pending and node.id in conn.pending:
            node.real_addr = conn.pending.pop(node.id)
            self._changed(node)

    def _trusted(self, a: int, b: int) -> bool:
        mask = self.trust.get(pair_key(a, b), 0)
        if not mask:
            return False
        if self.limits.one_sided_trust:
            return True
        return bool(mask & HANDSHAKE_ACCEPTED) or mask & 3 == 3

    def _may_reach(self, requester: int, target: Node) -> bool:
        """The resolve rule: public, mutually trusted, or a shared non-backbone network."""
        if target.public or requester == target.id:
            return True
        if self._trusted(requester, target.id):
            return True
        if len(target.networks) > 1:
            me = self.nodes.get(requester)
            return me is not None and any(n and n in me.networks for n in target.networks)
        return False

    def may_punch(self, requester: int, target: int) -> bool:
        """For the beacon: may ``requester`` learn ``target``'s endpoint?"""
        node = self.nodes.get(target)
        return node is not None and requester in self.nodes and self._may_reach(requester, node)

    def _allocate(self) -> int:
        """Sequential IDs from 4; the loader keeps ``next_node`` above every
        ID it has seen, so an ID is never handed out twice."""
        node_id = self.next_node
        if node_id > LAST_NODE_ID:
            raise RequestError("node ID space exhausted", "limit")
        self.next_node = node_id + 1
        return node_id

    def _remove(self, node: Node) -> None:
        if node.hostname:
            self.hostnames.pop(node.hostname, None)
        for net_id in node.networks:
            net = self.networks.get(net_id)
            if net is not None:
                net.members.discard(node.id)
        del self.nodes[node.id]
        self._changed()

    def _set_hostname_of(self, node: Node, hostname: str) -> None:
        if node.hostname:
            self.hostnames.pop(node.hostname, None)
        node.hostname = hostname
        if hostname:
            self.hostnames[hostname] = node.id
        self._changed(node)

    @staticmethod
    def _disabled(detail: str) -> Callable[[dict[str, Any], Conn, float], Any]:
        def handler(msg: dict[str, Any], conn: Conn, now: float) -> Any:
            raise RequestError(detail, "disabled")

        return handler

    # ------------------------------------------------------------------ handlers

    def _register(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any]:
        key_text = str_field(msg, "public_key")
        if not key_text:
            raise RequestError("registration requires public_key", "bad_request")
        try:
            key = decode_public_key(key_text)
        except DecodeError as exc:
            raise RequestError(f"invalid public key: {exc}", "bad_key") from None
        hp = split_host_port(str_field(msg, "listen_addr"))
        real_addr = join_host_port(conn.ip, hp[1] if hp else conn.port)
        owner = str_field(msg, "owner")[:256]
        node_id = self.by_key.get(key)
        node = self.nodes.get(node_id) if node_id is not None else None
        if node is None and not self._register_limit.allow(conn.ip, now):
            raise RequestError(f"rate limited: too many registrations from {conn.ip}", "rate_limited")
        if node is not None:  # existing identity: keep everything, guard the endpoint
            old = split_host_port(node.real_addr)
            if (old and old[0] == conn.ip) or (conn.proven and node.id in conn.proven):
                node.last_seen = now
                if real_addr != node.real_addr:
                    node.real_addr = real_addr
                    self._changed(node)
            else:  # a replayed key proves nothing: no endpoint, no liveness until it signs
                if conn.pending is None:
                    conn.pending = {}
                conn.pending[node.id] = real_addr
            if owner and not node.owner:
                node.owner = owner
                self._changed(node)
        else:
            if len(self.nodes) >= self.limits.max_nodes:
                raise RequestError("registry is full", "limit")
            if node_id is None:  # new identity; a reclaim keeps its ID
                node_id = self._allocate()
                self.by_key[key] = node_id
            node = Node(node_id, key, real_addr, now, owner)
            self.nodes[node_id] = node
            self.metrics.events["registrations"] += 1
            self._changed(node)
        reply: dict[str, Any] = {
            "type": "register_ok",
            "node_id": node.id,
            "network_id": 0,
            "address": format_addr(0, node.id),
            "public_key": key_text,
        }
        hostname = str_field(msg, "hostname")
        if hostname:
            problem = hostname_problem(hostname)
            if problem:
                reply["hostname_error"] = problem
            elif self.hostnames.get(hostname, node.id) == node.id:
                self._set_hostname_of(node, hostname)
                reply["hostname"] = hostname
        return reply

    def _heartbeat(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any]:
        node = self._node(id_field(msg, "node_id"))
        self._authenticate(msg, conn, node)
        node.last_seen = now
        return {"type": "heartbeat_ok", "time": int(now)}

    def _lookup_allowed(self, conn: Conn, now: float) -> None:
        if not self._lookup_limit.allow(conn.ip, now):
            raise RequestError(f"rate limited: too many lookups from {conn.ip}", "rate_limited")

    def _lookup(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any]:
        self._lookup_allowed(conn, now)
        node = self._node(id_field(msg, "node_id"))
        reply: dict[str, Any] = {
            "type": "lookup_ok",
            "node_id": node.id,
            "address": format_addr(0, node.id),
            "networks": list(node.networks),
            "public_key": encode_public_key(node.key),
            "public": node.public,
            "polo_score": node.polo,
        }
        if node.hostname:
            reply["hostname"] = node.hostname
        if node.tags:
            reply["tags"] = list(node.tags)
        if node.task_exec:
            reply["task_exec"] = True
        if node.public:
            reply["real_addr"] = node.real_addr
        return reply

    def _resolve(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any]:
        requester_id = id_field(msg, "requester_id")
        requester = self.nodes.get(requester_id)
        if requester is None:
            raise RequestError(f"resolve denied: requester node {requester_id} is not registered", "denied")
        self._authenticate(msg, conn, requester)
        target_id = id_field(msg, "node_id")
        target = self.nodes.get(target_id)
        # A missing and a private target look alike to the caller (R-D13).
        if target is None or not self._may_reach(requester_id, target):
            raise RequestError(f"resolve denied: node {target_id} is private or unknown", "denied")
        return {"type": "resolve_ok", "node_id": target.id, "real_addr": target.real_addr}

    def _resolve_hostname(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any]:
        self._lookup_allowed(conn, now)
        hostname = str_field(msg, "hostname")
        if not hostname:
            raise RequestError("hostname required", "bad_request")
        node_id = self.hostnames.get(hostname)
        if node_id is None:
            raise RequestError(f'hostname "{hostname}" not found', "not_found")
        node = self.nodes[node_id]
        return {
            "type": "resolve_hostname_ok",
            "node_id": node.id,
            "address": format_addr(0, node.id),
            "public": node.public,
            "hostname": hostname,
        }

    def _set_hostname(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any]:
        hostname = str_field(msg, "hostname")
        problem = hostname_problem(hostname) if hostname else None
        if problem:
            raise RequestError(f"invalid hostname: {problem}", "invalid")
        node = self._node(id_field(msg, "node_id"))
        self._authenticate(msg, conn, node)
        holder = self.hostnames.get(hostname) if hostname else None
        if holder is not None and holder != node.id:
            raise RequestError(f'hostname "{hostname}" already in use by node {holder}', "conflict")
        self._set_hostname_of(node, hostname)
        return {"type": "set_hostname_ok", "node_id": node.id, "hostname": hostname}

    def _set_visibility(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any]:
        node = self._node(id_field(msg, "node_id"))
        self._authenticate(msg, conn, node)
        node.public = bool_field(msg, "public")
        self._changed(node)
        return {
            "type": "set_visibility_ok",
            "node_id": node.id,
            "visibility": "public" if node.public else "private",
        }

    def _set_tags(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any]:
        tags, problem = parse_tags(msg.get("tags"))
        if problem:
            raise RequestError(problem, "invalid")
        node = self._node(id_field(msg, "node_id"))
        self._authenticate(msg, conn, node)
        node.tags = tuple(tags) or None
        self._changed(node)
        return {"type": "set_tags_ok", "node_id": node.id, "tags": tags or None}

    def _set_task_exec(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any]:
        node = self._node(id_field(msg, "node_id"))
        self._authenticate(msg, conn, node)
        node.task_exec = bool_field(msg, "enabled")
        self._changed(node)
        return {"type": "set_task_exec_ok", "node_id": node.id, "task_exec": node.task_exec}

    def _report_trust(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any]:
        node = self._node(id_field(msg, "node_id"))
        peer_id = id_field(msg, "peer_id")
        self._node(peer_id)
        self._authenticate(msg, conn, node)
        if peer_id == node.id:
            raise RequestError("cannot trust oneself", "bad_request")
        key = pair_key(node.id, peer_id)
        self.trust[key] = self.trust.get(key, 0) | _side_bit(node.id, peer_id)
        self.metrics.events["trust_reports"] += 1
        self._changed()
        return {"type": "report_trust_ok"}

    def _revoke_trust(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any]:
        node = self._node(id_field(msg, "node_id"))
        peer_id = id_field(msg, "peer_id")
        self._authenticate(msg, conn, node)
        if self.trust.pop(pair_key(node.id, peer_id), None) is None:
            raise RequestError(f"no trust pair between {node.id} and {peer_id}", "not_found")
        self.asked.get(node.id, {}).pop(peer_id, None)
        self.asked.get(peer_id, {}).pop(node.id, None)
        self.metrics.events["trust_revocations"] += 1
        self._changed()
        return {"type": "revoke_trust_ok"}

    def _request_handshake(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any]:
        sender = self._node(id_field(msg, "from_node_id"))
        target_id = id_field(msg, "to_node_id")
        self._node(target_id)
        self._authenticate(msg, conn, sender)
        justification = str_field(msg, "justification")
        if len(justification) > self.limits.justification_max:
            raise RequestError("justification too long", "too_large")
        box = self.inbox.setdefault(target_id, [])
        if len(box) >= self.limits.inbox_max:
            raise RequestError(f"handshake inbox full for node {target_id}", "limit")
        if any(entry[0] == sender.id for entry in box):
            raise RequestError(f"handshake request already pending from node {sender.id}", "conflict")
        box.append((sender.id, justification, now))
        asked = self.asked.setdefault(target_id, {})
        asked.pop(sender.id, None)
        asked[sender.id] = now
        while len(asked) > self.limits.inbox_max:
            del asked[next(iter(asked))]
        self.metrics.events["handshake_requests"] += 1
        self._changed()
        self.notify(target_id)
        return {"type": "request_handshake_ok", "status": "delivered"}

    def _poll_handshakes(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any] | LongPoll:
        node = self._node(id_field(msg, "node_id"))
        self._authenticate(msg, conn, node)
        wait = min(id_field(msg, "wait"), MAX_POLL_WAIT)
        if wait and not self.inbox.get(node.id) and not self.responses.get(node.id):
            return LongPoll(node.id, float(wait))
        return self.drain_handshakes(node.id)

    def drain_handshakes(self, node_id: int) -> dict[str, Any]:
        """The ``poll_handshakes_ok`` reply; clears both inboxes of ``node_id``."""
        requests = self.inbox.pop(node_id, None) or []
        responses = self.responses.pop(node_id, None) or []
        if requests or responses:
            self._changed()
        return {
            "type": "poll_handshakes_ok",
            "requests": [{"from_node_id": f, "justification": j, "timestamp": int(t)} for f, j, t in requests],
            "responses": [{"from_node_id": f, "accept": a, "timestamp": int(t)} for f, a, t in responses],
        }

    def has_handshakes(self, node_id: int) -> bool:
        return bool(self.inbox.get(node_id) or self.responses.get(node_id))

    def _respond_handshake(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any]:
        responder = self._node(id_field(msg, "node_id"))
        requester_id = id_field(msg, "peer_id")
        self._node(requester_id)
        self._authenticate(msg, conn, responder)
        accept = bool_field(msg, "accept")
        asked = self.asked.get(responder.id)
        was_asked = asked is not None and asked.pop(requester_id, None) is not None
        if accept and requester_id != responder.id:
            key = pair_key(responder.id, requester_id)
            bit = HANDSHAKE_ACCEPTED if was_asked else _side_bit(responder.id, requester_id)
            self.trust[key] = self.trust.get(key, 0) | bit
        box = self.responses.setdefault(requester_id, [])
        box.append((responder.id, accept, now))
        if len(box) > self.limits.responses_max:
            del box[0]
        self._changed()
        self.notify(requester_id)
        return {"type": "respond_handshake_ok", "accept": accept, "peer_id": requester_id}

    def _deregister(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any]:
        node = self.nodes.get(id_field(msg, "node_id"))
        if node is not None:
            self._authenticate(msg, conn, node)
            self._remove(node)
            self.metrics.events["deregistrations"] += 1
        return {"type": "deregister_ok"}

    def _punch(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any]:
        requester_id = id_field(msg, "requester_id")
        a_id, b_id = id_field(msg, "node_a"), id_field(msg, "node_b")
        if requester_id not in (a_id, b_id):
            raise RequestError("punch denied: requester must be participant", "denied")
        requester = self._node(requester_id, "denied")
        self._authenticate(msg, conn, requester)
        other = self.nodes.get(b_id if requester_id == a_id else a_id)
        if other is None or not self._may_reach(requester_id, other):
            raise RequestError("punch denied: peer is private or unknown", "denied")
        a, b = self.nodes[a_id], self.nodes[b_id]
        return {"type": "punch_ok", "node_a": a.id, "node_a_addr": a.real_addr, "node_b": b.id, "node_b_addr": b.real_addr}

    def _polo_reply(self, kind: str, node: Node) -> dict[str, Any]:
        return {"type": kind, "node_id": node.id, "address": format_addr(0, node.id), "polo_score": node.polo}

    def _polo_write(self, msg: dict[str, Any], conn: Conn, field_name: str) -> tuple[Node, int]:
        if not conn.proven:
            raise RequestError("polo score writes need an authenticated connection", "auth")
        value = msg.get(field_name)
        if value is True or value is False or not isinstance(value, (int, float)) or value != value:
            raise RequestError(f"{field_name} required", "bad_request")
        if abs(value) > self.limits.polo_delta_max:
            raise RequestError(f"{field_name} out of range", "invalid")
        return self._node(id_field(msg, "node_id")), int(value)

    def _update_polo_score(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any]:
        node, delta = self._polo_write(msg, conn, "delta")
        node.polo += delta
        node.last_seen = now
        self._changed(node)
        return self._polo_reply("update_polo_score_ok", node)

    def _set_polo_score(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any]:
        node, score = self._polo_write(msg, conn, "polo_score")
        node.polo = score
        self._changed(node)
        return self._polo_reply("set_polo_score_ok", node)

    def _get_polo_score(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any]:
        self._lookup_allowed(conn, now)
        return self._polo_reply("get_polo_score_ok", self._node(id_field(msg, "node_id")))

    def _list_networks(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any]:
        networks = [{"id": 0, "name": "backbone", "members": len(self.nodes), "join_rule": "open"}]
        for net in self.networks.values():
            networks.append({"id": net.id, "name": net.name, "members": len(net.members), "join_rule": net.join_rule})
        return {"type": "list_networks_ok", "networks": networks}

    def _list_nodes(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any]:
        net_id = id_field(msg, "network_id", MAX_U16)
        if net_id == 0:
            raise RequestError("listing backbone nodes is not permitted (use lookup with a specific node_id)", "denied")
        net = self.networks.get(net_id)
        if net is None:
            raise RequestError(f"network {net_id}: network not found", "not_found")
        nodes = []
        for member in sorted(net.members):
            node = self.nodes.get(member)
            if node is None:
                continue
            entry: dict[str, Any] = {"node_id": node.id, "address": format_addr(net_id, node.id)}
            if node.hostname:
                entry["hostname"] = node.hostname
            if node.task_exec:
                entry["task_exec"] = True
            if node.public:
                entry["real_addr"] = node.real_addr
            nodes.append(entry)
        return {"type": "list_nodes_ok", "nodes": nodes}

    def _beacon_register(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any]:
        if conn.ip not in self.limits.beacon_allow:
            raise RequestError(f"beacon_register from {conn.ip} is not allowlisted", "denied")
        beacon_id = id_field(msg, "beacon_id")
        if not beacon_id:
            raise RequestError("beacon_id required", "bad_request")
        addr = str_field(msg, "addr")
        if not addr or split_host_port(addr) is None:
            raise RequestError("addr required", "bad_request")
        self.beacons[beacon_id] = (addr, now)
        return {"type": "beacon_register_ok", "beacon_id": beacon_id}

    def _beacon_list(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any]:
        beacons = [{"id": b, "addr": a} for b, (a, seen) in self.beacons.items() if now - seen <= BEACON_TTL]
        return {"type": "beacon_list_ok", "beacons": beacons}

    def _subscribe_replication(self, msg: dict[str, Any], conn: Conn, now: float) -> dict[str, Any]:
        self.metrics.errors["subscribe_replication"] += 1
        return {"type": "error", "error": "replication not configured", "code": "disabled"}

    # ------------------------------------------------------------------ upkeep

    def reap(self, now: float) -> int:
        """Remove nodes silent for ``stale_after`` (as deregister does), stale
        beacons, old handshake records and full rate-limit buckets."""
        cutoff = now - self.limits.stale_after
        stale = [node for node in self.nodes.values() if node.last_seen < cutoff]
        for node in stale:
            self._remove(node)
        for beacon_id in [b for b, (_, seen) in self.beacons.items() if now - seen > BEACON_TTL]:
            del self.beacons[beacon_id]
        for target in list(self.asked):
            records = self.asked[target]
            for requester in [r for r, t in records.items() if now - t > ASKED_TTL]:
                del records[requester]
            if not records:
                del self.asked[target]
        for limiter in (self._register_limit, self._request_limit, self._lookup_limit):
            limiter.sweep(now)
        return len(stale)

    def online(self, now: float) -> int:
        cutoff = now - self.limits.stale_after
        return sum(1 for node in self.nodes.values() if node.last_seen >= cutoff)

    def trust_links(self) -> list[tuple[int, int]]:
        """Pairs that count for ``resolve`` (what the dashboard shows as edges)."""
        return [(k >> 32, k & 0xFFFFFFFF) for k in self.trust if self._trusted(k >> 32, k & 0xFFFFFFFF)]

