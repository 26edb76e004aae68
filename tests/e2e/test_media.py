"""Every kind of result over real HTTP: the new products' callbacks and polls, images and music
shown and saved as what they are, and a Suno task moving through its stages in one root.

The bot runs on loopback against the fake Slack and the fake kie.ai; results that are saved are
downloaded from the fake kie.ai's file server (DOWNLOAD_ALLOW_PRIVATE_HOSTS=on).
"""

from __future__ import annotations

import copy
import json
import sqlite3
from typing import Any

import pytest

from tests.conftest import CALLBACKS, eventually, load, poll, product_of, saving_settings, slash
from tests.fakes.kie import FakeFile

CHANNEL = "C0MEDIA"
#: The products this file is about (the five of issue 15); Market images and audio too.
NEW_PRODUCTS = ("aleph", "mj", "4o-image", "flux-kontext", "suno")


def stored(bot, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(bot.settings.database_path) as db:
        return db.execute(sql).fetchall()


def settled(bot) -> bool:
    return not stored(bot, "SELECT 1 FROM outbox WHERE status = 'pending'")


def task_id_of(body: dict[str, Any]) -> str:
    data = body.get("data") or {}
    return str(data.get("taskId") or data.get("task_id") or body.get("taskId"))


def results_of(body: dict[str, Any]) -> list[str]:
    """The result URLs a callback body of the new products carries (what the card must show)."""
    data = body.get("data") or {}
    info = data.get("info") or {}
    if "result_video_url" in data:
        return [data["result_video_url"]]
    if isinstance(data.get("resultUrls"), list):
        return data["resultUrls"]
    if isinstance(info.get("result_urls"), list):
        return info["result_urls"]
    if info.get("resultImageUrl"):
        return [info["resultImageUrl"]]
    if isinstance(data.get("data"), list):
        return [track["audio_url"] for track in data["data"] if track.get("audio_url")]
    return []


def image_blocks(message: Any) -> list[dict[str, Any]]:
    return [block for block in message.blocks if block.get("type") == "image"]


def new_callback_files() -> list[str]:
    return [
        path.name
        for path in sorted(CALLBACKS.glob("*.json"))
        if not path.name.startswith("_") and product_of(path.name) in NEW_PRODUCTS
    ]


# --- callbacks: received, duplicate, posted with their results --------------------------------


@pytest.mark.parametrize("name", new_callback_files())
async def test_each_new_callback_is_received_then_duplicate_and_posted(start_bot, fake_slack, name):
    product, body = product_of(name), load(name)
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    assert await bot.callback(product, body) == (200, {"status": "received"})
    assert await bot.callback(product, body) == (200, {"status": "duplicate"})
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    assert task_id_of(body) in root.content
    for url in results_of(body):
        assert url in root.content, f"{url} missing from the card of {name}"
    await eventually(lambda: settled(bot))
    assert len(fake_slack.in_channel(CHANNEL)) == 1, "one root, nothing posted twice"
    [(state,)] = stored(bot, "SELECT state FROM tasks")
    if "fail" in name or "error" in name:
        assert state == "failed"
        assert "failed" in root.text
    elif product == "suno" and body["data"].get("callbackType") in ("text", "first"):
        assert state == "running"
    else:
        assert state == "succeeded"
        assert "video" not in root.content.lower() or product == "aleph" or "mj-video" in name


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("mj-success.json", "image"),
        ("4o-image-success.json", "image"),
        ("flux-kontext-success.json", "image"),
    ],
)
async def test_image_results_are_shown_on_the_card(start_bot, fake_slack, name, kind):
    body = load(name)
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    await bot.callback(product_of(name), body)
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    urls = results_of(body)
    shown = [block["image_url"] for block in image_blocks(root)]
    assert shown[: min(len(urls), 4)] == urls[:4], "each image is on the card, up to four"
    assert kind in root.text.lower() and "video" not in root.content.lower()


# --- polls: each product's record in each state -----------------------------------------------

