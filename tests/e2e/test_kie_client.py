"""The kie.ai client against a fake kie.ai over HTTP: envelope rule, retries, errors, pacing."""

from __future__ import annotations

import time

import aiohttp
import pytest

from bot.kie.client import KieClient, KieError, RateLimiter
from bot.kie.products import PRODUCTS
from bot.metrics import Metrics
from bot.task import State
from tests.conftest import poll

PATH = "/api/v1/veo/record-info"
TASK = "veo_task_3f9c2a7b1d4e"


@pytest.fixture
async def client(fake_kie):
    async with aiohttp.ClientSession() as session:
        yield KieClient(session, fake_kie.url, fake_kie.api_key, Metrics(), backoff=0.01)


def envelope(code: int, msg: str = "m", data=None):
    return {"code": code, "msg": msg, "data": data}


async def test_the_envelope_code_wins_over_the_http_status(client, fake_kie):
    body = poll("veo-record-info-success.json")[1]
    fake_kie.script(PATH, TASK, (500, body))
    update = await client.record(PRODUCTS["veo"], TASK)
    assert update.state is State.SUCCEEDED
    fake_kie.script(PATH, "other", (200, envelope(402, "Insufficient Credits")))
    with pytest.raises(KieError) as caught:
        await client.record(PRODUCTS["veo"], "other")
    assert caught.value.kind == "credits" and "credits" in str(caught.value)


@pytest.mark.parametrize(
    ("answer", "kind", "words"),
    [
        ((200, envelope(401, "You do not have access permissions")), "auth", "KIE_API_KEY"),
        ((401, envelope(401)), "auth", "401"),
        ((200, envelope(402)), "credits", "402"),
        ((200, envelope(404, "not found")), "not_found", "has no veo task"),
        ((200, envelope(422, "record is null")), "not_found", "has no veo task"),
        ((200, {"code": 200, "msg": "success", "data": None}), "not_found", "has no veo task"),
        ((200, envelope(505, "feature disabled")), "invalid", "505"),
    ],
)
async def test_clear_errors(client, fake_kie, answer, kind, words):
    fake_kie.script(PATH, TASK, answer)
    with pytest.raises(KieError) as caught:
        await client.record(PRODUCTS["veo"], TASK)
    assert caught.value.kind == kind
    assert words in str(caught.value)
    assert fake_kie.polls(TASK) == 1  # none of these is retried


@pytest.mark.parametrize(
    "failure",
    [
        (429, envelope(429)),
        (200, envelope(455)),
        (200, envelope(500)),
        (502, "<html>bad gateway</html>"),
    ],
)
async def test_retries_what_can_pass(client, fake_kie, failure):
    fake_kie.script(PATH, TASK, failure, poll("veo-record-info-generating.json"))
    update = await client.record(PRODUCTS["veo"], TASK)
    assert update.state is State.RUNNING
    assert fake_kie.polls(TASK) == 2


async def test_gives_up_after_three_tries(client, fake_kie):
    fake_kie.script(PATH, TASK, (200, envelope(455, "maintenance")))
    with pytest.raises(KieError) as caught:
        await client.record(PRODUCTS["veo"], TASK)
    assert caught.value.kind == "unavailable" and "455" in str(caught.value)
    assert fake_kie.polls(TASK) == 3


async def test_network_errors_are_unavailable():
    async with aiohttp.ClientSession() as session:
        client = KieClient(session, "http://127.0.0.1:9", "k", Metrics(), backoff=0.01)
        with pytest.raises(KieError) as caught:
            await client.credits()
    assert caught.value.kind == "unavailable"


async def test_bearer_auth_and_credits(client, fake_kie):
    assert await client.credits() == 100
    fake_kie.credits = (200, envelope(200, "success", "lots"))
    with pytest.raises(KieError):
        await client.credits()


async def test_rate_limiter_spaces_request_starts():
    limiter = RateLimiter(rate=100)
    started = time.monotonic()
    for _ in range(21):
        await limiter.wait()
    assert time.monotonic() - started >= 0.2  # 20 intervals of 10 ms at least
