"""A two-minute Slack outage, waited out for real: nothing lost, nothing doubled, order kept.

This test takes about three minutes by design (the outage lasts two).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import sqlite3

import pytest

from bot.server import ROUTES
from tests.conftest import eventually, load, scrape

CHANNELS = ("C0ALPHA", "C0BRAVO", "C0CHARLIE")
PHASE = 60.0  # seconds of 503s, then as long with connections refused


def veo(task_id: str) -> dict:
    body = copy.deepcopy(load("veo-success.json"))
    body["data"]["taskId"] = task_id
    body["data"]["info"]["resultUrls"] = [f"https://example.com/{task_id}.mp4"]
    return body


def veo_4k(task_id: str) -> dict:
    body = copy.deepcopy(load("veo-4k-success.json"))
    body["data"]["taskId"] = task_id
    body["data"]["info"]["resultUrls"] = [f"https://example.com/{task_id}_4k.mp4"]
    return body


def veo_4k_failed(task_id: str) -> dict:
    body = copy.deepcopy(load("veo-4k-fail-500.json"))
    body["data"]["taskId"] = task_id
    return body


@pytest.mark.long
async def test_a_two_minute_outage_loses_and_doubles_nothing(start_bot, fake_slack, caplog):
    bot = await start_bot(fake_slack)
    routes = {channel: await bot.app[ROUTES].issue(channel) for channel in CHANNELS}
    caplog.set_level(logging.WARNING, logger="bot.slack.delivery")

    async def send(body: dict, channel: str, product: str = "veo") -> None:
        assert await bot.callback(product, body, route=routes[channel]) == (
            200,
            {"status": "received"},
        )

    for channel in CHANNELS:  # a thread that exists before the outage
        await send(veo(f"{channel}-zero"), channel)
    await eventually(lambda: all(fake_slack.roots(channel) for channel in CHANNELS))

    fake_slack.outage_status = 503
    for channel in CHANNELS:
        await send(veo(f"{channel}-first"), channel)
        await send(veo_4k(f"{channel}-zero"), channel, "veo-4k")  # a reply in zero's thread
        await send(veo(f"{channel}-second"), channel)
    await asyncio.sleep(PHASE)

    port = fake_slack.port
    await fake_slack.stop()  # connections refused from now on
    for channel in CHANNELS:
        await send(veo_4k(f"{channel}-first"), channel, "veo-4k")  # before its root went out
        await send(veo_4k_failed(f"{channel}-zero"), channel, "veo-4k")  # zero's second reply
        await send(veo(f"{channel}-third"), channel)
    await asyncio.sleep(PHASE)
    sent_before = len(fake_slack.messages)
    assert sent_before == len(CHANNELS)

    fake_slack.outage_status = None
    await fake_slack.start(port)  # Slack is back

    def delivered() -> bool:
        return all(
            len(fake_slack.roots(channel)) == 4
            and len(fake_slack.replies(fake_slack.roots(channel)[0])) == 2
            for channel in CHANNELS
        )

    await eventually(delivered, timeout=150)
    await eventually(lambda: outbox_statuses(bot) <= {"done", "skipped"}, timeout=30)

    for channel in CHANNELS:
        zero, first, second, third = fake_slack.roots(channel)
        for root, name in ((zero, "zero"), (first, "first"), (second, "second"), (third, "third")):
            assert f"{channel}-{name}" in root.text
        # zero's thread: its news in the order it came, and the root updated in place.
        four_k, failure = fake_slack.replies(zero)
        assert f"{channel}-zero_4k.mp4" in four_k.content
        assert "4K unavailable" in failure.content
        assert float(zero.ts) < float(four_k.ts) < float(failure.ts)
        assert f"{channel}-zero_4k.mp4" in zero.content and "4K unavailable" in zero.content
        # first's 4K news came before its root went out: the root shows it, once.
        assert f"{channel}-first_4k.mp4" in first.content and fake_slack.replies(first) == []
        assert fake_slack.replies(second) == [] and fake_slack.replies(third) == []
    assert len(fake_slack.messages) == len(CHANNELS) * 6
    assert "failed" not in outbox_statuses(bot)

    outage_lines = [r.getMessage() for r in caplog.records if "Slack" in r.getMessage()]
    assert sum("is not answering" in line for line in outage_lines) == 1
    assert 1 <= sum("has not answered for" in line for line in outage_lines) <= 3
    assert sum("answers again" in line for line in outage_lines) == 1

    metrics = await scrape(bot)
    outcomes = {
        dict(labels)["outcome"]
        for (name, labels), _ in metrics.items()
        if name == "kie_slack_slack_calls_total"
    }
    assert {"http_503", "network_error", "ok"} <= outcomes


def outbox_statuses(bot) -> set[str]:
    with sqlite3.connect(bot.settings.database_path) as db:
        return {status for (status,) in db.execute("SELECT status FROM outbox")}
