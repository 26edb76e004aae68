"""Result files (videos, images, tracks) saved into their threads: one record per (task,
channel, file URL); the names say "video" for the first kind there was.

The record is written with the outbox row that transfers the file, moves through `SaveState`
as the transfer goes, and ends saved (with the Slack file id) or not saved (with the reason the
card shows). Each end also finishes the outbox row and queues an update of the task's root, in
one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from bot.video.saved import SavedVideo, SaveState
from storage.database import Connection, Database, Row
from storage.outbox import OutboxRow, enqueue_card_update, enqueue_video


def queue_video(
    conn: Connection,
    family: str,
    task_id: str,
    channel: str,
    url: str,
    event_id: int | None,
    now: float,
) -> bool:
    """Queue saving `url` into the task's thread in `channel`, once; True when newly queued."""
    if not enqueue_video(conn, family, task_id, channel, url, event_id, now):
        return False
    conn.execute(
        """INSERT INTO saved_videos (family, task_id, channel, url, status, updated_at)
           VALUES (?, ?, ?, ?, 'pending', ?) ON CONFLICT DO NOTHING""",
        (family, task_id, channel, url, now),
    )
    return True


class SavedVideos:
    """The delivery worker's record of each file it saves."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    async def queue(self, family: str, task_id: str, channel: str, urls: Sequence[str]) -> None:
        """Queue saving each of `urls` into the task's thread in `channel` (once each); the
        delivery calls this as it posts the task's card there, so that the card says so."""
        now = self._clock()

        def write(conn: Connection) -> None:
            for url in urls:
                queue_video(conn, family, task_id, channel, url, None, now)

        await self._db.write(write)

    async def outcomes(self, family: str, task_id: str, channel: str) -> dict[str, SavedVideo]:
        """Every file of the task known in `channel`, by URL (none when saving was off)."""
        rows = await self._db.fetchall(
            "SELECT * FROM saved_videos WHERE family = ? AND task_id = ? AND channel = ?",
            (family, task_id, channel),
        )
        return {row["url"]: _saved(row) for row in rows}

    async def get(self, row: OutboxRow) -> SavedVideo | None:
        """The record of the file that outbox `row` saves."""
        found = await self._db.fetchone(
            """SELECT * FROM saved_videos
               WHERE family = ? AND task_id = ? AND channel = ? AND url = ?""",
            (row.family, row.task_id, row.channel, row.text or ""),
        )
        return _saved(found) if found else None

    async def completing(self, row: OutboxRow, file_id: str, title: str, size: int) -> None:
        """The bytes of `file_id` are at Slack and sharing it is about to be asked for: from
        here on, a new try asks again for this file instead of uploading another."""
        now = self._clock()
        await self._db.write(
            lambda conn: _update(
                conn, row, SaveState.COMPLETING, now, file_id=file_id, title=title, size=size
            )
        )

    async def not_completed(self, row: OutboxRow) -> None:
        """Slack answered that it did not share the file: a new try uploads afresh."""
        now = self._clock()
        await self._db.write(lambda conn: _update(conn, row, SaveState.PENDING, now))

    async def saved(self, row: OutboxRow, file_id: str, title: str, size: int | None) -> None:
        """The file is in the thread: record it, finish the row, and update the card."""
        now = self._clock()

        def write(conn: Connection) -> None:
            _update(conn, row, SaveState.SAVED, now, file_id=file_id, title=title, size=size)
            _finish(conn, row, "done", None, now)
            enqueue_card_update(conn, row.family, row.task_id, row.channel, f"video:{row.id}", now)

        await self._db.write(write)

    async def not_saved(
        self, row: OutboxRow, reason: str, explanation: str, *, operator: bool
    ) -> None:
        """The file stays a link: record why for the card, finish the row, update the card.

        With `operator` the row is kept as failed (someone must fix the cause, then run
        `kie-slack outbox retry`); otherwise it is done, since no retry can change the answer.
        """
        now = self._clock()

        def write(conn: Connection) -> None:
            _update(conn, row, SaveState.NOT_SAVED, now, reason=reason, explanation=explanation)
            _finish(conn, row, "failed" if operator else "done", reason, now)
            enqueue_card_update(conn, row.family, row.task_id, row.channel, f"video:{row.id}", now)

        await self._db.write(write)


def _update(
    conn: Connection,
    row: OutboxRow,
    state: SaveState,
    now: float,
    *,
    file_id: str | None = None,
    title: str | None = None,
    size: int | None = None,
    reason: str | None = None,
    explanation: str | None = None,
) -> None:
    """Write the file's record (made if the row predates it)."""
    conn.execute(
        """INSERT INTO saved_videos (family, task_id, channel, url, status, file_id, title, size,
                                     reason, explanation, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (family, task_id, channel, url) DO UPDATE SET
               status = excluded.status, file_id = excluded.file_id, title = excluded.title,
               size = excluded.size, reason = excluded.reason,
               explanation = excluded.explanation, updated_at = excluded.updated_at""",
        (
            row.family,
            row.task_id,
            row.channel,
            row.text or "",
            state.value,
            file_id,
            title,
            size,
            reason,
            explanation,
            now,
        ),
    )


def _finish(conn: Connection, row: OutboxRow, status: str, note: str | None, now: float) -> None:
    conn.execute(
        """UPDATE outbox SET status = ?, last_error = ?, done_at = ?, attempts = attempts + 1
           WHERE id = ?""",
        (status, note[:500] if note else None, now, row.id),
    )


def _saved(row: Row) -> SavedVideo:
    return SavedVideo(
        url=row["url"],
        state=SaveState(row["status"]),
        file_id=row["file_id"],
        title=row["title"],
        size=row["size"],
        reason=row["reason"],
        explanation=row["explanation"],
    )
