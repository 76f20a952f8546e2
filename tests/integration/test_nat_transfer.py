"""Files across NATs: a NAT mapping change mid-transfer and a lossy NAT uplink
must not lose or corrupt a transfer.

One lab for the module: a rendezvous and three hosts, behind a symmetric
(``s``), a full-cone (``f``) and a port-restricted (``p``) NAT. Files go with
the Python API (``pilotgw.services.filetransfer``, the bulk extension) and
are compared by SHA-256 with what lands in the receiver's
``~/.pilot/received``.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pilotgw.lab import Host, Lab, Link, NatKind, NatRouter, Topology, netns
from pilotgw.lab.stack import Stack

REASON = netns.unavailable_reason()
pytestmark = [pytest.mark.root, pytest.mark.skipif(REASON is not None, reason=f"NAT tests skipped: {REASON}")]

MIB = 1 << 20


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    topo = Topology("nat-xfer", hosts=(Host("rv"),), rendezvous="rv",
                    nats=(NatRouter("nat-s", NatKind.SYMMETRIC, (Host("s"),)),
                          NatRouter("nat-f", NatKind.FULL_CONE, (Host("f"),)),
                          NatRouter("nat-p", NatKind.PORT_RESTRICTED, (Host("p"),))))
    with Lab(topo) as lab, Stack(lab, public=True, trust=False) as st:
        yield st


def make_file(path: Path, mib: int) -> str:
    """A file of ``mib`` MiB that no two MiB of repeat; returns its SHA-256."""
    h = hashlib.sha256()
    block = os.urandom(MIB)
    with open(path, "wb") as f:
        for i in range(mib):
            chunk = i.to_bytes(8, "big") + block[8:]
            f.write(chunk)
            h.update(chunk)
    return h.hexdigest()


def sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MIB):
            h.update(chunk)
    return h.hexdigest()


def echo(stack: Stack, a: str, b: str) -> None:
    with stack.agent(a).client() as c:
        conn = c.dial(stack.agent(b).node_id, 7, timeout=30)
        conn.send(b"x")
        assert conn.recv(timeout=10) == b"x"
        conn.close()


def test_nat_mapping_change_mid_transfer_loses_nothing(stack: Stack, tmp_path: Path) -> None:
    echo(stack, "s", "f")
    before = stack.peer_entry("f", "s")
    assert before is not None and before["endpoint"] != stack.beacon  # direct: s -> full cone
    src = tmp_path / "mapping-change.bin"
    digest = make_file(src, 192)
    flushed_at: list[float] = []

    def flush_soon() -> None:
        # Wait until the transfer is under way, then drop every binding of s's NAT.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            conns = stack.agent("s").info().get("conn_list") or []
            if any(c.get("bytes_sent", 0) > 8 * MIB or c.get("segs_sent", 0) > 500 for c in conns):
                break
            time.sleep(0.02)
        stack.lab.flush_nat("nat-s")
        flushed_at.append(time.monotonic())

    t = threading.Thread(target=flush_soon)
    t.start()
    delivery = stack.send_file("s", "f", src)
    done_at = time.monotonic()
    t.join()
    assert flushed_at and flushed_at[0] < done_at  # the mapping changed while the file was in flight
    assert delivery.ok, delivery
    assert sha(Path(delivery.path)) == digest
    after = stack.peer_entry("f", "s")
    # The symmetric NAT picked a new random port: the receiver followed it.
    assert after is not None and after["endpoint"] != before["endpoint"] and after["endpoint"] != stack.beacon


@pytest.mark.slow
def test_256_mib_across_a_lossy_nat_arrives_byte_exact(stack: Stack, tmp_path: Path) -> None:
    # Default settings: large segments shrink under loss (segsize), so the
    # transfer neither stalls nor needs -segment-size 4096.
    stack.lab.set_link("nat-p", Link(loss=2.0))
    try:
        src = tmp_path / "lossy.bin"
        digest = make_file(src, 256)
        t0 = time.monotonic()
        delivery = stack.send_file("p", "f", src)
        elapsed = time.monotonic() - t0
        assert delivery.ok, delivery
        assert sha(Path(delivery.path)) == digest
        print(f"256 MiB across 2 % loss in {elapsed:.1f} s ({256 / elapsed:.1f} MiB/s), path {stack.path('p', 'f')}")
        assert elapsed < 60
    finally:
        stack.lab.set_link("nat-p", Link())


def test_default_segments_survive_a_lossy_nat(stack: Stack, tmp_path: Path) -> None:
    # 64 KB segments are ~45 IP fragments: at 2 % loss per packet each is
    # lost 60 % of the time. The stream must shrink its segments and go on.
    src = tmp_path / "lossy-default.bin"
    digest = make_file(src, 8)
    stack.lab.set_link("nat-s", Link(loss=2.0))
    result: list = []

    def send() -> None:
        try:
            result.append(stack.send_file("s", "f", src))
        except Exception:  # the lab's teardown ends a hung transfer
            pass

    t = threading.Thread(target=send, daemon=True)
    t.start()
    t.join(40)
    stack.lab.set_link("nat-s", Link())
    assert result, "8 MiB did not arrive within 40 s"
    assert result[0].ok and sha(Path(result[0].path)) == digest
