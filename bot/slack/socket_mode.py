"""Socket Mode: Slack's commands, clicks, forms and events over a WebSocket the bot opens, so
Slack needs no public address to reach it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def socket_mode(
    bolt: AsyncApp, app_token: str, api_url: str, *, ping_interval: float
) -> AsyncIterator[AsyncSocketModeHandler]:
    """Serve `bolt` over Socket Mode while the context is open.

    The first connection is made in the background, so the HTTP server (kie.ai's callbacks)
    starts even while Slack cannot be reached. slack_sdk's client then keeps the socket: it
    opens a new one (`apps.connections.open` at `api_url`) when Slack closes it, asks for a
    refresh, or stops answering pings. Must be entered inside the running loop.
    """
    handler = AsyncSocketModeHandler(
        bolt,
        app_token=app_token,
        # Its own client: a console-mode Bolt app has none, and this one must reach SLACK_API_URL.
        web_client=AsyncWebClient(base_url=api_url),
        ping_interval=ping_interval,
    )
    connecting = asyncio.create_task(_connect(handler))
    try:
        yield handler
    finally:
        await handler.close_async()
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connecting


async def _connect(handler: AsyncSocketModeHandler) -> None:
    """Connect once; slack_sdk retries on its own (and logs why) until it is connected."""
    log.info("Socket Mode: connecting to Slack")
    await handler.connect_async()
    if not handler.client.closed:
        log.info("Socket Mode: connected; Slack's requests arrive over it, not /slack/events")
