"""Submissions: generations started from Slack, each under keys that make it happen once.

A key is claimed (a row under a unique key) before kie.ai is asked, in a transaction of its own;
a second delivery of the same command, click or form (Slack's retries) finds the key taken and
starts nothing. Once kie.ai answers, the keys are marked with the task in the same transaction
that records the task, its follower and its first message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.kie.products import PRODUCTS
from bot.task import Applied, TaskUpdate
from storage.database import Connection
from storage.ledger import Limits, Start, claim_start, mark_refused, mark_started
from storage.tasks import BesideTasks, Started, record_started

SubmissionState = Literal["claimed", "submitted", "refused"]


@dataclass(frozen=True, slots=True)
class Submission:
    """An earlier submission that holds a key: `claimed` (kie.ai is being asked), `submitted`
    (`task_id` started) or `refused` (`outcome` says why)."""

    key: str
    state: SubmissionState
    task_id: str | None
    outcome: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class Claim:
    """The keys of one submission: `keys` hold for ever (Slack's retries of one delivery),
    `window` for `seconds` after the claim (a double click: two deliveries, one intent)."""

    keys: tuple[str, ...]
    window: tuple[str, float] | None = None

    @property
    def all_keys(self) -> tuple[str, ...]:
        return self.keys + ((self.window[0],) if self.window else ())


class _Held(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class SubmissionStore(BesideTasks):
    """The submission keys, and the transaction that records a started task."""

    async def claim(
        self,
        claim: Claim,
        channel: str,
        user_id: str,
        *,
        start: Start | None = None,
        limits: Limits | None = None,
    ) -> Submission | None:
        """Claim every key of `claim`; None when they are ours now, else the earlier submission
        that holds one (and nothing is claimed).

        With `start`, the generation is also counted in the usage ledger against `limits` in the
        same transaction: `LimitReached` is raised, and nothing claimed, when a limit is met.
        """
        now = self._clock()

        def write(conn: Connection) -> None:
            for key in claim.keys:
                taken = conn.execute(
                    """INSERT INTO submissions (key, channel, user_id, state, created_at)
                       VALUES (?, ?, ?, 'claimed', ?) ON CONFLICT (key) DO NOTHING""",
                    (key, channel, user_id, now),
                ).rowcount
                if not taken:
                    raise _Held(key)
            if claim.window is not None:
                key, seconds = claim.window
                taken = conn.execute(
                    """INSERT INTO submissions (key, channel, user_id, state, created_at)
                       VALUES (?, ?, ?, 'claimed', ?)
                       ON CONFLICT (key) DO UPDATE SET channel = excluded.channel,
                           user_id = excluded.user_id, state = 'claimed', task_id = NULL,
                           family = NULL, outcome = NULL, created_at = excluded.created_at,
                           done_at = NULL
                       WHERE submissions.created_at < ?""",
                    (key, channel, user_id, now, now - seconds),
                ).rowcount
                if not taken:
                    raise _Held(key)
            if start is not None and claim.all_keys:
                claim_start(conn, claim.all_keys[0], start, limits or Limits(), now)

        try:
            await self._db.write(write)
        except _Held as held:
            return await self.get(held.key)
        return None

    async def get(self, key: str) -> Submission | None:
        row = await self._db.fetchone(
            "SELECT key, state, task_id, outcome, created_at FROM submissions WHERE key = ?",
            (key,),
        )
        if row is None:
            return None
        return Submission(row[0], row[1], row[2], row[3], float(row[4]))

    async def refused(self, claim: Claim, outcome: str) -> None:
        """kie.ai (or the bot) did not start it: the keys stay taken, with the reason."""
        now = self._clock()
        keys = claim.all_keys

        def write(conn: Connection) -> None:
            conn.executemany(
                """UPDATE submissions SET state = 'refused', outcome = ?, done_at = ?
                   WHERE key = ?""",
                [(outcome[:500], now, key) for key in keys],
            )
            mark_refused(conn, keys)

        await self._db.write(write)

    async def started(
        self,
        claim: Claim,
        update: TaskUpdate,
        channel: str,
        started: Started,
        *,
        thread: tuple[str, str] | None = None,
        note: str | None = None,
        under: str | None = None,
    ) -> Applied:
        """kie.ai started the task of `update`: mark the keys with it and record the task (see
        `storage.tasks.record_started`), in one transaction."""
        now = self._clock()
        keys = claim.all_keys
        family = PRODUCTS[update.product].family

        def write(conn: Connection) -> Applied:
            conn.executemany(
                """UPDATE submissions SET state = 'submitted', family = ?, task_id = ?,
                       done_at = ? WHERE key = ?""",
                [(family, update.task_id, now, key) for key in keys],
            )
            mark_started(conn, keys, family, update.task_id, update.product)
            return record_started(
                conn, update, channel, now, started, thread=thread, note=note, under=under
            )

        applied = await self._db.write(write)
        self._tasks.outbox_ready.set()
        return applied

    async def thread_root(self, family: str, task_id: str, channel: str) -> str | None:
        """The ts of the message whose thread holds the task in `channel`, once its root is
        posted: the root's own, or the message a shortcut was used on (its root is a reply)."""
        row = await self._db.fetchone(
            """SELECT CASE WHEN root_ts IS NULL THEN NULL ELSE COALESCE(thread_ts, root_ts) END
               FROM task_channels
               WHERE family = ? AND task_id = ? AND channel = ?""",
            (family, task_id, channel),
        )
        return str(row[0]) if row is not None and row[0] else None
