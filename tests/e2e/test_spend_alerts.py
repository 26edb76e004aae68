"""The low-credits alert and the daily digest over real HTTP, on a clock the test moves.

The bot asks the fake kie.ai for its credits and posts to the fake Slack's alert channel; the
ledger rows the digest reports are written the way a start from Slack writes them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime

from storage.backends import open_database
from storage.ledger import Limits, Start, claim_start, mark_started, record_outcome
from tests.conftest import Clock, eventually, load

ALERT = "C0ALERTS"
#: 2026-12-03 07:00 UTC: the digest (08:30) is not due yet.
MORNING = datetime(2026, 12, 3, 7, 0, tzinfo=UTC).timestamp()


def credits(fake_kie, left: float) -> None:
    fake_kie.credits = (200, {"code": 200, "msg": "success", "data": left})


def alert_posts(fake_slack) -> list[str]:
    return [m.text for m in fake_slack.in_channel(ALERT) if "credits are low" in m.text]


async def test_the_low_credits_alert_fires_once_and_rearms(start_bot, fake_slack, fake_kie):
    clock = Clock(MORNING)
    credits(fake_kie, 40)
    await start_bot(
        fake_slack, fake_kie, clock=clock, kie_alert_channel=ALERT, kie_low_credits=50.0
    )
    [first] = await eventually(lambda: alert_posts(fake_slack))
    assert "40 left" in first and "50" in first
    asked = sum(1 for path, _ in fake_kie.requests if path == "/api/v1/chat/credit")

    clock.now += 600  # ten minutes later, still low: nothing new is said
    await eventually(
        lambda: sum(1 for path, _ in fake_kie.requests if path == "/api/v1/chat/credit") > asked
    )
    credits(fake_kie, 500)  # topped up: the alert re-arms
    clock.now += 600
    await eventually(
        lambda: sum(1 for path, _ in fake_kie.requests if path == "/api/v1/chat/credit") > asked + 1
    )
    credits(fake_kie, 10)  # low again: said again, once
    clock.now += 600
    await eventually(lambda: len(alert_posts(fake_slack)) == 2)
    clock.now += 600
    await eventually(
        lambda: sum(1 for path, _ in fake_kie.requests if path == "/api/v1/chat/credit") > asked + 3
    )
    assert len(alert_posts(fake_slack)) == 2
    assert "10 left" in alert_posts(fake_slack)[1]


async def _ledger(path, rows: list[tuple[str, str, str | None, float, str, float | None]]):
    """Write started generations as the bot does: (user, product, model, when, outcome, credits)."""
    db = await open_database(path, None)
    try:
        for n, (user, product, model, when, outcome, spent) in enumerate(rows):

            def write(conn, n=n, user=user, product=product, model=model, when=when):
                start = Start(user, "C0GEN", product, model)
                claim_start(conn, f"key-{n}", start, Limits(), when)
                family = "market" if product == "market" else product
                mark_started(conn, [f"key-{n}"], family, f"task-{n}", product)

            await db.write(write)

            def finish(conn, n=n, product=product, outcome=outcome, spent=spent):
                heading = "Content moderation" if outcome == "failed" else None
                family = "market" if product == "market" else product
                record_outcome(conn, family, f"task-{n}", product, outcome, heading, spent)

            await db.write(finish)
    finally:
        await db.close()


async def test_the_digest_is_posted_once_per_day_at_its_time(
    start_bot, fake_slack, fake_kie, tmp_path
):
    yesterday = MORNING - 86400
    path = tmp_path / "bot.db"
    await _ledger(
        path,
        [
            ("U0ANA", "market", "google/nano-banana", yesterday, "succeeded", 4.0),
            ("U0ANA", "veo", None, yesterday + 60, "failed", None),
            ("U0BEN", "market", "google/nano-banana", yesterday + 120, "succeeded", 4.0),
            ("U0BEN", "veo", None, MORNING, "succeeded", None),  # today: not in the digest
        ],
    )
    clock = Clock(MORNING)
    credits(fake_kie, 321)
    settings = {
        "clock": clock,
        "database_path": path,
        "kie_alert_channel": ALERT,
        "kie_digest_time": 8 * 60 + 30,
    }
    bot = await start_bot(fake_slack, fake_kie, **settings)
    clock.now = MORNING + 3600  # 08:00: not yet (the watch looks twice a second here)
    await asyncio.sleep(1.2)
    assert fake_slack.in_channel(ALERT) == []
    # A Market result of this morning, not saved into Slack: its links may go within a day.
    assert (await bot.callback("market", load("callback-success.json")))[0] == 200
    clock.now = MORNING + 5400  # 08:30: the digest of 2 December
    [digest] = await eventually(lambda: fake_slack.in_channel(ALERT))
    content = digest.content
    assert "Wednesday 02 December 2026" in content
    assert "3 generations, 8 credits (+1 not reported)" in content
    assert "<@U0ANA>" in content and "<@U0BEN>" in content
    assert "Nano Banana" in content and "Content moderation: 1" in content
    assert "321" in content  # the remaining credits
    assert "expire within two days" in content and "e8b7c6d5a4f3e2d1c0b9a8f7e6d5c4b3" in content

    # A restart later that day posts nothing more; the next day brings the next digest.
    await bot.server.stop()
    clock.now += 3600
    await start_bot(fake_slack, fake_kie, **settings)
    clock.now = MORNING + 86400 + 5400
    await eventually(lambda: len(fake_slack.in_channel(ALERT)) == 2)
    with sqlite3.connect(path) as db:
        keys = db.execute("SELECT key FROM outbox WHERE kind = 'message' ORDER BY id").fetchall()
    assert keys == [("message:digest:2026-12-02",), ("message:digest:2026-12-03",)]
    assert "No generations were started" not in fake_slack.in_channel(ALERT)[1].content
