"""The usage ledger: every generation started from Slack, who started it, and what it cost.

A start is written (and checked against the daily limits) in the transaction that claims its
submission keys, before kie.ai is asked; kie.ai's refusal marks it refused, which does not count;
its outcome and credits are filled in when the task's final news is stored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from storage.database import Connection, Database, Row, lock
from storage.outbox import enqueue_message

UsageState = Literal["claimed", "started", "refused"]


def utc_day(moment: float) -> str:
    """The UTC calendar day of a Unix time, as `YYYY-MM-DD`."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d")


@dataclass(frozen=True, slots=True)
class Limits:
    """KIE_DAILY_LIMIT_PER_PERSON, KIE_DAILY_LIMIT_PER_CHANNEL (None: no limit) and KIE_ADMINS."""

    per_person: int | None = None
    per_channel: int | None = None
    admins: frozenset[str] = frozenset()

    def is_admin(self, user_id: str) -> bool:
        return user_id in self.admins


@dataclass(frozen=True, slots=True)
class Start:
    """A generation someone asks to start from Slack, as the ledger records it."""

    user_id: str
    channel: str
    product: str
    model: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


class LimitReached(Exception):
    """A start that a daily limit refuses: whose limit (`person` or `channel`), the limit, and
    how many generations were started today under it."""

    def __init__(self, scope: Literal["person", "channel"], limit: int, count: int) -> None:
        super().__init__(f"{scope} limit {limit} reached ({count} today)")
        self.scope = scope
        self.limit = limit
        self.count = count


def claim_start(conn: Connection, key: str, start: Start, limits: Limits, now: float) -> None:
    """Within the claim's write transaction: count the start against today's limits and record
    it; raise `LimitReached` (so the transaction writes nothing) when a limit is met.

    On PostgreSQL the channel's and then the person's lock make concurrent starts (two clicks,
    two replicas) count one after the other; SQLite's single writer does that by itself.
    """
    day = utc_day(now)
    if not limits.is_admin(start.user_id):
        checks: tuple[tuple[Literal["person", "channel"], str, str, int | None], ...] = (
            ("channel", "channel", start.channel, limits.per_channel),
            ("person", "user_id", start.user_id, limits.per_person),
        )
        for scope, column, value, limit in checks:
            if limit is None:
                continue
            lock(conn, f"usage:{scope}:{value}")
            row = conn.execute(
                f"""SELECT COUNT(*) FROM ledger
                    WHERE {column} = ? AND day = ? AND state != 'refused' AND admin = 0""",
                (value, day),
            ).fetchone()
            count = int(row[0])
            if count >= limit:
                raise LimitReached(scope, limit, count)
    conn.execute(
        """INSERT INTO ledger (key, user_id, channel, product, model, options, day, started_at,
                              state, admin)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'claimed', ?) ON CONFLICT (key) DO NOTHING""",
        (
            key,
            start.user_id,
            start.channel,
            start.product,
            start.model,
            json.dumps(dict(start.options), sort_keys=True) if start.options else None,
            day,
            now,
            1 if limits.is_admin(start.user_id) else 0,
        ),
    )


def mark_refused(conn: Connection, keys: Iterable[str]) -> None:
    """kie.ai (or the bot) did not start it: the start no longer counts."""
    conn.executemany("UPDATE ledger SET state = 'refused' WHERE key = ?", [(key,) for key in keys])


def mark_started(
    conn: Connection, keys: Iterable[str], family: str, task_id: str, product: str
) -> None:
    """kie.ai started it as task `task_id` (of `product`: a Market start stays `market`)."""
    conn.executemany(
        """UPDATE ledger SET state = 'started', family = ?, task_id = ?, product = ?
           WHERE key = ?""",
        [(family, task_id, product, key) for key in keys],
    )


