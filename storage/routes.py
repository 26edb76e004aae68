"""Callback routes: unguessable tokens, each bound to one Slack channel."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from storage.database import Connection, Database


class RouteStore:
    """Issues and resolves the tokens of `/callbacks/{product}/{route}` URLs."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    async def issue(self, channel: str, created_by: str | None = None) -> str:
        """The channel's route token, created on first use and the same ever after."""
        now = self._clock()

        def write(conn: Connection) -> str:
            row = conn.execute("SELECT token FROM routes WHERE channel = ?", (channel,)).fetchone()
            if row is not None:
                return str(row["token"])
            conn.execute(  # another replica may issue one at the same moment: keep theirs
                """INSERT INTO routes (token, channel, created_by, created_at) VALUES (?, ?, ?, ?)
                   ON CONFLICT (channel) DO NOTHING""",
                (secrets.token_urlsafe(24), channel, created_by, now),
            )
            row = conn.execute("SELECT token FROM routes WHERE channel = ?", (channel,)).fetchone()
            return str(row["token"])

        return await self._db.write(write)

    async def channel_for(self, token: str) -> str | None:
        """The channel a token routes to, or None for an unknown token."""
        if not token or len(token) > 100:
            return None
        row = await self._db.fetchone("SELECT channel FROM routes WHERE token = ?", (token,))
        return str(row["channel"]) if row else None
