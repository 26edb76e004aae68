"""The storage suite, run on every backend: SQLite (a file) and PostgreSQL (a real server).

The same stores run the same SQL on both; what one backend does, the other must do too.
"""

from __future__ import annotations

import asyncio
import copy

from bot.kie.products import PRODUCTS
from bot.task import State
from storage.database import MIGRATIONS, StoreUnavailable
from storage.leases import Leases
from storage.outbox import Outbox
from storage.polls import CLAIM_SECONDS, PollSchedule
from storage.routes import RouteStore
from storage.tasks import TaskStore
from tests.conftest import Clock, load, product_of


def update(name: str, task_id: str | None = None):
    """The `TaskUpdate` of a callback fixture (for task `task_id`, when given)."""
    body = copy.deepcopy(load(name))
    if task_id is not None:
        body["data"]["taskId"] = task_id
    return PRODUCTS[product_of(name)].parse_callback(body)


async def test_migrations_run_once_and_a_second_connection_finds_them(opener):
    first = await opener()
    second = await opener()  # a replica starting against the migrated database
    rows = await second.fetchall("SELECT COUNT(*) FROM outbox")
    assert rows[0][0] == 0
    assert first.dialect == second.dialect


async def test_apply_stores_once_and_follows_the_route(opener):
    db = await opener()
    tasks = TaskStore(db, clock=Clock())
    first = await tasks.apply(update("veo-success.json"), channel="C1")
    again = await tasks.apply(update("veo-success.json"), channel="C1")
    assert not first.duplicate and first.news and first.channels == ("C1",)
    assert again.duplicate
    [task] = await tasks.find("veo_task_3f9c2a7b1d4e")
    assert task.state is State.SUCCEEDED and task.result_urls[0].endswith("_0.mp4")
    assert [t.task_id for t in await tasks.for_channel("C1")] == ["veo_task_3f9c2a7b1d4e"]


async def test_news_for_followers_queues_reply_and_update_in_order(opener):
    db = await opener()
    clock = Clock()
    tasks, outbox = TaskStore(db, clock=clock), Outbox(db, clock=clock)
    await tasks.apply(update("veo-success.json"), channel="C1")
    assert await tasks.follow("veo", "veo_task_3f9c2a7b1d4e", "C2")
    assert not await tasks.follow("veo", "veo_task_3f9c2a7b1d4e", "C2")
    applied = await tasks.apply(update("veo-4k-success.json"))
    assert applied.news and set(applied.channels) == {"C1", "C2"}
    assert sorted(await outbox.pending_channels()) == ["C1", "C2"]
    kinds = []
    while (row := await outbox.head("C1")) is not None:
        kinds.append(row.kind)
        await outbox.done(row, root_ts="1.1" if row.kind == "root" else None)
    assert kinds[:3] == ["root", "reply", "update"]
    newest = await outbox.last_event_id("veo", "veo_task_3f9c2a7b1d4e")
    event = await tasks.event(newest or 0)
    assert event is not None and event.update.result_urls[0].endswith("_4k.mp4")


async def test_outbox_retry_fail_resend_and_stats(opener):
    db = await opener()
    clock = Clock()
    tasks, outbox = TaskStore(db, clock=clock), Outbox(db, clock=clock)
    await tasks.apply(update("runway-success.json"), channel="C1")
    row = await outbox.head("C1")
    assert row is not None and row.kind == "root"
    await outbox.retry(row, "ratelimited", 30, counted=False)
    await outbox.retry(row, "http_503", 5)
    row = await outbox.head("C1")
    assert row is not None and row.attempts == 1 and row.due_at == clock.now + 5
    assert await outbox.hurry() == 1
    await outbox.fail(row, "not_in_channel")
    stats = await outbox.stats()
    assert stats.counts.get("failed") == 1 and stats.oldest_pending_at is None
    [entry] = await outbox.entries()
    assert (entry.status, entry.last_error, entry.channel) == ("failed", "not_in_channel", "C1")
    assert await outbox.resend(failed=True) == [row.id]
    row = await outbox.head("C1")
    assert row is not None and row.attempts == 0 and row.retry_since == clock.now
    clock.now += 60
    stats = await outbox.stats()
    assert stats.counts.get("pending") == 1 and stats.oldest_pending_at == clock.now - 60
    await outbox.done(row, root_ts="1.1")
    assert (await outbox.stats()).counts == {"pending": 0, "failed": 0}  # sent rows not counted


async def test_routes_issue_one_token_per_channel_even_when_racing(opener):
    first, second = RouteStore(await opener()), RouteStore(await opener())
    tokens = await asyncio.gather(*(store.issue("C9") for store in (first, second) * 3))
    assert len(set(tokens)) == 1
    assert await first.channel_for(tokens[0]) == "C9"
    assert await second.channel_for("nope") is None


async def test_racing_applies_of_one_task_store_one_event_and_merge_both(opener):
    stores = [TaskStore(await opener(), clock=Clock()) for _ in range(2)]
    results = await asyncio.gather(
        stores[0].apply(update("veo-success.json"), channel="C1"),
        stores[1].apply(update("veo-success.json"), channel="C1"),
        stores[1].apply(update("veo-4k-success.json"), channel="C1"),
    )
    assert sorted(r.duplicate for r in results) == [False, False, True]
    [task] = await stores[0].find("veo_task_3f9c2a7b1d4e")
    assert len(task.result_urls) == 2