def record_outcome(
    conn: Connection,
    family: str,
    task_id: str,
    product: str,
    outcome: str,
    heading: str | None,
    credits: float | None,
) -> None:
    """A final answer for a task started from Slack: its outcome, failure heading and credits
    go into the start's ledger row (the first answer wins; a retried one changes nothing)."""
    conn.execute(
        """UPDATE ledger SET outcome = ?, heading = ?, credits = COALESCE(?, credits)
           WHERE family = ? AND task_id = ? AND product = ? AND outcome IS NULL""",
        (outcome, heading, credits, family, task_id, product),
    )


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One start of the ledger."""

    user_id: str
    channel: str
    product: str
    model: str | None
    options: str | None
    started_at: float
    state: UsageState
    task_id: str | None
    outcome: str | None
    heading: str | None
    credits: float | None

    @property
    def what(self) -> str:
        """The model for Market starts, else the product slug."""
        return self.model or self.product


class UsageStore:
    """The ledger as the usage command, the digest and the Home tab read it."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    async def since(self, start: float, end: float | None = None) -> list[UsageRow]:
        """Every start that counts (not refused) from `start` (Unix seconds) up to `end`."""
        rows = await self._db.fetchall(
            """SELECT user_id, channel, product, model, options, started_at, state, task_id,
                      outcome, heading, credits
               FROM ledger WHERE started_at >= ? AND started_at < ? AND state != 'refused'
               ORDER BY started_at""",
            (start, end if end is not None else float("inf")),
        )
        return [_usage_row(row) for row in rows]

    async def queue_message(self, channel: str, key: str, mrkdwn: str) -> bool:
        """Queue a message of the bot's own to `channel` under `key`; False when a message
        under that key was queued before (by this process, another replica, or an earlier run)."""
        now = self._clock()
        return bool(
            await self._db.write(lambda conn: enqueue_message(conn, channel, key, mrkdwn, now))
        )

    async def count_today(self, user_id: str) -> int:
        """How many generations `user_id` started today (UTC), as the limit counts them."""
        row = await self._db.fetchone(
            """SELECT COUNT(*) FROM ledger
               WHERE user_id = ? AND day = ? AND state != 'refused' AND admin = 0""",
            (user_id, utc_day(self._clock())),
        )
        return int(row[0]) if row else 0


def _usage_row(row: Row) -> UsageRow:
    return UsageRow(
        user_id=row["user_id"],
        channel=row["channel"],
        product=row["product"],
        model=row["model"],
        options=row["options"],
        started_at=float(row["started_at"]),
        state=row["state"],
        task_id=row["task_id"],
        outcome=row["outcome"],
        heading=row["heading"],
        credits=row["credits"],
    )


@dataclass(frozen=True, slots=True)
class Expiring:
    """A result whose links kie.ai deletes soon and that no channel has saved into Slack."""

    product: str
    task_id: str
    expires_at: float
    channel: str | None


class AlertStore:
    """The state of each alert (`low` or `ok`), so that one fires once, whatever the replicas."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    async def turn(self, name: str, state: str, then: Callable[[Connection, float], None]) -> bool:
        """Move alert `name` to `state`; when that is a change, run `then` (which queues the
        message) in the same transaction. True when it changed."""
        now = self._clock()

        def write(conn: Connection) -> bool:
            lock(conn, f"alert:{name}")
            row = conn.execute("SELECT state FROM alerts WHERE name = ?", (name,)).fetchone()
            if row is not None and row[0] == state:
                return False
            conn.execute(
                """INSERT INTO alerts (name, state, changed_at) VALUES (?, ?, ?)
                   ON CONFLICT (name) DO UPDATE SET state = excluded.state,
                       changed_at = excluded.changed_at""",
                (name, state, now),
            )
            then(conn, now)
            return True

        return bool(await self._db.write(write))

    async def expiring(self, now: float, within: float, days: Mapping[str, int]) -> list[Expiring]:
        """Succeeded tasks whose links expire between `now` and `now + within` (by each
        product's `days` of retention) with no result file saved into Slack."""
        found: list[Expiring] = []
        for product, kept in days.items():
            rows = await self._db.fetchall(
                """SELECT t.product, t.task_id, t.finished_at,
                          (SELECT MIN(c.channel) FROM task_channels c
                           WHERE c.family = t.family AND c.task_id = t.task_id) AS channel
                   FROM tasks t
                   WHERE t.product = ? AND t.state = 'succeeded'
                     AND t.finished_at >= ? AND t.finished_at < ?
                     AND NOT EXISTS (SELECT 1 FROM saved_videos s WHERE s.family = t.family
                                     AND s.task_id = t.task_id AND s.status = 'saved')
                   ORDER BY t.finished_at LIMIT 50""",
                (product, now - kept * 86400, now + within - kept * 86400),
            )
            found += [
                Expiring(row[0], row[1], float(row[2]) + kept * 86400, row[3]) for row in rows
            ]
        return sorted(found, key=lambda item: item.expires_at)
