"""The registry's persisted state: the snapshot object of rendezvous.md §1.13.

:func:`dump` writes it from a :class:`RegistryService`; :func:`load` fills a
fresh service from it. Two extension keys (ignored by a reference registry)
keep what our hardening needs across restarts:

* ``trust_state`` -- ``{"a:b": bits}``: which side reported each pair and
  whether a requested handshake was accepted (R-D1). A pair listed only in
  ``trust_pairs`` (a reference snapshot) counts as mutual;
* ``handshake_asked`` -- ``{"target": {"requester": unix}}``: handshakes
  really requested, so an acceptance after a restart still counts.

``pub_key_idx`` holds only keys of nodes that are gone (live ones are in
``nodes``), and ``last_seen`` is not written: every loaded node counts as
seen at load time (R-D16), so downtime never reaps the whole registry.

Cost at scale: each node's JSON is cached on the node (``Node.frag``) and
rebuilt only after it changed, and :func:`collect` only gathers references,
so the event loop spends a few milliseconds per save of 100,000 nodes; the
``bytes.join`` and the write happen in the store's thread.

A file that is not a JSON object with the right top-level types raises
:class:`SnapshotError` -- never a silent reset (R-D11, R-D16). Individual
bad records (a key that is not 32 bytes, an ID out of range) are skipped
and reported as warnings.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timezone
from typing import Any

from pilotgw.rendezvous.records import BACKBONE, Node, hostname_problem, parse_tags, split_host_port
from pilotgw.rendezvous.registry_service import (
    FIRST_NODE_ID,
    LAST_NODE_ID,
    Network,
    RegistryService,
    pair_key,
)


class SnapshotError(Exception):
    """The store file cannot be used; the message says why and what to do."""


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "replace")


def _node_fragment(node: Node) -> bytes:
    if node.frag is None:
        rec: dict[str, Any] = {"id": node.id}
        if node.owner:
            rec["owner"] = node.owner
        rec["public_key"] = base64.b64encode(node.key).decode("ascii")
        if node.real_addr:
            rec["real_addr"] = node.real_addr
        rec["networks"] = list(node.networks)
        if node.public:
            rec["public"] = True
        if node.hostname:
            rec["hostname"] = node.hostname
        if node.tags:
            rec["tags"] = list(node.tags)
        if node.polo:
            rec["polo_score"] = node.polo
        if node.task_exec:
            rec["task_exec"] = True
        node.frag = b'"%d":' % node.id + _dumps(rec)
    return node.frag


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_time(text: Any, default: float) -> float:
    if not isinstance(text, str):
        return default
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return default


class Pieces:
    """A snapshot cut into immutable byte strings: :func:`collect` builds it
    on the event loop (cheap: cached node fragments), :meth:`encode` glues
    it together anywhere, e.g. in the store's worker thread."""

    __slots__ = ("head", "nodes", "tail")

    def __init__(self, head: bytes, nodes: list[bytes], tail: bytes) -> None:
        self.head = head
        self.nodes = nodes
        self.tail = tail

    def encode(self) -> bytes:
        return b"".join((self.head, b",".join(self.nodes), b"},", self.tail))


