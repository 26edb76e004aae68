"""The outbox: Slack work written in the same transaction as the news that implies it.

Each row has a unique idempotency key, so the same work is never queued twice. The delivery
worker takes rows in id order per channel and marks each done, retried or failed. File rows
(saving a result file, a video, an image or a track, into its thread) go on a lane of their
own per channel, so a long transfer never holds back the channel's posts; a file row waits
only for its own thread's earlier posts and files, never for another thread's.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from bot.kie.products import family_products
from storage.database import Connection, Database, Row

Kind = Literal["root", "reply", "update", "notice", "note", "video", "message", "home", "dm"]


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One piece of Slack work: post a task's root, reply in its thread, update the root, post a
    plain notice in the thread, or save a result video (its URL in `text`) into the thread."""

    id: int
    key: str
    kind: Kind
    channel: str
    family: str
    task_id: str
    event_id: int | None
    text: str | None
    attempts: int
    due_at: float
    created_at: float = 0.0
    unknown_errors: int = 0
    retry_since: float | None = None

    @property
    def window_start(self) -> float:
        """When the row's retry window began: when it was written, or an operator's retry."""
        return self.retry_since if self.retry_since is not None else self.created_at


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A pending or failed row as an operator sees it (`kie-slack outbox`)."""

    id: int
    task_id: str
    channel: str
    kind: str
    status: str
    attempts: int
    last_error: str | None
    created_at: float
    due_at: float


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Rows per status and since when the oldest pending row waits: since it was written, or
    made pending again (an operator's retry, a person's Home tab); None when none is."""

    counts: dict[str, int]
    oldest_pending_at: float | None


_INSERT = """INSERT INTO outbox (key, kind, channel, family, task_id, event_id, text,
                                 next_attempt_at, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING"""


def root_key(family: str, task_id: str, channel: str) -> str:
    """The key of the row that posts the task's root message in `channel`."""
    return f"root:{family}:{task_id}:{channel}"


def enqueue_root(conn: Connection, family: str, task_id: str, channel: str, now: float) -> None:
    """Queue the task's root message in `channel` (rendered from the task when it is sent)."""
    key = root_key(family, task_id, channel)
    conn.execute(_INSERT, (key, "root", channel, family, task_id, None, None, now, now))


def video_key(family: str, task_id: str, channel: str, url: str) -> str:
    """The key of the row that saves `url` into the task's thread in `channel`: one per video
    per thread, whatever brings the video again."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:32]
    return f"video:{family}:{task_id}:{channel}:{digest}"


def enqueue_video(
    conn: Connection,
    family: str,
    task_id: str,
    channel: str,
    url: str,
    event_id: int | None,
    now: float,
) -> bool:
    """Queue saving the video at `url` into the task's thread in `channel`; False when it was
    queued before.

    `event_id` is the news that brought the video (None when it came with the root): the row
    waits until that news' thread reply is posted, and the root when it is pending.
    """
    key = video_key(family, task_id, channel, url)
    cursor = conn.execute(
        _INSERT, (key, "video", channel, family, task_id, event_id, url, now, now)
    )
    return cursor.rowcount > 0


def enqueue_card_update(
    conn: Connection, family: str, task_id: str, channel: str, key: str, now: float
) -> None:
    """Queue an update of the task's root in `channel` (a saved video changes its card).

    `key` names the cause; an update sent before under the same key is made pending again.
    """
    conn.execute(
        """INSERT INTO outbox (key, kind, channel, family, task_id, event_id, text,
                               next_attempt_at, created_at)
           VALUES (?, 'update', ?, ?, ?, NULL, NULL, ?, ?)
           ON CONFLICT (key) DO UPDATE SET status = 'pending', attempts = 0, unknown_errors = 0,
               next_attempt_at = excluded.next_attempt_at, retry_since = excluded.created_at,
               last_error = NULL, done_at = NULL""",
        (f"update:{key}:{channel}", channel, family, task_id, now, now),
    )


def enqueue_news(
    conn: Connection, family: str, task_id: str, channel: str, event_id: int, now: float
) -> None:
    """Queue a thread reply for event `event_id` and an update of the root in `channel`."""
    conn.executemany(
        _INSERT,
        [
            (
                f"{kind}:{event_id}:{channel}",
                kind,
                channel,
                family,
                task_id,
                event_id,
                None,
                now,
                now,
            )
            for kind in ("reply", "update")
        ],
    )


def enqueue_notice(
    conn: Connection,
    family: str,
    task_id: str,
    channel: str,
    key: str,
    text: str,
    now: float,
) -> None:
    """Queue a plain message in the task's thread in `channel`; `key` makes it unique."""
    conn.execute(
        _INSERT,
        (f"notice:{key}:{channel}", "notice", channel, family, task_id, None, text, now, now),
    )


