"""Opening the store: the SQLite file of `DATABASE_URL`, or its PostgreSQL database."""

from __future__ import annotations

from pathlib import Path

from storage.database import Database


async def open_database(path: Path, postgres_url: str | None = None) -> Database:
    """The PostgreSQL database at `postgres_url` when given, else the SQLite file at `path`."""
    if postgres_url is not None:
        from storage.postgres import PostgresDatabase  # psycopg only where PostgreSQL is used

        return await PostgresDatabase.open_url(postgres_url)
    from storage.sqlite import SqliteDatabase

    return await SqliteDatabase.open_file(path)
