"""The /kie command over real HTTP: signed slash commands, fake Slack, fake kie.ai."""

from __future__ import annotations

import json
import sqlite3
from urllib.parse import urlencode

import pytest

from bot.kie.products import POLL_PRODUCTS
from tests.conftest import eventually, load, poll, signed_form_headers, slash

CHANNEL = "C0CMD"
VEO_RECORD = "/api/v1/veo/record-info"
RUNWAY_RECORD = "/api/v1/runway/record-detail"
VEO_TASK = "veo_task_3f9c2a7b1d4e"
RUNWAY_TASK = "5b8e1c2d-7a41-4f0e-9c3b-2d6f8a1e4b70"


def error(code: int, msg: str = "error"):
    return 200, {"code": code, "msg": msg, "data": None}


def texts(fake_slack) -> list[str]:
    return [r.get("text", "") + json.dumps(r.get("blocks", [])) for r in fake_slack.responses]


async def test_help_and_empty_text_show_usage(start_bot, fake_slack):
    bot = await start_bot(fake_slack)
    for text in ("help", "", "   "):
        status, answer = await slash(bot, fake_slack, text)
        assert status == 200
        assert answer["response_type"] == "ephemeral"
        assert "/kie status <taskId>" in answer["text"] and "/kie poll" in answer["text"]


async def test_bad_signature_is_refused(start_bot, fake_slack):
    bot = await start_bot(fake_slack)
    status, _ = await slash(bot, fake_slack, "help", secret="wrong-secret")
    assert status == 401


async def test_unknown_sub_command(start_bot, fake_slack):
    bot = await start_bot(fake_slack)
    _, answer = await slash(bot, fake_slack, "dance now")
    assert "Unknown sub-command `dance`" in answer["text"] and "/kie help" in answer["text"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status", "Which task?"),
        ("poll", "Which task?"),
        ("status a b c", "Too many words"),
        ("status " + "x" * 5000, "not a kie.ai task id"),
        ("status abc\x07def", "not a kie.ai task id"),
        ("status <@U123>", "not a kie.ai task id"),
        ("status abc sora", "Unknown product `sora`"),
        ("poll abc sora", "veo, veo-4k, runway, luma, suno-mp4"),
    ],
)
async def test_malformed_ids_and_products_say_what_to_type(
    start_bot, fake_slack, fake_kie, text, expected
):
    bot = await start_bot(fake_slack, fake_kie)
    status, answer = await slash(bot, fake_slack, text)
    assert status == 200
    assert expected in answer["text"]
    assert answer["response_type"] == "ephemeral"
    assert fake_kie.requests == []


async def test_status_of_a_known_final_task(start_bot, fake_slack):
    bot = await start_bot(fake_slack)
    await bot.callback("veo", load("veo-success.json"))
    _, answer = await slash(bot, fake_slack, f"status {VEO_TASK}")
    assert answer["response_type"] == "ephemeral"
    assert VEO_TASK in answer["text"]
    assert "3f9c2a7b1d4e_0.mp4" in json.dumps(answer["blocks"])


async def test_status_of_a_known_failure_is_explained(start_bot, fake_slack):
    bot = await start_bot(fake_slack)
    await bot.callback("runway", load("runway-concurrency-limit.json"))
    _, answer = await slash(bot, fake_slack, f"status {RUNWAY_TASK}")
    assert "Concurrency limit" in json.dumps(answer["blocks"])


async def test_status_of_an_unknown_task_asks_every_product(start_bot, fake_slack, fake_kie):
    fake_kie.script(RUNWAY_RECORD, RUNWAY_TASK, poll("runway-record-detail-success.json"))
    bot = await start_bot(fake_slack, fake_kie)
    _, answer = await slash(bot, fake_slack, f"status {RUNWAY_TASK}")
    assert "Asking kie.ai" in answer["text"]
    [card] = await eventually(lambda: texts(fake_slack))
    assert "5b8e1c2d.mp4" in card
    asked = {path for path, query in fake_kie.requests if query.get("taskId") == RUNWAY_TASK}
    assert asked == {product.poll_path for product in POLL_PRODUCTS}
    assert {"/api/v1/modify/record-info", "/api/v1/mj/record-info"} <= asked
    with sqlite3.connect(bot.settings.database_path) as db:
        assert db.execute("SELECT state, source FROM tasks").fetchall() == [("succeeded", "poll")]


