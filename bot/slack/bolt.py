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
    MJ_FOLLOW_UP,
    POLL_NOW,
    SHARE,
    SHARE_VIEW,
    UPSCALE_4K,
)
from bot.slack.forms import EXTEND_VIEW, NEW_VIEW
from bot.slack.from_message import FROM_MESSAGE
from handlers.actions import Actions
from handlers.commands import Commands
from handlers.generate import Generate
from handlers.home import HomeOpened


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

    bolt.command("/kie")(commands.handle)

    @bolt.action(re.compile(r"^open_(video|image|audio)_\d+$"))
    async def open_link(ack: Any) -> None:
        await ack()  # a link button opens the URL in the browser; Slack still expects an ack

    # Bolt passes each listener the arguments its parameters name (`self` is skipped).
    for action_id, listener in (
        (FRESH_LINK, actions.fresh_link),
        (GET_1080P, actions.get_1080p),
        (UPSCALE_4K, actions.upscale_4k),
        (SHARE, actions.share),
        (POLL_NOW, actions.poll_now),
    ):
        bolt.action(action_id)(listener)
    bolt.view(SHARE_VIEW)(actions.share_submitted)
    return bolt


def register_generate(bolt: AsyncApp, generate: Generate) -> None:
    """Route the buttons and forms that start generations (`/kie` itself routes `new`, `veo`,
    `runway` and `image` to `generate`)."""

    bolt.action(AGAIN)(generate.again)
    bolt.action(EXTEND)(generate.extend)
    bolt.action(MJ_FOLLOW_UP)(generate.mj_follow_up)
    bolt.view(NEW_VIEW)(generate.form_submitted)
    bolt.view(EXTEND_VIEW)(generate.extend_submitted)


def register_home(bolt: AsyncApp, home: HomeOpened, generate: Generate) -> None:
    """Route the Home tab's opening and the message shortcut "Make a video from this" (its
    form is `/kie new`'s, submitted like it)."""
    bolt.event("app_home_opened")(home.opened)
    bolt.shortcut(FROM_MESSAGE)(generate.from_message)
