"""Spend in hand, as people read it: what was started and what it cost, per person, channel and
model; why a start was refused; pure functions over the ledger's rows, no I/O."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from bot.config import Settings
from bot.kie.products import PRODUCTS, model_name
from bot.kie.submit import GenerationRequest
from bot.slack.messages import duration
from storage.ledger import LimitReached, Limits, Start, UsageRow

Period = Literal["today", "week", "month"]
PERIODS: tuple[Period, ...] = ("today", "week", "month")


def period_start(period: Period, now: float) -> float:
    """When `period` began (UTC): today's midnight, this week's Monday, this month's 1st."""
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        day -= timedelta(days=day.weekday())
    elif period == "month":
        day = day.replace(day=1)
    return day.timestamp()


def next_midnight(now: float) -> float:
    """The next UTC midnight after `now`, when the daily limits start again."""
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (day + timedelta(days=1)).timestamp()


@dataclass(slots=True)
class Tally:
    """Generations started and the credits kie.ai reported for them."""

    generations: int = 0
    credits: float = 0.0
    #: Generations whose credits kie.ai reported (the rest cost something unknown).
    priced: int = 0
    failed: int = 0

    def add(self, row: UsageRow) -> None:
        self.generations += 1
        if row.credits is not None:
            self.credits += row.credits
            self.priced += 1
        if row.outcome == "failed":
            self.failed += 1


@dataclass(slots=True)
class Summary:
    """The ledger's rows of a period, added up."""

    total: Tally = field(default_factory=Tally)
    people: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    channels: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    models: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    failures: Counter[str] = field(default_factory=Counter)
    running: int = 0


def summarize(rows: Iterable[UsageRow], *, only_user: str | None = None) -> Summary:
    """Add up `rows`; with `only_user`, the lines per person, channel and model hold only that
    person's starts (the totals still count everyone's)."""
    summary = Summary()
    for row in rows:
        summary.total.add(row)
        if row.outcome is None:
            summary.running += 1
        if row.outcome == "failed":
            summary.failures[row.heading or "Unknown failure"] += 1
        if only_user is not None and row.user_id != only_user:
            continue
        summary.people[row.user_id].add(row)
        summary.channels[row.channel].add(row)
        summary.models[row.what].add(row)
    return summary


def model_words(what: str) -> str:
    """A ledger's product slug or Market model id as people read it."""
    found = PRODUCTS.get(what)
    return found.label if found else model_name(what)


def amount(credits: float) -> str:
    """Credits as people write them: 55, 1,200, 0.5."""
    return f"{credits:,.2f}".rstrip("0").rstrip(".")


def _tally_text(tally: Tally) -> str:
    started = "1 generation" if tally.generations == 1 else f"{tally.generations} generations"
    if not tally.priced:
        return f"{started}, credits not reported"
    unknown = tally.generations - tally.priced
    more = f" (+{unknown} not reported)" if unknown else ""
    return f"{started}, {amount(tally.credits)} credits{more}"


def _lines(title: str, tallies: dict[str, Tally], name: Callable[[str], str]) -> list[str]:
    if not tallies:
        return []
    ordered = sorted(tallies.items(), key=lambda item: (-item[1].generations, item[0]))
    return [f"*{title}*", *(f"• {name(key)}: {_tally_text(t)}" for key, t in ordered)]


def usage_lines(
    summary: Summary,
    *,
    label: str,
    credits_left: float | None,
    person: Callable[[str], str] = str,
    channel: Callable[[str], str] = str,
    model: Callable[[str], str] = str,
) -> list[str]:
    """The usage report as mrkdwn lines (person, channel and model names as the caller shows
    them: mentions in Slack, ids in a terminal)."""
    lines = [f"*kie.ai usage {label}:* {_tally_text(summary.total)}"]
    if summary.running:
        lines.append(f"{summary.running} still running")
    lines += _lines("By person", summary.people, person)
    lines += _lines("By channel", summary.channels, channel)
    lines += _lines("By model", summary.models, model)
    if summary.failures:
        lines.append("*Failures*")
        lines += [f"• {heading}: {n}" for heading, n in summary.failures.most_common()]
    if credits_left is not None:
        lines.append(f"*Credits left at kie.ai:* {amount(credits_left)}")
    return lines


CSV_COLUMNS = (
    "started_at",
    "user",
    "channel",
    "product",
    "model",
    "task_id",
    "outcome",
    "failure",
    "credits",
    "options",
)


def usage_csv(rows: Sequence[UsageRow]) -> str:
    """The ledger's rows as CSV with a header line, for a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                datetime.fromtimestamp(row.started_at, UTC).strftime("%Y-%m-%d %H:%M:%S"),
                row.user_id,
                row.channel,
                row.product,
                row.model or "",
                row.task_id or "",
                row.outcome or "running",
                row.heading or "",
                "" if row.credits is None else amount(row.credits).replace(",", ""),
                row.options or "",
            ]
        )
    return out.getvalue()


def limits_of(settings: Settings) -> Limits:
    """The daily limits the settings set, and the admins they do not hold."""
    return Limits(
        per_person=settings.kie_daily_limit_per_person,
        per_channel=settings.kie_daily_limit_per_channel,
        admins=frozenset(settings.kie_admins),
    )


def ledger_start(request: GenerationRequest, user: str, channel: str) -> Start:
    """A generation request as the usage ledger records it: the Market model, the options."""
    options = json.loads(request.to_json())
    options.pop("prompt", None)
    options.pop("product", None)
    model = request.model if request.product == "market" else None
    return Start(user, channel, request.product, model, options)


def limit_refusal(reached: LimitReached, limits: Limits, now: float) -> str:
    """Why a start was refused, for the person who asked: the limit, today's count, when it
    resets, and whom to ask."""
    whose = "your" if reached.scope == "person" else "this channel's"
    reset = next_midnight(now)
    stamp = datetime.fromtimestamp(reset, UTC).strftime("%H:%M UTC")
    admins = ", ".join(f"<@{admin}>" for admin in sorted(limits.admins))
    ask = f" Admins, who are not held by the limits: {admins}." if admins else ""
    return (
        f"Not started: {whose} daily limit of {reached.limit} generations is reached"
        f" ({reached.count} started today, UTC). It resets at {stamp} (midnight UTC, in"
        f" {duration(reset - now)}).{ask} Nothing was sent to kie.ai."
    )
