"""People who start generations from Slack: their Home tab, and the direct message that tells
them one of theirs ended (`/kie notify off|on`).

Both go through the outbox: `person_news` queues them in the transaction that learns the news.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from storage.database import Connection, Database
from storage.outbox import enqueue_dm, enqueue_home


def dm_wanted(conn: Connection, user: str) -> bool:
    """Whether `user` wants a direct message when a generation of theirs ends (yes unless they
    said `/kie notify off`)."""
    row = conn.execute("SELECT enabled FROM dm_settings WHERE user_id = ?", (user,)).fetchone()
    return row is None or bool(row[0])


def person_news(
    conn: Connection, family: str, task_id: str, user: str, *, ended: bool, now: float
) -> None:
    """A task that `user` started changed: their Home tab is published again, and when the task
    just `ended` they get a direct message (unless they turned these off)."""
    enqueue_home(conn, user, now)
    if not ended or not dm_wanted(conn, user):
        return
    first = conn.execute(
        """SELECT channel FROM task_channels WHERE family = ? AND task_id = ?
           ORDER BY followed_at LIMIT 1""",
        (family, task_id),
    ).fetchone()
    if first is not None:
        enqueue_dm(conn, family, task_id, first[0], now)


class People:
    """Each person's choice of direct messages, and their Home tab opened.

    `on_queued` is called after a write queued Slack work (the delivery wakes up).
    """

    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], float] = time.time,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._on_queued = on_queued

    async def set_dm(self, user: str, enabled: bool) -> None:
        """Store whether `user` wants a direct message when a generation of theirs ends."""
        now = self._clock()
        await self._db.write(
            lambda conn: conn.execute(
                """INSERT INTO dm_settings (user_id, enabled, changed_at) VALUES (?, ?, ?)
                   ON CONFLICT (user_id) DO UPDATE SET enabled = excluded.enabled,
                       changed_at = excluded.changed_at""",
                (user, int(enabled), now),
            )
        )

    async def wants_dm(self, user: str) -> bool:
        return await self._db.run(lambda conn: dm_wanted(conn, user))

    async def home_opened(self, user: str) -> None:
        """`user` opened the bot's Home tab: queue publishing it."""
        now = self._clock()
        await self._db.write(lambda conn: enqueue_home(conn, user, now))
        self._on_queued()
