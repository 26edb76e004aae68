"""Slack trouble over real HTTP: what passes is waited out, what cannot pass is kept for an
operator, and nothing waits behind a row that failed for good."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import pytest

import bot.slack.delivery
from tests.conftest import CALLBACKS, eventually, load, scrape
from tests.e2e.processes import BotProcess, free_port, kie_slack, outbox_counts, service_env

CHANNEL = "C0TROUBLE"
VEO_TASK = "veo_task_3f9c2a7b1d4e"


def outbox(bot) -> list[tuple[str, str, int, str | None]]:
    """(kind, status, tries, last error) of every row, in order."""
    with sqlite3.connect(bot.settings.database_path) as db:
        return db.execute(
            "SELECT kind, status, attempts, last_error FROM outbox ORDER BY id"
        ).fetchall()


@pytest.fixture
def quick_backoff(monkeypatch):
    """Retries after 0.05 s instead of seconds to minutes: the rules stay, the waits shrink."""
    monkeypatch.setattr(bot.slack.delivery, "backoff", lambda attempts: 0.05)


async def test_429_is_never_counted_as_a_try(start_bot, fake_slack):
    for _ in range(6):  # more 429s than an unknown error gets tries
        fake_slack.fail_next("chat.postMessage", status=429, retry_after=1, error="ratelimited")
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    await bot.callback("suno-mp4", load("suno-mp4-success.json"))
    await eventually(lambda: fake_slack.roots(CHANNEL), timeout=20)
    await eventually(lambda: outbox(bot) == [("root", "done", 1, "ratelimited")])
    assert fake_slack.count("chat.postMessage") == 7


async def test_an_unknown_error_gets_a_few_tries_then_is_kept(
    start_bot, fake_slack, quick_backoff, caplog
):
    for _ in range(10):
        fake_slack.fail_next("chat.postMessage", error="brand_new_error")
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    with caplog.at_level(logging.ERROR):
        await bot.callback("veo", load("veo-success.json"))
        await eventually(lambda: outbox(bot) == [("root", "failed", 5, "brand_new_error")])
    assert fake_slack.count("chat.postMessage") == 5
    assert "kie-slack outbox retry" in caplog.text


async def test_an_unknown_error_that_passes_is_sent(start_bot, fake_slack, quick_backoff):
    for _ in range(3):
        fake_slack.fail_next("chat.postMessage", error="brand_new_error")
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    await bot.callback("veo", load("veo-success.json"))
    await eventually(lambda: [status for _, status, _, _ in outbox(bot)] == ["done"])
    assert len(fake_slack.roots(CHANNEL)) == 1


async def test_passing_trouble_is_retried_until_the_retry_window_ends(
    start_bot, fake_slack, quick_backoff
):
    fake_slack.outage_status = 503
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL, slack_retry_hours=1 / 3600)
    await bot.callback("veo", load("veo-success.json"))
    await eventually(lambda: [s for _, s, _, _ in outbox(bot)] == ["failed"], timeout=15)
    [(_, _, tries, error)] = outbox(bot)
    assert tries > 5  # far more than an unknown error gets: 503s are retried for the window
    assert error is not None and error.startswith("http_503")


async def test_a_row_failed_for_good_blocks_nothing_and_later_news_still_arrives(
    start_bot, fake_slack
):
    fake_slack.fail_next("chat.postMessage", error="not_in_channel")
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    await bot.callback("veo", load("veo-success.json"))  # its root is refused for good
    await eventually(lambda: outbox(bot) and outbox(bot)[0][1] == "failed")
    await bot.callback("runway", load("runway-success.json"))  # another task, same channel
    [runway_root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    assert "5b8e1c2d" in runway_root.text
    await bot.callback("veo-4k", load("veo-4k-success.json"))  # later news of the first task
    roots = await eventually(
        lambda: len(fake_slack.roots(CHANNEL)) == 2 and fake_slack.roots(CHANNEL)
    )
    veo_root = roots[1]
    assert VEO_TASK in veo_root.text
    assert "3f9c2a7b1d4e_0.mp4" in veo_root.content and "3f9c2a7b1d4e_4k.mp4" in veo_root.content
    await eventually(lambda: all(s != "pending" for _, s, _, _ in outbox(bot)))
    assert len(fake_slack.roots(CHANNEL)) == 2 and fake_slack.replies(veo_root) == []


async def test_metrics_after_network_errors_hold_no_exception_text(start_bot, fake_slack):
    fake_slack.fail_next("chat.postMessage", drop=True)
    fake_slack.fail_next("chat.postMessage", status=503)
    fake_slack.fail_next("chat.postMessage", error="weird error: with <text>")
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    await bot.callback("veo", load("veo-success.json"))
    await eventually(lambda: fake_slack.roots(CHANNEL), timeout=20)
    metrics = await scrape(bot)
    outcomes = {
        dict(labels)["outcome"]: value
        for (name, labels), value in metrics.items()
        if name == "kie_slack_slack_calls_total"
    }
    assert outcomes == {"network_error": 1, "http_503": 1, "other": 1, "ok": 1}
    for _, labels in metrics:
        for _, value in labels:
            assert ":" not in value and " " not in value and "Error" not in value
    assert metrics[("kie_slack_slack_call_seconds_count", (("method", "chat.postMessage"),))] == 4


async def test_operator_resends_a_refused_row_while_the_bot_runs(tmp_path, fake_slack):
    fake_slack.channel_errors["C0PRIVATE"] = "not_in_channel"
    env = service_env(tmp_path, free_port(), "bot.db", slack=fake_slack)
    env |= {"KIE_DEFAULT_CHANNEL": "C0PRIVATE", "SLACK_SAVE_VIDEOS": "off"}
    process = BotProcess(env, tmp_path, int(env["PORT"]))
    try:
        await asyncio.to_thread(process.wait_healthy)
        sent = await kie_slack("send", "veo", str(CALLBACKS / "veo-success.json"), env=env)
        assert sent.returncode == 0, sent.stderr
        await eventually(lambda: outbox_counts(tmp_path / "bot.db").get("failed") == 1)
        listing = (await kie_slack("outbox", env=env)).stdout
        assert "not_in_channel" in listing and VEO_TASK in listing and "C0PRIVATE" in listing
        assert "0 pending, 1 failed" in listing

        del fake_slack.channel_errors["C0PRIVATE"]  # the bot was invited
        retried = await kie_slack("outbox", "retry", "--failed", env=env)
        assert retried.returncode == 0 and "due again" in retried.stdout
        [root] = await eventually(lambda: fake_slack.roots("C0PRIVATE"), timeout=10)
        assert VEO_TASK in root.text
        await eventually(lambda: set(outbox_counts(tmp_path / "bot.db")) == {"done"})
        assert "No pending or failed" in (await kie_slack("outbox", env=env)).stdout
        again = await kie_slack("outbox", "retry", "1", env=env)
        assert again.returncode == 1 and "Not pending or failed" in again.stdout
        check = await kie_slack("check", env=env)
        assert "0 pending, 0 failed" in check.stdout
    finally:
        assert process.terminate() == 0
