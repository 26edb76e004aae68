"""The database going away, over real HTTP: callbacks get 503 (kie.ai retries them), /healthz
answers 503, the log says so once (and once a minute), and once when it is back; nothing that was
acknowledged is lost or posted twice."""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import sqlite3
from collections import Counter
from urllib.parse import urlsplit

import psycopg

from bot.server import ROUTES
from bot.slack.delivery import ChannelPacer
from tests.conftest import eventually, load

CHANNEL = "C0STORE"


def veo(task_id: str) -> dict:
    body = copy.deepcopy(load("veo-success.json"))
    body["data"]["taskId"] = task_id
    body["data"]["info"]["resultUrls"] = [f"https://example.com/{task_id}.mp4"]
    return body


async def healthz(bot) -> int:
    async with bot.http.get(f"{bot.url}/healthz") as response:
        return response.status


def said(caplog, since: int = 0) -> list[str]:
    """What the bot logged at WARNING or above (the server's own access lines are INFO)."""
    return [r.getMessage() for r in caplog.records[since:] if r.levelno >= logging.WARNING]


async def test_a_locked_sqlite_store_refuses_callbacks_and_says_so_once(
    start_bot, fake_slack, caplog
):
    caplog.set_level(logging.INFO)
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    assert (await bot.callback("veo", veo("before")))[0] == 200
    await eventually(lambda: fake_slack.roots(CHANNEL))
    with sqlite3.connect(bot.settings.database_path) as db:
        await eventually(lambda: db.execute("SELECT status FROM outbox").fetchall() == [("done",)])
    start = len(caplog.records)
    # Writes wait for the lock a moment, then give up: the store cannot write.
    locker = sqlite3.connect(bot.settings.database_path, timeout=5)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        answers = await asyncio.gather(*(bot.callback("veo", veo(f"during-{n}")) for n in range(8)))
        assert {status for status, _ in answers} == {503}
        assert all("retry" in answer["error"] for _, answer in answers)
        assert await healthz(bot) == 503  # reads still pass; a write does not
        assert (await bot.callback("veo", veo("during-last")))[0] == 503
    finally:
        locker.rollback()
        locker.close()
    assert await healthz(bot) == 200
    assert (await bot.callback("veo", veo("after")))[0] == 200
    await eventually(lambda: len(fake_slack.roots(CHANNEL)) == 2)

    lines = said(caplog, start)
    assert len(lines) == 2, lines
    assert lines[0].startswith("the database does not answer (database is locked)")
    assert lines[1].startswith("database answering again after ")
    assert lines[1].endswith("; 9 callbacks were refused with 503, kie.ai retries them")
    assert ["before" in m.text or "after" in m.text for m in fake_slack.roots(CHANNEL)] == [
        True
    ] * 2


async def test_nothing_acknowledged_is_lost_across_a_postgresql_outage_under_load(
    start_bot, fake_slack, postgres_server, postgres_url, caplog
):
    """The bot's connections are cut and the database refuses new ones for a few seconds while
    four streams of callbacks keep coming, as a restart of PostgreSQL does to it."""
    caplog.set_level(logging.INFO)
    channels = [f"C0LOAD{n}" for n in range(4)]
    bot = await start_bot(
        fake_slack, postgres_url=postgres_url, pacer=ChannelPacer(rate=1000, burst=1000)
    )
    routes = {channel: await bot.app[ROUTES].issue(channel) for channel in channels}
    answers: dict[str, int] = {}
    stop = asyncio.Event()

    async def stream(lane: int) -> None:
        for n in range(100_000):
            if stop.is_set():
                return
            task = f"lane{lane}-{n:05d}"
            status, _ = await bot.callback("veo", veo(task), route=routes[channels[lane]])
            answers[task] = status
            await asyncio.sleep(0.01)

    def count(status: int) -> int:
        return sum(1 for answer in answers.values() if answer == status)

    streams = [asyncio.create_task(stream(lane)) for lane in range(len(channels))]
    try:
        await eventually(lambda: count(200) >= 100)
        start = len(caplog.records)
        database = urlsplit(postgres_url).path.lstrip("/")
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )
            await eventually(lambda: count(503) >= 50)
            assert await healthz(bot) == 503
            await asyncio.sleep(2)  # the outage lasts a few seconds
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        accepted_before = count(200)
        await eventually(lambda: count(200) >= accepted_before + 100)
        assert await healthz(bot) == 200
    finally:
        stop.set()
        await asyncio.gather(*streams)
    lines = said(caplog, start)

    assert set(answers.values()) == {200, 503}
    with psycopg.connect(postgres_url) as db:
        stored = {row[0] for row in db.execute("SELECT task_id FROM tasks")}
    accepted = {task for task, status in answers.items() if status == 200}
    assert accepted <= stored  # every acknowledged callback is stored

    def posted() -> Counter[str]:
        roots = (m.text for m in fake_slack.messages if m.thread_ts is None)
        return Counter(re.findall(r"lane\d-\d{5}", text)[0] for text in roots)

    await eventually(lambda: set(posted()) == stored, timeout=60)
    assert max(posted().values()) == 1  # each posted once

    def statuses() -> set[str]:
        with psycopg.connect(postgres_url) as db:
            return {row[0] for row in db.execute("SELECT DISTINCT status FROM outbox")}

    # Slack has each post before the bot records it sent: the last ones settle a moment later.
    await eventually(lambda: statuses() == {"done"}, timeout=30)
    assert max(posted().values()) == 1  # and still each posted once

    # The outage in the log: when it began and when it ended, not once per callback.
    assert len(lines) <= 4, lines
    assert lines[0].startswith("the database does not answer (")
    [back] = [line for line in lines if line.startswith("database answering again after ")]
    refused = count(503)
    assert back.endswith(f"; {refused} callbacks were refused with 503, kie.ai retries them")
