"""The market product over real HTTP: jobs-API callbacks and recordInfo polls, fake Slack and kie.ai."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from tests.conftest import FIXTURES, HMAC_KEY, eventually, slash
from tests.fakes.kie import MARKET_RECORD

MARKET = FIXTURES / "market"
SUCCESS_TASK = "e8b7c6d5a4f3e2d1c0b9a8f7e6d5c4b3"
FAIL_TASK = "f1e2d3c4b5a697887766554433221100"
VIDEO = "https://tempfile.aiquickdraw.com/f/e8b7c6d5a4f3e2d1c0b9a8f7e6d5c4b3_0.mp4"


def market(name: str) -> Any:
    return json.loads((MARKET / name).read_text())


def stored(bot, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(bot.settings.database_path) as db:
        return db.execute(sql).fetchall()


def answers(fake_slack) -> list[str]:
    """What the slash commands answered by response URL: text and blocks."""
    return [r.get("text", "") + json.dumps(r.get("blocks", [])) for r in fake_slack.responses]


# --- callbacks --------------------------------------------------------------------------------


async def test_success_callback_lands_as_a_card_with_model_and_credits(start_bot, fake_slack):
    bot = await start_bot(fake_slack, kie_default_channel="C0MARKET")
    body = market("callback-success.json")
    assert await bot.callback("market", body) == (200, {"status": "received"})
    [root] = await eventually(lambda: fake_slack.roots("C0MARKET"))
    assert "kie.ai Market video ready" in root.content
    assert "Kling 2.6 text to video" in root.content and "Kling 2.6 text to video" in root.text
    assert "*Credits used:* 55" in root.content
    assert VIDEO in root.content and SUCCESS_TASK in root.text
    assert "may expire within a day" in root.content and "14 days" not in root.content
    assert stored(bot, "SELECT product, state, model, credits FROM tasks") == [
        ("market", "succeeded", "kling-2.6/text-to-video", 55.0)
    ]
    # kie.ai retries: the same callback again, in another key order, is a duplicate.
    again = json.dumps(body, sort_keys=True, indent=2).encode()
    assert await bot.callback("market", again) == (200, {"status": "duplicate"})
    await slash(bot, fake_slack, "help")  # let the bot finish anything it would have queued
    assert len(fake_slack.in_channel("C0MARKET")) == 1 and root.updates == []


async def test_failure_callback_is_explained_with_model_and_credits(start_bot, fake_slack):
    bot = await start_bot(fake_slack, kie_default_channel="C0MARKET")
    assert (await bot.callback("market", market("callback-fail.json")))[0] == 200
    assert (await bot.callback("market", market("callback-fail-no-failmsg.json")))[0] == 200
    moderated, silent = await eventually(
        lambda: len(fake_slack.roots("C0MARKET")) == 2 and fake_slack.roots("C0MARKET")
    )
    assert "kie.ai Market task failed" in moderated.content
    assert "Wan 2.6 text to video" in moderated.content
    assert "Content moderation" in moderated.content and "content moderation system" in (
        moderated.content
    )
    assert "*Credits used:* 0" in moderated.content
    assert moderated.text.endswith("failed: Content moderation")
    assert "Hailuo 2.3 image to video Pro" in silent.content
    assert "Provider error" in silent.content and "code 501" in silent.content


async def test_routed_callback_posts_into_the_channel_of_the_route(start_bot, fake_slack):
    bot = await start_bot(fake_slack, public_url="https://bot.example.com")
    _, answer = await slash(bot, fake_slack, "url", channel="C0ROUTED")
    assert "kie.ai Market" in answer["text"]
    token = answer["text"].split("https://bot.example.com/callbacks/market/")[1].split("`")[0]
    body = market("callback-success-consume-credits.json")
    assert await bot.callback("market", body, route=token) == (200, {"status": "received"})
    [root] = await eventually(lambda: fake_slack.roots("C0ROUTED"))
    assert "Seedance 1.5 Pro" in root.content and "*Credits used:* 72.5" in root.content
    assert root.content.count("Open video") == 2
    status, error = await bot.callback("market", body, route="no-such-route")
    assert status == 404 and "route" in error["error"]


async def test_signed_market_callbacks(start_bot):
    bot = await start_bot(kie_webhook_hmac_key=HMAC_KEY)
    body = market("callback-success.json")
    assert (await bot.callback("market", body, sign=False))[0] == 401
    assert await bot.callback("market", body) == (200, {"status": "received"})


async def test_market_callbacks_that_cannot_be_read_get_a_clear_400(start_bot):
    bot = await start_bot()
    body = market("callback-success.json")
    body["data"]["taskId"] = ""
    status, error = await bot.callback("market", body)
    assert status == 400 and "data.taskId" in error["error"]
    assert (await bot.callback("market", b"{not json"))[0] == 400
    odd = market("callback-success.json")
    odd["data"].update(resultJson="{broken", model=["x"], creditsConsumed="lots", param=7)
    assert await bot.callback("market", odd) == (200, {"status": "received"})
    assert stored(bot, "SELECT model, credits FROM tasks") == [(None, None)]


# --- /kie status and /kie poll ----------------------------------------------------------------


async def test_status_with_market_asks_only_record_info(start_bot, fake_slack, fake_kie):
    fake_kie.script_market(SUCCESS_TASK, "success")
    bot = await start_bot(fake_slack, fake_kie)
    _, answer = await slash(bot, fake_slack, f"status {SUCCESS_TASK} market")
    assert "Asking kie.ai" in answer["text"]
    [card] = await eventually(lambda: answers(fake_slack))
    assert VIDEO in card and "Kling 2.6 text to video" in card
    assert "may expire within a day" in card and "polling" in card.lower()
    assert {path for path, _ in fake_kie.requests} == {MARKET_RECORD}


async def test_status_of_a_failed_market_task(start_bot, fake_slack, fake_kie):
    fake_kie.script_market(FAIL_TASK, "fail")
    bot = await start_bot(fake_slack, fake_kie)
    await slash(bot, fake_slack, f"status {FAIL_TASK} market")
    [card] = await eventually(lambda: answers(fake_slack))
    assert "Content moderation" in card and "Wan 2.6 text to video" in card
    assert "code 500" in card


async def test_status_of_a_running_market_task(start_bot, fake_slack, fake_kie):
    fake_kie.script_market(SUCCESS_TASK, "generating")
    bot = await start_bot(fake_slack, fake_kie)
    await slash(bot, fake_slack, f"status {SUCCESS_TASK} market")
    [card] = await eventually(lambda: answers(fake_slack))
    assert "kie.ai Market is generating" in card and "Kling 2.6 text to video" in card
    assert stored(bot, "SELECT state, model FROM tasks") == [("running", "kling-2.6/text-to-video")]


async def test_status_without_a_product_finds_a_market_task(start_bot, fake_slack, fake_kie):
    fake_kie.script_market(SUCCESS_TASK, "success")
    bot = await start_bot(fake_slack, fake_kie)
    await slash(bot, fake_slack, f"status {SUCCESS_TASK}")
    [card] = await eventually(lambda: answers(fake_slack))
    assert VIDEO in card
    assert stored(bot, "SELECT product FROM tasks") == [("market",)]


async def test_unknown_product_answers_list_market(start_bot, fake_slack):
    bot = await start_bot(fake_slack)
    _, answer = await slash(bot, fake_slack, "status abc sora")
    assert "market" in answer["text"]
    _, usage = await slash(bot, fake_slack, "help")
    assert "market" in usage["text"]


async def test_poll_follows_a_market_task_until_its_result(start_bot, fake_slack, fake_kie):
    fake_kie.script_market(SUCCESS_TASK, "generating", "generating", "success")
    bot = await start_bot(fake_slack, fake_kie)
    await slash(bot, fake_slack, f"poll {SUCCESS_TASK} market", channel="C0FOLLOW")
    [ack] = await eventually(lambda: answers(fake_slack))
    assert "follows it now" in ack and "still generating" in ack and "kie.ai Market" in ack
    [root] = await eventually(lambda: fake_slack.roots("C0FOLLOW"))
    assert "generating" in root.content.lower() and "Kling 2.6 text to video" in root.content
    [reply] = await eventually(lambda: fake_slack.replies(root), timeout=15)
    assert VIDEO in reply.content and "Kling 2.6 text to video" in reply.content
    assert "may expire within a day" in reply.content
    await eventually(lambda: root.updates)
    assert VIDEO in root.content and "14 days" not in root.content
    assert fake_kie.polls(SUCCESS_TASK) == 3
    assert {path for path, _ in fake_kie.requests} == {MARKET_RECORD}
    assert stored(bot, "SELECT next_poll_at FROM tasks") == [(None,)]


async def test_poll_of_a_failed_market_task(start_bot, fake_slack, fake_kie):
    fake_kie.script_market(FAIL_TASK, "fail")
    bot = await start_bot(fake_slack, fake_kie)
    await slash(bot, fake_slack, f"poll {FAIL_TASK} market", channel="C0FAILED")
    [root] = await eventually(lambda: fake_slack.roots("C0FAILED"))
    assert "Content moderation" in root.content and "Wan 2.6 text to video" in root.content
    [ack] = await eventually(lambda: answers(fake_slack))
    assert "already failed" in ack


async def test_callback_after_a_poll_brings_the_credits_into_the_thread(
    start_bot, fake_slack, fake_kie
):
    fake_kie.script_market(SUCCESS_TASK, "generating")
    bot = await start_bot(fake_slack, fake_kie)
    await slash(bot, fake_slack, f"poll {SUCCESS_TASK} market", channel="C0BOTH")
    [root] = await eventually(lambda: fake_slack.roots("C0BOTH"))
    body = market("callback-success.json")
    assert await bot.callback("market", body) == (200, {"status": "received"})
    [reply] = await eventually(lambda: fake_slack.replies(root))
    assert VIDEO in reply.content and "*Credits used:* 55" in reply.content
    await eventually(lambda: root.updates and "*Credits used:* 55" in root.content)
    assert await bot.callback("market", body) == (200, {"status": "duplicate"})
    await slash(bot, fake_slack, "help")
    assert len(fake_slack.replies(root)) == 1
