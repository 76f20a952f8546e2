"""File sending against real data-exchange services over loopback streams:
the reference frame, the bulk extension, resume, and the receiver chain."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
from pathlib import Path

import pytest


from tests.services.loopnet import LoopNet

from pilotgw.overlay.address import Addr
from pilotgw.services import filetransfer
from pilotgw.services.filetransfer import TransferError, send_file


def aio(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 120))
    return wrapper


def make_file(path: Path, size: int) -> str:
    with open(path, "wb") as f:
        left = size
        block = os.urandom(1 << 20)
        while left:
            f.write(block[: min(left, len(block))])
            left -= min(left, len(block))
    return sha(path)


def sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@pytest.mark.parametrize("size", [0, 1, 16 * 1024 * 1024 + 1])
@aio
async def test_bulk_sizes_arrive_byte_exact(tmp_path, size):
    net = LoopNet(tmp_path)
    await net.add(5)
    src = tmp_path / "model.bin"
    digest = make_file(src, size)
    [d] = await send_file(net.dial, Addr(0, 5), src)
    assert d.ok and d.method == "bulk" and d.bytes == size, d
    [saved] = net.received(5)
    assert saved.name.startswith("model-") and saved.suffix == ".bin"
    assert sha(saved) == digest and oct(saved.stat().st_mode & 0o777) == "0o600"
    assert d.path == str(saved)
    await net.close()


@aio
async def test_reference_peer_gets_one_frame_and_ack(tmp_path):
    net = LoopNet(tmp_path)
    await net.add(6, bulk=False)  # a reference node: nothing on the extension port
    src = tmp_path / "notes.txt"
    digest = make_file(src, 100_000)
    [d] = await send_file(net.dial, Addr(0, 6), src)
    assert d.ok and d.method == "standard" and d.ack == "ACK FILE 100000 bytes"
    assert sha(net.received(6)[0]) == digest
    await net.close()


@aio
async def test_reference_peer_refuses_oversized_file_with_its_limit(tmp_path):
    net = LoopNet(tmp_path)
    await net.add(6, bulk=False)
    src = tmp_path / "big.bin"
    make_file(src, 16 * 1024 * 1024)
    [d] = await send_file(net.dial, Addr(0, 6), src)
    assert not d.ok
    assert "file too large: 16777216 bytes (max 16777214 minus name length)" in d.error
    assert "16777207 bytes" in d.error  # the limit for this 7-byte name
    assert net.received(6) == []
    assert sum(w.sent for w in net.sender_writers) == 0  # nothing was sent
    await net.close()


@aio
async def test_interrupted_transfer_resumes(tmp_path):
    net = LoopNet(tmp_path)
    await net.add(5)
    src = tmp_path / "weights.bin"
    digest = make_file(src, 24 * 1024 * 1024)
    net.fail_after = 10 * 1024 * 1024  # the first connection dies after ~10 MiB
    [d] = await send_file(net.dial, Addr(0, 5), src, retries=2)
    assert d.ok, d
    assert d.resumed_from > 4 * 1024 * 1024
    assert sha(net.received(5)[0]) == digest
    total_sent = sum(w.sent for w in net.sender_writers)
    assert total_sent < 24 * 1024 * 1024 * 1.7  # not restarted from zero
    await net.close()


@aio
async def test_changed_prefix_restarts_from_zero(tmp_path):
    net = LoopNet(tmp_path)
    await net.add(5)
    src = tmp_path / "f.bin"
    make_file(src, 4 * 1024 * 1024)
    net.fail_after = 2 * 1024 * 1024
    await send_file(net.dial, Addr(0, 5), src, retries=0)  # leaves a partial
    assert net.received(5) == []
    partial_dir = tmp_path / "n5" / "received" / ".partial"
    for _ in range(100):
        partials = list(partial_dir.iterdir())
        if partials and partials[0].stat().st_size >= 1024 * 1024:
            break
        await asyncio.sleep(0.02)
    assert partials and partials[0].stat().st_size >= 1024 * 1024
    # corrupt the partial: the prefix hash no longer matches, so no resume
    with open(partials[0], "r+b") as f:
        f.write(b"\xff" * 16)
    [d] = await send_file(net.dial, Addr(0, 5), src)
    assert d.ok and d.resumed_from == 0
    assert sha(net.received(5)[0]) == sha(src)
    await net.close()


@aio
async def test_chain_to_many_sends_one_copy_with_progress_per_receiver(tmp_path):
    net = LoopNet(tmp_path)
    for node in (11, 12, 13, 14):
        await net.add(node)
    await net.add(20, bulk=False)  # a reference receiver in the same call
    src = tmp_path / "data.bin"
    size = 8 * 1024 * 1024 + 3
    digest = make_file(src, size)
    seen: dict[str, int] = {}

    def progress(node, done, total):
        assert total == size
        seen[node] = max(seen.get(node, 0), done)

    targets = [Addr(0, n) for n in (11, 12, 13, 14, 20)]
    results = await send_file(net.dial, targets, src, progress=progress)
    assert [r.target for r in results] == [str(t) for t in targets]
    assert all(r.ok for r in results), results
    assert [r.method for r in results] == ["bulk"] * 4 + ["standard"]
    for node in (11, 12, 13, 14, 20):
        assert sha(net.received(node)[0]) == digest
    assert all(seen[str(Addr(0, n))] == size for n in (11, 12, 13, 14, 20))
    bulk_bytes = sum(w.sent for w in net.sender_writers) - size  # minus the reference copy
    assert bulk_bytes < size * 1.05  # one copy for four pilotgw receivers
    await net.close()


@aio
async def test_receiver_the_chain_cannot_reach_gets_a_direct_copy(tmp_path):
    net = LoopNet(tmp_path)
    await net.add(11)
    await net.add(13)
    svc12 = await net.add(12)
    src = tmp_path / "x.bin"
    make_file(src, 300_000)
    # node 12 answers the probe but is gone when the chain reaches it
    real = net.hop_dial

    async def hop_dial(addr, port):
        if addr.node == 12:
            raise ConnectionRefusedError("connection refused")
        return await real(addr, port)

    for svc in net.services.values():
        svc._dial = hop_dial
    results = await send_file(net.dial, [Addr(0, 11), Addr(0, 12), Addr(0, 13)], src)
    by = {r.target: r for r in results}
    assert all(r.ok for r in results), results  # 12 was served directly by the sender
    assert all(sha(net.received(n)[0]) == sha(src) for n in (11, 12, 13))
    await net.close()


def test_missing_file_is_not_found(tmp_path):
    with pytest.raises(TransferError) as info:
        asyncio.run(send_file(None, Addr(0, 1), tmp_path / "nope"))
    assert info.value.code == "not_found"


def test_reference_limit_text():
    filetransfer.check_reference_limit(16_777_214 - 5, "a.txt")
    with pytest.raises(TransferError, match=r"file too large: 16777210 bytes \(max 16777214 minus name length\)"):
        filetransfer.check_reference_limit(16_777_210, "a.txt")


@aio
async def test_receiver_whose_disk_fails_still_forwards_to_the_rest_of_the_chain(tmp_path, monkeypatch):
    net = LoopNet(tmp_path)
    for node in (11, 12, 13):
        await net.add(node)
    src = tmp_path / "w.bin"
    digest = make_file(src, 3 * 1024 * 1024 + 5)
    real_pwrite = os.pwrite

    def pwrite(fd, data, offset):  # node 12's disk is full once 1 MiB is written
        if "/n12/" in os.readlink(f"/proc/self/fd/{fd}") and offset >= 1024 * 1024:
            raise OSError(28, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    r11, r12, r13 = await send_file(net.dial, [Addr(0, 11), Addr(0, 12), Addr(0, 13)], src)
    assert r11.ok and r13.ok, (r11, r13)
    assert not r12.ok and r12.error == "save failed: No space left on device", r12
    assert r12.bytes == 1024 * 1024  # what it saved; the partial stays for a resume
    assert sha(net.received(11)[0]) == digest and sha(net.received(13)[0]) == digest
    assert net.received(12) == []
    await net.close()
