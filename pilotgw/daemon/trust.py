"""The daemon's trust state: trusted peers, pending requests, our own
outstanding requests, and the handshake replay cache (trust-and-ipc.md §A1.5,
§A1.11, D-7, D-9, D-15, D-19).

One object holds all three sets so a transition is one synchronous method
call: the daemon runs on one event loop and never awaits inside these
methods, so no lock is needed and no network I/O happens while state is
half-changed (D-21). Every mutation that the contract persists ends in
:meth:`TrustStore.save`, a whole-snapshot atomic write (temp file, fsync,
rename) with mode 0600 for both the file and its ``.tmp`` (D-15).

File format: the reference's ``trust.json`` (2-space indent, no trailing
newline, local-time RFC 3339 stamps) with two compatible changes: an empty
trusted list is written ``[]`` (D-15) and our outstanding requests are kept
under an extra ``outgoing`` key that expires after 7 days (D-19). The
reference ignores unknown keys, so a file we write stays readable by it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from pilotgw.daemon.log import Log
from pilotgw.daemon.ratelimit import Gate
from pilotgw.overlay import gojson

log = Log("trust")

#: Unix seconds of Go's zero ``time.Time``: what an unparsable stamp becomes
#: and what IPC lists print for it (Q12).
ZERO_TIME = -62135596800
#: D-19: an unanswered request of ours is forgotten after a week.
OUTGOING_TTL = 7 * 24 * 3600.0
#: A1.4: replay-cache entries are kept this long and reaped this often.
REPLAY_RETENTION = 600.0
REPLAY_REAP_INTERVAL = 300.0
#: trust.json is a few hundred bytes per peer; refuse to parse absurd files.
MAX_FILE_SIZE = 16 * 1024 * 1024


@dataclass(slots=True)
class Trusted:
    """A trusted peer. ``public_key`` is base64 or ``""`` (relayed flows, Q10)."""

    node_id: int
    public_key: str
    approved_at: float
    mutual: bool
    network: int = 0


@dataclass(slots=True)
class Pending:
    """An inbound request awaiting approve/reject. ``key_verified`` is false
    when the registry could not confirm ``public_key`` at arrival (D-1): the
    key is checked again before an approval takes effect."""

    node_id: int
    public_key: str
    justification: str
    received_at: float
    key_verified: bool = True


def format_time(ts: float) -> str:
    """RFC 3339, seconds precision, local zone with its offset (``Z`` for UTC)."""
    if ts == ZERO_TIME:
        return "0001-01-01T00:00:00Z"
    stamp = _dt.datetime.fromtimestamp(int(ts)).astimezone()
    text = stamp.isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def parse_time(text: Any) -> float:
    """Any RFC 3339 stamp (any offset, optional fraction) to Unix seconds;
    anything else becomes :data:`ZERO_TIME` (Q12)."""
    if not isinstance(text, str) or not text:
        return ZERO_TIME
    try:
        stamp = _dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return ZERO_TIME
    if stamp.tzinfo is None:
        return ZERO_TIME
    return float(int(stamp.timestamp()))


def _int(value: Any, maximum: int) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= maximum:
        return value
    return None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


class ReplayCache:
    """A1.4 step 3: remember each accepted message's canonical hash for
    10 minutes. Bounded by the freshness window: a message older than 5 min
    is refused before it gets here, so retention covers every acceptable
    replay."""

    __slots__ = ("_seen", "_next_reap")

    def __init__(self) -> None:
        self._seen: dict[bytes, float] = {}
        self._next_reap = 0.0

    def __len__(self) -> int:
        return len(self._seen)

    def check_and_add(self, key: bytes, now: float) -> bool:
        """True the first time ``key`` is seen (and records it), False for a replay."""
        if now >= self._next_reap:
            self.reap(now)
        if key in self._seen:
            return False
        self._seen[key] = now
        return True

    def reap(self, now: float) -> None:
        self._next_reap = now + REPLAY_REAP_INTERVAL
        cutoff = now - REPLAY_RETENTION
        self._seen = {k: t for k, t in self._seen.items() if t >= cutoff}


class TrustStore:
    """trusted / pending / outgoing, persisted to ``path`` (``None`` = memory only)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = os.fspath(path) if path is not None else None
        self.trusted: dict[int, Trusted] = {}
        self.pending: dict[int, Pending] = {}
        self.outgoing: dict[int, float] = {}
        if self.path is not None:
            self._load()

    # -- queries -----------------------------------------------------------------

    def is_trusted(self, node: int) -> bool:
        return node in self.trusted

    def has_outgoing(self, node: int, now: float) -> bool:
        """Whether we asked ``node`` for trust within the last 7 days (D-19)."""
        since = self.outgoing.get(node)
        if since is None:
            return False
        if now - since > OUTGOING_TTL:
            del self.outgoing[node]
            return False
        return True

    def known_key(self, node: int) -> str:
        """The key a trust or pending record holds for ``node`` (``""`` if none)."""
        record = self.trusted.get(node) or self.pending.get(node)
        return record.public_key if record is not None else ""

    def pending_list(self) -> list[dict[str, Any]]:
        """IPC Handshake 0x04 entries (A2.5); keys are sorted by the encoder."""
        return [
            {
                "justification": p.justification,
                "node_id": p.node_id,
                "public_key": p.public_key,
                "received_at": int(p.received_at),
            }
            for p in self.pending.values()
        ]

    def trusted_list(self) -> list[dict[str, Any]]:
        """IPC Handshake 0x05 entries (A2.5)."""
        return [
            {
                "approved_at": int(t.approved_at),
                "mutual": t.mutual,
                "network": t.network,
                "node_id": t.node_id,
                "public_key": t.public_key,
            }
            for t in self.trusted.values()
        ]

    # -- transitions (each saves) --------------------------------------------------

    def add_outgoing(self, node: int, now: float) -> None:
        self.outgoing[node] = now
        self.save()

    def clear_outgoing(self, node: int) -> bool:
        """Forget our request to ``node``; True if there was one."""
        if self.outgoing.pop(node, None) is None:
            return False
        self.save()
        return True

    def trust(self, node: int, public_key: str, now: float, *, mutual: bool, network: int = 0) -> Trusted:
        """Make ``node`` trusted. Clears our request to it and its pending
        entry (D-7). An empty ``public_key`` keeps a key already known for
        the peer rather than erasing it."""
        key = public_key or self.known_key(node)
        record = Trusted(node, key, now, mutual, network)
        self.trusted[node] = record
        self.pending.pop(node, None)
        self.outgoing.pop(node, None)
        self.save()
        return record

    def add_pending(
        self, node: int, public_key: str, justification: str, now: float, *, key_verified: bool = True
    ) -> Pending:
        """Store (or overwrite) an inbound request. A request without a key
        (relayed) keeps the key of an existing entry (D-9)."""
        old = self.pending.get(node)
        if not public_key and old is not None and old.public_key:
            public_key, key_verified = old.public_key, old.key_verified
        record = Pending(node, public_key, justification, now, key_verified)
        self.pending[node] = record
        self.save()
        return record

    def set_key(self, node: int, public_key: str) -> None:
        """Key backfill from the registry (A1.7, D-9): fills an empty key of
        a trust or pending record and marks a pending key verified."""
        changed = False
        record = self.trusted.get(node)
        if record is not None and not record.public_key:
            record.public_key = public_key
            changed = True
        entry = self.pending.get(node)
        if entry is not None and (not entry.public_key or not entry.key_verified):
            if entry.public_key and entry.public_key != public_key:
                log.warning("pending request key differs from the registry's; using the registry's", peer=node)
            entry.public_key, entry.key_verified = public_key, True
            changed = True
        if changed:
            self.save()

    def take_pending(self, node: int) -> Pending | None:
        """Remove and return ``pending[node]`` (approve/reject)."""
        entry = self.pending.pop(node, None)
        if entry is not None:
            self.save()
        return entry

    def remove(self, node: int) -> tuple[bool, bool]:
        """Untrust/revoke: drop ``node`` from every set. Returns
        ``(was_trusted, was_pending)``."""
        was_trusted = self.trusted.pop(node, None) is not None
        was_pending = self.pending.pop(node, None) is not None
        had_outgoing = self.outgoing.pop(node, None) is not None
        if was_trusted or was_pending or had_outgoing:
            self.save()
        return was_trusted, was_pending

    # -- persistence -------------------------------------------------------------

    def to_json(self) -> bytes:
        """The file's bytes: reference layout, records in declared field order."""
        doc: dict[str, Any] = {
            "trusted": [
                {
                    "node_id": t.node_id,
                    "public_key": t.public_key,
                    "approved_at": format_time(t.approved_at),
                    "mutual": t.mutual,
                    **({"network": t.network} if t.network else {}),
                }
                for t in sorted(self.trusted.values(), key=lambda t: t.node_id)
            ]
        }
        pending = []
        for p in sorted(self.pending.values(), key=lambda p: p.node_id):
            entry: dict[str, Any] = {"node_id": p.node_id}
            if p.public_key:
                entry["public_key"] = p.public_key
            if p.justification:
                entry["justification"] = p.justification
            entry["received_at"] = format_time(p.received_at)
            if not p.key_verified:
                entry["key_verified"] = False
            pending.append(entry)
        if pending:
            doc["pending"] = pending
        if self.outgoing:
            doc["outgoing"] = [
                {"node_id": node, "requested_at": format_time(ts)} for node, ts in sorted(self.outgoing.items())
            ]
        return gojson.dumps(doc, sort_keys=False, indent=True).encode("utf-8", "replace")

    def save(self) -> None:
        """Atomic 0600 snapshot. A write failure is logged, never raised:
        the in-memory state stays authoritative for this run."""
        if self.path is None:
            return
        tmp = self.path + ".tmp"
        try:
            parent = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(parent, mode=0o700, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            try:
                os.fchmod(fd, 0o600)
                data = self.to_json()
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dir_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            log.error("cannot save trust state", path=self.path, error=str(exc))

    def _load(self) -> None:
        """Read the file as the reference writes it (null/missing lists,
        any offset, keyless entries). Missing file: empty state. Corrupt
        file: logged, empty state, and the file is left untouched until the
        next mutation rewrites it."""
        assert self.path is not None
        try:
            with open(self.path, "rb") as f:
                data = f.read(MAX_FILE_SIZE + 1)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.error("cannot read trust state", path=self.path, error=str(exc))
            return
        try:
            if len(data) > MAX_FILE_SIZE:
                raise ValueError("file too large")
            doc = json.loads(data.decode("utf-8", "replace"))
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
        except (ValueError, RecursionError) as exc:
            log.error("trust state is not valid JSON; starting empty", path=self.path, error=str(exc))
            return
        for entry in _entries(doc.get("trusted")):
            node = _int(entry.get("node_id"), 0xFFFFFFFF)
            if node is None:
                continue
            self.trusted[node] = Trusted(
                node,
                _str(entry.get("public_key")),
                parse_time(entry.get("approved_at")),
                entry.get("mutual") is True,
                _int(entry.get("network"), 0xFFFF) or 0,
            )
        for entry in _entries(doc.get("pending")):
            node = _int(entry.get("node_id"), 0xFFFFFFFF)
            if node is None:
                continue
            self.pending[node] = Pending(
                node,
                _str(entry.get("public_key")),
                _str(entry.get("justification")),
                parse_time(entry.get("received_at")),
                entry.get("key_verified") is not False,
            )
        for entry in _entries(doc.get("outgoing")):
            node = _int(entry.get("node_id"), 0xFFFFFFFF)
            if node is not None:
                self.outgoing[node] = parse_time(entry.get("requested_at"))


def _entries(value: Any) -> Iterable[dict[str, Any]]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


#: Ports every node answers whatever the policy (D-5): the handshake, so
#: trust can be established at all, and echo, so ``ping`` works.
OPEN_PORTS = frozenset({444, 7})
#: A refused source is logged and reported at most this often per (node, port).
REFUSAL_REPORT_INTERVAL = 10.0


class InboundPolicy:
    """D-5: who may open a stream or send a datagram to us.

    ``trusted`` mode (the default for private nodes) admits only trusted
    peers, except on :data:`OPEN_PORTS`; ``open`` mode (public nodes, the
    reference behaviour) admits everyone. ``mode=None`` follows the node's
    current visibility. A refused SYN is answered by the connection table
    with an RST, as for a closed port; each refusal is logged and emitted
    as webhook ``security.untrusted_refused`` (our event name), rate-limited
    per source and port.
    """

    def __init__(
        self,
        store: TrustStore,
        *,
        is_public: Callable[[], bool],
        local_node: Callable[[], int],
        mode: str | None = None,
        on_refused: Callable[[int, int, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode not in (None, "open", "trusted"):
            raise ValueError(f"inbound policy must be open or trusted, not {mode!r}")
        self.store = store
        self._is_public = is_public
        self._local = local_node
        self.mode = mode
        self._on_refused = on_refused
        self._clock = clock
        self._gate = Gate(REFUSAL_REPORT_INTERVAL)
        self.refused = 0

    def effective_mode(self) -> str:
        if self.mode is not None:
            return self.mode
        return "open" if self._is_public() else "trusted"

    def check(self, src_node: int, port: int, kind: str) -> bool:
        """The node's ``inbound_check`` hook (hot path for SYNs/datagrams)."""
        if port in OPEN_PORTS or src_node == self._local() or self.store.is_trusted(src_node):
            return True
        if self.effective_mode() == "open":
            return True
        self.refused += 1
        if self._gate.allow((src_node, port), self._clock()):
            log.info("inbound traffic from an untrusted node refused", peer=src_node, port=port, kind=kind)
            if self._on_refused is not None:
                self._on_refused(src_node, port, kind)
        return False
