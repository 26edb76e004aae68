"""Replicas on one PostgreSQL database wake each other for new Slack work (LISTEN/NOTIFY), over
real HTTP against a real database.

The delivery's periodic look is made an hour long here (`RECHECK`), so that a post that comes
within seconds can only have been woken by a notification. A channel's lane is held for one
replica (a lease in its name, until that replica's lane ends and gives it up), so that the other,
which takes the callback, cannot post it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import psycopg
import pytest

import bot.slack.delivery
import storage.wakeups
from bot.server import LEASES, ROUTES
from storage.wakeups import APPLICATION_NAME, CHANNEL, NOTIFY_GAP, Wakeups
from tests.conftest import Bot, eventually
from tests.e2e.processes import kie_slack
from tests.e2e.test_store_outage import veo
from tests.fakes.slack import FakeSlack

ROOM = "C0WAKE"
#: The periodic look, for these tests: it never comes while one runs.
LOOK = 3600.0
#: Long enough for a notification's post several times over, far shorter than the look.
QUIET = 3.0


@pytest.fixture(autouse=True)
def no_periodic_look(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot.slack.delivery, "RECHECK", LOOK)


@pytest.fixture
async def writer_slack() -> AsyncIterator[FakeSlack]:
    """The Slack of the replica that takes the callbacks: nothing may reach it."""
    slack = await FakeSlack().start()
    yield slack
    await slack.stop()
    assert slack.messages == [], "the replica that took the callback posted it"


def listeners(url: str) -> int:
    """How many connections listen for wake-ups on the database of `url`."""
    with psycopg.connect(url) as db:
        [(count,)] = db.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = %s",
            (APPLICATION_NAME,),
        ).fetchall()
    return int(count)


def hold_lane(url: str, channel: str, owner: str) -> None:
    """Give `owner` the lane of `channel`'s posts for the next hour."""
    with psycopg.connect(url) as db:
        db.execute(
            "INSERT INTO leases (name, owner, until) VALUES (%s, %s, %s)",
            (f"channel:{channel}", owner, time.time() + 3600),
        )


async def replicas(
    start_bot, writer_slack: FakeSlack, slack: FakeSlack, url: str, rooms: list[str]
) -> tuple[Bot, dict[str, str]]:
    """Two replicas on `url`: the writer, returned with a route to each of `rooms`, and the
    other (on `slack`), which holds the lanes of `rooms`."""
    writer = await start_bot(writer_slack, postgres_url=url)
    holder = await start_bot(slack, postgres_url=url)
    assert listeners(url) == 2  # start-up waited for each to listen
    for room in rooms:
        hold_lane(url, room, holder.app[LEASES].owner)
    return writer, {room: await writer.app[ROUTES].issue(room) for room in rooms}


async def test_work_written_by_one_replica_is_posted_at_once_by_the_one_holding_its_lane(
    start_bot, fake_slack, writer_slack, postgres_url
):
    rooms = [f"{ROOM}{n}" for n in range(3)]
    writer, routes = await replicas(start_bot, writer_slack, fake_slack, postgres_url, rooms)
    for room in rooms:  # one after the other: each its own wake-up
        status, _ = await writer.callback("veo", veo(f"task-{room}"), route=routes[room])
        assert status == 200
        [root] = await eventually(lambda room=room: fake_slack.roots(room), timeout=20)
        assert f"task-{room}" in root.text


async def test_a_replica_that_cannot_listen_waits_then_catches_up_when_it_can(
    start_bot, fake_slack, writer_slack, postgres_server, postgres_url, caplog
):
    """The listening connections are cut and the database refuses new ones: what is written
    meanwhile waits (for the look, an hour here); back, each replica looks at once and wakes
    the others. The log says once that each was lost and once that it is back (information:
    the database's trouble is the store's warning)."""
    caplog.set_level(logging.INFO, logger=storage.wakeups.__name__)
    writer, routes = await replicas(start_bot, writer_slack, fake_slack, postgres_url, [ROOM])
    database = urlsplit(postgres_url).path.lstrip("/")

    def said() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name == storage.wakeups.__name__ and r.levelno >= logging.INFO
        ]

    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND application_name = %s",
                (database, APPLICATION_NAME),
            )
            await eventually(lambda: len(said()) == 2)
            # The stores' own connections still serve: the callback is stored...
            assert (await writer.callback("veo", veo("unheard"), route=routes[ROOM]))[0] == 200
            await asyncio.sleep(QUIET)
            assert fake_slack.roots(ROOM) == []  # ...and nobody heard of it
        finally:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    [root] = await eventually(lambda: fake_slack.roots(ROOM), timeout=30)
    assert "unheard" in root.text
    lost, back = said()[:2], said()[2:]
    assert [line.startswith("not listening for other replicas' Slack work (") for line in lost] == [
        True
    ] * 2
    assert len(back) == 2, said()
    assert all(
        line.startswith("listening for other replicas' Slack work again after ") for line in back
    )


