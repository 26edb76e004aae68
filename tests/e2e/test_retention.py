"""Keeping the store small over real HTTP, on SQLite and PostgreSQL: once the daily run has
deleted a task's events and sent Slack work, `/kie status` still answers and later news still
lands in the task's thread; `kie-slack check` shows the store's size and oldest event."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

import psycopg
import pytest

from storage.retention import DAY
from tests.conftest import Clock, eventually, load, slash
from tests.e2e.test_process import cli

CHANNEL = "C0KEEP"
VEO_TASK = "veo_task_3f9c2a7b1d4e"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request) -> dict[str, Any]:
    """The bot's store settings: its own SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return {}
    return {"postgres_url": request.getfixturevalue("postgres_url")}


def query(bot, sql: str) -> list[tuple]:
    """Rows read straight from the bot's store."""
    url = bot.settings.postgres_url
    if url is not None:
        with psycopg.connect(url) as db:
            return [tuple(row) for row in db.execute(sql).fetchall()]
    with sqlite3.connect(bot.settings.database_path) as db:
        return db.execute(sql).fetchall()


async def test_a_task_whose_events_were_deleted_answers_and_its_thread_goes_on(
    start_bot, fake_slack, store
):
    clock = Clock(time.time())
    bot = await start_bot(fake_slack, clock=clock, kie_default_channel=CHANNEL, **store)
    await bot.callback("veo", load("veo-success.json"))
    await bot.callback("runway", load("runway-success.json"))  # a later task's event
    [root, _] = await eventually(
        lambda: len(fake_slack.roots(CHANNEL)) == 2 and fake_slack.roots(CHANNEL)
    )
    sent = "SELECT COUNT(*) FROM outbox WHERE status = 'done'"
    await eventually(lambda: query(bot, sent) == [(2,)])

    clock.now += 91 * DAY  # the daily run (a minute after start) deletes what is 90 days old
    await eventually(lambda: query(bot, f"SELECT * FROM events WHERE task_id = '{VEO_TASK}'") == [])
    await eventually(lambda: query(bot, sent) == [(1,)])  # the newest row stays: ids go on
    assert query(bot, "SELECT COUNT(*) FROM tasks") == [(2,)]

    _, answer = await slash(bot, fake_slack, f"status {VEO_TASK}", channel=CHANNEL)
    assert VEO_TASK in answer["text"]
    assert "3f9c2a7b1d4e_0.mp4" in json.dumps(answer["blocks"])

    await bot.callback("veo-4k", load("veo-4k-success.json"))  # news, 91 days on
    [reply] = await eventually(lambda: fake_slack.replies(root))
    assert "3f9c2a7b1d4e_4k.mp4" in reply.content
    await eventually(lambda: root.updates)
    assert "3f9c2a7b1d4e_4k.mp4" in root.content
    assert len(fake_slack.roots(CHANNEL)) == 2  # no second card for the task


async def test_check_shows_the_store_size_and_its_oldest_event(tmp_path, start_bot):
    bot = await start_bot(database_path=tmp_path / "c.db")
    await bot.callback("veo", load("veo-success.json"))
    with sqlite3.connect(bot.settings.database_path) as db:
        db.execute("UPDATE events SET received_at = received_at - 12 * 86400")

    checked = cli("check", env={"DATABASE_URL": "sqlite:///c.db"}, cwd=tmp_path)

    assert checked.returncode == 0, checked.stdout
    assert (
        "✓ KIE_RETENTION_DAYS=90: each day, callback events and sent Slack work" in checked.stdout
    )
    [size] = [line for line in checked.stdout.splitlines() if line.startswith("✓ store: ")]
    assert " MB (the SQLite file and its -wal); oldest callback event 12 d old" in size
    kept = cli(
        "check", env={"DATABASE_URL": "sqlite:///c.db", "KIE_RETENTION_DAYS": "0"}, cwd=tmp_path
    )
    assert (
        "KIE_RETENTION_DAYS=0: callback events and sent Slack work are kept for ever" in kept.stdout
    )


async def test_check_on_postgresql_shows_the_database_size(tmp_path, postgres_url):
    checked = cli("check", env={"DATABASE_URL": postgres_url}, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout
    assert "MB (pg_database_size); no callback event yet" in checked.stdout


@pytest.mark.parametrize("value", ["-7", "ninety"])
def test_a_malformed_retention_stops_start_up_and_fails_check(tmp_path, value):
    env = {"DATABASE_URL": "sqlite:///x.db", "KIE_RETENTION_DAYS": value}
    served = cli("serve", env=env, cwd=tmp_path)
    assert served.returncode == 2
    [line] = served.stderr.strip().splitlines()
    assert line.startswith(f"kie-slack: configuration error: KIE_RETENTION_DAYS={value!r}")
    checked = cli("check", env=env, cwd=tmp_path)
    assert checked.returncode != 0 and checked.stdout.count("KIE_RETENTION_DAYS") == 1
    assert "NOT usable" in checked.stdout
    assert not (tmp_path / "x.db").exists()
