"""Callback intake over real HTTP: every product, duplicates, signatures, bad input, answers."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import pytest

from bot.kie.signature import sign
from tests.conftest import CALLBACKS, HMAC_KEY, callback_files, load, product_of, scrape

PRODUCT_FIXTURES = {
    "veo": "veo-success.json",
    "veo-4k": "veo-4k-success.json",
    "runway": "runway-success.json",
    "luma": "luma-success.json",
    "suno-mp4": "suno-mp4-success.json",
}


def stored_events(bot) -> list[tuple[str, str, str]]:
    with sqlite3.connect(bot.settings.database_path) as db:
        return db.execute("SELECT product, task_id, state FROM events ORDER BY id").fetchall()


@pytest.mark.parametrize("product", list(PRODUCT_FIXTURES))
async def test_each_product_is_received_then_duplicate(start_bot, product):
    bot = await start_bot()
    body = load(PRODUCT_FIXTURES[product])
    assert await bot.callback(product, body) == (200, {"status": "received"})
    assert await bot.callback(product, body) == (200, {"status": "duplicate"})
    assert len(stored_events(bot)) == 1


async def test_answer_bodies_are_compact_json(start_bot):
    bot = await start_bot()
    raw = json.dumps(load("veo-success.json")).encode()
    async with bot.http.post(f"{bot.url}/callbacks/veo", data=raw) as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        assert await response.text() == '{"status":"received"}'


async def test_same_content_in_another_key_order_is_a_duplicate(start_bot):
    bot = await start_bot()
    body = load("runway-success.json")
    assert (await bot.callback("runway", body))[1] == {"status": "received"}
    reordered = json.dumps(body, indent=4, sort_keys=True).encode()
    assert (await bot.callback("runway", reordered))[1] == {"status": "duplicate"}


async def test_a_different_body_for_the_same_task_is_news(start_bot):
    bot = await start_bot()
    assert (await bot.callback("veo", load("veo-fail-500-internal.json")))[1][
        "status"
    ] == "received"
    assert (await bot.callback("veo", load("veo-success.json")))[1]["status"] == "received"
    states = [state for _, _, state in stored_events(bot)]
    assert states == ["failed", "succeeded"]


async def test_every_callback_fixture_is_accepted(start_bot):
    bot = await start_bot()
    for path in callback_files():
        status, answer = await bot.callback(product_of(path.name), json.loads(path.read_text()))
        assert status == 200, (path.name, answer)


async def test_concurrent_duplicates_store_one_event(start_bot):
    bot = await start_bot()
    body = load("suno-mp4-success.json")
    answers = await asyncio.gather(*(bot.callback("suno-mp4", body) for _ in range(20)))
    statuses = sorted(answer["status"] for _, answer in answers)
    assert statuses == ["duplicate"] * 19 + ["received"]
    assert len(stored_events(bot)) == 1


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not JSON"),
        (b"not json at all", "not JSON"),
        (b"\xff\xfe\x00garbage", "not JSON"),
        (b"[1, 2, 3]", "not a JSON object"),
        (b'"a string"', "not a JSON object"),
        (b"{}", "no task id"),
        (b'{"code": 200, "data": null}', "no task id"),
        (b'{"code": 200, "data": {"taskId": ""}}', "no task id"),
        (b'{"code": 200, "data": {"taskId": "   "}}', "no task id"),
        (b'{"code": 200, "data": {"task_id": "only-snake-case"}}', "data.taskId"),
        (b'{"code": 200, "data": {"taskId": {"nested": 1}}}', "no task id"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON"),
    ],
)
async def test_malformed_bodies_get_400_with_a_reason(start_bot, raw, reason):
    bot = await start_bot()
    status, answer = await bot.callback("veo", raw, headers={"Content-Type": "text/plain"})
    assert status == 400
    assert reason in answer["error"]
    assert stored_events(bot) == []


async def test_body_is_judged_by_its_bytes_whatever_the_content_type(start_bot):
    bot = await start_bot()
    raw = json.dumps(load("luma-success.json")).encode()
    status, answer = await bot.callback("luma", raw, headers={"Content-Type": "text/plain"})
    assert (status, answer) == (200, {"status": "received"})


async def test_veo_4k_reads_snake_case_and_null_data(start_bot):
    bot = await start_bot()
    snake = load("veo-4k-success-snake-case.json")
    assert await bot.callback("veo-4k", snake) == (200, {"status": "received"})
    status, answer = await bot.callback("veo-4k", load("veo-4k-fail-data-null.json"))
    assert status == 400 and "task id" in answer["error"]


async def test_unknown_product_is_404(start_bot):
    bot = await start_bot()
    status, answer = await bot.callback("sora", load("veo-success.json"))
    assert status == 404
    assert "veo" in answer["error"] and "suno-mp4" in answer["error"]


async def test_unknown_route_is_404(start_bot):
    bot = await start_bot()
    status, answer = await bot.callback("veo", load("veo-success.json"), route="no-such-route")
    assert status == 404
    assert "route" in answer["error"]
    assert stored_events(bot) == []


async def test_unknown_path_and_method_answer_json(start_bot):
    bot = await start_bot()
    async with bot.http.get(f"{bot.url}/nowhere") as response:
        assert response.status == 404
        assert "error" in await response.json()
    async with bot.http.get(f"{bot.url}/callbacks/veo") as response:
        assert response.status == 405
        assert "error" in await response.json()


async def test_body_over_one_mib_is_413(start_bot):
    bot = await start_bot()
    body = load("veo-success.json")
    body["padding"] = "x" * (1024 * 1024)
    status, answer = await bot.callback("veo", body)
    assert status == 413
    assert "larger" in answer["error"]


async def test_chunked_body_over_one_mib_is_413(start_bot):
    bot = await start_bot()

    async def chunks():
        yield b'{"data": {"taskId": "t"}, "pad": "'
        for _ in range(300):
            yield b"x" * 4096
        yield b'"}'

    async with bot.http.post(f"{bot.url}/callbacks/veo", data=chunks()) as response:
        assert response.status == 413


async def test_a_store_that_cannot_write_answers_503_and_recovers(start_bot):
    bot = await start_bot()
    assert (await bot.callback("veo", load("veo-success.json")))[0] == 200
    # The lock may wait a moment for the bot's own background checkpoint to finish.
    locker = sqlite3.connect(bot.settings.database_path, timeout=5)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        status, answer = await bot.callback("runway", load("runway-success.json"))
        assert status == 503
        assert "retry" in answer["error"]
    finally:
        locker.rollback()
        locker.close()
    assert await bot.callback("runway", load("runway-success.json")) == (
        200,
        {"status": "received"},
    )


async def test_healthz(start_bot):
    bot = await start_bot()
    async with bot.http.get(f"{bot.url}/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}


async def test_metrics_count_and_time_callbacks(start_bot):
    bot = await start_bot()
    await bot.callback("veo", load("veo-success.json"))
    await bot.callback("veo", load("veo-success.json"))
    await bot.callback("nope", load("veo-success.json"))
    metrics = await scrape(bot)
    assert metrics[("kie_slack_callbacks_total", (("product", "veo"), ("status", "200")))] == 2
    assert metrics[("kie_slack_callbacks_total", (("product", "unknown"), ("status", "404")))] == 1
    assert metrics[("kie_slack_callback_seconds_count", ())] == 3
    assert metrics[("kie_slack_store_up", ())] == 1
    assert metrics[("kie_slack_outbox_rows", (("status", "pending"),))] >= 0
    assert ("kie_slack_process_resident_memory_bytes", ()) in metrics


# --- signatures ------------------------------------------------------------------------------


async def test_signed_fixture_verifies(start_bot):
    bot = await start_bot(kie_webhook_hmac_key=HMAC_KEY, kie_signature_tolerance=10**9)
    for name, product in (
        ("_signed-request-veo.json", "veo"),
        ("_signed-request-runway.json", "runway"),
    ):
        vector = json.loads((CALLBACKS / name).read_text())
        status, answer = await bot.callback(
            product, vector["body"], sign=False, headers=vector["headers"]
        )
        assert (status, answer) == (200, {"status": "received"}), name


async def test_signature_cases(start_bot):
    now = int(time.time())  # the bot's clock stands still: the edges of the tolerance hold
    bot = await start_bot(
        kie_webhook_hmac_key=HMAC_KEY, kie_signature_tolerance=300, clock=lambda: float(now)
    )
    body = load("runway-success.json")
    task_id = body["data"]["task_id"]

    async def send(headers):
        return await bot.callback("runway", body, sign=False, headers=headers)

    good = {"X-Webhook-Timestamp": str(now), "X-Webhook-Signature": sign(HMAC_KEY, task_id, now)}
    cases = {
        "missing both": {},
        "missing signature": {"X-Webhook-Timestamp": str(now)},
        "missing timestamp": {"X-Webhook-Signature": good["X-Webhook-Signature"]},
        "wrong key": {**good, "X-Webhook-Signature": sign("other-key", task_id, now)},
        "other task": {**good, "X-Webhook-Signature": sign(HMAC_KEY, "other-task", now)},
        "garbage signature": {**good, "X-Webhook-Signature": "%%%not base64 ☃"},
        "too old": {
            "X-Webhook-Timestamp": str(now - 301),
            "X-Webhook-Signature": sign(HMAC_KEY, task_id, now - 301),
        },
        "too far ahead": {
            "X-Webhook-Timestamp": str(now + 301),
            "X-Webhook-Signature": sign(HMAC_KEY, task_id, now + 301),
        },
        "timestamp not a number": {**good, "X-Webhook-Timestamp": "yesterday"},
        "timestamp in ms": {
            "X-Webhook-Timestamp": str(now * 1000),
            "X-Webhook-Signature": sign(HMAC_KEY, task_id, now * 1000),
        },
    }
    for name, headers in cases.items():
        status, answer = await send(headers)
        assert status == 401, name
        assert answer["error"], name
    assert stored_events(bot) == []
    lower = {key.lower(): value for key, value in good.items()}
    assert await send(lower) == (200, {"status": "received"})


async def test_unsigned_callbacks_pass_when_no_key_is_set(start_bot):
    bot = await start_bot()
    assert await bot.callback("runway", load("runway-success.json"), sign=False) == (
        200,
        {"status": "received"},
    )


async def test_refused_callbacks_are_logged_with_their_reason(start_bot, caplog):
    bot = await start_bot(kie_webhook_hmac_key=HMAC_KEY)
    with caplog.at_level("WARNING"):
        await bot.callback("veo", b"{not json")
        await bot.callback("veo", load("veo-success.json"), sign=False)
    assert 'refused with 400: {"error":"body is not JSON"}' in caplog.text
    assert "refused with 401" in caplog.text and "veo_task_3f9c2a7b1d4e" in caplog.text