@pytest.mark.parametrize("store", ["postgresql", "sqlite"])
async def test_outbox_retry_on_the_command_line_wakes_the_bot_on_postgresql(
    start_bot, fake_slack, request, tmp_path, store
):
    """`kie-slack outbox retry` is another process: on PostgreSQL its NOTIFY wakes the bot at
    once; on SQLite (one process, no notification) the row waits for the periodic look."""
    url = request.getfixturevalue("postgres_url") if store == "postgresql" else None
    bot = await start_bot(fake_slack, kie_default_channel=ROOM, postgres_url=url)
    fake_slack.fail_next("chat.postMessage", error="not_in_channel")
    assert (await bot.callback("veo", veo("refused")))[0] == 200
    await eventually(lambda: fake_slack.count("chat.postMessage") == 1)
    await asyncio.sleep(0.5)  # the refusal is recorded, the lane ended

    env = {"DATABASE_URL": url or f"sqlite:///{bot.settings.database_path}"}
    done = await kie_slack("outbox", "retry", "--failed", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 row(s) due again" in done.stdout
    if store == "postgresql":
        [root] = await eventually(lambda: fake_slack.roots(ROOM), timeout=20)
        assert "refused" in root.text
    else:
        await asyncio.sleep(QUIET)
        assert fake_slack.roots(ROOM) == []


async def test_a_burst_of_callbacks_makes_one_notification_per_gap_not_one_per_callback(
    start_bot, fake_slack, postgres_url
):
    bot = await start_bot(fake_slack, kie_default_channel=ROOM, postgres_url=postgres_url)
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as ear:
        await ear.execute(f"LISTEN {CHANNEL}")
        heard = 0

        async def hear() -> None:
            nonlocal heard
            async for _ in ear.notifies():
                heard += 1

        hearing = asyncio.create_task(hear())
        began = time.monotonic()
        limit = asyncio.Semaphore(16)

        async def send(n: int) -> None:
            async with limit:
                assert (await bot.callback("veo", veo(f"burst-{n:03d}")))[0] == 200

        await asyncio.gather(*(send(n) for n in range(200)))
        await asyncio.sleep(0.5)
        hearing.cancel()
        await asyncio.gather(hearing, return_exceptions=True)
        took = time.monotonic() - began
    assert 1 <= heard <= took / NOTIFY_GAP + 2, (heard, took)


async def test_start_up_goes_on_when_the_listener_cannot_connect(monkeypatch, caplog):
    """No database to listen to: `start` returns after the first try, the log says so once
    however many tries follow, and this process's own work still wakes its delivery."""
    monkeypatch.setattr(storage.wakeups, "FIRST_RETRY", 0.01)
    monkeypatch.setattr(storage.wakeups, "MOST_RETRY", 0.05)
    caplog.set_level(logging.INFO, logger=storage.wakeups.__name__)
    began = time.monotonic()
    wakeups = await Wakeups.start("postgresql://postgres@127.0.0.1:9/nothing")
    try:
        assert time.monotonic() - began < storage.wakeups.CONNECT_TIMEOUT
        await asyncio.sleep(0.5)  # several more tries
        warnings = [r for r in caplog.records if r.name == storage.wakeups.__name__]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert warnings[0].getMessage().startswith("not listening for other replicas'")
        wakeups.ready.set()
        assert wakeups.ready.is_set()
    finally:
        await wakeups.close()