def enqueue_note(
    conn: Connection,
    family: str,
    task_id: str,
    channel: str,
    key: str,
    mrkdwn: str,
    now: float,
) -> None:
    """Queue a message in the task's thread in `channel` whose text is mrkdwn made by the bot
    (mentions and channel links allowed; the caller escaped every outside part); `key` makes
    it unique."""
    conn.execute(
        _INSERT,
        (f"note:{key}:{channel}", "note", channel, family, task_id, None, mrkdwn, now, now),
    )


def enqueue_message(conn: Connection, channel: str, key: str, mrkdwn: str, now: float) -> bool:
    """Queue a message of the bot's own (an alert, a digest) to `channel`, about no task; its
    text is mrkdwn made by the bot. False when a message under `key` was queued before."""
    cursor = conn.execute(
        _INSERT, (f"message:{key}", "message", channel, "", "", None, mrkdwn, now, now)
    )
    return cursor.rowcount > 0


#: A person's Home tab is published at most this often (seconds).
HOME_EVERY = 10.0


def enqueue_home(conn: Connection, user: str, now: float) -> None:
    """Queue publishing `user`'s Home tab (rendered from the store when it is sent).

    One row per person, made pending again by each change: a change while it waits adds
    nothing, and it is due no sooner than `HOME_EVERY` after the last publish. `text` counts the
    changes, so one that comes while the tab is being published gets a publish of its own.
    """
    conn.execute(
        """INSERT INTO outbox (key, kind, channel, family, task_id, event_id, text,
                               next_attempt_at, created_at)
           VALUES (?, 'home', ?, '', '', NULL, '1', ?, ?)
           ON CONFLICT (key) DO UPDATE SET status = 'pending',
               text = CAST(COALESCE(CAST(outbox.text AS INTEGER), 0) + 1 AS TEXT),
               next_attempt_at = CASE
                   WHEN outbox.status = 'pending' THEN outbox.next_attempt_at
                   WHEN outbox.done_at IS NULL OR outbox.done_at + ? < excluded.next_attempt_at
                       THEN excluded.next_attempt_at
                   ELSE outbox.done_at + ? END,
               attempts = CASE WHEN outbox.status = 'pending' THEN outbox.attempts ELSE 0 END,
               unknown_errors = CASE WHEN outbox.status = 'pending'
                   THEN outbox.unknown_errors ELSE 0 END,
               retry_since = CASE WHEN outbox.status = 'pending'
                   THEN outbox.retry_since ELSE excluded.created_at END""",
        (f"home:{user}", user, now, now, HOME_EVERY, HOME_EVERY),
    )


def enqueue_dm(conn: Connection, family: str, task_id: str, channel: str, now: float) -> None:
    """Queue the direct message that tells the task's requester it ended, once per task.

    `channel` is where the task's root is: the message goes after the channel's earlier posts,
    so the root it links to is out by then.
    """
    key = f"dm:{family}:{task_id}"
    conn.execute(_INSERT, (key, "dm", channel, family, task_id, None, None, now, now))


#: A running task's root shows its progress anew at most this often (seconds).
PROGRESS_EVERY = 60.0


