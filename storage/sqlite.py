"""SQLite, the embedded default: one file, one `kie-slack serve` process, through aiosqlite."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

from storage.database import (
    MIGRATIONS,
    Connection,
    Database,
    Row,
    StoreUnavailable,
    in_transaction,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a write waits for another connection's lock before the store counts as unavailable.
BUSY_TIMEOUT_MS = 2000
#: SQLite copies its write-ahead log into the database file (a checkpoint, which waits for the
#: disk) at most this often, in the background, after a commit (seconds).
CHECKPOINT_EVERY = 0.25
#: Should the background checkpoints fall behind, a commit checkpoints at this many log pages.
WAL_LIMIT_PAGES = 20_000
#: A background checkpoint that still found this many log pages (writes kept coming while it
#: copied) has the writing connection copy the last ones, so that the log starts again. That
#: holds writes back for a disk flush (milliseconds): under steady load, a new callback's
#: transaction adds about a dozen pages, so at 500 callbacks/s this happens every few seconds.
WAL_RESTART_PAGES = 12_000
#: The nice value of the checkpointing thread (19: it runs when nothing else wants the CPU).
LOWEST_PRIORITY = 19
#: How many times in a row a background checkpoint copies what was written meanwhile.
CHECKPOINT_ROUNDS = 3


class SqliteDatabase(Database):
    """SQLite through three aiosqlite connections: one writes, one reads, one checkpoints.

    `run` and `write` go to the first; `fetchall` and `fetchone` (reads) to the second, so a
    slow read never holds up a write: in WAL mode it reads the last commit meanwhile. The
    third copies the log into the database file (a checkpoint, which waits for the disk)
    after commits, so that commits do not. Its thread runs at the lowest CPU priority where
    the system allows it (Linux): the copying takes the CPU only when requests leave it idle.

    Only aiosqlite's public API: each connection is our `_Connection` (sqlite3's `factory`,
    passed through `aiosqlite.connect`), and `execute_fetchall(_RUN, (fn,))` has its thread
    call `fn` there, as one hand-off like any statement.
    """

    def __init__(
        self,
        conn: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        checkpointer: aiosqlite.Connection,
    ) -> None:
        super().__init__()
        self._conn = conn
        self._reader = reader
        self._checkpointer = checkpointer
        self._checkpoint: asyncio.Task[None] | None = None
        self._checkpoint_at = -CHECKPOINT_EVERY

    @classmethod
    async def open_file(cls, path: Path) -> SqliteDatabase:
        """Open (creating if needed) and migrate the database at `path`."""
        try:
            conn = await aiosqlite.connect(path, isolation_level=None, factory=_Connection)
        except Exception as exc:
            raise StoreUnavailable(f"cannot open database {path}: {exc}") from exc
        others: list[aiosqlite.Connection] = []
        try:
            await _call(conn, _prepare)
            for prepare in (_prepare_reader, _prepare_checkpointer):
                other = await aiosqlite.connect(path, isolation_level=None, factory=_Connection)
                others.append(other)
                await _call(other, prepare)
        except Exception as exc:
            for opened in (*others, conn):
                await opened.close()
            if isinstance(exc, StoreUnavailable):
                raise
            raise StoreUnavailable(f"cannot open database {path}: {exc}") from exc
        return cls(conn, *others)

    async def close(self) -> None:
        if self._checkpoint is not None:
            await self._checkpoint
        await self._checkpointer.close()
        await self._reader.close()
        await self._conn.close()

    async def run(self, fn: Callable[[Connection], T]) -> T:
        return await _call(self._conn, fn)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """The rows of a read, as of the last commit (on the reading connection)."""
        return await _call(self._reader, lambda conn: conn.execute(sql, params).fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row of a read, as of the last commit (on the reading connection)."""
        return await _call(self._reader, lambda conn: conn.execute(sql, params).fetchone())

    def blocked(self, exc: StoreUnavailable) -> bool:
        return isinstance(exc.__cause__, sqlite3.OperationalError)

    def committed(self) -> None:
        """Start a checkpoint on the checkpointing connection, unless one ran a moment ago;
        it never holds back a writer (PASSIVE)."""
        now = time.monotonic()
        if now - self._checkpoint_at < CHECKPOINT_EVERY:
            return
        if self._checkpoint is not None and not self._checkpoint.done():
            return
        self._checkpoint_at = now
        self._checkpoint = asyncio.create_task(self._checkpoint_log())

    async def _checkpoint_log(self) -> None:
        try:
            pages = await _call(self._checkpointer, _checkpoint)
            if pages >= WAL_RESTART_PAGES:  # the last pages, between two groups of writes
                await self.run(_checkpoint)
        except StoreUnavailable as exc:  # the next commit tries again
            log.debug("write-ahead log checkpoint failed: %s", exc)


