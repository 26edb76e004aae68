"""Moving up: copy a SQLite store into an empty PostgreSQL database.

Everything a team would miss is copied as it is — tasks and their event log, the channels that
follow each task (with their thread roots), the callback routes (so callback URLs keep working),
and every other table the schema has — and of the outbox, the rows still pending or failed.
Row ids are kept, so what refers to an event or a row still finds it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from storage.database import Connection, StoreUnavailable
from storage.postgres import PgConnection, PostgresDatabase
from storage.sqlite import SqliteDatabase

#: Tables not copied: who holds which lease belongs to the processes of the old store.
SKIPPED = frozenset({"leases", "sqlite_sequence"})
#: Of the outbox, only the work still to do (sent rows are history).
OUTBOX_FILTER = "WHERE status IN ('pending', 'failed')"


@dataclass(frozen=True, slots=True)
class Copied:
    """How many rows each table received."""

    rows: dict[str, int]


class TargetNotEmpty(StoreUnavailable):
    """The PostgreSQL database already holds data; nothing was copied."""


async def copy_sqlite_to_postgres(
    source: Path, target_url: str, *, progress: Callable[[str], None] = lambda _: None
) -> Copied:
    """Copy the SQLite store at `source` into the empty PostgreSQL database at `target_url`.

    Both are migrated to the current schema first. The copy is one transaction: it lands whole
    or not at all. Raises `TargetNotEmpty` when the target already has tasks, routes or work.
    """
    if not source.exists():
        raise StoreUnavailable(f"no SQLite store at {source}")
    sqlite = await SqliteDatabase.open_file(source)
    try:
        tables = await sqlite.run(_read_all)
    finally:
        await sqlite.close()
    postgres = await PostgresDatabase.open_url(target_url)
    try:
        counts = await postgres.run(lambda conn: _write_all(cast(PgConnection, conn), tables))
    finally:
        await postgres.close()
    for table, count in counts.items():
        progress(f"{table}: {count} rows")
    return Copied(counts)


Table = tuple[list[str], list[tuple[object, ...]]]


def _read_all(connection: Connection) -> dict[str, Table]:
    conn = cast(sqlite3.Connection, connection)  # the SQLite store
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall()
        if row[0] not in SKIPPED
    ]
    tables: dict[str, Table] = {}
    for name in names:
        columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{name}")').fetchall()]
        where = OUTBOX_FILTER if name == "outbox" else ""
        rows = conn.execute(f'SELECT * FROM "{name}" {where}').fetchall()
        tables[name] = (columns, [tuple(row) for row in rows])
    return tables


def _write_all(conn: PgConnection, tables: dict[str, Table]) -> dict[str, int]:
    conn.execute("BEGIN")
    try:
        for name in ("tasks", "routes", "outbox", "events", "task_channels"):
            if name in tables and conn.execute(f'SELECT 1 FROM "{name}" LIMIT 1').fetchone():
                raise TargetNotEmpty(
                    f"the PostgreSQL database already has {name}: copy into an empty database"
                )
        counts: dict[str, int] = {}
        for name, (columns, rows) in tables.items():
            if rows:
                listed = ", ".join(f'"{column}"' for column in columns)
                marks = ", ".join("?" for _ in columns)
                conn.executemany(f'INSERT INTO "{name}" ({listed}) VALUES ({marks})', rows)
                if "id" in columns:  # the next id follows the copied ones
                    conn.execute(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                        f'(SELECT MAX(id) FROM "{name}"))'
                    )
            counts[name] = len(rows)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return counts
