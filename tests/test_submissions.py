"""Submissions on every backend: a key claimed once, a double-click window, and the transaction
that records a started task with who asked, its follower and its first message."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bot.task import State, TaskUpdate
from storage.backends import open_database
from storage.database import Database
from storage.ledger import LimitReached, Limits, Start, claim_start
from storage.outbox import Outbox
from storage.submissions import Claim, SubmissionStore
from storage.tasks import Started, TaskStore
from tests.conftest import Clock

Opener = Callable[[], Awaitable[Database]]


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request, tmp_path: Path) -> AsyncIterator[Database]:
    postgres = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    database = await open_database(tmp_path / "store.db", postgres)
    yield database
    await database.close()


def running(task_id: str, product: str = "veo") -> TaskUpdate:
    return TaskUpdate(
        product=product,
        task_id=task_id,
        state=State.RUNNING,
        prompt="a paper boat",
        source="request",
        raw={"taskId": task_id},
    )


async def test_a_key_is_claimed_once_and_remembers_what_became_of_it(db):
    clock = Clock()
    tasks = TaskStore(db, clock=clock)
    store = SubmissionStore(db, tasks, clock=clock)
    claim = Claim(("slash:1.2.3",))
    assert await store.claim(claim, "C1", "U1") is None
    held = await store.claim(claim, "C1", "U1")
    assert held is not None and held.state == "claimed"
    await store.refused(claim, "kie.ai said no")
    held = await store.claim(claim, "C1", "U1")
    assert held is not None and (held.state, held.outcome) == ("refused", "kie.ai said no")
    other = Claim(("slash:4.5.6",))
    assert await store.claim(other, "C1", "U1") is None
    await store.started(other, running("veo_task_1"), "C1", Started("U1", '{"product":"veo"}'))
    held = await store.claim(other, "C1", "U1")
    assert held is not None and (held.state, held.task_id) == ("submitted", "veo_task_1")


async def test_a_window_key_holds_for_its_seconds_and_nothing_is_half_claimed(db):
    clock = Clock()
    store = SubmissionStore(db, TaskStore(db, clock=clock), clock=clock)
    first = Claim(("click:1:U1",), window=("again:veo:t:C1:U1", 10.0))
    assert await store.claim(first, "C1", "U1") is None
    clock.now += 5
    second = Claim(("click:2:U1",), window=("again:veo:t:C1:U1", 10.0))
    held = await store.claim(second, "C1", "U1")
    assert held is not None and held.key == "again:veo:t:C1:U1"
    # The second click's own key was rolled back with the window's: a retry of it is held
    # only by the window, and claims once the window has passed.
    clock.now += 6
    assert await store.claim(second, "C1", "U1") is None
    assert (await store.claim(second, "C1", "U1")) is not None


async def test_started_records_the_task_who_asked_and_its_root(db):
    clock = Clock()
    tasks = TaskStore(db, clock=clock)
    store = SubmissionStore(db, tasks, clock=clock)
    claim = Claim(("view:V1",))
    await store.claim(claim, "C1", "U1")
    started = Started("U1", '{"product":"veo","prompt":"a paper boat"}', "veo_task_0", None)
    applied = await store.started(claim, running("veo_task_1"), "C1", started)
    assert not applied.duplicate
    task = await tasks.get("veo", "veo_task_1")
    assert task is not None and task.state is State.RUNNING
    assert (task.requested_by, task.request, task.origin) == (
        "U1",
        started.request,
        "veo_task_0",
    )
    rows = await db.fetchall("SELECT kind, channel, task_id FROM outbox ORDER BY id")
    assert [tuple(row) for row in rows] == [("root", "C1", "veo_task_1"), ("home", "U1", "")]
    # A callback that follows changes the task, not who asked.
    await tasks.apply(
        TaskUpdate("veo", "veo_task_1", State.SUCCEEDED, result_urls=("https://e.co/v.mp4",))
    )
    task = await tasks.get("veo", "veo_task_1")
    assert task is not None and task.state is State.SUCCEEDED and task.requested_by == "U1"


async def test_an_extension_goes_into_the_thread_of_the_video_it_extends(db):
    clock = Clock()
    tasks = TaskStore(db, clock=clock)
    store = SubmissionStore(db, tasks, clock=clock)
    outbox = Outbox(db, clock=clock)
    await tasks.apply(running("veo_task_0"), channel="C1")
    root = await outbox.head("C1")
    assert root is not None
    await outbox.done(root, root_ts="111.222", shown_event=None)
    assert await store.thread_root("veo", "veo_task_0", "C1") == "111.222"
    assert await store.thread_root("veo", "veo_task_0", "C2") is None
    claim = Claim(("view:V2",))
    await store.claim(claim, "C1", "U1")
    await store.started(
        claim,
        running("veo_extend_task_1"),
        "C1",
        Started("U1", '{"product":"veo","prompt":"on","extends":"veo_task_0"}', "veo_task_0"),
        thread=("veo_task_0", "111.222"),
        note="⏩ <@U1> asked to extend this video",
    )
    rows = await db.fetchall(
        "SELECT task_id, root_ts, thread_of FROM task_channels ORDER BY task_id"
    )
    assert [tuple(row) for row in rows] == [
        ("veo_extend_task_1", "111.222", "veo_task_0"),
        ("veo_task_0", "111.222", None),
    ]
    note = await outbox.head("C1")
    assert note is not None and (note.kind, note.task_id) == ("note", "veo_extend_task_1")
    assert await outbox.borrowed(note) and not await outbox.borrowed(root)


# --- daily limits: counted in the claim's transaction ----------------------------------------


async def _start(store: SubmissionStore, n: int, user: str, limits: Limits) -> bool:
    """One start by `user` in C1; True when the limits let it through."""
    try:
        held = await store.claim(
            Claim((f"slash:{n}",)), "C1", user, start=Start(user, "C1", "veo"), limits=limits
        )
    except LimitReached:
        return False
    assert held is None
    return True


async def test_a_limit_refuses_the_start_after_the_last_and_kie_refusals_do_not_count(db):
    clock = Clock()
    store = SubmissionStore(db, TaskStore(db, clock=clock), clock=clock)
    limits = Limits(per_person=2, admins=frozenset({"UADMIN"}))
    assert await _start(store, 1, "U1", limits)
    await store.refused(Claim(("slash:1",)), "kie.ai: out of credits")  # does not count
    assert await _start(store, 2, "U1", limits) and await _start(store, 3, "U1", limits)
    with pytest.raises(LimitReached) as reached:
        await store.claim(
            Claim(("slash:4",)), "C1", "U1", start=Start("U1", "C1", "veo"), limits=limits
        )
    assert (reached.value.scope, reached.value.limit, reached.value.count) == ("person", 2, 2)
    # Nothing of the refused start was claimed: its key is free.
    assert await store.get("slash:4") is None
    assert all([await _start(store, n, "UADMIN", limits) for n in range(5, 9)])  # admins
    clock.now += 86400  # a new UTC day
    assert await _start(store, 9, "U1", limits)


async def test_a_channel_limit_holds_everyone_in_the_channel(db):
    clock = Clock()
    store = SubmissionStore(db, TaskStore(db, clock=clock), clock=clock)
    limits = Limits(per_channel=3)
    results = [await _start(store, n, f"U{n}", limits) for n in range(5)]
    assert results == [True, True, True, False, False]


async def test_concurrent_starts_at_the_edge_never_pass_the_limit(db):
    clock = Clock()
    tasks = TaskStore(db, clock=clock)
    # Two stores on one database stand for two replicas; on SQLite, the same writer.
    stores = [SubmissionStore(db, tasks, clock=clock) for _ in range(2)]
    limits = Limits(per_person=10)
    for n in range(9):
        assert await _start(stores[0], n, "U1", limits)
    passed = await asyncio.gather(*(_start(stores[n % 2], 100 + n, "U1", limits) for n in range(8)))
    assert passed.count(True) == 1


async def test_two_replicas_on_postgresql_never_pass_the_limit(postgres_url, tmp_path):
    """Replica A counts the 5th start of the day and holds its transaction open; replica B's
    start at the same moment waits for it, then sees 5 of 5 and is refused."""
    clock = Clock()
    first = await open_database(tmp_path / "unused.db", postgres_url)
    second = await open_database(tmp_path / "unused.db", postgres_url)
    try:
        store = SubmissionStore(second, TaskStore(second, clock=clock), clock=clock)
        limits = Limits(per_person=5)
        for n in range(4):
            assert await _start(store, n, "U1", limits)
        counted, release = threading.Event(), threading.Event()

        def fifth(conn) -> None:  # replica A, mid-transaction
            claim_start(conn, "slash:A", Start("U1", "C1", "veo"), limits, clock())
            counted.set()
            release.wait(10)

        holding = asyncio.ensure_future(first.write(fifth))
        await asyncio.get_running_loop().run_in_executor(None, counted.wait, 10)
        racing = asyncio.ensure_future(_start(store, 99, "U1", limits))
        await asyncio.sleep(0.5)  # B runs now; it must be waiting on A's lock
        release.set()
        await holding
        assert await racing is False
        rows = await first.fetchall("SELECT COUNT(*) FROM ledger WHERE user_id = 'U1'")
        assert rows[0][0] == 5
    finally:
        await first.close()
        await second.close()


async def test_the_ledger_learns_the_outcome_and_the_credits_kie_reports(db):
    clock = Clock()
    tasks = TaskStore(db, clock=clock)
    store = SubmissionStore(db, tasks, clock=clock)
    for n, task_id in enumerate(("market_ok", "market_bad")):
        claim = Claim((f"slash:{n}",))
        start = Start("U1", "C1", "market", "google/nano-banana")
        await store.claim(claim, "C1", "U1", start=start, limits=Limits())
        await store.started(claim, running(task_id, "market"), "C1", Started("U1", "{}"))
    await tasks.apply(
        TaskUpdate("market", "market_ok", State.SUCCEEDED, ("https://e.co/a.png",), credits=4.5)
    )
    await tasks.apply(
        TaskUpdate(
            "market", "market_bad", State.FAILED, code=400, message="flagged as NSFW", credits=0
        )
    )
    # A retried callback changes nothing.
    await tasks.apply(
        TaskUpdate("market", "market_ok", State.SUCCEEDED, ("https://e.co/b.png",), credits=9.0)
    )
    rows = await db.fetchall(
        "SELECT task_id, state, outcome, heading, credits FROM ledger ORDER BY task_id"
    )
    assert [tuple(row) for row in rows] == [
        ("market_bad", "started", "failed", "Content moderation", 0.0),
        ("market_ok", "started", "succeeded", None, 4.5),
    ]
