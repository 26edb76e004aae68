"""Requests made from Slack about a task (a 1080p or a 4K version): who asked, and when.

A request is open until kie.ai's result for it arrives or it grows stale; while it is open, a
second click says so and asks kie.ai nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.database import Connection
from storage.ledger import Limits, Start, claim_start, mark_refused, mark_started
from storage.outbox import enqueue_note
from storage.tasks import BesideTasks


@dataclass(frozen=True, slots=True)
class Request:
    """An open request: `kind` ("1080p", "4k"), who asked (a Slack user id), where and when."""

    kind: str
    user_id: str
    channel: str
    requested_at: float


@dataclass(frozen=True, slots=True)
class OpenRequest:
    """An open request and the task it is about."""

    family: str
    task_id: str
    request: Request


class RequestStore(BesideTasks):
    """The open requests per task and kind."""

    async def claim(
        self,
        family: str,
        task_id: str,
        kind: str,
        user_id: str,
        channel: str,
        *,
        stale_after: float,
        ended_by: str | None = None,
        start: tuple[str, Start, Limits] | None = None,
    ) -> Request | None:
        """Open a request, or return the one already open (then nothing changes).

        A request is open for `stale_after` seconds, or until an event of product `ended_by`
        (the product whose news is its result) arrives for the task after it was made. With
        `start` (a ledger key, the start, the limits), a request that opens is a generation of
        its own: counted in the usage ledger in the same transaction (`LimitReached` when a
        limit is met, and nothing is opened).
        """
        now = self._clock()

        def write(conn: Connection) -> Request | None:
            row = conn.execute(
                """SELECT user_id, channel, requested_at FROM requests
                   WHERE family = ? AND task_id = ? AND kind = ?""",
                (family, task_id, kind),
            ).fetchone()
            if row is not None and now - row["requested_at"] < stale_after:
                ended = (
                    ended_by is not None
                    and conn.execute(
                        """SELECT 1 FROM events WHERE family = ? AND task_id = ? AND product = ?
                         AND received_at >= ? LIMIT 1""",
                        (family, task_id, ended_by, row["requested_at"]),
                    ).fetchone()
                )
                if not ended:
                    return Request(kind, row["user_id"], row["channel"], row["requested_at"])
            if start is not None:
                claim_start(conn, start[0], start[1], start[2], now)
            conn.execute(
                """INSERT INTO requests (family, task_id, kind, user_id, channel, requested_at)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (family, task_id, kind) DO UPDATE SET user_id = excluded.user_id,
                       channel = excluded.channel, requested_at = excluded.requested_at""",
                (family, task_id, kind, user_id, channel, now),
            )
            return None

        return await self._db.write(write)

    async def made_since(self, kind: str, since: float) -> list[OpenRequest]:
        """The requests of `kind` made at `since` (Unix seconds) or later, oldest first."""
        rows = await self._db.fetchall(
            """SELECT family, task_id, user_id, channel, requested_at FROM requests
               WHERE kind = ? AND requested_at >= ? ORDER BY requested_at""",
            (kind, since),
        )
        return [
            OpenRequest(
                row["family"],
                row["task_id"],
                Request(kind, row["user_id"], row["channel"], row["requested_at"]),
            )
            for row in rows
        ]

    async def release(
        self, family: str, task_id: str, kind: str, *, uncount: str | None = None
    ) -> None:
        """Close the request: kie.ai refused it, or its answer is in. `uncount` names the
        ledger row of a start that kie.ai did not make: it no longer counts."""

        def write(conn: Connection) -> None:
            conn.execute(
                "DELETE FROM requests WHERE family = ? AND task_id = ? AND kind = ?",
                (family, task_id, kind),
            )
            if uncount is not None:
                mark_refused(conn, [uncount])

        await self._db.write(write)

    async def started(self, key: str, family: str, task_id: str, product: str) -> None:
        """kie.ai accepted the request counted under ledger `key`: its outcome comes with the
        news of `product` for the task."""
        await self._db.write(lambda conn: mark_started(conn, [key], family, task_id, product))

    async def uncount(self, key: str) -> None:
        """kie.ai made nothing new for the request counted under `key` (already made, or
        being made): it does not count."""
        await self._db.write(lambda conn: mark_refused(conn, [key]))

    async def announce(self, family: str, task_id: str, kind: str, mrkdwn: str) -> None:
        """Say in the task's thread, in every channel that follows it, who asked (mrkdwn made
        by the bot)."""
        now = self._clock()
        key = f"requested:{kind}:{family}:{task_id}:{int(now * 1000)}"

        def write(conn: Connection) -> bool:
            rows = conn.execute(
                "SELECT channel FROM task_channels WHERE family = ? AND task_id = ?",
                (family, task_id),
            ).fetchall()
            for row in rows:
                enqueue_note(conn, family, task_id, row["channel"], key, mrkdwn, now)
            return bool(rows)

        if await self._db.write(write):
            self._tasks.outbox_ready.set()
