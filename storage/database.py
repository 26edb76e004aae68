"""The database every store writes through: versioned migrations, the connection protocol,
serialized transactions and grouped writes.

`Database` is the interface both backends meet: SQLite (the embedded default, through
aiosqlite) in `storage.sqlite`, PostgreSQL (several replicas on one database) in
`storage.postgres`; neither knows the other, and `storage.backends.open_database` picks one.
The stores write their SQL once, in the dialect both accept, with `?` placeholders.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast

from storage.health import StoreHealth

log = logging.getLogger(__name__)

#: The most writes grouped into one transaction.
MAX_BATCH = 200
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
    # 2: Slack trouble is waited out: unknown errors are counted apart from passing ones, and an
    # operator's retry starts the retry window again.
    """
    ALTER TABLE outbox ADD COLUMN unknown_errors INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE outbox ADD COLUMN retry_since REAL;
    CREATE INDEX outbox_failed ON outbox (id) WHERE status = 'failed';
    """,
    # 3: Market (jobs API) tasks name their model and the credits they consumed.
    """
    ALTER TABLE tasks ADD COLUMN model TEXT;
    ALTER TABLE tasks ADD COLUMN credits REAL;
    ALTER TABLE events ADD COLUMN model TEXT;
    ALTER TABLE events ADD COLUMN credits REAL;
    """,
    # 4: several replicas share the work: a lease names who does a piece of work (a channel's
    # deliveries) until when.
    """
    CREATE TABLE leases (
        name  TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        until REAL NOT NULL
    );
    """,
    # 5: result videos saved into their threads: what became of each video in each channel
    # (pending, uploading or completing file_id, saved, or not saved and why), and the outbox
    # rows that transfer them, found apart from the posts.
    """
    CREATE TABLE saved_videos (
        family      TEXT NOT NULL,
        task_id     TEXT NOT NULL,
        channel     TEXT NOT NULL,
        url         TEXT NOT NULL,
        status      TEXT NOT NULL,
        file_id     TEXT,
        title       TEXT,
        size        BIGINT,
        reason      TEXT,
        explanation TEXT,
        updated_at  REAL NOT NULL,
        PRIMARY KEY (family, task_id, channel, url)
    );
    CREATE INDEX outbox_videos ON outbox (channel, id) WHERE status = 'pending' AND kind = 'video';
    """,
    # 6: buttons on a card: when kie.ai was last asked about a task and when its root last
    # showed that progress; what was requested from Slack (a 1080p or 4K version), by whom.
    """
    ALTER TABLE tasks ADD COLUMN polled_at REAL;
    ALTER TABLE tasks ADD COLUMN progress_at REAL;
    CREATE TABLE requests (
        family       TEXT NOT NULL,
        task_id      TEXT NOT NULL,
        kind         TEXT NOT NULL,
        user_id      TEXT NOT NULL,
        channel      TEXT NOT NULL,
        requested_at REAL NOT NULL,
        PRIMARY KEY (family, task_id, kind)
    );
    """,
    # 7: generations started from Slack: who asked for a task, what they asked (for `Again`) and
    # which task it repeats; a follower whose messages go into another task's thread (`Extend`);
    # and the key of each submission, so Slack's retries and double clicks start nothing twice.
    """
    ALTER TABLE tasks ADD COLUMN requested_by TEXT;
    ALTER TABLE tasks ADD COLUMN request TEXT;
    ALTER TABLE tasks ADD COLUMN origin TEXT;
    ALTER TABLE tasks ADD COLUMN origin_link TEXT;
    ALTER TABLE task_channels ADD COLUMN thread_of TEXT;
    CREATE TABLE submissions (
        key        TEXT PRIMARY KEY,
        channel    TEXT NOT NULL,
        user_id    TEXT NOT NULL,
        state      TEXT NOT NULL,
        family     TEXT,
        task_id    TEXT,
        outcome    TEXT,
        created_at REAL NOT NULL,
        done_at    REAL
    );
    """,
    # 8: a task is looked up by its id alone through the primary key, one family at a time
    # (`TaskStore.find`): every new task's callback keeps one index fewer up to date.
    """
    DROP INDEX IF EXISTS tasks_by_id;
    """,
    # 9: every kind of result, not only videos: result files of any kind, what they are (video,
    # image, audio), how far a staged task has come (Suno), its tracks, and a result that is text.
    """
    ALTER TABLE tasks RENAME COLUMN video_urls TO result_urls;
    ALTER TABLE events RENAME COLUMN video_urls TO result_urls;
    ALTER TABLE tasks ADD COLUMN media TEXT;
    ALTER TABLE tasks ADD COLUMN stage TEXT;
    ALTER TABLE tasks ADD COLUMN tracks TEXT;
    ALTER TABLE tasks ADD COLUMN result_text TEXT;
    ALTER TABLE events ADD COLUMN media TEXT;
    ALTER TABLE events ADD COLUMN stage TEXT;
    ALTER TABLE events ADD COLUMN tracks TEXT;
    ALTER TABLE events ADD COLUMN result_text TEXT;
    """,
    # 10: the usage ledger: each generation started from Slack (who, where, what, when), counted
    # against the daily limits while it is not refused, and its outcome and credits once known;
    # and the alerts' state (the low-credits alert fires once until it re-arms).
    """
    CREATE TABLE ledger (
        id         INTEGER PRIMARY KEY,
        key        TEXT NOT NULL UNIQUE,
        user_id    TEXT NOT NULL,
        channel    TEXT NOT NULL,
        product    TEXT NOT NULL,
        model      TEXT,
        options    TEXT,
        day        TEXT NOT NULL,
        started_at REAL NOT NULL,
        state      TEXT NOT NULL,
        admin      INTEGER NOT NULL DEFAULT 0,
        family     TEXT,
        task_id    TEXT,
        outcome    TEXT,
        heading    TEXT,
        credits    REAL
    );
    CREATE INDEX ledger_by_user ON ledger (user_id, day);
    CREATE INDEX ledger_by_channel ON ledger (channel, day);
    CREATE INDEX ledger_by_task ON ledger (family, task_id);
    CREATE INDEX ledger_by_time ON ledger (started_at);
    CREATE TABLE alerts (
        name       TEXT PRIMARY KEY,
        state      TEXT NOT NULL,
        changed_at REAL NOT NULL
    );
    """,
    # 11: the delivery saves, of the file rows that go next in their thread, the one due soonest,
    # so a file retried for hours holds up only its own thread: file rows by channel in the order
    # they are due, and each thread's file rows in order.
    """
    DROP INDEX IF EXISTS outbox_videos;
    CREATE INDEX outbox_video_due ON outbox (channel, next_attempt_at, id)
        WHERE status = 'pending' AND kind = 'video';
    CREATE INDEX outbox_video_threads ON outbox (family, task_id, channel, id)
        WHERE status = 'pending' AND kind = 'video';
    """,
    # 12: a home in Slack: each person's tasks found by who asked (the Home tab), whether they
    # want a direct message when one ends (`/kie notify off|on`), and the message whose thread a
    # task's card goes into when it is not the task's own (the message shortcut).
    """
    CREATE INDEX tasks_by_requester ON tasks (requested_by, updated_at)
        WHERE requested_by IS NOT NULL;
    CREATE TABLE dm_settings (
        user_id    TEXT PRIMARY KEY,
        enabled    INTEGER NOT NULL,
        changed_at REAL NOT NULL
    );
    ALTER TABLE task_channels ADD COLUMN thread_ts TEXT;
    """,
    # 13: at a million stored tasks, the poller's look for quiet running tasks reads only the
    # running ones (benchmarks/scale.py: 120-180 ms a scan without it, inside a write).
    """
    CREATE INDEX tasks_running ON tasks (updated_at) WHERE state = 'running';
    """,
)


class Row(Protocol):
    """A result row: by position and by column name (`sqlite3.Row`, or PostgreSQL's `Row`)."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...


class Cursor(Protocol):
    """What a statement gives back."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What the stores use of a connection: SQLite's own, or `storage.postgres.PgConnection`.

    The SQL is the dialect both accept, with `?` placeholders.
    """

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...


T = TypeVar("T")


@dataclass(frozen=True)
class Batched(Generic[T]):
    """A write that starts with one statement whose first row `then` reads.

    Called as a write, it runs the statement and `then`. In a group of writes, consecutive
    `Batched` writes of the same statement are sent together where the connection can
    (PostgreSQL: one pipeline, `first_rows`), then each one's `then` runs in turn.
    """

    sql: str
    params: Sequence[Any]
    then: Callable[[Connection, Any], T]
    #: When given, the statement is atomic on its own and writes only what `settled(row)`
    #: answers a result for: a write alone then runs it outside a transaction (one round trip),
    #: and again in a transaction when `settled` answers None.
    settled: Callable[[Any], T | None] | None = None

    def __call__(self, conn: Connection) -> T:
        return self.then(conn, conn.execute(self.sql, self.params).fetchone())


class StoreUnavailable(RuntimeError):
    """The database cannot be read or written right now."""


class Database:
    """A database connection whose reads and writes are each one synchronous function on the
    connection's own thread.

    A whole transaction runs as one call on that thread: one hand-off per transaction instead
    of one per statement, and no other coroutine's statements can fall inside it. Subclasses
    say how to run a function there (`run`) and which errors mean no write can pass now.
    """

    #: `sqlite` or `postgresql`.
    dialect = "sqlite"
    #: The statement that opens a write transaction.
    begin = "BEGIN IMMEDIATE"
    #: How many groups of writes may run at once, each in its own transaction.
    writers = 1

    def __init__(self) -> None:
        self._writes: list[tuple[Callable[[Connection], Any], asyncio.Future[Any]]] = []
        self._writing: set[asyncio.Task[None]] = set()
        #: Whether the database answers: told by every write group, read by `/healthz`.
        self.health = StoreHealth()

    async def close(self) -> None:
        raise NotImplementedError

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn(connection)` on the database thread; driver errors become `StoreUnavailable`."""
        raise NotImplementedError

    def blocked(self, exc: StoreUnavailable) -> bool:
        """True when `exc` means no write can pass now (locked, full, gone), not one bad write."""
        raise NotImplementedError

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` in a write transaction: committed if it returns, rolled back if it raises.

        Writes that arrive while `writers` groups are running are grouped into one
        transaction: under load, many writes share one hand-off to the database thread and one
        commit. If one of them fails, the group is rolled back and each write runs again on
        its own, so one failing write never undoes another.
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._writes.append((fn, future))
        self._writing = {writer for writer in self._writing if not writer.done()}
        if len(self._writing) < self.writers:
            self._writing.add(asyncio.create_task(self._write_pending()))
        return await future

    async def _write_pending(self) -> None:
        while self._writes:
            batch, self._writes = self._writes[:MAX_BATCH], self._writes[MAX_BATCH:]
            fns = [fn for fn, _ in batch]
            try:
                results = await self.run(functools.partial(_group, self.begin, fns))
            except Exception as exc:
                if isinstance(exc, StoreUnavailable) and self.blocked(exc):
                    self.health.failed(exc)
                    for _, future in batch:  # locked, full, gone: no write can pass now
                        _settle(future, error=exc)
                else:  # one write failed and the batch was rolled back
                    await self._write_each(batch)
                continue
            except BaseException as exc:  # cancelled: nobody waits for an answer any more
                for _, future in batch:
                    _settle(future, error=StoreUnavailable(f"write cancelled: {exc!r}"))
                raise
            for (_, future), result in zip(batch, results, strict=True):
                _settle(future, result=result)
            self.health.answered()
            self.committed()

    @property
    def round_trips(self) -> int:
        """Requests sent to a database server so far and answered (0: SQLite runs in process)."""
        return 0

    def committed(self) -> None:
        """Called after each committed group of writes (a backend may tidy up then)."""

    async def _write_each(
        self, batch: list[tuple[Callable[[Connection], Any], asyncio.Future[Any]]]
    ) -> None:
        """After a batch failed and was rolled back: each write in its own transaction."""
        for fn, future in batch:
            try:
                result = await self.run(functools.partial(in_transaction, self.begin, fn))
            except Exception as exc:
                _settle(future, error=exc)
            else:
                _settle(future, result=result)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await self.run(lambda conn: conn.execute(sql, params).fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return await self.run(lambda conn: conn.execute(sql, params).fetchone())


def lock(conn: Connection, key: str) -> None:
    """Within a write transaction: make other processes' transactions on `key` wait for this
    one (PostgreSQL; SQLite's write transaction already excludes every other writer)."""
    hold = getattr(conn, "lock", None)
    if hold is not None:
        hold(key)


def _group(begin: str, fns: list[Callable[[Connection], Any]], conn: Connection) -> list[Any]:
    """The results of a group of writes, in one transaction; a write alone that can settle
    without one (`Batched.settled`) tries that first."""
    if len(fns) == 1 and isinstance(write := fns[0], Batched) and write.settled is not None:
        result = write.settled(conn.execute(write.sql, write.params).fetchone())
        if result is not None:
            return [result]
    return in_transaction(begin, _all(fns), conn)


def _all(
    fns: list[Callable[[Connection], Any]],
) -> Callable[[Connection], list[Any]]:
    """One function running every write of a batch, in order, on one connection."""

    def run(conn: Connection) -> list[Any]:
        first_rows = getattr(conn, "first_rows", None)
        if first_rows is None:
            return [fn(conn) for fn in fns]
        results: list[Any] = []
        for _, consecutive in itertools.groupby(fns, key=_statement):
            writes = list(consecutive)
            if len(writes) == 1 or not isinstance(writes[0], Batched):
                results.extend(fn(conn) for fn in writes)
                continue
            batched = cast(list[Batched[Any]], writes)
            rows = first_rows(batched[0].sql, [write.params for write in batched])
            results.extend(write.then(conn, row) for write, row in zip(batched, rows, strict=True))
        return results

    return run


def _statement(fn: Callable[[Connection], Any]) -> object:
    """What groups consecutive writes: a `Batched` write's statement, else the write itself."""
    return fn.sql if isinstance(fn, Batched) else fn


def _settle(
    future: asyncio.Future[Any], *, result: Any = None, error: Exception | None = None
) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def in_transaction(begin: str, fn: Callable[[Connection], T], conn: Connection) -> T:
    conn.execute(begin)
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result
