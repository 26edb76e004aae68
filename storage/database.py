"""The SQLite database: one aiosqlite connection, versioned migrations, serialized transactions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

log = logging.getLogger(__name__)

#: Each entry moves the schema one version up; never edit a released entry, append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE tasks (
        family        TEXT NOT NULL,
        task_id       TEXT NOT NULL,
        product       TEXT NOT NULL,
        state         TEXT NOT NULL,
        video_urls    TEXT NOT NULL DEFAULT '[]',
        image_urls    TEXT NOT NULL DEFAULT '[]',
        code          INTEGER,
        message       TEXT NOT NULL DEFAULT '',
        prompt        TEXT,
        source        TEXT NOT NULL,
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL,
        finished_at   REAL,
        next_poll_at  REAL,
        poll_until    REAL,
        poll_failures INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (family, task_id)
    );
    CREATE INDEX tasks_by_id ON tasks (task_id);
    CREATE INDEX tasks_due ON tasks (next_poll_at) WHERE next_poll_at IS NOT NULL;

    CREATE TABLE events (
        id           INTEGER PRIMARY KEY,
        family       TEXT NOT NULL,
        task_id      TEXT NOT NULL,
        product      TEXT NOT NULL,
        source       TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        body         TEXT NOT NULL,
        state        TEXT NOT NULL,
        video_urls   TEXT NOT NULL,
        image_urls   TEXT NOT NULL,
        code         INTEGER,
        message      TEXT NOT NULL,
        prompt       TEXT,
        news         INTEGER NOT NULL,
        received_at  REAL NOT NULL,
        UNIQUE (product, task_id, source, content_hash)
    );

    CREATE TABLE task_channels (
        family        TEXT NOT NULL,
        task_id       TEXT NOT NULL,
        channel       TEXT NOT NULL,
        root_ts       TEXT,
        root_event_id INTEGER,
        followed_at   REAL NOT NULL,
        PRIMARY KEY (family, task_id, channel)
    );
    CREATE INDEX task_channels_by_channel ON task_channels (channel, followed_at);

    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY,
        key             TEXT NOT NULL UNIQUE,
        kind            TEXT NOT NULL,
        channel         TEXT NOT NULL,
        family          TEXT NOT NULL,
        task_id         TEXT NOT NULL,
        event_id        INTEGER,
        text            TEXT,
        status          TEXT NOT NULL DEFAULT 'pending',
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        last_error      TEXT,
        created_at      REAL NOT NULL,
        done_at         REAL
    );
    CREATE INDEX outbox_pending ON outbox (channel, id) WHERE status = 'pending';

    CREATE TABLE routes (
        token      TEXT PRIMARY KEY,
        channel    TEXT NOT NULL UNIQUE,
        created_by TEXT,
        created_at REAL NOT NULL
    );
    """,
)


class StoreUnavailable(RuntimeError):
    """The database cannot be read or written right now."""


class Database:
    """One connection shared by the process; every statement runs under one lock.

    A shared aiosqlite connection has one transaction at a time, so a transaction must not
    interleave with another coroutine's statements: `transaction()` and the read helpers hold
    the lock for their whole duration.
    """

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Database:
        """Open (creating if needed) and migrate the database at `path`."""
        try:
            conn = await aiosqlite.connect(path, isolation_level=None)
        except Exception as exc:
            raise StoreUnavailable(f"cannot open database {path}: {exc}") from exc
        conn.row_factory = aiosqlite.Row
        db = cls(conn)
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("PRAGMA busy_timeout=2000")
            await db._migrate()
        except Exception:
            await conn.close()
            raise
        return db

    async def _migrate(self) -> None:
        async with self._conn.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        if version > len(MIGRATIONS):
            raise StoreUnavailable(
                f"database schema version {version} is newer than this program knows "
                f"({len(MIGRATIONS)}); upgrade kie-slack"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            statements = [part.strip() for part in script.split(";") if part.strip()]
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in statements:
                    await self._conn.execute(statement)
                await self._conn.execute(f"PRAGMA user_version = {number}")
                await self._conn.commit()
            except Exception:
                await self._conn.rollback()
                raise
            log.info("database migrated to schema version %d", number)

    async def close(self) -> None:
        async with self._lock:
            await self._conn.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """One write transaction; committed when the block ends, rolled back on error."""
        async with self._lock:
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
            except Exception as exc:
                raise StoreUnavailable(str(exc)) from exc
            try:
                yield Transaction(self._conn)
                await self._conn.execute("COMMIT")
            except BaseException as exc:
                try:
                    await self._conn.execute("ROLLBACK")
                except Exception:  # the connection may already have rolled back
                    log.debug("rollback after failure also failed", exc_info=True)
                if isinstance(exc, aiosqlite.Error):
                    raise StoreUnavailable(str(exc)) from exc
                raise

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        async with self._lock:
            try:
                return list(await self._conn.execute_fetchall(sql, params))
            except aiosqlite.Error as exc:
                raise StoreUnavailable(str(exc)) from exc

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None


class Transaction:
    """Statements inside one open transaction."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        async with self._conn.execute(sql, params) as cursor:
            return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, rows)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        return list(await self._conn.execute_fetchall(sql, params))

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None
