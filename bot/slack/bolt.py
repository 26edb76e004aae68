"""The Bolt app: the `/kie` command and the acknowledgement of link-button clicks."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web.async_client import AsyncWebClient

from handlers.commands import Commands


def build_bolt(signing_secret: str, client: AsyncWebClient | None, commands: Commands) -> AsyncApp:
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

    return bolt
