"""Files and messages over port 1001 and the bulk extension between real
daemons: sizes byte-exact, hostile names stored safely, resume, memory."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import pytest

import pilotgw
from pilotgw.overlay import dataexchange as dx
from pilotgw.overlay.address import Addr
from pilotgw.services import filetransfer


def run(coro, timeout: float = 120.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def node(rendezvous, start_daemon, tmp_path, monkeypatch):
    def start(name, *flags, public=True):
        home = tmp_path / f"home-{name}"
        (home / ".pilot").mkdir(parents=True, exist_ok=True)
        with monkeypatch.context() as m:
            m.setenv("HOME", str(home))
            d = start_daemon(rendezvous, name, *flags, "-identity", str(home / ".pilot" / "identity.key"),
                             public=public)
        d.home = home
        return d

    return start


def sha(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def make(path, size: int) -> str:
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
    return sha(path)


async def send(d, targets, path, **kw):
    client = await pilotgw.connect(str(d.socket))
    try:
        async def dial(addr: Addr, port: int):
            return await client.dial(addr.node, port)

        return await filetransfer.send_file(dial, targets, path, **kw)
    finally:
        await client.close()


def received(d):
    folder = d.home / ".pilot" / "received"
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.exists() else []


def test_sizes_arrive_byte_exact(node, tmp_path):
    a, b = node("a"), node("b")
    for size in (0, 1, 16 * 1024 * 1024 + 1):
        src = tmp_path / f"f{size}.bin"
        digest = make(src, size)
        [d] = run(send(a, Addr(0, b.node_id), src))
        assert d.ok and d.method == "bulk" and d.bytes == size, d
        saved = [p for p in received(b) if p.name.startswith(f"f{size}-")]
        assert len(saved) == 1 and sha(saved[0]) == digest


def test_reference_frame_names_and_messages(node, tmp_path):
    a, b = node("a"), node("b")
    names = ["../../etc/passwd", "a/b", ".", "x\x00y", "n" * 300]

    async def main():
        client = await pilotgw.connect(str(a.socket))
        acks = []
        try:
            reader, writer = await client.dial(b.node_id, 1001)
            for name in names:
                writer.write(dx.file_frame(name, b"payload").encode())
            writer.write(dx.Frame(dx.TEXT, b"hello").encode())
            await writer.drain()
            parser = dx.FrameAssembler()
            while len(acks) < len(names) + 1:
                acks += [f.payload.decode() for f in parser.feed(await reader.read(4096))]
            writer.close()
        finally:
            await client.close()
        return acks

    acks = run(main())
    assert acks == ["ACK FILE 7 bytes"] * len(names) + ["ACK TEXT 5 bytes"]
    files = received(b)
    assert len(files) == len(names) and all(p.read_bytes() == b"payload" for p in files)
    assert all(p.parent == b.home / ".pilot" / "received" for p in files)
    assert not (b.home / "etc").exists() and not (b.home.parent / "etc").exists()
    [inbox] = os.listdir(b.home / ".pilot" / "inbox")
    assert inbox.startswith("TEXT-")


def test_untrusted_node_refused_on_private_1001(node, tmp_path):
    a = node("a")
    b = node("b", public=False)
    src = tmp_path / "x.bin"
    make(src, 1000)
    [d] = run(send(a, Addr(0, b.node_id), src))
    assert not d.ok
    assert received(b) == []


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow
def test_one_gib_with_interruption_resumes_and_memory_stays_bounded(node, tmp_path):
    a, b = node("a"), node("b")
    src = tmp_path / "big.bin"
    size = 1024 * 1024 * 1024
    digest = make(src, size)
    progress = {}
    stop_at = 300 * 1024 * 1024

    async def interrupted():
        client = await pilotgw.connect(str(a.socket))
        try:
            reader, writer = await client.dial(b.node_id, 1004)

            def cut(node_, done, total):
                progress["first"] = done
                if done >= stop_at:
                    writer.transport.abort() if hasattr(writer, "transport") else None
                    raise ConnectionResetError("cut")

            try:
                await filetransfer.send_bulk(reader, writer, src, progress=cut, target=str(Addr(0, b.node_id)))
            except Exception:
                pass
            writer.close()
        finally:
            await client.close()

    run(interrupted(), timeout=300)
    start = time.monotonic()
    [d] = run(send(a, Addr(0, b.node_id), src), timeout=600)
    elapsed = time.monotonic() - start
    assert d.ok, d
    assert d.resumed_from >= 100 * 1024 * 1024, d
    saved = [p for p in received(b) if p.name.startswith("big-")]
    assert len(saved) == 1 and sha(saved[0]) == digest
    for daemon in (a, b):
        assert _rss_mb(daemon.proc.pid) < 150
    print(f"1 GiB resumed from {d.resumed_from} in {elapsed:.1f}s")
