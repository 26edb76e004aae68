"""GET /healthz and GET /metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from bot.metrics import CONTENT_TYPE, Metrics
from handlers.responses import json_answer
from storage.database import StoreUnavailable
from storage.outbox import Outbox
from storage.tasks import TaskStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Ops:
    """Health and metrics for whoever runs the bot."""

    tasks: TaskStore
    outbox: Outbox
    metrics: Metrics
    clock: Callable[[], float] = time.time

    async def healthz(self, request: web.Request) -> web.Response:
        try:
            await self.tasks.ping()
        except StoreUnavailable as exc:
            log.error("health check: database does not answer: %s", exc)
            return json_answer({"status": "unavailable", "error": str(exc)}, status=503)
        return json_answer({"status": "ok"})

    async def metrics_page(self, request: web.Request) -> web.Response:
        try:
            stats = await self.outbox.stats()
        except StoreUnavailable as exc:
            log.error("metrics: database does not answer: %s", exc)
            page = self.metrics.render(None, None)
        else:
            oldest = stats.oldest_pending_at
            page = self.metrics.render(
                stats.counts, None if oldest is None else self.clock() - oldest
            )
        return web.Response(body=page, headers={"Content-Type": CONTENT_TYPE})
