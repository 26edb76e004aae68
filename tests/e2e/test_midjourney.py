"""Midjourney's follow-ups over real HTTP: a grid's card gets `Upscale 1`…`4` and `Vary 1`…`4`;
a click asks the fake kie.ai for the upscale or the variations with this channel's route, and
the new task's result comes into the grid's thread, as Midjourney's own bot does."""

from __future__ import annotations

import copy
import sqlite3
from typing import Any

import pytest

from tests.conftest import click, eventually, find_button, load, poll, slash

CHANNEL = "C0MJ"
ASKER = "U0ASKER"
PUBLIC = "https://bot.example.com"
GRID = "mj_task_12345"
UPSCALE = "/api/v1/mj/generateUpscale"
VARY = "/api/v1/mj/generateVary"
MJ_RECORD = "/api/v1/mj/record-info"
PICTURES = [f"{action} {n}" for action in ("Upscale", "Vary") for n in range(1, 5)]


def answers(fake_slack) -> list[str]:
    """What reached the clicker by response URL, in order."""
    return [r.get("text", "") for r in fake_slack.responses]


def stored(bot, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(bot.settings.database_path) as db:
        return db.execute(sql, params).fetchall()


def button_texts(message: Any) -> list[str]:
    return [
        element["text"]["text"]
        for block in message.blocks
        if block.get("type") == "actions"
        for element in block["elements"]
        if element.get("type") == "button" and "url" not in element
    ]


async def grid(start_bot, fake_slack, fake_kie, body: dict[str, Any] | None = None, **settings):
    """A bot, the grid's root card in `CHANNEL` and the channel's callback route token."""
    bot = await start_bot(
        fake_slack, fake_kie, public_url=PUBLIC, kie_default_channel=CHANNEL, **settings
    )
    _, said = await slash(bot, fake_slack, "url", channel=CHANNEL)
    token = said["text"].split(f"{PUBLIC}/callbacks/mj/")[1].split("`")[0]
    fake_slack.responses.clear()
    assert await bot.callback("mj", body or load("mj-success.json")) == (
        200,
        {"status": "received"},
    )
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    return bot, root, token


async def deliver(bot, fake_kie, task_id: str) -> tuple[int, Any]:
    """kie.ai's Midjourney callback for a started task, to the bot's own address (the
    callBackUrl's path after `PUBLIC_URL`)."""
    started = fake_kie.task(task_id)
    assert started.callback_url.startswith(f"{PUBLIC}/callbacks/mj/")
    path = started.callback_url[len(PUBLIC) :]
    async with bot.http.post(bot.url + path, json=started.callback_body()) as response:
        return response.status, await response.json()


async def follow_up(bot, fake_slack, fake_kie, root: Any, button: str) -> tuple[Any, int]:
    """Click `button` of the grid as the asker: the task the fake kie.ai started for it, and how
    many replies the grid's thread had before."""
    before = len(fake_slack.replies(root))
    assert await click(bot, fake_slack, root, button, user=ASKER) == (200, "")
    [started] = await eventually(lambda: fake_kie.started)
    return started, before


def asked_of(index: int, token: str) -> dict[str, Any]:
    """kie.ai's body for picture `index` (0 to 3) of the grid, with the channel's route."""
    return {"taskId": GRID, "imageIndex": index, "callBackUrl": f"{PUBLIC}/callbacks/mj/{token}"}


# --- the buttons --------------------------------------------------------------------------------


async def test_a_grid_gets_upscale_and_vary_for_each_picture(start_bot, fake_slack, fake_kie):
    _, root, _ = await grid(start_bot, fake_slack, fake_kie)
    texts = button_texts(root)
    assert texts[-8:] == PICTURES
    assert "Fresh link" in texts and "Share to channel" in texts
    assert "video" not in root.content.lower()


@pytest.mark.parametrize("name", ["mj-video-success.json", "mj-fail-500.json"])
async def test_no_follow_ups_on_a_midjourney_video_or_failure(
    start_bot, fake_slack, fake_kie, name
):
    _, root, _ = await grid(start_bot, fake_slack, fake_kie, load(name))
    assert not set(PICTURES) & set(button_texts(root))


async def test_no_follow_ups_on_a_single_image(start_bot, fake_slack, fake_kie):
    upscaled = copy.deepcopy(load("mj-success.json"))
    upscaled["data"]["resultUrls"] = upscaled["data"]["resultUrls"][:1]
    _, root, _ = await grid(start_bot, fake_slack, fake_kie, upscaled)
    assert not set(PICTURES) & set(button_texts(root))


# --- end to end ---------------------------------------------------------------------------------


async def test_upscale_2_comes_into_the_grids_thread(start_bot, fake_slack, fake_kie):
    bot, root, token = await grid(start_bot, fake_slack, fake_kie)
    started, before = await follow_up(bot, fake_slack, fake_kie, root, "Upscale 2")
    assert (started.path, started.body) == (UPSCALE, asked_of(1, token))
    [note] = await eventually(lambda: fake_slack.replies(root)[before:])
    assert f"<@{ASKER}> asked to upscale picture 2" in note.content
    assert started.task_id in note.content
    [said] = await eventually(lambda: answers(fake_slack))
    assert f"as task `{started.task_id}`" in said and "thread of the grid" in said
    assert fake_slack.responses[0]["response_type"] == "ephemeral"
    asked = "SELECT media, requested_by, origin FROM tasks WHERE task_id = ?"
    assert stored(bot, asked, started.task_id) == [("image", ASKER, GRID)]
    assert (await deliver(bot, fake_kie, started.task_id)) == (200, {"status": "received"})
    [result] = await eventually(lambda: fake_slack.replies(root)[before + 1 :])
    assert result.thread_ts == root.ts
    [upscaled] = started.result_urls
    assert upscaled in result.content and "Midjourney image ready" in result.content
    assert "video" not in result.content.lower()
    await slash(bot, fake_slack, "help", channel=CHANNEL)
    assert fake_slack.roots(CHANNEL) == [root]  # no root of its own
    assert upscaled not in root.content  # the root still shows the grid
    assert stored(bot, "SELECT product, model, user_id FROM ledger") == [("mj", None, ASKER)]


async def test_vary_3_asks_for_picture_index_2_and_the_new_grid_comes_to_the_thread(
    start_bot, fake_slack, fake_kie
):
    bot, root, token = await grid(start_bot, fake_slack, fake_kie)
    started, before = await follow_up(bot, fake_slack, fake_kie, root, "Vary 3")
    # kie.ai's schema: 0 to 3 for pictures 1 to 4, for Vary too
    assert (started.path, started.body) == (VARY, asked_of(2, token))
    [note] = await eventually(lambda: fake_slack.replies(root)[before:])
    assert "asked for variations of picture 3" in note.content
    assert (await deliver(bot, fake_kie, started.task_id))[0] == 200
    [result] = await eventually(lambda: fake_slack.replies(root)[before + 1 :])
    assert result.thread_ts == root.ts
    assert [b["image_url"] for b in result.blocks if b["type"] == "image"] == started.result_urls
    assert "4 images" in result.text


async def test_an_upscale_whose_callback_never_comes_is_polled_into_the_thread(
    start_bot, fake_slack, fake_kie
):
    bot, root, _ = await grid(start_bot, fake_slack, fake_kie)
    started, before = await follow_up(bot, fake_slack, fake_kie, root, "Upscale 4")
    await eventually(lambda: fake_kie.polls(started.task_id) >= 1, timeout=15)  # still running
    status, record = poll("mj-record-info-success.json")
    record["data"]["taskId"] = started.task_id
    upscaled = record["data"]["resultInfoJson"]["resultUrls"][0]["resultUrl"]
    fake_kie.script(MJ_RECORD, started.task_id, (status, record))
    found = await eventually(
        lambda: [r for r in fake_slack.replies(root)[before:] if upscaled in r.content], timeout=15
    )
    assert found[0].thread_ts == root.ts


# --- once, and only for the clicker -------------------------------------------------------------


async def test_a_double_click_or_a_retried_click_upscales_once(start_bot, fake_slack, fake_kie):
    bot, root, _ = await grid(start_bot, fake_slack, fake_kie)
    await click(bot, fake_slack, root, "Upscale 1", user=ASKER)
    await click(bot, fake_slack, root, "Upscale 1", user=ASKER)
    await eventually(lambda: any("nothing more is sent" in a for a in answers(fake_slack)))
    await eventually(lambda: any("as task" in a for a in answers(fake_slack)))
    assert len(fake_kie.posted(UPSCALE)) == 1
    # Slack delivers one click twice (the same action_ts): still nothing new.
    action_ts = "1700000000.000001"
    await click(bot, fake_slack, root, "Vary 1", user="U0THIRD", action_ts=action_ts)
    await click(bot, fake_slack, root, "Vary 1", user="U0THIRD", action_ts=action_ts)
    await eventually(lambda: len(answers(fake_slack)) == 4)
    assert len(fake_kie.posted(VARY)) == 1 and len(fake_kie.started) == 2


async def test_a_refusal_is_explained_only_to_the_clicker(start_bot, fake_slack, fake_kie):
    fake_kie.refuse(UPSCALE, 402, "Credits insufficient")
    bot, root, _ = await grid(start_bot, fake_slack, fake_kie)
    before = len(fake_slack.replies(root))
    await click(bot, fake_slack, root, "Upscale 3", user=ASKER)
    [said] = await eventually(lambda: answers(fake_slack))
    assert said.startswith("kie.ai did not start the image:")
    assert "out of credits" in said and "Credits insufficient" in said
    assert fake_slack.responses[0]["response_type"] == "ephemeral"
    await slash(bot, fake_slack, "help", channel=CHANNEL)
    assert fake_slack.replies(root)[before:] == [] and fake_slack.roots(CHANNEL) == [root]
    assert {state for (state,) in stored(bot, "SELECT state FROM submissions")} == {"refused"}
    assert stored(bot, "SELECT COUNT(*) FROM tasks") == [(1,)]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"kie_submit": False}, "KIE_SUBMIT=off"),
        ({"kie_submit_channels": ("C0ART",)}, "KIE_SUBMIT_CHANNELS"),
    ],
)
async def test_the_submit_settings_hold_for_the_follow_ups(
    start_bot, fake_slack, fake_kie, settings, expected
):
    bot, root, _ = await grid(start_bot, fake_slack, fake_kie, **settings)
    find_button(root, "Vary 2")
    await click(bot, fake_slack, root, "Vary 2", user=ASKER)
    [said] = await eventually(lambda: answers(fake_slack))
    assert expected in said
    assert fake_kie.posts == []


async def test_a_follow_up_counts_against_the_daily_limit(start_bot, fake_slack, fake_kie):
    bot, root, _ = await grid(start_bot, fake_slack, fake_kie, kie_daily_limit_per_person=1)
    await click(bot, fake_slack, root, "Upscale 1", user=ASKER)
    await eventually(lambda: any("as task" in a for a in answers(fake_slack)))
    await click(bot, fake_slack, root, "Vary 1", user=ASKER)
    said = await eventually(lambda: [a for a in answers(fake_slack) if "daily limit" in a])
    assert said[0].startswith("Not started: your daily limit of 1 generations is reached")
    assert len(fake_kie.started) == 1 and fake_kie.posted(VARY) == []