async def test_status_with_a_product_asks_only_that_endpoint(start_bot, fake_slack, fake_kie):
    fake_kie.script(VEO_RECORD, VEO_TASK, poll("veo-record-info-failed-2.json"))
    bot = await start_bot(fake_slack, fake_kie)
    await slash(bot, fake_slack, f"status {VEO_TASK} veo")
    [card] = await eventually(lambda: texts(fake_slack))
    assert "Content moderation" in card
    assert {path for path, _ in fake_kie.requests} == {VEO_RECORD}


async def test_status_of_a_task_nobody_knows(start_bot, fake_slack, fake_kie):
    bot = await start_bot(fake_slack, fake_kie)
    await slash(bot, fake_slack, "status no_such_task")
    [text] = await eventually(lambda: texts(fake_slack))
    assert "kie.ai has no task `no_such_task`" in text


async def test_status_without_a_key_names_the_variable(start_bot, fake_slack):
    bot = await start_bot(fake_slack)
    _, answer = await slash(bot, fake_slack, "status never_seen")
    assert "KIE_API_KEY" in answer["text"]


async def test_status_of_a_running_task_asks_kie_first(start_bot, fake_slack, fake_kie):
    fake_kie.script(
        VEO_RECORD,
        VEO_TASK,
        poll("veo-record-info-generating.json"),
        poll("veo-record-info-success.json"),
    )
    bot = await start_bot(fake_slack, fake_kie)
    await slash(bot, fake_slack, f"status {VEO_TASK}")
    await eventually(lambda: len(fake_slack.responses) == 1)
    await slash(bot, fake_slack, f"status {VEO_TASK}")
    await eventually(lambda: len(fake_slack.responses) == 2)
    assert "3f9c2a7b1d4e_0.mp4" in texts(fake_slack)[1]
    assert "polling" in texts(fake_slack)[1].lower()  # the card says the result came from a poll


async def test_status_during_a_kie_outage_shows_the_own_record(start_bot, fake_slack, fake_kie):
    fake_kie.script(VEO_RECORD, VEO_TASK, poll("veo-record-info-generating.json"), error(500))
    bot = await start_bot(fake_slack, fake_kie)
    await slash(bot, fake_slack, f"status {VEO_TASK}")
    await eventually(lambda: len(fake_slack.responses) == 1)
    await slash(bot, fake_slack, f"status {VEO_TASK}")
    await eventually(lambda: len(fake_slack.responses) == 2, timeout=15)
    answer = texts(fake_slack)[1]
    assert "own record" in answer and "not answering" in answer


async def test_status_when_kie_is_down_and_the_task_is_unknown(start_bot, fake_slack, fake_kie):
    fake_kie.default = error(
        455, "Service Unavailable - System is currently undergoing maintenance"
    )
    bot = await start_bot(fake_slack, fake_kie)
    await slash(bot, fake_slack, "status somewhere_task")
    [text] = await eventually(lambda: texts(fake_slack), timeout=15)
    assert "not answering" in text and "Try again" in text


async def test_poll_follows_until_success_then_stops(start_bot, fake_slack, fake_kie):
    fake_kie.script(
        VEO_RECORD,
        VEO_TASK,
        poll("veo-record-info-generating.json"),
        poll("veo-record-info-generating.json"),
        poll("veo-record-info-success.json"),
    )
    bot = await start_bot(fake_slack, fake_kie)
    _, answer = await slash(bot, fake_slack, f"poll {VEO_TASK} veo", channel="C0POLL")
    assert "Asking kie.ai" in answer["text"]
    [ack] = await eventually(lambda: texts(fake_slack))
    assert "follows it now" in ack and "still generating" in ack
    [root] = await eventually(lambda: fake_slack.roots("C0POLL"))
    assert "generating" in root.content.lower()
    [reply] = await eventually(lambda: fake_slack.replies(root), timeout=15)
    assert "3f9c2a7b1d4e_0.mp4" in reply.content
    assert "poll" in reply.content.lower()
    await eventually(lambda: root.updates)
    assert "3f9c2a7b1d4e_0.mp4" in root.content
    polls = fake_kie.polls(VEO_TASK)
    assert polls == 3
    with sqlite3.connect(bot.settings.database_path) as db:
        assert db.execute("SELECT next_poll_at FROM tasks").fetchall() == [(None,)]


async def test_poll_survives_429_and_455(start_bot, fake_slack, fake_kie):
    fake_kie.script(
        RUNWAY_RECORD,
        RUNWAY_TASK,
        (429, {"code": 429, "msg": "Rate Limited", "data": None}),
        error(455, "maintenance"),
        poll("runway-record-detail-success.json"),
    )
    bot = await start_bot(fake_slack, fake_kie)
    await slash(bot, fake_slack, f"poll {RUNWAY_TASK} runway", channel="C0RATE")
    [root] = await eventually(lambda: fake_slack.roots("C0RATE"), timeout=15)
    assert "5b8e1c2d.mp4" in root.content


