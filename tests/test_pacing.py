"""The per-channel pacer and the retry backoff."""

from __future__ import annotations

import pytest

from bot.slack.delivery import MAX_BACKOFF, ChannelPacer, backoff


def test_burst_then_one_per_second():
    clock = iter([0, 0, 0, 0, 0.5, 10, 10]).__next__
    pacer = ChannelPacer(rate=1.0, burst=3, clock=clock)
    delays = [pacer.delay("C1") for _ in range(6)]
    assert delays[:3] == [0, 0, 0]
    assert delays[3] == pytest.approx(1.0)
    assert delays[4] == pytest.approx(1.5)
    assert delays[5] == 0
    assert pacer.delay("C2") == 0


def test_sustained_rate_is_one_per_second():
    pacer = ChannelPacer(rate=1.0, burst=3, clock=lambda: 0.0)
    delays = [pacer.delay("C1") for _ in range(103)]
    assert delays[-1] == pytest.approx(100.0)


def test_backoff_grows_with_jitter_and_is_capped():
    for attempts in range(12):
        ceiling = min(MAX_BACKOFF, 2.0**attempts)
        assert ceiling / 2 <= backoff(attempts) <= ceiling
