"""Keeping the store small: callback events and finished Slack work older than
KIE_RETENTION_DAYS are deleted each day, a few hundred rows per transaction.

What stays: tasks (`/kie status` answers from them), the channels that follow them and their
roots (later news lands in the same thread), routes, the usage ledger, saved files' records,
pending and failed outbox rows, and the events that pending or failed rows still render. The
newest event and outbox row always stay too, so that SQLite never hands out an id again (a
thread's root remembers the last event it showed by id).

Both tables are walked in id order, which is the order rows were written: the old rows are a
prefix, found through the primary key with no other index. On SQLite, the pages the deleted
rows held are then given back to the file system (incremental vacuum; a file made before that
mode existed is converted by one VACUUM, once). PostgreSQL's autovacuum does that part itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, cast

from storage.database import Connection, Database, StoreUnavailable
from storage.leases import Leases

log = logging.getLogger(__name__)

DAY = 86400.0
#: Rows deleted per transaction: each holds the write lock for a few milliseconds.
BATCH = 500
#: Between two transactions, other writes (callbacks) go first.
PAUSE = 0.005
#: Pages given back to the file system per SQLite transaction (4 MB of 4 KiB pages).
VACUUM_PAGES = 1000
#: The first run comes this long after start; then one a day.
FIRST_RUN_AFTER = 60.0
#: After a run that the database interrupted, the next try comes this long after.
RETRY_AFTER = 600.0
#: The lease that makes replicas on one PostgreSQL database take turns.
LEASE = "retention"
#: A replica running deletions renews its lease this often (seconds).
RENEW_EVERY = 10.0
#: `PRAGMA auto_vacuum` of a file that gives freed pages back on request.
INCREMENTAL = 2


@dataclass(frozen=True, slots=True)
class Pruned:
    """What a run deleted, and how many bytes SQLite's file gave back (0 on PostgreSQL)."""

    events: int = 0
    outbox: int = 0
    freed_bytes: int = 0


@dataclass(frozen=True, slots=True)
class StoreSize:
    """How large the store is (bytes: the SQLite file and its log, or PostgreSQL's database)
    and when its oldest callback event arrived (None when there is none)."""

    size: int
    oldest_event_at: float | None


class Retention:
    """Deletes old callback events and finished outbox rows: once shortly after start, then once a
    day (`tick`, called every few seconds). `days` of 0 deletes nothing.

    Replicas sharing a PostgreSQL database take turns through a lease: one deletes while the
    others skip their run.
    """

    def __init__(
        self,
        db: Database,
        days: float,
        *,
        clock: Callable[[], float] = time.time,
        leases: Leases | None = None,
    ) -> None:
        self._db = db
        self._days = days
        self._clock = clock
        self._leases = leases
        self._due = clock() + FIRST_RUN_AFTER
        self._running: asyncio.Task[Any] | None = None

    async def tick(self) -> None:
        """Run when a run is due (one at a time)."""
        if self._days <= 0 or self._clock() < self._due:
            return
        self._due = self._clock() + DAY
        self._running = asyncio.current_task()
        try:
            await self.run()
        except StoreUnavailable as exc:
            self._due = self._clock() + RETRY_AFTER
            log.warning(
                "deleting old events stopped (%s); tried again in %.0f min", exc, RETRY_AFTER / 60
            )
        finally:
            self._running = None

    async def finish(self) -> None:
        """Stop a run in progress (for shutdown: each batch is its own transaction)."""
        running = self._running
        if running is not None and not running.done():
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running

    async def run(self) -> Pruned | None:
        """Delete what is older than the retention now; None when another replica is at it."""
        if self._days <= 0:
            return Pruned()
        if self._leases is not None and not await self._leases.claim(LEASE):
            log.info("another replica is deleting old events; this one skips its run")
            return None
        try:
            pruned = await self._prune(self._clock() - self._days * DAY)
        finally:
            if self._leases is not None:
                with contextlib.suppress(StoreUnavailable):
                    await self._leases.release(LEASE)
        if pruned.events or pruned.outbox or pruned.freed_bytes:
            log.info(
                "deleted %d callback events and %d finished Slack rows older than %g days; "
                "%.1f MB given back to the file system",
                pruned.events,
                pruned.outbox,
                self._days,
                pruned.freed_bytes / 1e6,
            )
        return pruned

    async def _prune(self, cutoff: float) -> Pruned:
        keep = await self._db.run(_events_in_use)
        renewed = self._clock()

        async def walk(step: Callable[[int, Connection], tuple[int, int | None]]) -> int:
            nonlocal renewed
            deleted, after = 0, 0
            while True:
                count, last = await self._db.write(functools.partial(step, after))
                deleted += count
                if last is None:
                    return deleted
                after = last
                if self._leases is not None and self._clock() - renewed > RENEW_EVERY:
                    renewed = self._clock()
                    await self._leases.claim(LEASE)
                await asyncio.sleep(PAUSE)

        events = await walk(functools.partial(_delete_events, cutoff, keep))
        outbox = await walk(functools.partial(_delete_outbox, cutoff))
        freed = await self._give_back() if self._db.dialect == "sqlite" else 0
        return Pruned(events, outbox, freed)

    async def _give_back(self) -> int:
        """SQLite: return the pages of deleted rows to the file system; the bytes freed."""
        mode, page_size = await self._db.run(_vacuum_mode)
        if mode != INCREMENTAL:  # a file made before: one VACUUM rewrites it in this mode
            before = await self._db.run(_file_size)
            started = time.monotonic()
            await self._db.run(_convert)
            after = await self._db.run(_file_size)
            log.warning(
                "the SQLite file now gives the space of deleted rows back: converted by one "
                "VACUUM (%.1f s, %.1f MB → %.1f MB); later runs give it back a little at a time",
                time.monotonic() - started,
                before / 1e6,
                after / 1e6,
            )
            return max(0, before - after)
        freed = 0
        while True:
            pages = await self._db.run(_incremental_vacuum)
            freed += pages * page_size
            if pages < VACUUM_PAGES:
                return freed
            await asyncio.sleep(PAUSE)


