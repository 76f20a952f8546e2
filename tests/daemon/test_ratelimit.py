from __future__ import annotations

from pilotgw.daemon.ratelimit import Gate, TokenBucket


def test_gate_one_per_interval_per_key():
    g = Gate(2.0, max_keys=2)
    assert g.allow("a", 0.0) and not g.allow("a", 1.9) and g.allow("a", 2.0)
    assert g.allow("b", 0.0)
    assert not g.allow("c", 1.0)  # table full of fresh keys: refuse, do not grow
    assert g.allow("c", 5.0)  # stale keys reaped


def test_token_bucket_like_the_reference():
    b = TokenBucket(10, 0.0)
    assert sum(b.take(0.0) for _ in range(20)) == 10  # starts full, capacity = rate
    assert not b.take(0.05)  # less than one token earned
    assert b.take(0.1)
    assert sum(b.take(100.0) for _ in range(50)) == 10  # refill capped at capacity