async def _call(conn: aiosqlite.Connection, fn: Callable[[Connection], T]) -> T:
    """`fn(connection)` on the connection's thread; sqlite errors become `StoreUnavailable`."""
    try:
        rows = await conn.execute_fetchall(_RUN, (fn,))
    except sqlite3.Error as exc:
        raise StoreUnavailable(str(exc)) from exc
    except ValueError as exc:
        if str(exc) in ("Connection closed", "no active connection"):  # aiosqlite's words
            raise StoreUnavailable(f"database {exc}") from exc
        raise
    return cast(T, next(iter(rows)))


#: The statement that `_Connection.execute` reads as "call the function given as parameter";
#: should it ever reach SQLite itself, it fails (no such function) instead of doing anything.
_RUN = "SELECT kie_slack_run_on_this_thread()"


class _Connection(sqlite3.Connection):
    """The sqlite3 connection that aiosqlite opens, on its worker thread, for `SqliteDatabase`.

    `execute(_RUN, (fn,))` calls `fn(self)` instead of running SQL and answers its result as
    the only row; every other statement runs as usual.
    """

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if sql is _RUN:
            return _Answer(self, parameters[0](self))
        return super().execute(sql, parameters)


class _Answer(sqlite3.Cursor):
    """A function's result, read back as the one row of a cursor."""

    def __init__(self, conn: sqlite3.Connection, result: Any) -> None:
        super().__init__(conn)
        self._result = result

    def fetchall(self) -> list[Any]:
        return [self._result]


@contextlib.contextmanager
def serving_lock(path: Path) -> Iterator[None]:
    """Hold the SQLite file `path` for this serving process: a second one is refused.

    The poll schedule and the outbox of a SQLite file are worked by one process; several
    replicas need PostgreSQL. The lock is the kernel's (`flock` on `<file>.lock`), so a killed
    process leaves nothing behind.
    """
    lock_path = path.with_name(path.name + ".lock")
    try:
        handle = lock_path.open("a")
    except OSError as exc:
        raise StoreUnavailable(f"cannot open {lock_path}: {exc.strerror}") from exc
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StoreUnavailable(
                f"another kie-slack serve is already using {path}: a SQLite file serves one "
                "process (run several replicas on PostgreSQL: DATABASE_URL=postgresql://…)"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prepare_reader(connection: Connection) -> None:
    conn = cast(sqlite3.Connection, connection)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def _prepare_checkpointer(connection: Connection) -> None:
    _prepare_reader(connection)
    if sys.platform == "linux":  # a thread's own nice value (elsewhere it would be the process')
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST_PRIORITY)


def _checkpoint(conn: Connection) -> int:
    """Copy the log into the database file, again while it grew meanwhile; its size in pages."""
    pages = -1
    for _ in range(CHECKPOINT_ROUNDS):
        _, logged, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if logged == pages:
            break
        pages = logged
    return int(pages)


def _prepare(connection: Connection) -> None:
    conn = cast(sqlite3.Connection, connection)  # opening a SQLite file
    conn.row_factory = sqlite3.Row
    # A new file gives the pages of deleted rows back (storage.retention); before WAL mode, which
    # writes the file's header. An existing file keeps its mode until one VACUUM (retention).
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA wal_autocheckpoint={WAL_LIMIT_PAGES}")  # see SqliteDatabase.committed
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise StoreUnavailable(
            f"database schema version {version} is newer than this program knows "
            f"({len(MIGRATIONS)}); upgrade kie-slack"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        statements = [part.strip() for part in script.split(";") if part.strip()]

        def migrate(
            conn: Connection, statements: list[str] = statements, number: int = number
        ) -> None:
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")

        in_transaction(SqliteDatabase.begin, migrate, conn)
        log.info("database migrated to schema version %d", number)