def collect(svc: RegistryService, now: float) -> Pieces:
    """Snapshot the state without copying the per-node JSON."""
    networks: dict[str, Any] = {
        # Backbone membership is implied by "nodes"; listing 100k IDs here on
        # every save would cost more than the rest of the tail.
        "0": {"id": 0, "name": "backbone", "join_rule": "open", "members": [], "created": _rfc3339(now)}
    }
    for net in svc.networks.values():
        entry: dict[str, Any] = {"id": net.id, "name": net.name, "join_rule": net.join_rule}
        if net.token:
            entry["token"] = net.token
        entry["members"] = sorted(net.members)
        entry["created"] = net.created
        networks[str(net.id)] = entry
    tail: dict[str, Any] = {"networks": networks}
    if svc.trust:
        pairs = {f"{k >> 32}:{k & 0xFFFFFFFF}": bits for k, bits in svc.trust.items()}
        tail["trust_pairs"] = list(pairs)
        tail["trust_state"] = pairs
    if len(svc.by_key) != len(svc.nodes):  # some keys belong to departed nodes
        retired = {base64.b64encode(k).decode("ascii"): i for k, i in svc.by_key.items() if i not in svc.nodes}
        tail["pub_key_idx"] = retired
    if svc.inbox:
        tail["handshake_inbox"] = {
            str(t): [{"from_node_id": f, "justification": j, "timestamp": _rfc3339(ts)} for f, j, ts in box]
            for t, box in svc.inbox.items()
            if box
        }
    if svc.responses:
        tail["handshake_responses"] = {
            str(r): [{"from_node_id": f, "accept": a, "timestamp": _rfc3339(ts)} for f, a, ts in box]
            for r, box in svc.responses.items()
            if box
        }
    if svc.asked:
        tail["handshake_asked"] = {str(t): {str(f): ts for f, ts in rec.items()} for t, rec in svc.asked.items()}
    head = b'{"next_node":%d,"next_net":%d,"nodes":{' % (svc.next_node, svc.next_net)
    nodes = [node.frag or _node_fragment(node) for node in svc.nodes.values()]
    return Pieces(head, nodes, _dumps(tail)[1:])


def dump(svc: RegistryService, now: float) -> bytes:
    """The whole state as compact JSON bytes."""
    return collect(svc, now).encode()


