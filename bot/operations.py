"""Operator commands on the store: `kie-slack outbox`, `kie-slack outbox retry` and
`kie-slack usage`.

They open the bot's database from a second process while the bot runs; the running bot picks
up rows made due at once on PostgreSQL (the command sends a NOTIFY), within seconds on SQLite.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence

from bot.config import Settings
from bot.usage import summarize, usage_csv, usage_lines
from storage.backends import open_database
from storage.database import Database, StoreUnavailable
from storage.ledger import UsageStore
from storage.outbox import Outbox, OutboxEntry, OutboxStats
from storage.wakeups import notify


def age(seconds: float) -> str:
    """A short human age: `42 s`, `7 min`, `3 h`, `2 d`."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def format_entries(entries: Sequence[OutboxEntry], now: float) -> list[str]:
    """One line per row, under a header: what an operator reads."""
    if not entries:
        return ["No pending or failed Slack work."]
    lines = [f"{'ROW':>6}  {'STATUS':<7}  {'KIND':<6}  {'CHANNEL':<12}  TRIES  AGE     TASK  ERROR"]
    for entry in entries:
        lines.append(
            f"{entry.id:>6}  {entry.status:<7}  {entry.kind:<6}  {entry.channel:<12}  "
            f"{entry.attempts:>5}  {age(now - entry.created_at):<6}  {entry.task_id}  "
            f"{(entry.last_error or '-')[:120]}"
        )
    return lines


def summary(stats: OutboxStats, now: float) -> str:
    """`3 pending (oldest 2 min), 1 failed`: the outbox in one line."""
    pending = stats.counts.get("pending", 0)
    failed = stats.counts.get("failed", 0)
    oldest = (
        f" (oldest {age(now - stats.oldest_pending_at)})"
        if stats.oldest_pending_at is not None
        else ""
    )
    return f"{pending} pending{oldest}, {failed} failed"


@contextlib.asynccontextmanager
async def _database(command: str, settings: Settings) -> AsyncIterator[Database]:
    """The bot's database, opened from this process; store errors end the command with a line."""
    try:
        database = await open_database(settings.database_path, settings.postgres_url)
    except StoreUnavailable as exc:
        raise CommandFailed(f"kie-slack {command}: {exc}") from exc
    try:
        yield database
    except StoreUnavailable as exc:
        raise CommandFailed(f"kie-slack {command}: {exc}") from exc
    finally:
        await database.close()


@contextlib.asynccontextmanager
async def _outbox(command: str, settings: Settings) -> AsyncIterator[Outbox]:
    async with _database(command, settings) as database:
        yield Outbox(database)


class CommandFailed(Exception):
    """The command could not do its work; the message says why."""


async def list_outbox(settings: Settings) -> int:
    """Print pending and failed rows; 0, or 1 when the store cannot be read."""
    try:
        async with _outbox("outbox", settings) as outbox:
            now = time.time()
            lines = format_entries(await outbox.entries(), now)
            lines.append(f"Outbox: {summary(await outbox.stats(), now)}.")
    except CommandFailed as exc:
        print(exc)
        return 1
    print("\n".join(lines))
    return 0


async def retry_outbox(settings: Settings, rows: Sequence[int], failed: bool) -> int:
    """Make rows due again; 0 when at least one changed (or none failed), 1 otherwise."""
    try:
        async with _database("outbox retry", settings) as database:
            changed = await Outbox(database).resend(rows, failed=failed)
            if changed and database.dialect == "postgresql":
                await database.write(notify)  # the replicas send them at once
    except CommandFailed as exc:
        print(exc)
        return 1
    unknown = sorted(set(rows) - set(changed))
    if changed:
        listed = ", ".join(str(row) for row in changed)
        print(
            f"{len(changed)} row(s) due again: {listed}. The running bot sends them within seconds."
        )
    if unknown:
        print(
            f"Not pending or failed (already sent, or no such row): {', '.join(map(str, unknown))}"
        )
    if not changed and not unknown:
        print("No failed rows.")
    return 0 if changed or (failed and not rows) else 1


async def usage_report(settings: Settings, since: float, as_csv: bool) -> int:
    """Print the usage ledger from `since` (Unix seconds): a report, or CSV with a line per
    start. 0, or 1 when the store cannot be read."""
    try:
        async with _database("usage", settings) as database:
            rows = await UsageStore(database).since(since)
    except CommandFailed as exc:
        print(exc)
        return 1
    if as_csv:
        print(usage_csv(rows), end="")
        return 0
    day = time.strftime("%Y-%m-%d", time.gmtime(since))
    lines = usage_lines(summarize(rows), label=f"since {day} (UTC)", credits_left=None)
    print("\n".join(line.replace("*", "") for line in lines))
    return 0
