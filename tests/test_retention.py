"""Keeping the store small (KIE_RETENTION_DAYS), on SQLite and PostgreSQL: what is deleted,
what stays, batches, replicas taking turns, and SQLite's file giving its space back."""

from __future__ import annotations

import copy
import logging
import sqlite3
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings
from bot.kie.products import PRODUCTS
from storage import retention as retention_module
from storage.backends import open_database
from storage.database import Database
from storage.leases import Leases
from storage.outbox import Outbox
from storage.retention import DAY, Retention, store_size
from storage.tasks import TaskStore
from tests.conftest import Clock, load

CHANNEL = "C0KEEP"


def veo(task_id: str, *, four_k: bool = False, padding: int = 0):
    """The `TaskUpdate` of a Veo callback (its 4K result with `four_k`) for `task_id`."""
    body = copy.deepcopy(load("veo-4k-success.json" if four_k else "veo-success.json"))
    body["data"]["taskId"] = task_id
    if padding:
        body["padding"] = "x" * padding  # stored with the event, as kie.ai's bodies are
    return PRODUCTS["veo-4k" if four_k else "veo"].parse_callback(body)


async def send_all(outbox: Outbox, channel: str = CHANNEL) -> None:
    """Mark every pending post of `channel` sent, as the delivery does."""
    while (row := await outbox.head(channel)) is not None:
        await outbox.done(row, root_ts=f"{row.id}.0" if row.kind == "root" else None)


async def ids(db: Database, sql: str) -> list:
    return [tuple(row) for row in await db.fetchall(sql)]


async def test_old_events_and_sent_rows_go_what_threads_need_stays(opener):
    db = await opener()
    clock = Clock()
    tasks, outbox = TaskStore(db, clock=clock), Outbox(db, clock=clock)
    for task in ("sent", "answered", "also-sent"):
        await tasks.apply(veo(task), channel=CHANNEL)
    await send_all(outbox)  # the three roots are sent
    await tasks.apply(veo("answered", four_k=True))  # a reply and an update, still pending
    await tasks.apply(veo("refused"), channel="C0GONE")
    await outbox.fail(await outbox.head("C0GONE"), "channel_not_found")
    await db.write(
        lambda conn: conn.execute(
            """INSERT INTO ledger (key, user_id, channel, product, day, started_at, state)
               VALUES ('start-1', 'U1', ?, 'veo', '2027-01-15', ?, 'started')""",
            (CHANNEL, clock.now),
        )
    )
    clock.now += 91 * DAY
    await tasks.apply(veo("recent"), channel=CHANNEL)

    pruned = await Retention(db, 90, clock=clock).run()

    assert pruned is not None and (pruned.events, pruned.outbox) == (4, 3)
    events = await ids(db, "SELECT task_id, product FROM events ORDER BY id")
    # The pending reply still renders from its event; the recent ones are young.
    assert events == [("answered", "veo-4k"), ("recent", "veo")]
    rows = await ids(db, "SELECT task_id, kind, status FROM outbox ORDER BY id")
    assert rows == [
        ("answered", "reply", "pending"),
        ("answered", "update", "pending"),
        ("refused", "root", "failed"),
        ("recent", "root", "pending"),
    ]
    tasks_left = await ids(db, "SELECT task_id FROM tasks ORDER BY task_id")
    assert tasks_left == [("also-sent",), ("answered",), ("recent",), ("refused",), ("sent",)]
    roots = await ids(db, "SELECT task_id, root_ts FROM task_channels WHERE root_ts IS NOT NULL")
    assert len(roots) == 3  # each thread keeps its root
    assert await ids(db, "SELECT key FROM ledger") == [("start-1",)]
    assert (await tasks.get("veo", "sent")) is not None


async def test_the_newest_event_stays_so_no_id_is_handed_out_again(opener):
    db = await opener()
    clock = Clock()
    tasks = TaskStore(db, clock=clock)
    for n in range(3):
        await tasks.apply(veo(f"task-{n}"), channel=CHANNEL)
    await send_all(Outbox(db, clock=clock))
    [(newest,)] = await ids(db, "SELECT MAX(id) FROM events")
    clock.now += 100 * DAY
    pruned = await Retention(db, 90, clock=clock).run()
    assert pruned is not None and pruned.events == 2
    assert await ids(db, "SELECT id FROM events") == [(newest,)]
    await tasks.apply(veo("task-0", four_k=True))  # later news of a task whose event is gone
    [(later,)] = await ids(db, "SELECT MAX(id) FROM events")
    assert later > newest


async def test_batches_walk_every_old_row_and_stop_at_the_young(opener, monkeypatch):
    monkeypatch.setattr(retention_module, "BATCH", 3)
    db = await opener()
    clock = Clock()
    tasks, outbox = TaskStore(db, clock=clock), Outbox(db, clock=clock)
    for n in range(10):
        await tasks.apply(veo(f"old-{n}"), channel=CHANNEL)
    await send_all(outbox)
    clock.now += 30 * DAY
    for n in range(4):
        await tasks.apply(veo(f"young-{n}"), channel=CHANNEL)
    await send_all(outbox)
    clock.now += 70 * DAY  # the old ones are 100 days old, the young 70

    pruned = await Retention(db, 90, clock=clock).run()

    assert pruned is not None and (pruned.events, pruned.outbox) == (10, 10)
    assert len(await ids(db, "SELECT id FROM events")) == 4
    assert len(await ids(db, "SELECT id FROM outbox")) == 4


