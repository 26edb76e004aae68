"""The reference servers that benchmarks/ingest.py compares kie-slack with.

    python benchmarks/references.py bare PORT
    python benchmarks/references.py aiosqlite PORT DB_FILE

`bare`: an aiohttp handler that parses the JSON body and answers `{"status":"received"}`.
`aiosqlite`: the same plus one INSERT and one commit per request through aiosqlite, with the
PRAGMAs kie-slack uses (WAL, synchronous=NORMAL), answering after the commit. Both answer
GET /healthz and log nothing per request.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Sequence

import aiosqlite
from aiohttp import web

HOST = "127.0.0.1"


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def bare_app() -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        await request.json()
        return web.json_response({"status": "received"})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/{tail:.*}", receive)
    return app


def aiosqlite_app(path: str) -> web.Application:
    database = web.AppKey("database", aiosqlite.Connection)

    async def connection(app: web.Application) -> AsyncIterator[None]:
        async with aiosqlite.connect(path) as conn:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, task_id TEXT NOT NULL,"
                " body TEXT NOT NULL, received_at REAL NOT NULL)"
            )
            await conn.commit()
            app[database] = conn
            yield

    async def receive(request: web.Request) -> web.Response:
        body = await request.json()
        conn = request.app[database]
        await conn.execute(
            "INSERT INTO events (task_id, body, received_at) VALUES (?, ?, ?)",
            (body["data"]["taskId"], await request.text(), time.time()),
        )
        await conn.commit()
        return web.json_response({"status": "received"})

    app = web.Application()
    app.cleanup_ctx.append(connection)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/{tail:.*}", receive)
    return app


def main(argv: Sequence[str]) -> int:
    kind, port = argv[0], int(argv[1])
    app = bare_app() if kind == "bare" else aiosqlite_app(argv[2])
    web.run_app(app, host=HOST, port=port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