async def test_poll_of_a_finished_task_posts_it_and_does_not_keep_polling(
    start_bot, fake_slack, fake_kie
):
    fake_kie.script(VEO_RECORD, VEO_TASK, poll("veo-record-info-success.json"))
    bot = await start_bot(fake_slack, fake_kie)
    await slash(bot, fake_slack, f"poll {VEO_TASK}", channel="C0DONE")
    [root] = await eventually(lambda: fake_slack.roots("C0DONE"))
    assert "3f9c2a7b1d4e_0.mp4" in root.content
    [text] = await eventually(lambda: texts(fake_slack))
    assert "already succeeded" in text


async def test_poll_from_two_channels_gives_each_its_own_thread(start_bot, fake_slack, fake_kie):
    fake_kie.script(VEO_RECORD, VEO_TASK, poll("veo-record-info-success.json"))
    bot = await start_bot(fake_slack, fake_kie)
    await slash(bot, fake_slack, f"poll {VEO_TASK}", channel="C0ONE")
    await slash(bot, fake_slack, f"poll {VEO_TASK}", channel="C0TWO")
    await slash(bot, fake_slack, f"poll {VEO_TASK}", channel="C0TWO")
    await eventually(lambda: fake_slack.roots("C0ONE") and fake_slack.roots("C0TWO"))
    await eventually(lambda: len(fake_slack.responses) == 3)
    assert "already follows" in texts(fake_slack)[2]
    assert len(fake_slack.roots("C0TWO")) == 1


async def test_poll_without_a_key_names_the_variable(start_bot, fake_slack):
    bot = await start_bot(fake_slack)
    _, answer = await slash(bot, fake_slack, f"poll {VEO_TASK}")
    assert "KIE_API_KEY" in answer["text"]


async def test_poll_with_a_refused_key(start_bot, fake_slack, fake_kie):
    fake_kie.api_key = "another-key"
    bot = await start_bot(fake_slack, fake_kie, kie_api_key="wrong-key")
    await slash(bot, fake_slack, f"poll {VEO_TASK} veo")
    [text] = await eventually(lambda: texts(fake_slack))
    assert "KIE_API_KEY" in text and "401" in text


async def test_polling_gives_up_after_a_day(start_bot, fake_slack, fake_kie):
    fake_kie.script(VEO_RECORD, VEO_TASK, poll("veo-record-info-generating.json"))
    bot = await start_bot(fake_slack, fake_kie)
    await slash(bot, fake_slack, f"poll {VEO_TASK}", channel="C0LONG")
    [root] = await eventually(lambda: fake_slack.roots("C0LONG"))
    with sqlite3.connect(bot.settings.database_path) as db:  # a day passes
        db.execute("UPDATE tasks SET poll_until = 1, next_poll_at = 1")
    [notice] = await eventually(lambda: fake_slack.replies(root), timeout=10)
    assert "stopped asking kie.ai" in notice.content and "/kie status" in notice.content
    polls = fake_kie.polls(VEO_TASK)
    with sqlite3.connect(bot.settings.database_path) as db:
        assert db.execute("SELECT next_poll_at, poll_until FROM tasks").fetchall() == [(None, -1)]
    await slash(bot, fake_slack, "help")  # the bot is alive, and asks kie.ai no more
    assert fake_kie.polls(VEO_TASK) == polls


async def test_a_quiet_followed_task_is_polled_without_anyone_asking(
    start_bot, fake_slack, fake_kie
):
    fake_kie.script(VEO_RECORD, VEO_TASK, poll("veo-record-info-generating.json"))
    bot = await start_bot(fake_slack, fake_kie)
    await slash(bot, fake_slack, f"poll {VEO_TASK}", channel="C0QUIET")
    [root] = await eventually(lambda: fake_slack.roots("C0QUIET"))
    with sqlite3.connect(bot.settings.database_path) as db:  # unscheduled, no news for 10 min
        db.execute(
            "UPDATE tasks SET next_poll_at = NULL, poll_until = NULL, updated_at = updated_at - 601"
        )
    fake_kie.scripts[(VEO_RECORD, VEO_TASK)] = [poll("veo-record-info-success.json")]
    [reply] = await eventually(lambda: fake_slack.replies(root), timeout=10)
    assert "3f9c2a7b1d4e_0.mp4" in reply.content


