"""A home in Slack over real HTTP: the Home tab (a person's, an admin's, republished once per
burst of changes) and the direct message when a generation of yours is done (on success and
on failure, none after `/kie notify off`, none for a task not started from Slack)."""

from __future__ import annotations

import itertools
import json
import sqlite3
from typing import Any

from tests.conftest import Clock, eventually, load, signed_form_headers, slash

CHANNEL = "C0HOME"
ASKER = "U0ASKER"
ADMIN = "U0ADMIN"
PUBLIC = "https://bot.example.com"
_EVENTS = itertools.count(1)


async def start(start_bot, fake_slack, fake_kie, **settings: Any):
    return await start_bot(fake_slack, fake_kie, public_url=PUBLIC, **settings)


async def open_home(bot, user: str) -> None:
    """Slack's `app_home_opened` event for `user`, signed and POSTed like Slack."""
    n = next(_EVENTS)
    body = json.dumps(
        {
            "token": "legacy-verification-token",
            "team_id": "T000FAKE",
            "api_app_id": "A0APP",
            "type": "event_callback",
            "event_id": f"Ev{n:08d}",
            "event_time": 1_800_000_000 + n,
            "event": {
                "type": "app_home_opened",
                "user": user,
                "channel": "D0BOT",
                "tab": "home",
                "event_ts": f"1800000000.{n:06d}",
            },
        }
    )
    headers = signed_form_headers(body) | {"Content-Type": "application/json"}
    async with bot.http.post(f"{bot.url}/slack/events", data=body, headers=headers) as response:
        assert response.status == 200


async def started(bot, fake_slack, fake_kie, text: str, user: str = ASKER):
    """`/kie <text>` starts a generation; kie.ai's record of it, once its root is out."""
    count = len(fake_kie.started)
    await slash(bot, fake_slack, text, channel=CHANNEL, user=user)
    await eventually(lambda: len(fake_kie.started) > count)
    task = fake_kie.started[count]
    await eventually(lambda: any(task.task_id in m.text for m in fake_slack.roots(CHANNEL)))
    return task


async def deliver(bot, fake_kie, task_id: str, outcome: str = "success") -> None:
    """kie.ai's callback for a started task, to the bot's own address."""
    path = fake_kie.task(task_id).callback_url[len(PUBLIC) :]
    body = fake_kie.task(task_id).callback_body(outcome)
    async with bot.http.post(bot.url + path, json=body) as response:
        assert response.status == 200


def root_of(fake_slack, task_id: str):
    return next(m for m in fake_slack.roots(CHANNEL) if task_id in m.text)


def link_to(message) -> str:
    return f"https://fake.slack.com/archives/{message.channel}/p{message.ts.replace('.', '')}"


