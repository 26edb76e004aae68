"""GET /healthz and GET /metrics."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web

from bot.metrics import Metrics
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

    async def healthz(self, request: web.Request) -> web.Response:
        try:
            await self.tasks.ping()
        except StoreUnavailable as exc:
            log.error("health check: database does not answer: %s", exc)
            return json_answer({"status": "unavailable", "error": str(exc)}, status=503)
        return json_answer({"status": "ok"})

    async def metrics_page(self, request: web.Request) -> web.Response:
        gauges: dict[str, float] = {}
        try:
            for status, count in (await self.outbox.counts()).items():
                gauges[f"slack_outbox_{status}_rows"] = count
        except StoreUnavailable:
            gauges["kie_slack_store_up"] = 0
        else:
            gauges["kie_slack_store_up"] = 1
        return web.Response(
            text=self.metrics.render(gauges),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )
