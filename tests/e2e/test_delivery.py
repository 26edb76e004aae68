"""Slack delivery over real HTTP: cards, threads, routing, faults, pacing, console mode."""

from __future__ import annotations

import copy
import io
import json
import logging
import sqlite3

import pytest

from bot.kie.products import PRODUCTS
from bot.slack.delivery import ChannelPacer
from bot.task import State
from tests.conftest import callback_files, eventually, load, product_of

CHANNEL = "C0DEFAULT"


def with_task_id(body: dict, task_id: str) -> dict:
    body = copy.deepcopy(body)
    if "taskId" in body:  # Runway Aleph keeps its task id at the top level
        body["taskId"] = task_id
        return body
    key = "taskId" if "taskId" in body["data"] else "task_id"
    body["data"][key] = task_id
    return body


def outbox_rows(bot) -> list[tuple[str, str, str]]:
    with sqlite3.connect(bot.settings.database_path) as db:
        return db.execute("SELECT kind, channel, status FROM outbox ORDER BY id").fetchall()


async def test_success_card_in_the_default_channel(start_bot, fake_slack):
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    assert (await bot.callback("runway", load("runway-success.json")))[0] == 200
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    assert "5b8e1c2d-7a41-4f0e-9c3b-2d6f8a1e4b70" in root.text
    assert "https://example.com/kie/runway/5b8e1c2d.mp4" in root.content
    images = [b for b in root.blocks if b["type"] == "image"]
    assert images[0]["image_url"] == "https://example.com/kie/runway/5b8e1c2d.png"
    assert "expire" in root.content
    [(_, params, _)] = [c for c in fake_slack.calls if c[0] == "chat.postMessage"]
    assert params["unfurl_links"] is False and params["unfurl_media"] is False
    assert fake_slack.invalid == []


def _fixture_cases() -> list[tuple[str, str]]:
    cases = []
    for path in callback_files():
        cases.append((product_of(path.name), path.name))
    return cases


async def test_every_fixture_produces_its_card_and_heading(start_bot, fake_slack):
    from bot.kie.failures import explain_failure

    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    expected = {}
    for number, (slug, name) in enumerate(_fixture_cases()):
        task_id = f"task-{number:03d}"
        body = with_task_id(load(name), task_id)
        assert (await bot.callback(slug, body))[1] == {"status": "received"}
        update = PRODUCTS[slug].parse_callback(body)
        if update.result_urls:
            expected[task_id] = update.result_urls
        elif update.state is State.RUNNING:  # a stage of a Suno task: its card, still running
            expected[task_id] = ("⏳",)
        else:
            expected[task_id] = (
                explain_failure(slug, update.code, update.message).heading,
                update.message,
            )
    roots = await eventually(
        lambda: len(fake_slack.roots(CHANNEL)) == len(expected) and fake_slack.roots(CHANNEL)
    )
    by_task = {task_id: next(r for r in roots if task_id in r.text) for task_id in expected}
    for task_id, wanted in expected.items():
        content = by_task[task_id].content
        for piece in wanted:
            assert piece.replace("'", "\\u2019")[:40] in content or piece[:40] in content, (
                task_id,
                piece,
            )
    assert fake_slack.invalid == []


async def test_moderation_failure_card_says_what_to_do(start_bot, fake_slack):
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    await bot.callback("veo", load("veo-fail-400-content-policy.json"))
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    assert "Content moderation" in root.content
    assert "Your prompt was flagged by Website as violating content policies." in root.content
    assert "Next step" in root.content
    assert "veo_task_3f9c2a7b1d4e" in root.text and "fail" in root.text.lower()


async def test_duplicates_post_nothing(start_bot, fake_slack):
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    for _ in range(3):
        await bot.callback("luma", load("luma-success.json"))
    await eventually(lambda: fake_slack.roots(CHANNEL))
    await bot.callback("luma", load("luma-success.json"))
    await eventually(lambda: all(status == "done" for _, _, status in outbox_rows(bot)))
    assert fake_slack.count("chat.postMessage") == 1
    assert fake_slack.count("chat.update") == 0


