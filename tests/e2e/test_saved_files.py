"""Result files saved into their threads, over real HTTP: the bot on loopback downloads from the
fake kie.ai and uploads into the fake Slack. Each thread keeps its own order, and a file whose
host is in trouble holds up no other task's file.
"""

from __future__ import annotations

import copy
import json
import logging

import pytest

from bot.slack.blocks import TEXT_ON_CARD, Message
from bot.slack.console import render_console
from tests.conftest import eventually, load
from tests.e2e.test_saved_videos import CHANNEL, SAVED, outbox, root_of, saving, settled, veo
from tests.fakes.kie import FakeFile
from tests.fakes.slack import Posted

__all__ = ["saving"]  # the fixture, used by name

SAVING = "Saving the video into the thread"


async def test_a_file_that_keeps_failing_holds_up_no_other_tasks_file(
    saving, fake_slack, fake_kie, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING, logger="bot.slack.delivery")
    bot = await saving()
    stuck = fake_kie.serve_file("stuck.mp4", FakeFile(status=503))
    await bot.callback("veo", veo("veo_task_stuck", stuck))
    await eventually(lambda: fake_kie.file_requests.count("stuck.mp4") >= 1)

    fine = fake_kie.serve_file("fine.mp4", FakeFile(2000))
    await bot.callback("veo", veo("veo_task_fine", fine))
    await eventually(lambda: len(fake_slack.roots(CHANNEL)) == 2)
    first, second = fake_slack.roots(CHANNEL)
    await eventually(lambda: SAVED in second.content)

    assert [f.received for f in fake_slack.shared(CHANNEL, second.ts)] == [2000]
    assert fake_slack.shared(CHANNEL, first.ts) == [], "the stuck file is still retried"
    assert SAVING in first.content and "Not saved" not in first.content
    assert ("video", "pending", "http_503: HTTP 503") in outbox(bot)
    warned = [r.getMessage() for r in caplog.records if "veo_task_stuck" in r.getMessage()]
    assert warned and "http_503" in warned[0], "the log says which file fails and why"


# --- every kind through the same path ----------------------------------------------------------


def market(name: str, *urls: str, text: str | None = None) -> dict:
    """A Market callback fixture with its result files (or its text result) replaced."""
    body = copy.deepcopy(load(name))
    result = {"resultObject": {"text": text}} if text is not None else {"resultUrls": list(urls)}
    body["data"]["resultJson"] = json.dumps(result)
    return body


def suno(name: str, *urls: str) -> dict:
    """A Suno stage callback with its tracks' files at `urls`, in order."""
    body = copy.deepcopy(load(name))
    for track, url in zip(body["data"]["data"], urls, strict=False):
        track["audio_url"] = url
    return body


def seen(message: Posted) -> str:
    """A message as a person reads it (no ids, no JSON)."""
    return render_console(message.channel, Message(message.text, message.blocks))


async def test_images_are_saved_as_images(saving, fake_slack, fake_kie, caplog):
    caplog.set_level(logging.INFO, logger="bot.slack.delivery")
    bot = await saving()
    png = fake_kie.serve_file("kite.png", FakeFile(3000))
    jpg = fake_kie.serve_file("kite-2.jpg", FakeFile(4000))
    body = market("callback-success-image.json", png, jpg)
    task = body["data"]["taskId"]
    await bot.callback("market", body)
    root = await root_of(fake_slack)
    await eventually(lambda: "All 2 images are saved in the thread" in root.content)

    files = fake_slack.shared(CHANNEL, root.ts)
    assert [(f.filename, f.received) for f in files] == [
        (f"kie-{task}-1.png", 3000),
        (f"kie-{task}-2.jpg", 4000),
    ]
    assert all(f.title.startswith("Nano Banana · A surrealist-style artwork") for f in files)
    assert "video" not in seen(root).lower()
    said = [r.getMessage() for r in caplog.records if task in r.getMessage()]
    assert any(line.startswith("image 2 of task") for line in said)
    assert not any("video" in line for line in said)


