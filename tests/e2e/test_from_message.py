"""The message shortcut "Make a video from this" over real HTTP: the `/kie new` form with the
message's text as the prompt; its image fetched from Slack with the bot token, uploaded to
kie.ai's File Upload API and sent as the start image; the task's card and result in the thread
of that message."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.conftest import eventually, post_interaction, submit_view

CHANNEL = "C0MSG"
ASKER = "U0ASKER"
PUBLIC = "https://bot.example.com"
#: The bytes of a tiny PNG (its signature and a few more bytes are enough here).
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


def shortcut(fake_slack, message: dict[str, Any]) -> dict[str, Any]:
    """The `message_action` payload of the shortcut used on `message`, as Slack sends it."""
    return {
        "type": "message_action",
        "callback_id": "kie_from_message",
        "trigger_id": f"1337.44.{time.monotonic_ns()}",
        "response_url": fake_slack.response_url("shortcut"),
        "team": {"id": "T000FAKE", "domain": "fake"},
        "channel": {"id": CHANNEL, "name": "ideas"},
        "user": {"id": ASKER, "name": "someone", "team_id": "T000FAKE"},
        "message": message,
        "message_ts": message["ts"],
        "token": "legacy-verification-token",
        "api_app_id": "A0APP",
    }


async def open_form(bot, fake_slack, message: dict[str, Any]) -> dict[str, Any]:
    """Use the shortcut on `message`; the form the bot opened."""
    status, _ = await post_interaction(bot, shortcut(fake_slack, message))
    assert status == 200
    return await eventually(lambda: fake_slack.views and fake_slack.views[-1])


def block(view: dict[str, Any], block_id: str) -> dict[str, Any] | None:
    return next((b for b in view["blocks"] if b.get("block_id") == block_id), None)


def in_thread(fake_slack, ts: str) -> list[Any]:
    return [m for m in fake_slack.in_channel(CHANNEL) if m.thread_ts == ts]


async def deliver(bot, fake_kie, task_id: str) -> None:
    started = fake_kie.task(task_id)
    path = started.callback_url[len(PUBLIC) :]
    async with bot.http.post(bot.url + path, json=started.callback_body()) as response:
        assert response.status == 200


async def test_the_text_of_a_message_becomes_a_video_in_its_thread(start_bot, fake_slack, fake_kie):
    bot = await start_bot(fake_slack, fake_kie, public_url=PUBLIC)
    message = fake_slack.person_posts(CHANNEL, "A lighthouse in a storm &amp; <@U0X|gulls>")
    view = await open_form(bot, fake_slack, message)
    assert view["callback_id"] == "kie_new"
    prompt = block(view, "prompt")
    assert prompt is not None
    assert prompt["element"]["initial_value"] == "A lighthouse in a storm & gulls"
    assert block(view, "message_image") is None  # no image to offer
    assert json.loads(view["private_metadata"])["under"] == message["ts"]
    assert await submit_view(bot, view, {"model": "veo:veo3_fast"}, user=ASKER) == (200, "")
    [started] = await eventually(lambda: fake_kie.started)
    assert started.body["prompt"] == "A lighthouse in a storm & gulls"
    assert "imageUrls" not in started.body
    # The card goes into the message's thread, not into the channel.
    [card] = await eventually(lambda: in_thread(fake_slack, message["ts"]))
    assert started.task_id in card.text and "is generating" in card.content
    assert [m.ts for m in fake_slack.roots(CHANNEL)] == [message["ts"]]
    said = await eventually(lambda: fake_slack.responses)
    assert "into the thread of the message you started it from" in said[0]["text"]
    await deliver(bot, fake_kie, started.task_id)
    await eventually(lambda: len(in_thread(fake_slack, message["ts"])) == 2)
    reply = in_thread(fake_slack, message["ts"])[1]
    assert started.video_url in reply.content
    await eventually(lambda: "video ready" in card.content)  # the card is updated in place
    # The direct message links to the card, in its thread.
    [dm] = await eventually(lambda: fake_slack.in_channel(fake_slack.dm_channel(ASKER)))
    assert f"p{card.ts.replace('.', '')}?thread_ts={message['ts']}" in dm.content


async def test_the_image_of_a_message_is_handed_to_kie_ai_as_the_start_image(
    start_bot, fake_slack, fake_kie
):
    bot = await start_bot(fake_slack, fake_kie, public_url=PUBLIC)
    file = fake_slack.attach("boat.png", PNG)
    message = fake_slack.person_posts(CHANNEL, "make it sail away", files=[file])
    view = await open_form(bot, fake_slack, message)
    offered = block(view, "message_image")
    assert offered is not None and "boat.png" in json.dumps(offered)
    assert offered["element"]["initial_options"]  # ticked
    values = {"model": "market:kling-2.6/image-to-video"}
    assert await submit_view(bot, view, values, user=ASKER) == (200, "")
    [started] = await eventually(lambda: fake_kie.started)
    # Fetched from Slack with the bot token, uploaded to kie.ai, its link sent as the image.
    assert fake_slack.downloads == [("boat.png", True)]
    [uploaded] = fake_kie.uploads
    assert (uploaded.data, uploaded.content_type) == (PNG, "image/png")
    assert uploaded.file_name.endswith(".png") and uploaded.upload_path == "kie-slack"
    assert started.body["input"]["image_urls"] == [uploaded.download_url]
    assert started.body["input"]["prompt"] == "make it sail away"
    [card] = await eventually(lambda: in_thread(fake_slack, message["ts"]))
    assert started.task_id in card.text
    await deliver(bot, fake_kie, started.task_id)
    await eventually(lambda: len(in_thread(fake_slack, message["ts"])) == 2)
    assert started.video_url in in_thread(fake_slack, message["ts"])[1].content


async def test_the_image_is_left_out_when_unticked_and_refused_by_a_text_only_model(
    start_bot, fake_slack, fake_kie
):
    bot = await start_bot(fake_slack, fake_kie, public_url=PUBLIC)
    message = fake_slack.person_posts(CHANNEL, "a fox", files=[fake_slack.attach("fox.png", PNG)])
    view = await open_form(bot, fake_slack, message)
    text_only = {"model": "market:kling-2.6/text-to-video"}
    status, answer = await submit_view(bot, view, text_only, user=ASKER)
    assert status == 200 and answer["response_action"] == "errors"
    assert "untick the message's image" in answer["errors"]["message_image"]
    assert fake_kie.started == [] and fake_slack.downloads == []
    unticked = {**text_only, "message_image": []}
    assert await submit_view(bot, view, unticked, user=ASKER, view_id="V2") == (200, "")
    [started] = await eventually(lambda: fake_kie.started)
    assert started.body["input"]["prompt"] == "a fox" and "image_urls" not in started.body["input"]
    assert fake_slack.downloads == [] and fake_kie.uploads == []


async def test_an_image_off_slacks_file_host_is_never_fetched_with_the_token(
    start_bot, fake_slack, fake_kie
):
    bot = await start_bot(fake_slack, fake_kie, public_url=PUBLIC)
    elsewhere = fake_slack.attach("trap.png", PNG)
    elsewhere["url_private"] = elsewhere["url_private_download"] = f"{fake_kie.url}/files/trap.png"
    message = fake_slack.person_posts(CHANNEL, "a trap", files=[elsewhere])
    view = await open_form(bot, fake_slack, message)
    values = {"model": "market:kling-2.6/image-to-video"}
    assert await submit_view(bot, view, values, user=ASKER) == (200, "")
    said = await eventually(lambda: fake_slack.responses)
    assert "could not be used" in said[0]["text"] and "Nothing was started" in said[0]["text"]
    assert fake_kie.file_requests == [] and fake_kie.started == []