async def test_a_due_poll_is_claimed_by_one_replica(opener):
    clock = Clock()
    dbs = [await opener(), await opener()]
    tasks = TaskStore(dbs[0], clock=clock)
    running = update("veo-success.json")
    running = type(running)(product="veo", task_id="running-1", state=State.RUNNING)
    await tasks.apply(running, channel="C1")
    schedules = [PollSchedule(db, TaskStore(db, clock=clock), clock=clock) for db in dbs]
    await schedules[0].start("veo", "running-1", delay=0)
    claims = await asyncio.gather(*(schedule.due() for schedule in schedules))
    assert sorted(len(claim) for claim in claims) == [0, 1]
    assert await schedules[1].due() == []  # claimed: not due again until the claim runs out
    clock.now += CLAIM_SECONDS + 1
    [again] = await schedules[1].due()
    assert again.task_id == "running-1"


async def test_leases_are_held_by_one_owner_and_taken_over_when_they_run_out(opener):
    clock = Clock()
    a = Leases(await opener(), "replica-a", seconds=45, clock=clock)
    b = Leases(await opener(), "replica-b", seconds=45, clock=clock)
    assert await a.claim("channel:C1")
    assert not await b.claim("channel:C1")
    assert await a.claim("channel:C1")  # renewal
    clock.now += 30
    await a.renew_all()
    clock.now += 30
    assert not await b.claim("channel:C1")  # renewed 30 s ago: still a's
    clock.now += 20
    assert await b.claim("channel:C1")  # a stopped renewing: b takes over
    assert not await a.claim("channel:C1")
    await b.release("channel:C1")
    assert await a.claim("channel:C1")


async def test_a_failing_write_in_a_group_does_not_undo_the_others(opener):
    db = await opener()

    def insert(token: str):
        def write(conn) -> str:
            conn.execute(
                "INSERT INTO routes (token, channel, created_at) VALUES (?, ?, 0)",
                (token, f"C{token}"),
            )
            return token

        return write

    results = await asyncio.gather(
        db.write(insert("a")), db.write(insert("a")), db.write(insert("b")), return_exceptions=True
    )
    assert results[0] == "a" and results[2] == "b"
    assert isinstance(results[1], StoreUnavailable)
    rows = await db.fetchall("SELECT token FROM routes ORDER BY token")
    assert [row["token"] for row in rows] == ["a", "b"]


def test_every_migration_is_written_for_both_backends():
    from storage.postgres import schema_sql

    for script in MIGRATIONS:
        assert "AUTOINCREMENT" not in script and "PRAGMA" not in script
        assert "REAL" not in schema_sql(script)


async def test_a_burst_of_callbacks_is_stored_as_one_by_one_and_in_one_round_trip(opener):
    """A new task's callback costs one round trip on PostgreSQL. Callbacks that arrive together
    share one transaction, and their first statements one round trip (a pipeline). Duplicates
    and news of tasks stored before come out as they would one at a time."""
    db = await opener()
    tasks = TaskStore(db, clock=Clock())
    trips = db.round_trips
    await tasks.apply(update("veo-fail-500-internal.json", "known"), channel="C1")
    if db.dialect == "postgresql":  # a new task's callback alone: one statement, no transaction
        assert db.round_trips - trips == 1
    first_trips = db.round_trips
    burst = [update("veo-success.json", f"new-{n}") for n in range(30)] + [
        update("veo-success.json", "new-3")
    ]
    applied = await asyncio.gather(
        *(tasks.apply(u, channel="C1" if n % 2 else None) for n, u in enumerate(burst))
    )
    if db.dialect == "postgresql":  # BEGIN and the 31 statements in one pipeline, the
        assert db.round_trips - first_trips == 3  # duplicate's look at its event, COMMIT
    else:
        assert db.round_trips == 0  # SQLite runs in this process
    assert [a.duplicate for a in applied] == [False] * 30 + [True]
    assert [a.channels for a in applied[:4]] == [(), ("C1",), (), ("C1",)]
    later = await asyncio.gather(
        tasks.apply(update("veo-success.json", "known"), channel="C2"),
        tasks.apply(update("veo-success.json", "new-4"), channel="C2"),
    )
    assert [(a.duplicate, a.news, a.channels) for a in later] == [
        (False, True, ("C1",)),  # the failed task succeeded after all: news in its thread
        (True, False, ()),  # the same content again, even from another route
    ]
    keys = [row["key"] for row in await db.fetchall("SELECT key FROM outbox ORDER BY id")]
    roots = [f"root:veo:new-{n}:C1" for n in range(1, 30, 2)]  # the callbacks given a channel
    assert keys[:16] == ["root:veo:known:C1", *roots]
    assert [key.split(":")[0] for key in keys[16:]] == ["reply", "update"]  # known's news
    [known] = await tasks.find("known")
    assert known.state is State.SUCCEEDED