async def test_a_file_of_an_image_that_is_gone_is_not_called_a_video(saving, fake_slack, fake_kie):
    bot = await saving()
    gone = fake_kie.serve_file("kite.png", FakeFile(status=404))
    await bot.callback("market", market("callback-success-image.json", gone))
    root = await root_of(fake_slack)
    await eventually(lambda: "Not saved in Slack" in root.content)
    card = seen(root)
    assert "The link has expired or the file is gone from kie.ai." in card
    assert "video" not in card.lower()


async def test_a_market_audio_result_is_saved_as_a_track(saving, fake_slack, fake_kie):
    bot = await saving()
    url = fake_kie.serve_file("speech.mp3", FakeFile(5000))
    body = market("callback-success-audio.json", url)
    await bot.callback("market", body)
    root = await root_of(fake_slack)
    await eventually(lambda: "Saved in the thread: plays in Slack" in seen(root))
    [file] = fake_slack.shared(CHANNEL, root.ts)
    assert file.filename == f"kie-{body['data']['taskId']}-1.mp3"
    assert file.title.startswith("ElevenLabs text to speech multilingual v2 · Unlock powerful")


async def test_each_suno_track_is_saved_once_titled_with_its_name_and_length(
    saving, fake_slack, fake_kie
):
    bot = await saving()
    first = fake_kie.serve_file("harbour.mp3", FakeFile(6000))
    second = fake_kie.serve_file("reprise.mp3", FakeFile(7000))
    # The root is posted while the task runs, with its first track: that track is saved.
    await bot.callback("suno", suno("suno-stage-first.json", first, ""))
    root = await root_of(fake_slack)
    await eventually(lambda: len(fake_slack.shared(CHANNEL, root.ts)) == 1)
    await bot.callback("suno", suno("suno-stage-complete.json", first, second))
    await eventually(lambda: "All 2 tracks are saved in the thread" in root.content)
    complete = suno("suno-stage-complete.json", first, second)
    complete["msg"] = "All generated successfully (again)."
    assert (await bot.callback("suno", complete))[1] == {"status": "received"}
    await eventually(lambda: settled(bot))

    files = fake_slack.shared(CHANNEL, root.ts)
    assert [(f.title, f.filename[-6:], f.received) for f in files] == [
        ("Harbour Lights (2:51)", "-1.mp3", 6000),
        ("Harbour Lights (Reprise) (3:05)", "-2.mp3", 7000),
    ]
    assert fake_kie.file_requests == ["harbour.mp3", "reprise.mp3"]
    assert len(fake_slack.roots(CHANNEL)) == 1


async def test_a_text_result_too_long_for_its_card_is_posted_whole_in_its_thread_once(
    start_bot, fake_slack
):
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    sentence = "Minutes & actions <for> the team: ship the build, then rest. "
    text = (sentence * 130).strip()  # about 8,000 characters, more once escaped
    assert len(text) > TEXT_ON_CARD
    body = market("callback-success-no-resulturls.json", text=text)
    await bot.callback("market", body)
    root = await root_of(fake_slack)
    replies = await eventually(
        lambda: len(fake_slack.replies(root)) >= 3 and fake_slack.replies(root)
    )
    reworded = copy.deepcopy(body)
    reworded["msg"] = "Playground task completed (again)."
    await bot.callback("market", reworded)
    await eventually(lambda: settled(bot))

    assert fake_slack.replies(root) == replies, "posted once"
    assert all(f"Task `{body['data']['taskId']}`" in seen(reply) for reply in replies)
    whole = " ".join(reply.blocks[0]["text"]["text"] for reply in replies)
    unescaped = whole.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert unescaped.split() == text.split(), "every word, in order"
    order = [m.ts for m in fake_slack.in_channel(CHANNEL)]
    assert order.index(root.ts) < order.index(replies[0].ts), "after the card"


async def test_a_short_text_result_is_only_on_its_card(start_bot, fake_slack):
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    await bot.callback("market", market("callback-success-no-resulturls.json", text="Hello."))
    root = await root_of(fake_slack)
    await eventually(lambda: settled(bot))
    assert "Hello." in root.content and fake_slack.replies(root) == []
