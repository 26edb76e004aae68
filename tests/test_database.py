"""The database: migrations, grouped writes, and what a locked store does."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading

import pytest

from storage.database import MIGRATIONS, StoreUnavailable
from storage.sqlite import WAL_LIMIT_PAGES, SqliteDatabase


def insert(token: str):
    def write(conn: sqlite3.Connection) -> str:
        conn.execute(
            "INSERT INTO routes (token, channel, created_at) VALUES (?, ?, 0)", (token, f"C{token}")
        )
        return token

    return write


def failing(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO routes (token, channel, created_at) VALUES ('bad', 'CBAD', 0)")
    raise ValueError("this write fails after writing")


async def test_one_failing_write_does_not_undo_the_others(tmp_path):
    db = await SqliteDatabase.open_file(tmp_path / "d.db")
    try:
        results = await asyncio.gather(
            db.write(insert("a")), db.write(failing), db.write(insert("b")), return_exceptions=True
        )
        assert results[0] == "a" and results[2] == "b"
        assert isinstance(results[1], ValueError)
        rows = await db.fetchall("SELECT token FROM routes ORDER BY token")
        assert [row["token"] for row in rows] == ["a", "b"]
    finally:
        await db.close()


async def test_a_duplicate_key_fails_only_its_own_write(tmp_path):
    db = await SqliteDatabase.open_file(tmp_path / "d.db")
    try:
        results = await asyncio.gather(
            db.write(insert("x")),
            db.write(insert("x")),
            db.write(insert("y")),
            return_exceptions=True,
        )
        assert results[0] == "x" and results[2] == "y"
        assert isinstance(results[1], StoreUnavailable)
    finally:
        await db.close()


async def test_migrations_run_once_and_record_the_version(tmp_path):
    path = tmp_path / "d.db"
    for _ in range(2):
        db = await SqliteDatabase.open_file(path)
        await db.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "d.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreUnavailable, match="newer"):
        await SqliteDatabase.open_file(path)


async def test_a_locked_store_fails_every_waiting_write(tmp_path):
    db = await SqliteDatabase.open_file(tmp_path / "d.db")
    locker = sqlite3.connect(tmp_path / "d.db", timeout=0)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        results = await asyncio.gather(
            db.write(insert("p")), db.write(insert("q")), return_exceptions=True
        )
        assert all(isinstance(result, StoreUnavailable) for result in results)
    finally:
        locker.rollback()
        locker.close()
        await db.close()


async def test_run_calls_the_function_on_the_database_thread_and_returns_its_result(tmp_path):
    db = await SqliteDatabase.open_file(tmp_path / "d.db")
    try:
        loop_thread = threading.get_ident()
        seen: list[int] = []

        def read(conn: sqlite3.Connection) -> list[str]:
            seen.append(threading.get_ident())
            return [row[0] for row in conn.execute("SELECT 'a' UNION ALL SELECT 'b'")]

        assert await db.run(read) == ["a", "b"]
        assert await db.run(lambda conn: None) is None
        assert await db.run(lambda conn: seen.append(threading.get_ident())) is None
        assert len(set(seen)) == 1 and seen[0] != loop_thread
        rows = await db.fetchall("SELECT ? AS x UNION ALL SELECT ?", (1, 2))
        assert [row["x"] for row in rows] == [1, 2]
        assert (await db.fetchone("SELECT 3 AS y"))["y"] == 3
    finally:
        await db.close()


async def test_run_passes_errors_on_and_a_closed_store_is_unavailable(tmp_path):
    db = await SqliteDatabase.open_file(tmp_path / "d.db")

    def broken(conn: sqlite3.Connection) -> None:
        raise ValueError("not a database error")

    with pytest.raises(ValueError, match="not a database error"):
        await db.run(broken)
    with pytest.raises(StoreUnavailable, match="no such table"):
        await db.fetchall("SELECT * FROM nowhere")
    await db.close()
    with pytest.raises(StoreUnavailable):
        await db.fetchone("SELECT 1")


async def test_the_log_is_checkpointed_in_the_background_not_by_commits(tmp_path):
    path = tmp_path / "d.db"
    db = await SqliteDatabase.open_file(path)
    try:
        limit = await db.run(lambda conn: conn.execute("PRAGMA wal_autocheckpoint").fetchone())
        assert limit[0] == WAL_LIMIT_PAGES
        await db.write(insert("c"))

        def in_database_file() -> list[str]:  # the main file alone, without the log
            with contextlib.closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as c:
                try:
                    return [row[0] for row in c.execute("SELECT token FROM routes")]
                except sqlite3.OperationalError:  # not even the schema is there yet
                    return []

        for _ in range(100):
            if in_database_file() == ["c"]:
                break
            await asyncio.sleep(0.05)
        assert in_database_file() == ["c"]
    finally:
        await db.close()


async def test_a_read_does_not_wait_for_a_write_and_sees_the_last_commit(opener):
    """SQLite reads on its reading connection, PostgreSQL on another of the pool's."""
    db = await opener()
    try:
        await db.write(insert("before"))
        started, release = threading.Event(), threading.Event()

        def slow(conn: sqlite3.Connection) -> str:
            insert("during")(conn)
            started.set()
            release.wait(5)
            return "during"

        writing = asyncio.ensure_future(db.write(slow))
        await asyncio.to_thread(started.wait, 5)
        rows = await asyncio.wait_for(db.fetchall("SELECT token FROM routes"), timeout=2)
        assert [row["token"] for row in rows] == ["before"]
        release.set()
        assert await writing == "during"
        rows = await db.fetchall("SELECT token FROM routes ORDER BY token")
        assert [row["token"] for row in rows] == ["before", "during"]
    finally:
        release.set()


def insert_both(first: str, then: str, mine: threading.Event, theirs: threading.Event):
    """A write that inserts `first`, waits until the other replica's write has too, then
    inserts `then`: two of them in opposite orders deadlock."""

    def write(conn) -> str:
        sql = "INSERT INTO routes (token, channel, created_at) VALUES (?, ?, 0) ON CONFLICT DO NOTHING"
        conn.execute(sql, (first, f"C{first}"))
        mine.set()
        theirs.wait(5)
        conn.execute(sql, (then, f"C{then}"))
        return first

    return write


async def test_a_deadlock_between_two_replicas_undoes_one_write_and_it_runs_again(postgres_url):
    """PostgreSQL ends one of two deadlocked transactions; that write runs again on its own
    instead of failing as if the database were down."""
    from storage.backends import open_database

    replicas = [await open_database(None, postgres_url) for _ in range(2)]  # type: ignore[arg-type]
    try:
        a_ready, b_ready = threading.Event(), threading.Event()
        results = await asyncio.gather(
            replicas[0].write(insert_both("x", "y", a_ready, b_ready)),
            replicas[1].write(insert_both("y", "x", b_ready, a_ready)),
            return_exceptions=True,
        )
        assert results == ["x", "y"]
        rows = await replicas[0].fetchall("SELECT token FROM routes ORDER BY token")
        assert [row["token"] for row in rows] == ["x", "y"]
        assert not replicas[0].health.down and not replicas[1].health.down
    finally:
        for replica in replicas:
            await replica.close()
