"""Daemons under stress and failure: the rendezvous restarting mid-stream,
relay fallback and the way back to the direct path, 1,000 concurrent
streams, and an idle CPU with no lingering TIME_WAIT afterwards."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import pytest

from tests.integration.conftest import RegistryClient


def _run(coro, timeout: float = 120.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.slow
def test_rendezvous_restart_while_streaming(start_rendezvous, start_daemon, tmp_path):
    rv = start_rendezvous()
    a = start_daemon(rv, "a", "-keepalive", "2s")
    b = start_daemon(rv, "b", "-keepalive", "2s")
    reg_port, beacon_port = rv.registry[1], rv.beacon[1]

    async def main():
        import pilotgw

        ca = await pilotgw.connect(str(a.socket))
        cb = await pilotgw.connect(str(b.socket))
        listener = await cb.listen(1000)
        total, chunk = 0, os.urandom(256 * 1024)
        want = hashlib.sha256()

        async def sink():
            reader, _ = await listener.accept()
            h, n = hashlib.sha256(), 0
            while data := await reader.read(1 << 20):
                h.update(data)
                n += len(data)
            return n, h.hexdigest()

        task = asyncio.ensure_future(sink())
        _, writer = await ca.dial(b.node_id, 1000)
        restarted = None
        t0 = time.monotonic()
        while time.monotonic() - t0 < 6.0:
            writer.write(chunk)
            want.update(chunk)
            total += len(chunk)
            await writer.drain()
            await asyncio.sleep(0.02)
            if restarted is None and time.monotonic() - t0 > 1.0:
                rv.kill()
                await asyncio.sleep(0.5)
                restarted = start_rendezvous("-registry-addr", f"127.0.0.1:{reg_port}",
                                             "-beacon-addr", f"127.0.0.1:{beacon_port}", store=rv.store)
        writer.close()
        n, digest = await task
        await ca.close()
        await cb.close()
        return total, n, digest, want.hexdigest(), restarted

    total, n, digest, want, rv2 = _run(main())
    assert n == total and digest == want  # the stream survived the rendezvous restart
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if a.log().count("msg=registered") >= 2 and b.log().count("msg=registered") >= 2:
            break
        time.sleep(0.2)
    assert a.log().count("msg=registered") >= 2 and b.log().count("msg=registered") >= 2
    with RegistryClient(rv2.registry) as r:
        assert r.call({"type": "lookup", "node_id": a.node_id})["type"] == "lookup_ok"


@pytest.mark.slow
def test_relay_fallback_then_back_to_direct(rendezvous, start_daemon):
    a = start_daemon(rendezvous, "a")
    # B registers an endpoint nobody answers on: A's direct attempts fail.
    b = start_daemon(rendezvous, "b", "-endpoint", "127.0.0.1:9")

    async def main():
        import pilotgw

        ca = await pilotgw.connect(str(a.socket))
        t0 = time.monotonic()
        reader, writer = await ca.dial(b.node_id, 7)
        dial_time = time.monotonic() - t0
        writer.write(b"via relay")
        assert await reader.readexactly(9) == b"via relay"
        relayed = {p["node_id"]: p for p in (await ca.info())["peer_list"]}[b.node_id]
        # B's periodic direct retry plus A's probe bring both back to direct.
        deadline = time.monotonic() + 25
        peer = {}
        while time.monotonic() < deadline:
            info = await ca.info()
            peer = {p["node_id"]: p for p in info["peer_list"]}[b.node_id]
            if peer["endpoint"] == f"127.0.0.1:{b.tunnel_port}":
                break
            await asyncio.sleep(0.5)
        writer.write(b"direct now")
        assert await reader.readexactly(10) == b"direct now"
        writer.close()
        await ca.close()
        return dial_time, relayed, peer

    dial_time, relayed, peer = _run(main(), timeout=90)
    assert 5.0 < dial_time < 15.0  # direct tried at 0, 1, 3 s, then the relay
    assert "trying relay" in a.log()
    assert (relayed["path"], relayed["relay"]) == ("relay", True)  # Info's path extension
    assert relayed["endpoint"] == f"{rendezvous.beacon[0]}:{rendezvous.beacon[1]}"
    assert peer["endpoint"] == f"127.0.0.1:{b.tunnel_port}", peer
    assert peer["path"] in ("direct", "punched") and peer["relay"] is False


@pytest.mark.slow
def test_thousand_concurrent_streams_then_idle(rendezvous, start_daemon):
    flags = ("-syn-rate-limit", "5000", "-time-wait", "1s")
    a = start_daemon(rendezvous, "a", *flags, "-log-level", "info")
    b = start_daemon(rendezvous, "b", *flags, "-log-level", "info")
    n = 1000

    async def main():
        import pilotgw

        ca = await pilotgw.connect(str(a.socket))

        async def one(i: int) -> bool:
            reader, writer = await ca.dial(b.node_id, 7)
            msg = b"%04d" % i * 64
            writer.write(msg)
            ok = await reader.readexactly(len(msg)) == msg
            return ok, writer

        t0 = time.monotonic()
        results = await asyncio.gather(*(one(i) for i in range(n)))
        opened = time.monotonic() - t0
        info_a = await ca.info()
        for _, writer in results:
            writer.close()
        await asyncio.sleep(0.5)
        await ca.close()
        return [ok for ok, _ in results], opened, info_a

    oks, opened, info_a = _run(main(), timeout=180)
    print(f"{n} echo streams opened and verified in {opened:.2f} s")
    assert all(oks) and len(oks) == n
    assert info_a["connections"] >= n
    # After close + TIME_WAIT (1 s) nothing lingers ...
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        left = len(a.info()["conn_list"]) + len(b.info()["conn_list"])
        if left == 0:
            break
        time.sleep(0.25)
    assert left == 0, f"{left} connections still listed"
    # ... and both daemons are idle: under 2 % CPU over 3 s.
    before = {d.name: _cpu_seconds(d.proc.pid) for d in (a, b)}
    time.sleep(3.0)
    used = {d.name: _cpu_seconds(d.proc.pid) - before[d.name] for d in (a, b)}
    assert all(u < 0.06 for u in used.values()), used