async def test_later_news_replies_in_the_thread_and_updates_the_root(start_bot, fake_slack):
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    await bot.callback("veo", load("veo-success.json"))
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    await bot.callback("veo-4k", load("veo-4k-success.json"))
    [reply] = await eventually(lambda: fake_slack.replies(root))
    assert "3f9c2a7b1d4e_4k.mp4" in reply.content
    await eventually(lambda: root.updates)
    assert "3f9c2a7b1d4e_0.mp4" in root.content and "3f9c2a7b1d4e_4k.mp4" in root.content
    assert len(fake_slack.roots(CHANNEL)) == 1


async def test_a_failed_4k_upgrade_keeps_the_video(start_bot, fake_slack):
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    await bot.callback("veo", load("veo-success.json"))
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    await bot.callback("veo-4k", load("veo-4k-fail-500.json"))
    [reply] = await eventually(lambda: fake_slack.replies(root))
    assert "4K unavailable" in reply.content
    await eventually(lambda: root.updates)
    assert "3f9c2a7b1d4e_0.mp4" in root.content
    assert "4K unavailable" in root.content


async def test_success_after_failure(start_bot, fake_slack):
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    await bot.callback("runway", load("runway-fail-500.json"))
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    assert "Provider error" in root.content
    await bot.callback("runway", load("runway-success.json"))
    [reply] = await eventually(lambda: fake_slack.replies(root))
    assert "5b8e1c2d.mp4" in reply.content
    await eventually(lambda: root.updates)
    assert "5b8e1c2d.mp4" in root.content and "Provider error" not in root.content


async def test_news_before_the_root_is_sent_is_not_shown_twice(start_bot, fake_slack):
    fake_slack.fail_next("chat.postMessage", status=500)
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    await bot.callback("veo", load("veo-success.json"))
    await bot.callback("veo-4k", load("veo-4k-success.json"))
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL), timeout=15)
    await eventually(lambda: all(s != "pending" for _, _, s in outbox_rows(bot)), timeout=15)
    assert "3f9c2a7b1d4e_4k.mp4" in root.content
    assert fake_slack.replies(root) == []


async def test_unrouted_update_is_stored_not_posted(start_bot, fake_slack, caplog):
    bot = await start_bot(fake_slack)
    with caplog.at_level(logging.WARNING):
        assert await bot.callback("veo", load("veo-success.json")) == (200, {"status": "received"})
    assert "KIE_DEFAULT_CHANNEL" in caplog.text and "/kie url" in caplog.text
    assert outbox_rows(bot) == []
    assert fake_slack.count("chat.postMessage") == 0


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 429, "retry_after": 1, "error": "ratelimited"},
        {"status": 500},
        {"status": 503},
        {"error": "internal_error"},
        {"error": "fatal_error"},
        {"drop": True},
    ],
    ids=["429", "500", "503", "internal_error", "fatal_error", "dropped"],
)
async def test_faults_end_with_exactly_one_delivery(start_bot, fake_slack, fault):
    fake_slack.fail_next("chat.postMessage", **fault)
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    await bot.callback("suno-mp4", load("suno-mp4-success.json"))
    await eventually(lambda: fake_slack.roots(CHANNEL), timeout=15)
    await eventually(lambda: outbox_rows(bot) == [("root", CHANNEL, "done")])
    assert len(fake_slack.roots(CHANNEL)) == 1
    assert fake_slack.count("chat.postMessage") == 2


async def test_429_waits_retry_after(start_bot, fake_slack):
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=2, error="ratelimited")
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    await bot.callback("suno-mp4", load("suno-mp4-success.json"))
    await eventually(lambda: fake_slack.roots(CHANNEL), timeout=15)
    first, second = [at for method, _, at in fake_slack.calls if method == "chat.postMessage"]
    assert second - first >= 2.0


