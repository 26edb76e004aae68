"""Slack's answer does not wait for kie.ai: a `/kie veo` or a submitted `/kie new` form is
acknowledged (over HTTP or the Socket Mode socket) while kie.ai still holds its answer to the
generation, and the outcome follows by response URL once kie.ai answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import eventually, slash, slash_fields, submit_view
from tests.e2e.test_socket_mode import SOCKET, connected
from tests.fakes.kie import GENERATE, FakeKie
from tests.fakes.slack import FakeSlack

CHANNEL = "C0ACK"
ASKER = "U0ASKER"
#: How long a test waits for an answer that must not depend on kie.ai: far longer than any
#: machine needs, so only an answer held until kie.ai answers runs out of it.
NEVER = 10.0


class HeldKie(FakeKie):
    """kie.ai that holds its answer to every generation request until `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = asyncio.Event()
        self.release = asyncio.Event()

    async def _post(self, request: web.Request) -> web.Response:
        if request.path in GENERATE:
            self.asked.set()
            await self.release.wait()
        return await super()._post(request)


@pytest.fixture
async def held_kie() -> AsyncIterator[HeldKie]:
    kie = await HeldKie().start()
    yield kie
    kie.release.set()
    await kie.stop()


async def answered_while_held(
    held_kie: HeldKie, fake_slack: FakeSlack, answer: Awaitable[Any]
) -> Any:
    """Slack's answer (`answer`, awaited) comes while kie.ai holds the generation; then kie.ai
    answers, and the person is told by response URL that it started."""
    async with asyncio.timeout(NEVER):
        acknowledged = await answer
    assert held_kie.started == []  # kie.ai has not answered
    await eventually(held_kie.asked.is_set)  # the request reached it all the same
    held_kie.release.set()
    [started] = await eventually(lambda: held_kie.started)
    said = await eventually(
        lambda: [r["text"] for r in fake_slack.responses if "as task" in r["text"]]
    )
    assert f"as task `{started.task_id}`" in said[0]
    return acknowledged


async def test_a_slash_command_is_answered_before_kie_ai_answers(start_bot, fake_slack, held_kie):
    bot = await start_bot(fake_slack, held_kie)
    answer = slash(bot, fake_slack, "veo a paper boat in the rain", channel=CHANNEL, user=ASKER)
    status, body = await answered_while_held(held_kie, fake_slack, answer)
    assert status == 200 and body["text"].startswith("Starting Veo 3.1")


async def test_a_submitted_form_closes_before_kie_ai_answers(start_bot, fake_slack, held_kie):
    bot = await start_bot(fake_slack, held_kie)
    assert await slash(bot, fake_slack, "new", channel=CHANNEL, user=ASKER) == (200, "")
    [opened] = [params for name, params, _ in fake_slack.calls if name == "views.open"]
    view = opened["view"] if isinstance(opened["view"], dict) else json.loads(opened["view"])
    values = {"model": "veo:veo3_fast", "prompt": "a paper boat in the rain"}
    submitted = submit_view(bot, view, values, user=ASKER, view_id="V0ACK")
    assert await answered_while_held(held_kie, fake_slack, submitted) == (200, "")


async def test_a_slash_command_over_the_socket_is_acked_before_kie_ai_answers(
    start_bot, fake_slack, held_kie
):
    await start_bot(fake_slack, held_kie, **SOCKET)
    await connected(fake_slack)
    fields = slash_fields(fake_slack, "veo a paper boat", channel=CHANNEL, user=ASKER)
    sent = await fake_slack.envelope("slash_commands", fields)
    ack = await answered_while_held(held_kie, fake_slack, eventually(lambda: fake_slack.ack(sent)))
    assert ack["payload"]["text"].startswith("Starting Veo 3.1")
