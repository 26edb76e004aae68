"""The usage report, its CSV and the limit refusal: pure functions over ledger rows."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from bot.usage import limit_refusal, next_midnight, period_start, summarize, usage_csv, usage_lines
from storage.ledger import LimitReached, Limits, UsageRow

NOON = datetime(2026, 12, 3, 12, 0, tzinfo=UTC).timestamp()  # a Thursday


def row(user: str, channel: str, what: str, **kw) -> UsageRow:
    fields = {
        "user_id": user,
        "channel": channel,
        "product": "market" if "/" in what else what,
        "model": what if "/" in what else None,
        "options": None,
        "started_at": NOON,
        "state": "started",
        "task_id": "t1",
        "outcome": "succeeded",
        "heading": None,
        "credits": None,
    }
    return UsageRow(**(fields | kw))


def test_periods_start_at_utc_midnight_monday_and_the_first():
    assert datetime.fromtimestamp(period_start("today", NOON), UTC).isoformat() == (
        "2026-12-03T00:00:00+00:00"
    )
    assert datetime.fromtimestamp(period_start("week", NOON), UTC).day == 30  # Monday 30 Nov
    assert datetime.fromtimestamp(period_start("month", NOON), UTC).day == 1
    assert next_midnight(NOON) - NOON == 12 * 3600


def test_summary_counts_people_channels_models_and_failures():
    rows = [
        row("U1", "C1", "veo", credits=None),
        row("U1", "C1", "google/nano-banana", credits=4.0),
        row("U2", "C2", "google/nano-banana", credits=4.5),
        row("U2", "C2", "veo", outcome="failed", heading="Content moderation"),
        row("U2", "C2", "runway", outcome=None),
    ]
    summary = summarize(rows)
    assert summary.total.generations == 5 and summary.total.credits == 8.5
    assert summary.people["U2"].generations == 3 and summary.people["U1"].credits == 4.0
    assert summary.models["google/nano-banana"].generations == 2
    assert summary.failures == {"Content moderation": 1} and summary.running == 1
    text = "\n".join(usage_lines(summary, label="today", credits_left=120.5))
    assert "5 generations, 8.5 credits (+3 not reported)" in text
    assert "• U2: 3 generations" in text and "Content moderation: 1" in text
    assert "*Credits left at kie.ai:* 120.5" in text


def test_a_non_admin_sees_the_totals_and_only_their_own_lines():
    rows = [row("U1", "C1", "veo"), row("U2", "C2", "runway"), row("U2", "C2", "runway")]
    summary = summarize(rows, only_user="U1")
    assert summary.total.generations == 3
    assert set(summary.people) == {"U1"} and set(summary.channels) == {"C1"}
    assert set(summary.models) == {"veo"}


def test_csv_opens_as_a_table_with_one_line_per_start():
    rows = [row("U1", "C1", "google/nano-banana", credits=1234.5, options='{"a": 1}')]
    parsed = list(csv.DictReader(io.StringIO(usage_csv(rows))))
    assert parsed == [
        {
            "started_at": "2026-12-03 12:00:00",
            "user": "U1",
            "channel": "C1",
            "product": "market",
            "model": "google/nano-banana",
            "task_id": "t1",
            "outcome": "succeeded",
            "failure": "",
            "credits": "1234.5",
            "options": '{"a": 1}',
        }
    ]


def test_a_refusal_names_the_limit_the_count_the_reset_and_the_admins():
    limits = Limits(per_person=2, admins=frozenset({"UADMIN1"}))
    text = limit_refusal(LimitReached("person", 2, 2), limits, NOON + 30 * 60)
    assert "your daily limit of 2 generations" in text and "2 started today" in text
    assert "00:00 UTC" in text and "in 11 h 30 min" in text
    assert "<@UADMIN1>" in text and "Nothing was sent to kie.ai" in text
    channel = limit_refusal(LimitReached("channel", 5, 5), Limits(per_channel=5), NOON)
    assert "this channel's daily limit of 5" in channel and "Admins" not in channel
