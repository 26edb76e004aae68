"""The Bolt app: the `/kie` command, the buttons on a task's card and the share modal.

Bolt answers Slack as soon as a listener returns (`process_before_response=True`), and every
listener returns as soon as it has acknowledged: `Listeners` runs each in a task of its own,
where what follows the acknowledgement (kie.ai calls, downloads, answers by response URL) goes
on without holding Slack's answer.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
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

log = logging.getLogger(__name__)

#: Slack waits this long for an acknowledgement (Bolt's own `ack_timeout`).
ACK_WITHIN = 3.0

Listener = Callable[..., Coroutine[Any, Any, None]]


class Listeners:
    """Runs each Bolt listener in a task of its own and returns to Bolt once the listener has
    called `ack()` (or ended), so Slack gets its answer then, while the rest of the listener
    goes on. Events, which Bolt acknowledges itself, return at once."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[None]] = set()

    def __call__(self, listener: Listener) -> Listener:
        """`listener`, returning once it acknowledges; Bolt still passes it the arguments its
        parameters name (it reads them through `functools.wraps`)."""

        @functools.wraps(listener)
        async def acknowledged(**kwargs: Any) -> None:
            acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if "ack" in kwargs:
                kwargs["ack"] = _telling(kwargs["ack"], acked)
            else:  # an event: Bolt acknowledges it when this returns
                acked.set_result(None)
            work = asyncio.create_task(listener(**kwargs))
            self._running.add(work)
            work.add_done_callback(self._running.discard)
            if not acked.done():
                await asyncio.wait(
                    (acked, work), timeout=ACK_WITHIN, return_when=asyncio.FIRST_COMPLETED
                )
            if acked.done() or not work.done():
                if not acked.done():
                    log.warning("%s did not acknowledge within %g s", _name(listener), ACK_WITHIN)
                work.add_done_callback(functools.partial(_log_failure, _name(listener)))
                return
            await work  # ended without acknowledging: Bolt answers its error with HTTP 500

        return acknowledged

    async def close(self, grace: float = 10.0) -> None:
        """Let the listeners still at work finish for up to `grace` seconds, then cancel them;
        for shutdown, before the store and the HTTP sessions close."""
        if not self._running:
            return
        _, late = await asyncio.wait(set(self._running), timeout=grace)
        for work in late:
            work.cancel()
        await asyncio.gather(*late, return_exceptions=True)


def _telling(
    ack: Callable[..., Awaitable[Any]], acked: asyncio.Future[None]
) -> Callable[..., Awaitable[Any]]:
    """`ack` that also resolves `acked` once Slack's answer is set."""

    async def tell(*args: Any, **kwargs: Any) -> Any:
        answer = await ack(*args, **kwargs)
        if not acked.done():
            acked.set_result(None)
        return answer

    return tell


def _log_failure(name: str, work: asyncio.Task[None]) -> None:
    if not work.cancelled() and (error := work.exception()) is not None:
        log.error("%s failed after acknowledging", name, exc_info=error)


def _name(listener: Listener) -> str:
    return getattr(listener, "__qualname__", repr(listener))


def build_bolt(
    signing_secret: str,
    client: AsyncWebClient | None,
    commands: Commands,
    actions: Actions,
    listeners: Listeners,
) -> AsyncApp:
    """A Bolt `AsyncApp` for our own aiohttp server; makes no network call until a request.

    It answers Slack when a listener returns; `listeners` makes each return once it has
    acknowledged. With no bot token (console mode) the app still verifies and answers slash
    commands; it just has no token to call the Web API with.
    """
    if client is not None:
        bolt = AsyncApp(client=client, signing_secret=signing_secret, process_before_response=True)
    else:

        async def no_token(**_: Any) -> AuthorizeResult:
            return AuthorizeResult(enterprise_id=None, team_id=None)

        bolt = AsyncApp(
            signing_secret=signing_secret, authorize=no_token, process_before_response=True
        )

    bolt.command("/kie")(listeners(commands.handle))

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
        bolt.action(action_id)(listeners(listener))
    bolt.view(SHARE_VIEW)(listeners(actions.share_submitted))
    return bolt


def register_generate(bolt: AsyncApp, generate: Generate, listeners: Listeners) -> None:
    """Route the buttons and forms that start generations (`/kie` itself routes `new`, `veo`,
    `runway` and `image` to `generate`)."""
    for action_id, clicked in (
        (AGAIN, generate.again),
        (EXTEND, generate.extend),
        (MJ_FOLLOW_UP, generate.mj_follow_up),
    ):
        bolt.action(action_id)(listeners(clicked))
    bolt.view(NEW_VIEW)(listeners(generate.form_submitted))
    bolt.view(EXTEND_VIEW)(listeners(generate.extend_submitted))


def register_home(
    bolt: AsyncApp, home: HomeOpened, generate: Generate, listeners: Listeners
) -> None:
    """Route the Home tab's opening and the message shortcut "Make a video from this" (its
    form is `/kie new`'s, submitted like it)."""
    bolt.event("app_home_opened")(listeners(home.opened))
    bolt.shortcut(FROM_MESSAGE)(listeners(generate.from_message))
