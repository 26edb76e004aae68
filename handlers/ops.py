"""GET /healthz and GET /metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from bot.metrics import CONTENT_TYPE, Metrics
from handlers.responses import json_answer
from storage.database import StoreUnavailable
from storage.health import StoreHealth
from storage.outbox import Outbox
from storage.tasks import TaskStore


@dataclass(frozen=True, slots=True)
class Ops:
    """Health and metrics for whoever runs the bot."""

    tasks: TaskStore
    outbox: Outbox
    metrics: Metrics
    clock: Callable[[], float] = time.time
    health: StoreHealth = field(default_factory=StoreHealth)

    async def healthz(self, request: web.Request) -> web.Response:
        """200 while the database answers; 503 while it does not (reads, or during an outage
        that writes met, an empty write: its commit also ends the outage)."""
        try:
            await self.tasks.ping(write=self.health.down)
        except StoreUnavailable as exc:
            self.health.failed(exc)
            return json_answer({"status": "unavailable", "error": str(exc)}, status=503)
        return json_answer({"status": "ok"})

    async def metrics_page(self, request: web.Request) -> web.Response:
        try:
            stats = await self.outbox.stats()
        except StoreUnavailable as exc:
            self.health.failed(exc)
            page = self.metrics.render(None, None)
        else:
            oldest = stats.oldest_pending_at
            page = self.metrics.render(
                stats.counts, None if oldest is None else self.clock() - oldest
            )
        return web.Response(body=page, headers={"Content-Type": CONTENT_TYPE})