async def test_list_shows_the_channel_tasks(start_bot, fake_slack):
    bot = await start_bot(fake_slack, kie_default_channel="C0LIST")
    await bot.callback("veo", load("veo-success.json"))
    await bot.callback("runway", load("runway-moderation.json"))
    _, answer = await slash(bot, fake_slack, "list", channel="C0LIST")
    assert VEO_TASK in answer["text"] and RUNWAY_TASK in answer["text"]
    assert "ready" in answer["text"] and "failed" in answer["text"]
    _, empty = await slash(bot, fake_slack, "list", channel="C0EMPTY")
    assert "No tasks in this channel yet" in empty["text"]


async def test_url_issues_one_route_per_channel_that_routes_callbacks(start_bot, fake_slack):
    bot = await start_bot(fake_slack, public_url="https://bot.example.com")
    _, first = await slash(bot, fake_slack, "url", channel="C0ROUTE")
    _, again = await slash(bot, fake_slack, "url", channel="C0ROUTE")
    _, other = await slash(bot, fake_slack, "url", channel="C0OTHER")
    assert first["text"] == again["text"]
    assert first["text"] != other["text"]
    token = first["text"].split("https://bot.example.com/callbacks/veo/")[1].split("`")[0]
    assert len(token) >= 32
    for slug in ("veo", "veo-4k", "runway", "luma", "suno-mp4"):
        assert f"https://bot.example.com/callbacks/{slug}/{token}" in first["text"]
    assert await bot.callback("veo", load("veo-success.json"), route=token) == (
        200,
        {"status": "received"},
    )
    [root] = await eventually(lambda: fake_slack.roots("C0ROUTE"))
    assert "3f9c2a7b1d4e_0.mp4" in root.content
    other_token = other["text"].split("/callbacks/veo/")[1].split("`")[0]
    await bot.callback("veo-4k", load("veo-4k-success.json"), route=other_token)
    await eventually(lambda: fake_slack.replies(root))  # a followed task keeps its channel
    assert fake_slack.in_channel("C0OTHER") == []


async def test_credits(start_bot, fake_slack, fake_kie):
    bot = await start_bot(fake_slack, fake_kie)
    await slash(bot, fake_slack, "credits")
    [text] = await eventually(lambda: texts(fake_slack))
    assert "kie.ai credits remaining: *100*" in text


async def test_credits_without_a_key_and_during_an_outage(start_bot, fake_slack, fake_kie):
    bot = await start_bot(fake_slack)
    _, answer = await slash(bot, fake_slack, "credits")
    assert "KIE_API_KEY" in answer["text"]
    fake_kie.credits = (503, "Service Unavailable")
    bot = await start_bot(fake_slack, fake_kie)
    await slash(bot, fake_slack, "credits")
    [text] = await eventually(lambda: texts(fake_slack), timeout=15)
    assert "not answering" in text


async def test_link_button_clicks_are_acknowledged(start_bot, fake_slack):
    bot = await start_bot(fake_slack)
    payload = {
        "type": "block_actions",
        "team": {"id": "T000FAKE"},
        "user": {"id": "U0USER"},
        "api_app_id": "A0APP",
        "token": "x",
        "container": {"type": "message"},
        "trigger_id": "1.2",
        "channel": {"id": CHANNEL},
        "response_url": fake_slack.response_url(),
        "actions": [
            {"action_id": "open_video_1", "block_id": "b", "type": "button", "action_ts": "1"}
        ],
    }
    body = urlencode({"payload": json.dumps(payload)})
    async with bot.http.post(
        f"{bot.url}/slack/events", data=body, headers=signed_form_headers(body)
    ) as response:
        assert response.status == 200
        assert await response.text() == ""


async def test_a_locked_database_gets_a_plain_answer(start_bot, fake_slack):
    bot = await start_bot(fake_slack)
    # The lock may wait a moment for the bot's own background checkpoint to finish.
    locker = sqlite3.connect(bot.settings.database_path, timeout=5)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        status, answer = await slash(bot, fake_slack, "url", channel="C0LOCKED")
        assert status == 200  # acknowledged in time even though the database keeps it waiting
        assert answer["text"] == "Working on it…"
        [text] = await eventually(lambda: texts(fake_slack))
    finally:
        locker.rollback()
        locker.close()
    assert "database is not answering" in text


async def test_slash_commands_work_in_console_mode(start_bot, fake_slack):
    bot = await start_bot()  # no SLACK_BOT_TOKEN: messages print, commands still answer
    status, answer = await slash(bot, fake_slack, "help")
    assert status == 200
    assert "/kie status" in answer["text"]
    await bot.callback("veo", load("veo-success.json"))
    _, listed = await slash(bot, fake_slack, "list", channel="console")
    assert VEO_TASK in listed["text"]