def _uint(value: Any, maximum: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= maximum:
        return None
    return int(value)


def _ids(text: str) -> tuple[int, int] | None:
    a, sep, b = text.partition(":")
    if not sep or not a.isdigit() or not b.isdigit():
        return None
    x, y = int(a), int(b)
    return (x, y) if x <= LAST_NODE_ID and y <= LAST_NODE_ID else None


def _obj(snap: dict[str, Any], name: str, kind: type) -> Any:
    value = snap.get(name)
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise SnapshotError(f'"{name}" must be a JSON {kind.__name__.replace("dict", "object").replace("list", "array")}')
    return value


def load(svc: RegistryService, data: bytes, now: float) -> list[str]:
    """Fill an empty ``svc`` from snapshot bytes; returns warnings about
    skipped records. Raises :class:`SnapshotError` if the file is unusable."""
    try:
        snap = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SnapshotError(f"not valid JSON ({exc}); the file is truncated or corrupt") from None
    if not isinstance(snap, dict):
        raise SnapshotError(f"top level must be a JSON object, not {type(snap).__name__}")
    nodes = _obj(snap, "nodes", dict)
    networks = _obj(snap, "networks", dict)
    pairs = _obj(snap, "trust_pairs", list)
    state = _obj(snap, "trust_state", dict)
    key_idx = _obj(snap, "pub_key_idx", dict)
    inbox = _obj(snap, "handshake_inbox", dict)
    responses = _obj(snap, "handshake_responses", dict)
    asked = _obj(snap, "handshake_asked", dict)
    warnings: list[str] = []
    highest = FIRST_NODE_ID - 1

    for key_text, rec in nodes.items():
        problem = _load_node(svc, key_text, rec, now)
        if problem:
            warnings.append(f"node {key_text!r} skipped: {problem}")
    if svc.nodes:
        highest = max(highest, max(svc.nodes))

    for key_text, node_id in key_idx.items():
        nid = _uint(node_id, LAST_NODE_ID)
        try:
            raw = base64.b64decode(key_text, validate=True) if isinstance(key_text, str) else b""
        except (binascii.Error, ValueError):
            raw = b""
        if nid is None or nid == 0 or len(raw) != 32:
            warnings.append(f"pub_key_idx entry {key_text!r} skipped")
            continue
        svc.by_key.setdefault(raw, nid)
        highest = max(highest, nid)

    for key_text, rec in networks.items():
        if key_text == "0" or not isinstance(rec, dict):
            continue
        net_id = _uint(rec.get("id"), 0xFFFF)
        name = rec.get("name")
        if not net_id or str(net_id) != key_text or not isinstance(name, str):
            warnings.append(f"network {key_text!r} skipped")
            continue
        members = {m for m in rec.get("members") or [] if isinstance(m, int) and m in svc.nodes}
        net = Network(net_id, name, str(rec.get("join_rule") or "open"), str(rec.get("token") or ""),
                      str(rec.get("created") or ""), members)
        svc.networks[net_id] = net
        for member in members:
            node = svc.nodes[member]
            if net_id not in node.networks:
                node.networks = node.networks + (net_id,)

    for text in pairs:
        ids = _ids(text) if isinstance(text, str) else None
        if ids is None or ids[0] == ids[1]:
            warnings.append(f"trust pair {text!r} skipped")
            continue
        bits = _uint(state.get(text), 7)
        svc.trust[pair_key(*ids)] = bits if bits else 3

    for target_text, box in inbox.items():
        target = _uint(int(target_text) if target_text.isdigit() else None, LAST_NODE_ID)
        if not target or not isinstance(box, list):
            continue
        entries = [
            (e["from_node_id"], e.get("justification") if isinstance(e.get("justification"), str) else "",
             _parse_time(e.get("timestamp"), now))
            for e in box
            if isinstance(e, dict) and _uint(e.get("from_node_id"), LAST_NODE_ID)
        ]
        if entries:
            svc.inbox[target] = entries[-svc.limits.inbox_max :]
    for req_text, box in responses.items():
        requester = _uint(int(req_text) if req_text.isdigit() else None, LAST_NODE_ID)
        if not requester or not isinstance(box, list):
            continue
        answers = [
            (e["from_node_id"], e.get("accept") is True, _parse_time(e.get("timestamp"), now))
            for e in box
            if isinstance(e, dict) and _uint(e.get("from_node_id"), LAST_NODE_ID)
        ]
        if answers:
            svc.responses[requester] = answers[-svc.limits.responses_max :]
    for target_text, rec in asked.items():
        target = _uint(int(target_text) if target_text.isdigit() else None, LAST_NODE_ID)
        if not target or not isinstance(rec, dict):
            continue
        kept = {int(f): float(t) for f, t in rec.items() if f.isdigit() and _uint(t, 2**40) is not None}
        if kept:
            svc.asked[target] = kept

    next_node = _uint(snap.get("next_node"), LAST_NODE_ID + 1) or FIRST_NODE_ID
    svc.next_node = max(next_node, highest + 1, FIRST_NODE_ID)
    svc.next_net = max(_uint(snap.get("next_net"), 0xFFFF) or 1, max(svc.networks, default=0) + 1)
    return warnings


def _load_node(svc: RegistryService, key_text: str, rec: Any, now: float) -> str | None:
    if not isinstance(rec, dict):
        return "not an object"
    node_id = _uint(rec.get("id"), LAST_NODE_ID)
    if not node_id or str(node_id) != key_text:
        return "bad or mismatched id"
    try:
        key = base64.b64decode(rec.get("public_key") or "", validate=True)
    except (binascii.Error, ValueError, TypeError):
        return "public_key is not base64"
    if len(key) != 32:
        return f"public_key is {len(key)} bytes, not 32"
    if key in svc.by_key:
        return "public_key already used by another node"
    real_addr = rec.get("real_addr")
    real_addr = real_addr if isinstance(real_addr, str) and split_host_port(real_addr) else ""
    owner = rec.get("owner") if isinstance(rec.get("owner"), str) else ""
    node = Node(node_id, key, real_addr, now, owner)
    node.public = rec.get("public") is True
    node.task_exec = rec.get("task_exec") is True
    polo = rec.get("polo_score")
    node.polo = int(polo) if isinstance(polo, (int, float)) and not isinstance(polo, bool) and abs(polo) < 2**53 else 0
    tags, problem = parse_tags(rec.get("tags"))
    node.tags = tuple(tags) if tags and not problem else None
    node.networks = BACKBONE
    hostname = rec.get("hostname")
    if isinstance(hostname, str) and hostname and not hostname_problem(hostname) and hostname not in svc.hostnames:
        node.hostname = hostname
        svc.hostnames[hostname] = node_id
    svc.nodes[node_id] = node
    svc.by_key[key] = node_id
    return None
