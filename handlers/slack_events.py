"""POST /slack/events: Slack's requests, handed to the Bolt app."""

from __future__ import annotations

import logging

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from handlers.responses import json_answer

log = logging.getLogger(__name__)


class SlackEvents:
    """Dispatches to Bolt once it is built; answers 503 while there is no signing secret."""

    def __init__(self) -> None:
        self.bolt: AsyncApp | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.bolt is None:
            return json_answer(
                {"error": "SLACK_SIGNING_SECRET is not set, so Slack requests cannot be verified"},
                status=503,
            )
        bolt_request = await to_bolt_request(request)
        return await to_aiohttp_response(await self.bolt.async_dispatch(bolt_request))
