"""POST /callbacks/{product}[/{route}]: verify, store and acknowledge a kie.ai callback."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from bot.config import Settings
from bot.kie.products import PRODUCTS, PayloadError, product_names
from bot.kie.signature import signature_problem
from bot.metrics import Metrics
from handlers.responses import json_error
from storage.database import StoreUnavailable
from storage.health import StoreHealth
from storage.routes import RouteStore
from storage.tasks import TaskStore

log = logging.getLogger(__name__)

#: Larger bodies are refused with 413; real callbacks are a few KiB.
MAX_BODY_BYTES = 1024 * 1024
#: The two answers of a stored callback, encoded once.
_RECEIVED = b'{"status":"received"}'
_DUPLICATE = b'{"status":"duplicate"}'


@dataclass(frozen=True, slots=True)
class CallbackIntake:
    """What the callback route needs: settings, the stores, metrics, a clock, and the
    database's health (told of each callback refused because the store cannot write)."""

    settings: Settings
    tasks: TaskStore
    routes: RouteStore
    metrics: Metrics
    fallback_channel: str | None
    clock: Callable[[], float] = time.time
    health: StoreHealth = field(default_factory=StoreHealth)

    async def handle(self, request: web.Request) -> web.Response:
        slug = request.match_info["product"]
        started = time.perf_counter()
        response = await self._handle(request, slug)
        if response.status >= 400 and response.status != 503:  # 503s: said by `health`
            log.warning(
                "callback to %r from %s refused with %d: %s",
                request.path[:200],
                request.remote,
                response.status,
                response.text,
            )
        label = slug if slug in PRODUCTS else "unknown"
        self.metrics.callback(label, response.status, time.perf_counter() - started)
        return response

    async def _handle(self, request: web.Request, slug: str) -> web.Response:
        product = PRODUCTS.get(slug)
        if product is None:
            return json_error(404, f"unknown product {slug!r}; known products: {product_names()}")
        channel = self.fallback_channel
        token = request.match_info.get("route")
        if token is not None:
            try:
                channel = await self.routes.channel_for(token)
            except StoreUnavailable as exc:
                return self._unavailable(exc)
            if channel is None:
                return json_error(
                    404, "unknown callback route; run /kie url in Slack for a valid one"
                )
        raw = await _read_limited(request)
        if raw is None:
            return json_error(413, f"body is larger than {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            return json_error(400, "body is not JSON")
        try:
            update = product.parse_callback(body)
        except PayloadError as exc:
            return json_error(400, str(exc))
        key = self.settings.kie_webhook_hmac_key
        if key is not None:
            problem = signature_problem(
                key,
                update.task_id,
                request.headers,
                now=self.clock(),
                tolerance=self.settings.kie_signature_tolerance,
            )
            if problem is not None:
                return json_error(401, f"{problem} (task {update.task_id[:80]!r})")
        try:
            applied = await self.tasks.apply(update, channel=channel)
        except StoreUnavailable as exc:
            return self._unavailable(exc)
        if applied.duplicate:
            log.info(
                "duplicate %s callback for %r",
                slug,
                update.task_id,
                extra={"task_id": update.task_id},
            )
            return _answer(_DUPLICATE)
        where = {"task_id": update.task_id, "channel": ",".join(applied.channels) or None}
        log.info(
            "stored %s callback for %r: %s", slug, update.task_id, update.state.value, extra=where
        )
        if not applied.channels:
            log.warning(
                "task %r is stored but posted nowhere: set KIE_DEFAULT_CHANNEL, or use the "
                "callback URL that /kie url gives in the channel that should see it",
                update.task_id,
                extra=where,
            )
        return _answer(_RECEIVED)

    def _unavailable(self, exc: StoreUnavailable) -> web.Response:
        """503: kie.ai retries. The log says so once a minute, with a count, not per callback."""
        self.health.refused(exc)
        return json_error(503, "the store cannot write now; retry later")


async def _read_limited(request: web.Request) -> bytes | None:
    """The body, or None when it is over `MAX_BODY_BYTES`."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json", charset="utf-8")