def enqueue_progress(conn: Connection, family: str, task_id: str, channel: str, now: float) -> None:
    """Queue an update of a running task's root in `channel` to show its progress.

    The key names the minute, so progress updates can never be queued more often than that.
    """
    minute = int(now // PROGRESS_EVERY)
    key = f"update:progress:{family}:{task_id}:{channel}:{minute}"
    conn.execute(_INSERT, (key, "update", channel, family, task_id, None, None, now, now))


class Outbox:
    """The delivery worker's view of the outbox."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    async def due_now(self) -> None:
        """Make every pending row due at once (at start: rows an earlier run left behind)."""
        now = self._clock()
        await self._db.write(
            lambda conn: conn.execute(
                "UPDATE outbox SET next_attempt_at = ? WHERE status = 'pending'", (now,)
            )
        )

    async def pending_channels(self) -> list[str]:
        """Channels with rows still to send (a skip-scan of the pending index: one probe per
        channel, however many rows wait)."""
        rows = await self._db.fetchall(
            """WITH RECURSIVE pending(channel) AS (
                   SELECT MIN(channel) FROM outbox WHERE status = 'pending' AND kind != 'video'
                   UNION ALL
                   SELECT (SELECT MIN(channel) FROM outbox
                           WHERE status = 'pending' AND kind != 'video'
                             AND channel > pending.channel)
                   FROM pending WHERE pending.channel IS NOT NULL)
               SELECT channel FROM pending WHERE channel IS NOT NULL"""
        )
        return [row["channel"] for row in rows]

    async def head(self, channel: str) -> OutboxRow | None:
        """The oldest pending post of `channel`: posts of one channel go out in order."""
        row = await self._db.fetchone(
            """SELECT * FROM outbox WHERE status = 'pending' AND channel = ? AND kind != 'video'
               ORDER BY id LIMIT 1""",
            (channel,),
        )
        return _row(row) if row else None

    async def video_channels(self) -> list[str]:
        """Channels with a file row that may go next in its thread (see `video_head`)."""
        rows = await self._db.fetchall(  # due rows only: the others wait for a later look
            f"""SELECT DISTINCT v.channel FROM outbox v
                WHERE {_VIDEO_NEXT} AND v.next_attempt_at <= ? ORDER BY v.channel""",
            (self._clock(),),
        )
        return [row["channel"] for row in rows]

    async def video_head(self, channel: str) -> OutboxRow | None:
        """The file row of `channel` due soonest among those that go next in their thread.

        A row goes next in its thread when no earlier file row of the same task there is
        pending, and neither the task's root nor the reply of the news that brought the file
        is: the file follows them. Only a thread's own order matters, so a file retried for
        hours (its host in trouble) holds up no other task's file.
        """
        row = await self._db.fetchone(
            f"""SELECT v.* FROM outbox v WHERE {_VIDEO_NEXT} AND v.channel = ?
                ORDER BY v.next_attempt_at, v.id LIMIT 1""",
            (channel,),
        )
        return _row(row) if row else None

    async def add_notices(
        self, family: str, task_id: str, channel: str, key: str, texts: Sequence[str]
    ) -> None:
        """Queue `texts`, in turn, as plain messages in the task's thread in `channel`, once:
        the n-th under `key` and n (`enqueue_notice`)."""
        now = self._clock()

        def write(conn: Connection) -> None:
            for n, text in enumerate(texts, 1):
                enqueue_notice(conn, family, task_id, channel, f"{key}:{n}", text, now)

        await self._db.write(write)

    async def thread(self, row: OutboxRow) -> tuple[str | None, int | None]:
        """The root message ts of the row's task in its channel, and the last event it showed."""
        found = await self._db.fetchone(
            """SELECT root_ts, root_event_id FROM task_channels
               WHERE family = ? AND task_id = ? AND channel = ?""",
            (row.family, row.task_id, row.channel),
        )
        return (found["root_ts"], found["root_event_id"]) if found else (None, None)

    async def parent(self, row: OutboxRow) -> str | None:
        """The ts of the message whose thread the row's task is in, in its channel: the message
        a shortcut was used on, else the task's root (or the root it borrows)."""
        found = await self._db.fetchone(
            """SELECT COALESCE(thread_ts, root_ts) FROM task_channels
               WHERE family = ? AND task_id = ? AND channel = ?""",
            (row.family, row.task_id, row.channel),
        )
        return found[0] if found else None

    async def borrowed(self, row: OutboxRow) -> bool:
        """True when the row's task posts into another task's thread in its channel (an
        extension of a video): that thread's root is not the task's own card."""
        found = await self._db.fetchone(
            """SELECT thread_of FROM task_channels
               WHERE family = ? AND task_id = ? AND channel = ?""",
            (row.family, row.task_id, row.channel),
        )
        return found is not None and found[0] is not None

    async def last_event_id(self, family: str, task_id: str) -> int | None:
        # By product, not family: (product, task_id) leads the events' unique index, so this
        # reads the task's own events instead of the whole log.
        products = family_products(family)
        row = await self._db.fetchone(
            f"""SELECT MAX(id) FROM events WHERE product IN ({", ".join("?" * len(products))})
                AND task_id = ? AND news = 1""",
            (*products, task_id),
        )
        return row[0] if row else None

    async def done(
        self, row: OutboxRow, *, root_ts: str | None = None, shown_event: int | None = None
    ) -> None:
        """Mark `row` sent; for a root, remember its ts and the last event it showed."""
        now = self._clock()

        def write(conn: Connection) -> None:
            conn.execute(
                "UPDATE outbox SET status = 'done', done_at = ?, attempts = attempts + 1 "
                "WHERE id = ?",
                (now, row.id),
            )
            if root_ts is not None:
                conn.execute(
                    """UPDATE task_channels SET root_ts = ?, root_event_id = ?
                       WHERE family = ? AND task_id = ? AND channel = ?""",
                    (root_ts, shown_event, row.family, row.task_id, row.channel),
                )

        await self._db.write(write)

    async def published(self, row: OutboxRow) -> None:
        """Mark a Home tab row sent; when a change came while it was being sent (its mark
        moved on), it stays pending, due `HOME_EVERY` after this publish."""
        now = self._clock()
        await self._db.write(
            lambda conn: conn.execute(
                """UPDATE outbox SET attempts = attempts + 1, done_at = ?, last_error = NULL,
                       status = CASE WHEN text = ? THEN 'done' ELSE 'pending' END,
                       next_attempt_at = ?
                   WHERE id = ?""",
                (now, row.text, now + HOME_EVERY, row.id),
            )
        )

    async def skip(self, row: OutboxRow, reason: str) -> None:
        """Mark `row` as needing no call (its news was already shown)."""
        await self._finish(row, "skipped", reason)

    async def fail(self, row: OutboxRow, error: str) -> None:
        """Stop trying `row`; it stays in the table with its error."""
        await self._finish(row, "failed", error)

    async def retry(
        self,
        row: OutboxRow,
        error: str,
        delay: float,
        *,
        counted: bool = True,
        unknown: bool = False,
    ) -> None:
        """Try `row` again in `delay` seconds.

        `counted=False` (a 429) does not count as a try; `unknown` counts an error the code does
        not know, which gets only a few tries.
        """
        params = (int(counted), int(unknown), error[:500], self._clock() + delay, row.id)
        await self._db.write(
            lambda conn: conn.execute(
                """UPDATE outbox SET attempts = attempts + ?, unknown_errors = unknown_errors + ?,
                       last_error = ?, next_attempt_at = ?
                   WHERE id = ? AND status = 'pending'""",
                params,
            )
        )

    async def hurry(self) -> int:
        """Make rows that wait out passing Slack trouble due now (Slack answers again).

        Rows waiting for a 429's `Retry-After` keep their time. Returns how many changed.
        """
        now = self._clock()
        return await self._db.write(
            lambda conn: (
                conn.execute(
                    """UPDATE outbox SET next_attempt_at = ?
                       WHERE status = 'pending' AND next_attempt_at > ?
                         AND last_error IS NOT NULL AND last_error != 'ratelimited'""",
                    (now, now),
                ).rowcount
            )
        )

    async def resend(self, ids: Sequence[int] = (), *, failed: bool = False) -> list[int]:
        """Make rows due now (an operator's retry): the rows `ids` that are pending or failed,
        and with `failed` every failed row. Their tries and retry window start again.

        Returns the ids changed. The running bot sends them within seconds.
        """
        now = self._clock()

        def write(conn: Connection) -> list[int]:
            wanted = set(ids)
            if failed:
                wanted |= {
                    r[0] for r in conn.execute("SELECT id FROM outbox WHERE status = 'failed'")
                }
            changed: list[int] = []
            for row_id in sorted(wanted):
                cursor = conn.execute(
                    """UPDATE outbox SET status = 'pending', next_attempt_at = ?, attempts = 0,
                           unknown_errors = 0, retry_since = ?, done_at = NULL
                       WHERE id = ? AND status IN ('pending', 'failed')""",
                    (now, now, row_id),
                )
                if cursor.rowcount:
                    changed.append(row_id)
            return changed

        return await self._db.write(write)

    async def entries(self, limit: int = 200) -> list[OutboxEntry]:
        """Pending and failed rows, oldest first, for an operator."""
        rows = await self._db.fetchall(
            """SELECT id, task_id, channel, kind, status, attempts, last_error, created_at,
                      next_attempt_at FROM outbox
               WHERE status IN ('pending', 'failed') ORDER BY id LIMIT ?""",
            (limit,),
        )
        return [OutboxEntry(*row) for row in rows]

    async def stats(self) -> OutboxStats:
        """Pending and failed rows and the oldest pending row's time, for metrics and `check`."""

        def read(conn: Connection) -> OutboxStats:
            # Pending and failed rows, through their own indexes: not the sent rows of months.
            counts = {
                status: int(
                    conn.execute(f"SELECT COUNT(*) FROM outbox WHERE {where}").fetchone()[0]
                )
                for status, where in (
                    ("pending", "status = 'pending'"),
                    ("failed", "status = 'failed'"),
                )
            }
            oldest = conn.execute(
                "SELECT MIN(COALESCE(retry_since, created_at)) FROM outbox WHERE status = 'pending'"
            ).fetchone()[0]
            return OutboxStats(counts, oldest)

        return await self._db.run(read)

    async def _finish(self, row: OutboxRow, status: str, note: str) -> None:
        params = (status, note[:500], self._clock(), row.id)
        await self._db.write(
            lambda conn: conn.execute(
                """UPDATE outbox SET status = ?, last_error = ?, done_at = ?,
                       attempts = attempts + 1 WHERE id = ?""",
                params,
            )
        )


#: A pending file row that goes next in its thread: no earlier file row of its thread is pending
#: (a probe of the `outbox_video_threads` index), and its thread's earlier posts are out (found
#: by their keys, which `enqueue_root` and `enqueue_news` make: two probes of the key index).
_VIDEO_NEXT = """v.status = 'pending' AND v.kind = 'video'
    AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.status = 'pending' AND e.kind = 'video'
        AND e.family = v.family AND e.task_id = v.task_id AND e.channel = v.channel
        AND e.id < v.id)
    AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.status = 'pending' AND p.key IN (
        'root:' || v.family || ':' || v.task_id || ':' || v.channel,
        'reply:' || v.event_id || ':' || v.channel))"""


def _row(row: Row) -> OutboxRow:
    return OutboxRow(
        id=row["id"],
        key=row["key"],
        kind=row["kind"],
        channel=row["channel"],
        family=row["family"],
        task_id=row["task_id"],
        event_id=row["event_id"],
        text=row["text"],
        attempts=row["attempts"],
        due_at=row["next_attempt_at"],
        created_at=row["created_at"],
        unknown_errors=row["unknown_errors"],
        retry_since=row["retry_since"],
    )
