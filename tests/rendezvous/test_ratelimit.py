from pilotgw.rendezvous.ratelimit import RateLimiter


def test_bucket_refills_at_rate_and_caps_at_burst():
    lim = RateLimiter(2.0, 4.0)
    assert [lim.allow("a", 0.0) for _ in range(5)] == [True] * 4 + [False]
    assert lim.allow("a", 0.5) and not lim.allow("a", 0.5)
    assert lim.allow("b", 0.5)
    lim.sweep(100.0)
    assert len(lim) == 0


def test_disabled_limiter_allows_everything():
    lim = RateLimiter(0, 0)
    assert all(lim.allow("a", 0.0) for _ in range(1000)) and len(lim) == 0
