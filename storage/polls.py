"""The poll schedule, kept in the tasks table so a restart resumes it."""

from __future__ import annotations

from dataclasses import dataclass

from storage.database import Connection
from storage.outbox import enqueue_notice
from storage.tasks import BesideTasks

#: A followed task with no news for this long is polled without anyone asking.
QUIET_AFTER = 600.0
#: Polling of one task stops this long after it began.
FOLLOW_FOR = 86400.0
#: A claimed poll that is not finished (its process died) is due again after this long.
CLAIM_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class DuePoll:
    """A task whose next poll is due."""

    family: str
    task_id: str
    product: str
    failures: int
    until: float


class PollSchedule(BesideTasks):
    """When each running task is polled next, and until when."""

    async def resume(self) -> None:
        """At the start of the one process of a SQLite store: polls that an earlier run had
        claimed or scheduled are due now (its claims died with it). Replicas sharing
        PostgreSQL leave each other's claims to run out instead."""
        if self._db.dialect != "sqlite":
            return
        now = self._clock()
        await self._db.write(
            lambda conn: conn.execute(
                "UPDATE tasks SET next_poll_at = ? WHERE state = 'running' AND next_poll_at > ?",
                (now, now),
            )
        )

    async def start(self, family: str, task_id: str, *, delay: float) -> None:
        """Poll the task in `delay` s and on until it ends or `FOLLOW_FOR` passes."""
        now = self._clock()
        await self._db.write(
            lambda conn: conn.execute(
                """UPDATE tasks SET next_poll_at = ?, poll_failures = 0,
                       poll_until = CASE WHEN poll_until > ? THEN poll_until ELSE ? END
                   WHERE family = ? AND task_id = ? AND state = 'running'""",
                (now + delay, now + FOLLOW_FOR, now + FOLLOW_FOR, family, task_id),
            )
        )

    async def due(self, limit: int = 50) -> list[DuePoll]:
        """Claim the polls that are due: running tasks whose poll time has come, and followed
        running tasks quiet for too long.

        A claimed task is not due again for `CLAIM_SECONDS` (until `next` says when), so
        replicas sharing the database poll each task once, and a replica killed mid-poll leaves
        the task to another after that time.
        """
        now = self._clock()

        def claim(conn: Connection) -> list[DuePoll]:
            rows = conn.execute(
                """SELECT family, task_id, product, poll_failures, poll_until, next_poll_at
                   FROM tasks WHERE state = 'running' AND next_poll_at <= ?
                   UNION
                   SELECT t.family, t.task_id, t.product, t.poll_failures, ?, NULL FROM tasks t
                   WHERE t.state = 'running' AND t.next_poll_at IS NULL
                     AND t.poll_until IS NULL AND t.updated_at <= ?
                     AND EXISTS (SELECT 1 FROM task_channels c
                                 WHERE c.family = t.family AND c.task_id = t.task_id)
                   LIMIT ?""",
                (now, now + FOLLOW_FOR, now - QUIET_AFTER, limit),
            ).fetchall()
            claimed: list[DuePoll] = []
            for family, task_id, product, failures, until, due_at in rows:
                taken = conn.execute(
                    """UPDATE tasks SET next_poll_at = ?
                       WHERE family = ? AND task_id = ? AND COALESCE(next_poll_at, -1) = ?""",
                    (now + CLAIM_SECONDS, family, task_id, -1 if due_at is None else due_at),
                ).rowcount
                if taken:
                    claimed.append(
                        DuePoll(family, task_id, product, failures, until or now + FOLLOW_FOR)
                    )
            return claimed

        return await self._db.write(claim)

    async def next(self, poll: DuePoll, delay: float, *, failed: bool) -> None:
        """Poll again in `delay` s (counting a failure when `failed`)."""
        now = self._clock()
        await self._db.write(
            lambda conn: conn.execute(
                """UPDATE tasks SET next_poll_at = CASE WHEN state = 'running' THEN ? END,
                       poll_until = ?, poll_failures = CASE WHEN ? THEN poll_failures + 1 ELSE 0 END
                   WHERE family = ? AND task_id = ?""",
                (now + delay, poll.until, failed, poll.family, poll.task_id),
            )
        )

    async def give_up(self, poll: DuePoll, text: str) -> None:
        """Stop polling the task and tell each following channel, in its thread, with `text`."""
        now = self._clock()

        def write(conn: Connection) -> bool:
            conn.execute(
                "UPDATE tasks SET next_poll_at = NULL, poll_until = -1 "
                "WHERE family = ? AND task_id = ?",
                (poll.family, poll.task_id),
            )
            channels = conn.execute(
                "SELECT channel FROM task_channels WHERE family = ? AND task_id = ?",
                (poll.family, poll.task_id),
            ).fetchall()
            for (channel,) in channels:
                enqueue_notice(conn, poll.family, poll.task_id, channel, "gave-up", text, now)
            return bool(channels)

        if await self._db.write(write):
            self._tasks.outbox_ready.set()
