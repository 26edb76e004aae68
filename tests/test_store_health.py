"""The database's weather: an outage is logged once, then once a minute, then once when over."""

from __future__ import annotations

import logging

from storage.database import StoreUnavailable
from storage.health import StoreHealth
from tests.conftest import Clock


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "storage.health"]


def test_an_outage_is_said_once_a_minute_with_a_count_and_once_when_over(caplog):
    caplog.set_level(logging.INFO, logger="storage.health")
    clock = Clock()
    health = StoreHealth(clock)
    error = StoreUnavailable("connection refused\n  is the server running?")
    health.answered()  # nothing to say while all is well
    assert not health.down and lines(caplog) == []

    for _ in range(150):  # 10 callbacks and 5 other failures a second for 2.5 minutes
        clock.now += 1
        for _ in range(10):
            health.refused(error)
        for _ in range(5):
            health.failed(error)
    assert health.down
    said = lines(caplog)
    assert len(said) == 3, said
    assert said[0].startswith("the database does not answer (connection refused is the server")
    assert "callbacks are answered 503" in said[0]
    assert said[1].startswith("the database has not answered for 60 s")
    assert "600 callbacks refused with 503 so far" in said[1]
    assert said[2].startswith("the database has not answered for 120 s")

    clock.now += 5
    health.answered()
    health.answered()
    assert not health.down
    assert lines(caplog)[3:] == [
        "database answering again after 154 s; 1500 callbacks were refused with 503, "
        "kie.ai retries them"
    ]


def test_a_second_outage_counts_afresh(caplog):
    caplog.set_level(logging.INFO, logger="storage.health")
    clock = Clock()
    health = StoreHealth(clock)
    health.refused(StoreUnavailable("locked"))
    health.answered()
    clock.now += 3
    health.refused(StoreUnavailable("locked"))
    health.refused(StoreUnavailable("locked"))
    clock.now += 2
    health.answered()
    assert lines(caplog)[-1].startswith("database answering again after 2 s; 2 callbacks")
