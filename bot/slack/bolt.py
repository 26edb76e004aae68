"""The Bolt app: the `/kie` command, the buttons on a task's card and the share modal."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.buttons import (
    AGAIN,
    EXTEND,
    FRESH_LINK,
    GET_1080P,
    POLL_NOW,
    SHARE,
    SHARE_VIEW,
    UPSCALE_4K,
)
from bot.slack.forms import EXTEND_VIEW, NEW_VIEW
from handlers.actions import Actions
from handlers.commands import Commands
from handlers.generate import Generate


def build_bolt(
    signing_secret: str, client: AsyncWebClient | None, commands: Commands, actions: Actions
) -> AsyncApp:
    """A Bolt `AsyncApp` for our own aiohttp server; makes no network call until a request.

    With no bot token (console mode) the app still verifies and answers slash commands; it just
    has no token to call the Web API with.
    """
    if client is not None:
        bolt = AsyncApp(client=client, signing_secret=signing_secret)
    else:

        async def no_token(**_: Any) -> AuthorizeResult:
            return AuthorizeResult(enterprise_id=None, team_id=None)

        bolt = AsyncApp(signing_secret=signing_secret, authorize=no_token)

    @bolt.command("/kie")
    async def kie(ack: Any, command: dict[str, Any], respond: Any) -> None:
        await commands.handle(ack, command, respond)

    @bolt.action(re.compile(r"^open_video_\d+$"))
    async def open_video(ack: Any) -> None:
        await ack()  # a link button opens the URL in the browser; Slack still expects an ack

    @bolt.action(FRESH_LINK)
    async def fresh_link(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await actions.fresh_link(ack, body, respond)

    @bolt.action(GET_1080P)
    async def get_1080p(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await actions.get_1080p(ack, body, respond)

    @bolt.action(UPSCALE_4K)
    async def upscale_4k(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await actions.upscale_4k(ack, body, respond)

    @bolt.action(SHARE)
    async def share(ack: Any, body: dict[str, Any], respond: Any, client: AsyncWebClient) -> None:
        await actions.share(ack, body, respond, client)

    @bolt.view(SHARE_VIEW)
    async def share_submitted(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        await actions.share_submitted(ack, body, view)

    @bolt.action(POLL_NOW)
    async def poll_now(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await actions.poll_now(ack, body, respond)

    return bolt


def register_generate(bolt: AsyncApp, generate: Generate) -> None:
    """Route the buttons and forms that start generations (`/kie` itself routes `new`, `veo`
    and `runway` to `generate`)."""

    @bolt.action(AGAIN)
    async def again(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await generate.again(ack, body, respond)

    @bolt.action(EXTEND)
    async def extend(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await generate.extend(ack, body, respond)

    @bolt.view(NEW_VIEW)
    async def new_submitted(ack: Any, body: dict[str, Any]) -> None:
        await generate.form_submitted(ack, body)

    @bolt.view(EXTEND_VIEW)
    async def extend_submitted(ack: Any, body: dict[str, Any]) -> None:
        await generate.extend_submitted(ack, body)