POLLS = [
    ("aleph", "/api/v1/aleph/record-info", "aleph-record-info-generating.json", "⏳"),
    ("aleph", "/api/v1/aleph/record-info", "aleph-record-info-success.json", "✅"),
    ("aleph", "/api/v1/aleph/record-info", "aleph-record-info-failed.json", "❌"),
    ("mj", "/api/v1/mj/record-info", "mj-record-info-generating.json", "⏳"),
    ("mj", "/api/v1/mj/record-info", "mj-record-info-success.json", "✅"),
    ("mj", "/api/v1/mj/record-info", "mj-record-info-failed-3.json", "❌"),
    ("4o-image", "/api/v1/gpt4o-image/record-info", "4o-image-record-info-generating.json", "⏳"),
    ("4o-image", "/api/v1/gpt4o-image/record-info", "4o-image-record-info-success.json", "✅"),
    (
        "4o-image",
        "/api/v1/gpt4o-image/record-info",
        "4o-image-record-info-success-quickstart.json",
        "✅",
    ),
    ("4o-image", "/api/v1/gpt4o-image/record-info", "4o-image-record-info-failed.json", "❌"),
    (
        "flux-kontext",
        "/api/v1/flux/kontext/record-info",
        "flux-kontext-record-info-generating.json",
        "⏳",
    ),
    (
        "flux-kontext",
        "/api/v1/flux/kontext/record-info",
        "flux-kontext-record-info-success.json",
        "✅",
    ),
    (
        "flux-kontext",
        "/api/v1/flux/kontext/record-info",
        "flux-kontext-record-info-failed-3.json",
        "❌",
    ),
    ("suno", "/api/v1/generate/record-info", "suno-record-info-pending.json", "⏳"),
    ("suno", "/api/v1/generate/record-info", "suno-record-info-first-success.json", "⏳"),
    ("suno", "/api/v1/generate/record-info", "suno-record-info-success.json", "✅"),
    ("suno", "/api/v1/generate/record-info", "suno-record-info-generate-audio-failed.json", "❌"),
    ("market", "/api/v1/jobs/recordInfo", "record-info-success-image.json", "✅"),
    ("market", "/api/v1/jobs/recordInfo", "record-info-success-audio.json", "✅"),
]


@pytest.mark.parametrize(("product", "path", "name", "mark"), POLLS)
async def test_status_reads_each_poll_state(
    start_bot, fake_slack, fake_kie, product, path, name, mark
):
    task_id = "poll_task_0001"
    status, body = poll(name) if product != "market" else _market_answer(name)
    fake_kie.script(path, task_id, (status, body))
    bot = await start_bot(fake_slack, fake_kie)
    await slash(bot, fake_slack, f"status {task_id} {product}")
    [card] = await eventually(lambda: fake_slack.responses)
    content = card.get("text", "") + json.dumps(card.get("blocks", []))
    assert card["text"].startswith(mark), f"{name}: {card['text']}"
    assert {asked for asked, _ in fake_kie.requests} == {path}
    if product in ("mj", "4o-image", "flux-kontext") or name.endswith("image.json"):
        assert "video" not in content.lower(), "an image is never called a video"


def _market_answer(name: str) -> tuple[int, Any]:
    return 200, load(name)


async def test_status_without_a_product_asks_the_new_endpoints_too(start_bot, fake_slack, fake_kie):
    task_id = "unknown_task_42"
    fake_kie.script("/api/v1/mj/record-info", task_id, poll("mj-record-info-success.json"))
    bot = await start_bot(fake_slack, fake_kie)
    await slash(bot, fake_slack, f"status {task_id}")
    [card] = await eventually(lambda: fake_slack.responses)
    assert card["text"].startswith("✅") and "Midjourney" in card["text"]
    asked = {path for path, query in fake_kie.requests if query.get("taskId") == task_id}
    assert {
        "/api/v1/aleph/record-info",
        "/api/v1/mj/record-info",
        "/api/v1/gpt4o-image/record-info",
        "/api/v1/flux/kontext/record-info",
        "/api/v1/generate/record-info",
    } <= asked


# --- saved as what they are --------------------------------------------------------------------


@pytest.fixture
def saving(start_bot, fake_slack):
    async def start(**overrides):
        return await start_bot(fake_slack, **(saving_settings(CHANNEL) | overrides))

    return start


def market_body(name: str, url: str, task_id: str) -> dict[str, Any]:
    body = copy.deepcopy(load(name))
    body["data"]["taskId"] = task_id
    body["data"]["resultJson"] = json.dumps({"resultUrls": [url]})
    return body


async def test_a_market_image_is_shown_and_saved_as_an_image(saving, fake_slack, fake_kie):
    bot = await saving()
    url = fake_kie.serve_file("banana.png", FakeFile(5000))
    await bot.callback("market", market_body("callback-success-image.json", url, "img_task_1"))
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    assert [block["image_url"] for block in image_blocks(root)] == [url]
    assert "image" in root.text.lower() and "video" not in root.content.lower()
    [file] = await eventually(lambda: fake_slack.shared(CHANNEL, root.ts))
    assert file.filename.endswith(".png") and file.received == 5000
    await eventually(lambda: settled(bot))
    # (the fake keeps the message as last updated in `root`, the earlier versions in `updates`)
    assert "video" not in root.content.lower() and "saved in the thread" in root.content.lower()


async def test_a_market_audio_result_is_saved_as_audio(saving, fake_slack, fake_kie):
    bot = await saving()
    url = fake_kie.serve_file("speech.mp3", FakeFile(4000))
    await bot.callback("market", market_body("callback-success-audio.json", url, "tts_task_1"))
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    assert "audio" in root.text.lower() and "video" not in root.content.lower()
    [file] = await eventually(lambda: fake_slack.shared(CHANNEL, root.ts))
    assert file.filename.endswith(".mp3")
    await eventually(lambda: settled(bot))
    assert "video" not in json.dumps(root.updates).lower()