def _events_in_use(conn: Connection) -> frozenset[int]:
    """Events that pending or failed outbox rows still render (a reply is made from its event;
    an operator may resend a failed one)."""
    rows = conn.execute(
        """SELECT event_id FROM outbox WHERE status = 'pending' AND event_id IS NOT NULL
           UNION SELECT event_id FROM outbox WHERE status = 'failed' AND event_id IS NOT NULL"""
    ).fetchall()
    return frozenset(int(row[0]) for row in rows)


def _old_prefix(
    conn: Connection, table: str, time_column: str, after: int, cutoff: float
) -> tuple[int | None, bool]:
    """Of the next `BATCH` rows after id `after`: the last id written before `cutoff`, and
    whether the walk ends here (a newer row, or the table's end, came up)."""
    rows = conn.execute(
        f"SELECT id, {time_column} FROM {table} WHERE id > ? ORDER BY id LIMIT ?",
        (after, BATCH),
    ).fetchall()
    last = None
    for row in rows:
        if row[1] >= cutoff:
            return last, True
        last = int(row[0])
    return last, len(rows) < BATCH


def _delete_events(
    cutoff: float, keep: Collection[int], after: int, conn: Connection
) -> tuple[int, int | None]:
    """Delete one batch of old events; how many, and the id to walk on from (None: done)."""
    last, end = _old_prefix(conn, "events", "received_at", after, cutoff)
    if last is None:
        return 0, None
    kept = sorted(event for event in keep if after < event <= last)
    spared = f" AND id NOT IN ({', '.join('?' * len(kept))})" if kept else ""
    deleted = conn.execute(
        f"""DELETE FROM events WHERE id > ? AND id <= ? AND received_at < ?
            AND id < (SELECT MAX(id) FROM events){spared}""",
        (after, last, cutoff, *kept),
    ).rowcount
    return deleted, None if end else last


def _delete_outbox(cutoff: float, after: int, conn: Connection) -> tuple[int, int | None]:
    """Delete one batch of rows sent or skipped before `cutoff`; pending and failed rows stay."""
    last, end = _old_prefix(conn, "outbox", "created_at", after, cutoff)
    if last is None:
        return 0, None
    deleted = conn.execute(
        """DELETE FROM outbox WHERE id > ? AND id <= ? AND status IN ('done', 'skipped')
           AND done_at < ? AND id < (SELECT MAX(id) FROM outbox)""",
        (after, last, cutoff),
    ).rowcount
    return deleted, None if end else last


def _vacuum_mode(connection: Connection) -> tuple[int, int]:
    conn = cast(sqlite3.Connection, connection)
    mode = int(conn.execute("PRAGMA auto_vacuum").fetchone()[0])
    return mode, int(conn.execute("PRAGMA page_size").fetchone()[0])


def _incremental_vacuum(connection: Connection) -> int:
    """Give up to `VACUUM_PAGES` free pages back (one transaction); how many were."""
    conn = cast(sqlite3.Connection, connection)
    before = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    # `executescript` steps the pragma to its end; `execute` would free one page.
    conn.executescript(f"PRAGMA incremental_vacuum({VACUUM_PAGES})")
    return before - int(conn.execute("PRAGMA freelist_count").fetchone()[0])


def _convert(connection: Connection) -> None:
    conn = cast(sqlite3.Connection, connection)
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("VACUUM")


def _file_size(connection: Connection) -> int:
    """The SQLite file's bytes, with its write-ahead log."""
    conn = cast(sqlite3.Connection, connection)
    path = next(row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main")
    total = 0
    for name in (path, path + "-wal"):
        with contextlib.suppress(OSError):
            total += os.path.getsize(name)
    return total


async def store_size(db: Database) -> StoreSize:
    """The store's size and its oldest event's arrival, for `kie-slack check`."""

    def read(conn: Connection) -> StoreSize:
        if db.dialect == "sqlite":
            size = _file_size(conn)
        else:
            size = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])
        row = conn.execute("SELECT received_at FROM events ORDER BY id LIMIT 1").fetchone()
        return StoreSize(size, float(row[0]) if row else None)

    return await db.run(read)
