"""Test nodes: an Ed25519 identity plus signed request builders."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pilotgw.overlay import registry
from pilotgw.rendezvous.registry_service import Conn, RegistryService


class Ident:
    def __init__(self, seed: int) -> None:
        self.key = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
        self.pub = self.key.public_key().public_bytes_raw()
        self.id = 0


class Harness:
    """A service plus one connection per identity, as the daemon would hold."""

    def __init__(self, svc: RegistryService | None = None, now: float = 1_000_000.0) -> None:
        self.svc = svc or RegistryService()
        self.now = now
        self.conns: dict[int, Conn] = {}

    def conn(self, ident: Ident, ip: str = "10.0.0.1", port: int = 50000) -> Conn:
        key = id(ident)
        if key not in self.conns:
            self.conns[key] = Conn(ip, port)
        return self.conns[key]

    def call(self, msg: dict[str, Any], conn: Conn | None = None) -> Any:
        return self.svc.handle(msg, conn or Conn("10.9.9.9", 1), self.now)

    def register(self, ident: Ident, listen: str = "0.0.0.0:4000", ip: str = "10.0.0.1", **kw: Any) -> dict[str, Any]:
        reply = self.call(registry.register(ident.pub, listen, **kw), self.conn(ident, ip))
        assert reply["type"] == "register_ok", reply
        ident.id = reply["node_id"]
        return reply

    def signed(self, ident: Ident, builder: Any, *args: Any) -> Any:
        return self.call(builder(*args, ident.key), self.conn(ident))
