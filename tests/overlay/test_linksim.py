"""The link simulator itself: delay, rate, queue, impairments, determinism."""

from __future__ import annotations

import pytest

from pilotgw.overlay.linksim import LinkConfig, LinkSim
from pilotgw.overlay.packet import PROTO_DATAGRAM, Packet


class Node:
    """Sends queued packets, records what arrives (with the time)."""

    def __init__(self) -> None:
        self.queue: list[Packet] = []
        self.got: list[tuple[float, bytes]] = []

    def receive(self, p, now):
        self.got.append((now, bytes(p.payload)))

    def packets_to_send(self, now):
        out, self.queue = self.queue, []
        return out

    def next_timer(self):
        return None

    def timer_expired(self, now):
        raise AssertionError("no timers")

    def next_event(self):
        return None


def send(n: int, cfg: LinkConfig, seed: int = 0, size: int = 966) -> tuple[Node, LinkSim]:
    a, b = Node(), Node()
    a.queue = [Packet(PROTO_DATAGRAM, payload=i.to_bytes(4, "big") + bytes(size - 4)) for i in range(n)]
    sim = LinkSim(a, b, cfg, seed=seed)
    sim.start()
    sim.run()
    return b, sim


def test_delay_and_serialisation():
    b, _ = send(3, LinkConfig(delay=0.01, bandwidth=8e6))  # 1000 wire bytes = 1 ms each
    assert [round(t, 6) for t, _ in b.got] == [0.011, 0.012, 0.013]


def test_tail_drop_queue():
    b, sim = send(10, LinkConfig(delay=0.0, bandwidth=8e6, queue=3000))
    assert len(b.got) == 3 and sim.stats[0].queue_drops == 7


@pytest.mark.parametrize("field", ["loss", "duplicate", "reorder", "corrupt"])
def test_impairment_rates_are_close_to_configured(field):
    b, sim = send(4000, LinkConfig(delay=0.001, reorder_delay=0.01, **{field: 0.1}), seed=3)
    st = sim.stats[0]
    count = {"loss": st.lost, "duplicate": st.duplicated, "reorder": st.reordered, "corrupt": st.corrupted}[field]
    assert 300 < count < 500
    if field == "corrupt":
        assert st.rejected == st.corrupted and len(b.got) == 4000 - st.corrupted
    if field == "reorder":
        seqs = [int.from_bytes(d[:4], "big") for _, d in b.got]
        assert seqs != sorted(seqs) and sorted(seqs) == list(range(4000))


def test_seeded_runs_repeat_exactly():
    cfg = LinkConfig(loss=0.2, reorder=0.2, duplicate=0.2)
    assert send(500, cfg, seed=9)[0].got == send(500, cfg, seed=9)[0].got
    assert send(500, cfg, seed=9)[0].got != send(500, cfg, seed=10)[0].got


def test_bad_config_is_refused():
    with pytest.raises(ValueError):
        LinkConfig(loss=1.5)
