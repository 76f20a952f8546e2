"""A scripted IPC peer: speaks the daemon side of trust-and-ipc.md §A2 on a
Unix socket, in a thread, with canned state instead of a network.

It answers like the reference daemon (one reply per request, in order,
nothing for a successful Send/SendTo, a CloseOK reply *and* push for a
locally closed stream) and emulates the built-in services a CLI test needs:
echo (7), data exchange ACKs (1001), an event-stream broker (1002). Tests
can script errors per command, push accepts and datagrams, and read every
request that arrived.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
from typing import Any, Callable

INFO = {
    "address": "0:0000.0000.0005",
    "authenticated_peers": 1,
    "bytes_recv": 2048,
    "bytes_sent": 1536,
    "conn_list": [],
    "connections": 0,
    "encrypt": True,
    "encrypted_peers": 1,
    "hostname": "alice",
    "identity": True,
    "node_id": 5,
    "owner": "",
    "peer_list": [{"authenticated": True, "encrypted": True, "endpoint": "127.0.0.1:4000", "node_id": 9}],
    "peers": 1,
    "pkts_recv": 20,
    "pkts_sent": 10,
    "ports": 4,
    "public_key": "6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=",
    "uptime_secs": 3725,
}

UNREACHABLE_NODE = 404
"""Dialling this node fails with ``dial timeout`` (as a dead peer would)."""


def _frame(cmd: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload) + 1) + bytes((cmd,)) + payload


def _j(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class _Client:
    def __init__(self, daemon: "FakeDaemon", sock: socket.socket) -> None:
        self.daemon = daemon
        self.sock = sock
        self.lock = threading.Lock()

    def send(self, data: bytes) -> None:
        with self.lock:
            try:
                self.sock.sendall(data)
            except OSError:
                pass


class _Stream:
    """One fake overlay connection owned by a client, served by a service."""

    def __init__(self, conn_id: int, owner: _Client, port: int, remote_node: int) -> None:
        self.conn_id = conn_id
        self.owner = owner
        self.port = port
        self.remote_node = remote_node
        self.buf = bytearray()
        self.topic: bytes | None = None
        self.received = bytearray()

    def push(self, data: bytes) -> None:
        head = struct.pack(">I", self.conn_id)
        for i in range(0, len(data), 4096):
            self.owner.send(_frame(0x07, head + data[i : i + 4096]))

    def push_close(self) -> None:
        self.owner.send(_frame(0x09, struct.pack(">I", self.conn_id)))


class FakeDaemon:
    def __init__(self, path: str) -> None:
        self.path = path
        self.info = json.loads(json.dumps(INFO))
        self.requests: list[tuple[int, bytes]] = []
        self.errors: dict[int, str] = {}
        self.hostnames: dict[str, int] = {"alice": 5, "bob": 9}
        self.pending = [
            {"justification": "let me in", "node_id": 12, "public_key": "AAAA", "received_at": 1700000000}
        ]
        self.trusted = [
            {"approved_at": 1700000100, "mutual": True, "network": 0, "node_id": 9, "public_key": "BBBB"}
        ]
        # A reference daemon: its nodes refuse our file-transfer extension port.
        self.refuse_ports: set[int] = {1004}
        self.silent_ports: set[int] = set()
        self.datagrams_to_echo = True
        self.hook: Callable[[int, bytes], bytes | None] | None = None
        self._streams: dict[int, _Stream] = {}
        self._finished: dict[int, _Stream] = {}
        self._bound: dict[int, _Client] = {}
        self._clients: list[_Client] = []
        self._next_conn = 1
        self._lock = threading.Lock()
        if os.path.exists(path):
            os.unlink(path)
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(path)
        self._server.listen(16)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        try:
            self._server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._server.close()
        for client in list(self._clients):
            try:
                client.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            client.sock.close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    # -- scripted pushes ---------------------------------------------------

    def push_accept(self, port: int, remote_node: int, remote_port: int, data: bytes = b"") -> int:
        client = self._bound[port]
        with self._lock:
            conn_id = self._new_conn_id()
            stream = self._streams[conn_id] = _Stream(conn_id, client, -1, remote_node)
        client.send(_frame(0x05, struct.pack(">HIHIH", port, conn_id, 0, remote_node, remote_port)))
        if data:
            stream.push(data)
        return conn_id

    def push_datagram(self, src_node: int, src_port: int, dst_port: int, data: bytes) -> None:
        for client in list(self._clients):
            client.send(_frame(0x0C, struct.pack(">HIHH", 0, src_node, src_port, dst_port) + data))

    def stream_received(self, conn_id: int) -> bytes:
        stream = self._streams.get(conn_id) or self._finished[conn_id]
        return bytes(stream.received)

    def close_stream(self, conn_id: int) -> None:
        self._streams[conn_id].push_close()

    # -- serving -------------------------------------------------------------

    def _new_conn_id(self) -> int:
        conn_id = self._next_conn
        self._next_conn += 1
        return conn_id

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self._server.accept()
            except OSError:
                return
            client = _Client(self, sock)
            self._clients.append(client)
            threading.Thread(target=self._client_loop, args=(client,), daemon=True).start()

    def _client_loop(self, client: _Client) -> None:
        buf = bytearray()
        try:
            while True:
                data = client.sock.recv(1 << 16)
                if not data:
                    break
                buf += data
                while len(buf) >= 4:
                    (length,) = struct.unpack_from(">I", buf)
                    if len(buf) < 4 + length:
                        break
                    body = bytes(buf[4 : 4 + length])
                    del buf[: 4 + length]
                    if body:
                        self.requests.append((body[0], body[1:]))
                        self._handle(client, body[0], body[1:])
        except OSError:
            pass
        finally:
            if client in self._clients:
                self._clients.remove(client)
            for port, owner in list(self._bound.items()):
                if owner is client:
                    del self._bound[port]

    def _err(self, client: _Client, message: str) -> None:
        client.send(_frame(0x0A, b"\x00\x01" + message.encode()))

    def _handle(self, client: _Client, cmd: int, p: bytes) -> None:
        if self.hook is not None:
            reply = self.hook(cmd, p)
            if reply is not None:
                client.send(reply)
                return
        if cmd in self.errors:
            self._err(client, self.errors[cmd])
            return
        if cmd == 0x0D:
            client.send(_frame(0x0E, _j(self.info)))
        elif cmd == 0x01:
            port = struct.unpack(">H", p[:2])[0]
            if port in self._bound:
                self._err(client, f"port {port} already bound")
            else:
                self._bound[port] = client
                client.send(_frame(0x02, p[:2]))
        elif cmd == 0x03:
            _, node, port = struct.unpack(">HIH", p[:8])
            if node == UNREACHABLE_NODE:
                self._err(client, "dial timeout")
                return
            if port in self.refuse_ports:
                self._err(client, "connection refused")
                return
            with self._lock:
                conn_id = self._new_conn_id()
                self._streams[conn_id] = _Stream(conn_id, client, port, node)
            client.send(_frame(0x04, struct.pack(">I", conn_id)))
        elif cmd == 0x06:
            (conn_id,) = struct.unpack(">I", p[:4])
            stream = self._streams.get(conn_id)
            if stream is None:
                self._err(client, f"connection {conn_id} not found")
                return
            self._serve_data(stream, p[4:])
        elif cmd == 0x08:
            (conn_id,) = struct.unpack(">I", p[:4])
            client.send(_frame(0x09, p[:4]))
            stream = self._streams.pop(conn_id, None)
            if stream is not None:
                self._finished[conn_id] = stream
                stream.push_close()
        elif cmd == 0x0B:
            _, node, port = struct.unpack(">HIH", p[:8])
            if node == 0xFFFFFFFF:
                self._err(client, "sendto: broadcast is not available — custom networks are WIP")
            elif self.datagrams_to_echo:
                self.push_datagram(node, 49152, port, p[8:])
        elif cmd == 0x0F:
            self._handshake(client, p)
        elif cmd == 0x11:
            name = p.decode()
            if name in self.hostnames:
                node = self.hostnames[name]
                client.send(
                    _frame(
                        0x12,
                        _j(
                            {
                                "address": f"0:0000.0000.{node:04X}",
                                "hostname": name,
                                "node_id": node,
                                "public": False,
                                "type": "resolve_hostname_ok",
                            }
                        ),
                    )
                )
            else:
                self._err(client, "resolve_hostname: registry: request failed")
        elif cmd == 0x13:
            self.info["hostname"] = p.decode()
            client.send(_frame(0x14, _j({"hostname": p.decode(), "node_id": 5, "type": "set_hostname_ok"})))
        elif cmd == 0x15:
            vis = "public" if p[:1] == b"\x01" else "private"
            client.send(_frame(0x16, _j({"node_id": 5, "type": "set_visibility_ok", "visibility": vis})))
        elif cmd == 0x17:
            client.send(_frame(0x18, _j({"type": "deregister_ok"})))
        elif cmd == 0x19:
            tags = json.loads(p)
            if len(tags) > 3:
                self._err(client, "set_tags: maximum 3 tags allowed")
                return
            client.send(_frame(0x1A, _j({"node_id": 5, "tags": [t.lstrip("#") for t in tags] or None, "type": "set_tags_ok"})))
        elif cmd == 0x1B:
            client.send(_frame(0x1C, _j({"webhook": p.decode()})))
        elif cmd == 0x1D:
            client.send(_frame(0x1E, _j({"node_id": 5, "task_exec": p[:1] == b"\x01", "type": "set_task_exec_ok"})))
        else:
            self._err(client, f"unknown command: 0x{cmd:02X}")

    def _handshake(self, client: _Client, p: bytes) -> None:
        sub = p[0]
        node = struct.unpack(">I", p[1:5])[0] if len(p) >= 5 else None
        if sub == 1:
            client.send(_frame(0x10, _j({"node_id": node, "status": "sent"})))
        elif sub == 2:
            client.send(_frame(0x10, _j({"node_id": node, "status": "approved"})))
        elif sub == 3:
            client.send(_frame(0x10, _j({"node_id": node, "status": "rejected"})))
        elif sub == 4:
            client.send(_frame(0x10, _j({"pending": self.pending})))
        elif sub == 5:
            client.send(_frame(0x10, _j({"trusted": self.trusted})))
        elif sub == 6:
            if any(t["node_id"] == node for t in self.trusted):
                client.send(_frame(0x10, _j({"node_id": node, "status": "revoked"})))
            else:
                self._err(client, f"handshake revoke: node {node} was not trusted")

    def _serve_data(self, stream: _Stream, data: bytes) -> None:
        stream.received += data
        if stream.port in self.silent_ports:
            return
        if stream.port == 7 or stream.port == -1:
            if stream.port == 7:
                stream.push(data)
        elif stream.port == 1001:
            stream.buf += data
            while len(stream.buf) >= 8:
                typ, length = struct.unpack_from(">II", stream.buf)
                if len(stream.buf) < 8 + length:
                    break
                payload = bytes(stream.buf[8 : 8 + length])
                del stream.buf[: 8 + length]
                names = {1: "TEXT", 2: "BINARY", 3: "JSON", 4: "FILE"}
                n = length
                if typ == 4 and len(payload) >= 2:
                    n = length - 2 - struct.unpack(">H", payload[:2])[0]
                ack = f"ACK {names.get(typ, f'UNKNOWN({typ})')} {n} bytes".encode()
                stream.push(struct.pack(">II", 1, len(ack)) + ack)
        elif stream.port == 1002:
            stream.buf += data
            while len(stream.buf) >= 2:
                (tlen,) = struct.unpack_from(">H", stream.buf)
                if len(stream.buf) < 2 + tlen + 4:
                    break
                (plen,) = struct.unpack_from(">I", stream.buf, 2 + tlen)
                end = 2 + tlen + 4 + plen
                if len(stream.buf) < end:
                    break
                event = bytes(stream.buf[:end])
                topic = event[2 : 2 + tlen]
                del stream.buf[:end]
                if stream.topic is None:
                    stream.topic = topic
                    continue
                for other in list(self._streams.values()):
                    if other is not stream and other.port == 1002 and other.topic in (topic, b"*"):
                        other.push(event)