async def test_zero_days_keeps_everything(opener):
    db = await opener()
    clock = Clock()
    await TaskStore(db, clock=clock).apply(veo("kept"), channel=CHANNEL)
    await TaskStore(db, clock=clock).apply(veo("kept-too"), channel=CHANNEL)
    clock.now += 10_000 * DAY
    retention = Retention(db, 0, clock=clock)
    await retention.tick()
    assert await retention.run() is not None
    assert len(await ids(db, "SELECT id FROM events")) == 2


async def test_one_replica_deletes_while_the_others_skip(opener):
    first, second = await opener(), await opener()
    clock = Clock()
    tasks = TaskStore(first, clock=clock)
    for n in range(3):
        await tasks.apply(veo(f"task-{n}"), channel=CHANNEL)
    clock.now += 100 * DAY
    busy = Leases(first, "replica-a", clock=clock)
    assert await busy.claim(retention_module.LEASE)  # replica a is deleting
    other = Retention(second, 90, clock=clock, leases=Leases(second, "replica-b", clock=clock))
    assert await other.run() is None
    assert len(await ids(second, "SELECT id FROM events")) == 3
    await busy.release(retention_module.LEASE)
    pruned = await other.run()
    assert pruned is not None and pruned.events == 2


async def test_the_daily_run_comes_shortly_after_start_then_once_a_day(opener):
    db = await opener()
    clock = Clock()
    tasks = TaskStore(db, clock=clock)
    retention = Retention(db, 90, clock=clock)
    await tasks.apply(veo("first"), channel=CHANNEL)
    await tasks.apply(veo("second"), channel=CHANNEL)
    clock.now += 91 * DAY - 30  # the first run is a minute after start: not yet
    await tasks.apply(veo("third"), channel=CHANNEL)
    clock.now += 30
    await retention.tick()
    assert len(await ids(db, "SELECT id FROM events")) == 1  # the first two went
    await tasks.apply(veo("fourth"), channel=CHANNEL)
    clock.now += 91 * DAY
    await retention.tick()  # a day has passed since the last run
    assert len(await ids(db, "SELECT id FROM events")) == 1
    await tasks.apply(veo("fifth"), channel=CHANNEL)
    clock.now += DAY - 1
    await retention.tick()  # within a day of the last run: nothing
    assert len(await ids(db, "SELECT id FROM events")) == 2


async def test_store_size_and_oldest_event(opener):
    db = await opener()
    clock = Clock()
    empty = await store_size(db)
    assert empty.size > 0 and empty.oldest_event_at is None
    await TaskStore(db, clock=clock).apply(veo("old"), channel=CHANNEL)
    clock.now += 5
    await TaskStore(db, clock=clock).apply(veo("young"), channel=CHANNEL)
    assert (await store_size(db)).oldest_event_at == clock.now - 5


# --- SQLite's file -------------------------------------------------------------------------


def pages(path: Path) -> tuple[int, int]:
    """The file's page count and its free pages (as of the last commit)."""
    with sqlite3.connect(path) as conn:
        return (
            conn.execute("PRAGMA page_count").fetchone()[0],
            conn.execute("PRAGMA freelist_count").fetchone()[0],
        )


async def test_the_sqlite_file_gives_the_space_of_deleted_rows_back(tmp_path):
    path = tmp_path / "store.db"
    db = await open_database(path)
    clock = Clock()
    tasks = TaskStore(db, clock=clock)
    try:
        sizes = []
        for round_ in range(3):  # the same 300 tasks get news each round: the events pile up
            for n in range(300):
                await tasks.apply(veo(f"task-{n}", four_k=round_ > 0, padding=4000 + round_))
            full, _ = pages(path)
            clock.now += 91 * DAY
            pruned = await Retention(db, 90, clock=clock).run()
            assert pruned is not None and pruned.freed_bytes > 0
            after, free = pages(path)
            assert free == 0 and after < full / 2
            sizes.append(after)
        # The first news made each task's row larger (its 4K link); from then on the file keeps
        # its size however many events come and go.
        assert sizes[2] <= sizes[1], sizes
    finally:
        await db.close()


async def test_a_file_made_before_incremental_vacuum_is_converted_once(tmp_path, caplog):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:  # a file whose tables exist before the mode was asked for
        old.execute("CREATE TABLE kept_from_before (id INTEGER PRIMARY KEY)")
    db = await open_database(path)
    clock = Clock()
    tasks = TaskStore(db, clock=clock)
    caplog.set_level(logging.INFO, logger="storage.retention")
    try:
        for n in range(200):
            await tasks.apply(veo(f"task-{n}", padding=4000), channel=CHANNEL)
        full, _ = pages(path)
        clock.now += 91 * DAY
        await Retention(db, 90, clock=clock).run()
        converted = [r for r in caplog.records if "converted by one VACUUM" in r.message]
        assert len(converted) == 1
        after, free = pages(path)
        assert free == 0 and after < full / 2
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        await tasks.apply(veo("task-0", four_k=True, padding=4000))
        clock.now += 91 * DAY
        await Retention(db, 90, clock=clock).run()
        assert len([r for r in caplog.records if "converted" in r.message]) == 1
    finally:
        await db.close()


# --- the setting ---------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "days"), [(None, 90.0), ("0", 0.0), ("30", 30.0), ("1.5", 1.5)])
def test_retention_days_are_read(value, days):
    env = {} if value is None else {"KIE_RETENTION_DAYS": value}
    assert Settings.from_env(env).kie_retention_days == days


@pytest.mark.parametrize("value", ["-1", "abc", "nan", "inf", "90d"])
def test_a_malformed_retention_names_the_variable(value):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"KIE_RETENTION_DAYS": value})
    message = str(raised.value)
    assert message.startswith("KIE_RETENTION_DAYS=") and "\n" not in message
    assert "0 keeps everything" in message