async def test_errors_that_cannot_pass_are_kept_and_do_not_block_others(
    start_bot, fake_slack, caplog
):
    fake_slack.channel_errors["CGONE"] = "channel_not_found"
    bot = await start_bot(fake_slack, kie_default_channel="CGONE")
    with caplog.at_level(logging.ERROR):
        await bot.callback("veo", load("veo-success.json"))
        await eventually(lambda: outbox_rows(bot) == [("root", "CGONE", "failed")])
    assert "channel_not_found" in caplog.text
    assert fake_slack.count("chat.postMessage") == 1
    with sqlite3.connect(bot.settings.database_path) as db:
        [(error,)] = db.execute("SELECT last_error FROM outbox").fetchall()
    assert error == "channel_not_found"


async def test_unreachable_image_is_sent_again_without_it(start_bot, fake_slack):
    fake_slack.reject_images = True
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    await bot.callback("runway", load("runway-success.json"))
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    assert not any(b["type"] == "image" for b in root.blocks)
    assert "5b8e1c2d.mp4" in root.content


async def test_posts_to_one_channel_are_paced(start_bot, fake_slack):
    bot = await start_bot(
        fake_slack, pacer=ChannelPacer(rate=4.0, burst=1), kie_default_channel=CHANNEL
    )
    for number in range(8):
        await bot.callback("veo", with_task_id(load("veo-success.json"), f"paced-{number}"))
    await eventually(lambda: len(fake_slack.roots(CHANNEL)) == 8)
    times = [at for method, params, at in fake_slack.calls if method == "chat.postMessage"]
    # After the burst of one, at most 4 a second: 7 gaps of 0.25 s. A post held up on the way
    # (a loaded machine) can bring the next one closer, never the whole run.
    assert times[-1] - times[0] >= 7 * 0.25 - 0.3, times


async def test_console_mode_prints_cards(tmp_path):
    from bot.config import Settings
    from bot.server import create_app
    from tests.fakes.server import LocalServer

    out = io.StringIO()
    app = create_app(
        Settings(host="127.0.0.1", port=0, database_path=tmp_path / "c.db"), console_out=out
    )
    server = await LocalServer(app).start()
    try:
        import aiohttp

        async with aiohttp.ClientSession() as http:
            for product, name in (
                ("veo", "veo-success.json"),
                ("runway", "runway-moderation.json"),
            ):
                async with http.post(
                    f"{server.url}/callbacks/{product}", json=load(name)
                ) as response:
                    assert response.status == 200
        printed = await eventually(lambda: out.getvalue().count("#console") == 2 and out.getvalue())
    finally:
        await server.stop()
    assert "https://example.com/kie/veo/3f9c2a7b1d4e_0.mp4" in printed
    assert "Content moderation" in printed
    assert "Next step" in printed


async def test_slack_events_without_signing_secret_is_503(start_bot):
    bot = await start_bot(slack_signing_secret=None)
    async with bot.http.post(f"{bot.url}/slack/events", data=b"command=/kie") as response:
        assert response.status == 503
        assert "SLACK_SIGNING_SECRET" in (await response.json())["error"]


async def test_outbox_rows_have_unique_keys(start_bot, fake_slack):
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    await bot.callback("veo", load("veo-success.json"))
    await bot.callback("veo-4k", load("veo-4k-success.json"))
    with sqlite3.connect(bot.settings.database_path) as db:
        keys = [k for (k,) in db.execute("SELECT key FROM outbox")]
    assert len(keys) == len(set(keys)) == 3
    json.dumps(keys)


async def test_a_late_failure_does_not_hide_a_delivered_video(start_bot, fake_slack):
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    await bot.callback("veo", load("veo-success.json"))
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    await bot.callback("veo", load("veo-fail-500-internal.json"))
    [reply] = await eventually(lambda: fake_slack.replies(root))
    assert "Provider error" in reply.content
    await eventually(lambda: root.updates)
    assert "3f9c2a7b1d4e_0.mp4" in root.content
    assert "ready" in root.text.lower()