async def test_a_market_result_with_only_text_shows_the_text(start_bot, fake_slack):
    bot = await start_bot(fake_slack, kie_default_channel=CHANNEL)
    body = load("callback-success-no-resulturls.json")
    await bot.callback("market", body)
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    assert root.text.startswith("✅") and "video" not in root.content.lower()
    result = json.loads(body["data"]["resultJson"])["resultObject"]
    said = result if isinstance(result, str) else next(iter(str(v) for v in result.values()))
    assert said[:40] in root.content


# --- Suno: stages in one root, each track saved once ------------------------------------------

SUNO_TASK = "suno_task_stages_1"


def suno(stage: str, tracks: list[dict[str, Any]], code: int = 200) -> dict[str, Any]:
    return {
        "code": code,
        "msg": {"text": "Text generation completed.", "first": "First track generated."}.get(
            stage, "All generated successfully."
        ),
        "data": {"callbackType": stage, "task_id": SUNO_TASK, "data": tracks},
    }


def track(n: int, url: str, duration: float | None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": f"track-{n}",
        "audio_url": url,
        "stream_audio_url": f"https://example.com/stream/{n}",
        "image_url": f"https://example.com/cover-{n}.jpeg",
        "prompt": "[Verse] Night city lights shining bright",
        "model_name": "chirp-v3-5",
        "title": f"Night City {n}",
        "tags": "rock",
        "createTime": "2025-01-01 00:00:00",
    }
    if duration is not None:
        found["duration"] = duration
    return found


async def test_a_suno_task_moves_through_its_stages_in_one_root(saving, fake_slack, fake_kie):
    bot = await saving()
    one = fake_kie.serve_file("one.mp3", FakeFile(3000))
    two = fake_kie.serve_file("two.mp3", FakeFile(4000))
    assert (await bot.callback("suno", suno("text", [])))[0] == 200
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    assert "lyrics ready" in root.content.lower()

    first = suno("first", [track(1, one, 198.44), track(2, "", None)])
    assert (await bot.callback("suno", first))[0] == 200
    await eventually(
        lambda: any("first track ready" in json.dumps(u).lower() for u in root.updates)
    )
    [saved_one] = await eventually(lambda: fake_slack.shared(CHANNEL, root.ts))
    assert saved_one.title is not None and "Night City 1" in saved_one.title
    assert "3:18" in saved_one.title and saved_one.filename.endswith(".mp3")

    complete = suno("complete", [track(1, one, 198.44), track(2, two, 228.28)])
    assert (await bot.callback("suno", complete))[0] == 200
    assert (await bot.callback("suno", first)) == (200, {"status": "duplicate"})
    await eventually(lambda: len(fake_slack.shared(CHANNEL, root.ts)) == 2)
    await eventually(lambda: settled(bot))
    assert len(fake_slack.roots(CHANNEL)) == 1, "one root for the whole task"
    titles = sorted(file.title or "" for file in fake_slack.shared(CHANNEL, root.ts))
    assert "3:48" in titles[1] and "Night City 2" in titles[1]
    assert fake_kie.file_requests.count("one.mp3") == 1, "each track saved once"
    final = json.dumps(root.updates[-1]).lower()
    assert "2 tracks" in final and "video" not in final
    assert stored(bot, "SELECT state, stage FROM tasks") == [("succeeded", "complete")]


# --- routes and following ---------------------------------------------------------------------

ROUTED = {
    "aleph": "aleph-success.json",
    "mj": "mj-success.json",
    "4o-image": "4o-image-success.json",
    "flux-kontext": "flux-kontext-success.json",
    "suno": "suno-complete.json",
}


@pytest.mark.parametrize("product", NEW_PRODUCTS)
async def test_each_new_product_has_a_callback_url_that_posts_into_its_channel(
    start_bot, fake_slack, product
):
    bot = await start_bot(fake_slack, public_url="https://bot.example.com")
    _, answer = await slash(bot, fake_slack, "url", channel="C0ROUTED")
    prefix = f"https://bot.example.com/callbacks/{product}/"
    assert prefix in answer["text"]
    token = answer["text"].split(prefix)[1].split("`")[0]
    body = load(ROUTED[product])
    assert await bot.callback(product, body, route=token) == (200, {"status": "received"})
    [root] = await eventually(lambda: fake_slack.roots("C0ROUTED"))
    assert task_id_of(body) in root.content


async def test_poll_follows_a_midjourney_task_until_its_grid(start_bot, fake_slack, fake_kie):
    task_id = "4edb3c5XXXXX75e3f0aa5cc"  # the fixtures' own
    fake_kie.script(
        "/api/v1/mj/record-info",
        task_id,
        poll("mj-record-info-generating.json"),
        poll("mj-record-info-success.json"),
    )
    bot = await start_bot(fake_slack, fake_kie)
    await slash(bot, fake_slack, f"poll {task_id} mj", channel="C0FOLLOW")
    [root] = await eventually(lambda: fake_slack.roots("C0FOLLOW"))
    await eventually(lambda: len(image_blocks(root)) == 4, timeout=15)
    assert "Midjourney images ready" in root.content and "video" not in root.content.lower()