def stored(bot, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(bot.settings.database_path) as db:
        return db.execute(sql).fetchall()


def dms(fake_slack, user: str = ASKER) -> list[Any]:
    return fake_slack.in_channel(fake_slack.dm_channel(user))


# --- the Home tab -----------------------------------------------------------------------------


async def test_a_person_sees_what_runs_their_results_and_their_usage(
    start_bot, fake_slack, fake_kie
):
    clock = Clock()
    bot = await start(start_bot, fake_slack, fake_kie, clock=clock, kie_daily_limit_per_person=5)
    done = await started(bot, fake_slack, fake_kie, "veo a paper boat in the rain")
    await deliver(bot, fake_kie, done.task_id)
    await eventually(lambda: "video ready" in root_of(fake_slack, done.task_id).content)
    running = await started(bot, fake_slack, fake_kie, "runway a lighthouse at dusk")
    clock.now += 120  # two minutes on: the tab opened now is published at once
    await open_home(bot, ASKER)
    await eventually(lambda: "a lighthouse at dusk" in fake_slack.home(ASKER))
    home = fake_slack.home(ASKER)
    running_part, results_part = home.split("Your recent results")
    assert "Running now* (1)" in running_part and "Runway video" in running_part
    assert "running for 2 min" in running_part
    assert link_to(root_of(fake_slack, running.task_id)) in running_part
    assert "a paper boat in the rain" in results_part and "✅ ready" in results_part
    assert link_to(root_of(fake_slack, done.task_id)) in results_part
    assert "Your usage today (UTC):* 2 of 5" in home
    assert "For admins" not in home and "credits" not in home.lower()
    # Another person's Home tab shows none of it.
    await open_home(bot, "U0OTHER")
    await eventually(lambda: fake_slack.home("U0OTHER"))
    assert "paper boat" not in fake_slack.home("U0OTHER")
    assert "Nothing of yours is running" in fake_slack.home("U0OTHER")


async def test_an_admin_also_sees_the_credits_the_outbox_and_the_version(
    start_bot, fake_slack, fake_kie
):
    fake_kie.credits = (200, {"code": 200, "msg": "success", "data": 1234.5})
    bot = await start(
        start_bot, fake_slack, fake_kie, kie_admins=(ADMIN,), kie_daily_limit_per_person=5
    )
    await started(bot, fake_slack, fake_kie, "veo a red kite", user=ADMIN)
    await open_home(bot, ADMIN)
    await eventually(lambda: "a red kite" in fake_slack.home(ADMIN))
    home = fake_slack.home(ADMIN)
    assert "not limited (you are an admin)" in home
    assert "kie.ai credits:* 1,234.5" in home
    assert "*Outbox:*" in home and "0 failed" in home
    assert "*Version:* kie-slack 0.1.0" in home


async def test_an_admin_is_told_when_the_credits_are_unknown(start_bot, fake_slack, fake_kie):
    fake_kie.credits = (200, {"code": 401, "msg": "Unauthorized", "data": None})
    bot = await start(start_bot, fake_slack, fake_kie, kie_admins=(ADMIN,))
    await open_home(bot, ADMIN)
    await eventually(lambda: fake_slack.home(ADMIN))
    assert "kie.ai credits:* unknown (kie.ai refused the API key" in fake_slack.home(ADMIN)


async def test_a_burst_of_changes_is_published_once_ten_seconds_after_the_last(
    start_bot, fake_slack, fake_kie
):
    clock = Clock()
    t0 = clock.now
    bot = await start(start_bot, fake_slack, fake_kie, clock=clock)
    first = await started(bot, fake_slack, fake_kie, "veo a paper boat")
    [published] = await eventually(lambda: fake_slack.homes.get(ASKER))  # the start changed it
    assert "a paper boat" in json.dumps(published)
    # Within the next 10 s: another start, a success and a failure. Nothing more is
    # published yet; the one row waits for 10 s after the publish.
    clock.now = t0 + 2
    second = await started(bot, fake_slack, fake_kie, "runway a lighthouse")
    clock.now = t0 + 3
    await deliver(bot, fake_kie, first.task_id)
    clock.now = t0 + 4
    await deliver(bot, fake_kie, second.task_id, "fail")
    await eventually(lambda: len(dms(fake_slack)) == 2)  # the news is all in
    assert stored(bot, "SELECT status, next_attempt_at FROM outbox WHERE kind = 'home'") == [
        ("pending", t0 + 10)
    ]
    assert len(fake_slack.homes[ASKER]) == 1
    clock.now = t0 + 10
    await eventually(lambda: len(fake_slack.homes[ASKER]) == 2)
    await eventually(
        lambda: stored(bot, "SELECT status FROM outbox WHERE kind = 'home'") == [("done",)]
    )
    latest = fake_slack.home(ASKER)
    assert "Running now* (0)" in latest and "✅ ready" in latest and "❌ failed" in latest
    assert len(fake_slack.homes[ASKER]) == 2


# --- a direct message when yours is done ------------------------------------------------------


async def test_the_person_who_started_it_gets_a_message_on_success_and_on_failure(
    start_bot, fake_slack, fake_kie
):
    bot = await start(start_bot, fake_slack, fake_kie)
    video = await started(bot, fake_slack, fake_kie, "veo a paper boat in the rain")
    await deliver(bot, fake_kie, video.task_id)
    [ready] = await eventually(lambda: dms(fake_slack))
    assert "Your Veo 3.1 video is ready" in ready.content
    assert "a paper boat in the rain" in ready.content and video.task_id in ready.content
    assert link_to(root_of(fake_slack, video.task_id)) in ready.content
    image = await started(bot, fake_slack, fake_kie, "image a red fox")
    await deliver(bot, fake_kie, image.task_id, "fail")
    [_, failed] = await eventually(lambda: dms(fake_slack)[1:] and dms(fake_slack))
    assert "❌ Your" in failed.text and "image failed" in failed.text
    assert "video" not in failed.content.lower()
    assert link_to(root_of(fake_slack, image.task_id)) in failed.content
    # kie.ai's callback again: nothing new, no second message.
    await deliver(bot, fake_kie, video.task_id)
    assert [row[0] for row in stored(bot, "SELECT key FROM outbox WHERE kind = 'dm'")] == [
        f"dm:veo:{video.task_id}",
        f"dm:market:{image.task_id}",
    ]
    assert len(dms(fake_slack)) == 2 and fake_slack.count("conversations.open") == 2


async def test_notify_off_stops_the_messages_and_on_brings_them_back(
    start_bot, fake_slack, fake_kie
):
    bot = await start(start_bot, fake_slack, fake_kie)
    _, answer = await slash(bot, fake_slack, "notify off", channel=CHANNEL, user=ASKER)
    assert answer["response_type"] == "ephemeral" and "No direct messages" in answer["text"]
    quiet = await started(bot, fake_slack, fake_kie, "veo a quiet lake")
    await deliver(bot, fake_kie, quiet.task_id)
    await eventually(lambda: fake_slack.replies(root_of(fake_slack, quiet.task_id)))
    # The reply and the message would be queued in one transaction: there is none.
    assert stored(bot, "SELECT COUNT(*) FROM outbox WHERE kind = 'dm'") == [(0,)]
    _, answer = await slash(bot, fake_slack, "notify", channel=CHANNEL, user=ASKER)
    assert "No direct messages" in answer["text"]
    _, answer = await slash(bot, fake_slack, "notify on", channel=CHANNEL, user=ASKER)
    assert "You get a direct message" in answer["text"]
    loud = await started(bot, fake_slack, fake_kie, "veo a loud waterfall")
    await deliver(bot, fake_kie, loud.task_id)
    [message] = await eventually(lambda: dms(fake_slack))
    assert "a loud waterfall" in message.content and "quiet lake" not in message.content
    _, answer = await slash(bot, fake_slack, "notify maybe", channel=CHANNEL, user=ASKER)
    assert "`/kie notify off` or `/kie notify on`" in answer["text"]


async def test_a_task_not_started_from_slack_sends_no_message(start_bot, fake_slack):
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    status, _ = await bot.callback("veo", load("veo-success.json"))
    assert status == 200
    await eventually(lambda: fake_slack.roots(CHANNEL))
    assert stored(bot, "SELECT kind FROM outbox WHERE kind IN ('dm', 'home')") == []
    assert fake_slack.count("conversations.open") == 0 and not fake_slack.homes


async def test_on_postgresql_the_tab_and_the_message_go_out_as_on_sqlite(
    start_bot, fake_slack, fake_kie, postgres_url
):
    clock = Clock()
    bot = await start(start_bot, fake_slack, fake_kie, clock=clock, postgres_url=postgres_url)
    task = await started(bot, fake_slack, fake_kie, "veo a paper boat")
    await eventually(lambda: fake_slack.homes.get(ASKER))
    await deliver(bot, fake_kie, task.task_id)
    [message] = await eventually(lambda: dms(fake_slack))
    assert link_to(root_of(fake_slack, task.task_id)) in message.content
    await open_home(bot, ASKER)  # within 10 s of the last publish: it waits, once
    clock.now += 10
    await eventually(lambda: len(fake_slack.homes[ASKER]) == 2)
    assert "✅ ready" in fake_slack.home(ASKER)
