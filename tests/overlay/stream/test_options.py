"""Option validation: bad values fail at construction with a clear message."""

from __future__ import annotations

import pytest

from pilotgw.overlay.stream.options import StreamOptions


@pytest.mark.parametrize("kw", [dict(mss=0), dict(mss=70_000), dict(recv_buffer=100), dict(ack_every=0), dict(min_rto=2.0)])
def test_bad_options_are_refused(kw):
    with pytest.raises(ValueError):
        StreamOptions(**kw)
