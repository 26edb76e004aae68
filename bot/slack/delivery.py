"""The delivery worker: the only code that calls Slack. It drains the outbox, one channel at a
time per channel, oldest row first, paced and retried until each row is done or cannot pass."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Callable

from bot.metrics import Metrics
from bot.slack.gateway import SlackError, SlackGateway
from bot.slack.messages import Message, build_notice, build_task_message, build_update_message
from bot.task import Task
from storage.database import StoreUnavailable
from storage.outbox import Outbox, OutboxRow
from storage.tasks import TaskStore, event_update

log = logging.getLogger(__name__)

#: Unknown Slack errors are retried this many times before the row is kept as failed.
MAX_UNKNOWN_ATTEMPTS = 5
#: Sent rows are kept this long (for a look at what went out), then deleted.
KEEP_SENT_ROWS = 7 * 86400.0
PRUNE_EVERY = 3600.0
#: The shortest time between two looks for channels with work.
SCAN_INTERVAL = 0.01
#: The longest wait between two tries of one row.
MAX_BACKOFF = 300.0


class ChannelPacer:
    """A token bucket per channel: short bursts, then at most `rate` posts per second."""

    def __init__(
        self, rate: float = 1.0, burst: int = 3, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def delay(self, channel: str) -> float:
        """Take a token for `channel`; return how long to wait before using it."""
        now = self._clock()
        tokens, last = self._buckets.get(channel, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate) - 1.0
        self._buckets[channel] = (tokens, now)
        return 0.0 if tokens >= 0 else -tokens / self._rate


def _task_message(task: Task, with_image: bool) -> Message:
    return build_task_message(task, with_image=with_image)


def backoff(attempts: int) -> float:
    """Seconds before try number `attempts + 1`: exponential with full jitter, capped."""
    ceiling = min(MAX_BACKOFF, 2.0**attempts)
    return ceiling / 2 + random.random() * ceiling / 2


class Delivery:
    """Sends outbox rows to Slack; started and stopped with the app."""

    def __init__(
        self,
        outbox: Outbox,
        tasks: TaskStore,
        gateway: SlackGateway,
        metrics: Metrics,
        *,
        pacer: ChannelPacer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._outbox = outbox
        self._tasks = tasks
        self._gateway = gateway
        self._metrics = metrics
        self._pacer = pacer or ChannelPacer()
        self._clock = clock
        self._wake = tasks.outbox_ready
        self._drainers: dict[str, asyncio.Task[None]] = {}
        self._main: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        await self._outbox.due_now()  # rows left by an earlier run are sent at once
        self._wake.set()
        self._main = asyncio.create_task(self._run(), name="delivery")

    async def stop(self, timeout: float = 10.0) -> None:
        """Let in-flight sends finish (up to `timeout` s), then stop."""
        self._stopping.set()
        self._wake.set()
        tasks = [t for t in (self._main, *self._drainers.values()) if t is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _run(self) -> None:
        pruned_at = 0.0
        while not self._stopping.is_set():
            self._wake.clear()
            if self._clock() - pruned_at > PRUNE_EVERY:
                pruned_at = self._clock()
                with contextlib.suppress(StoreUnavailable):
                    await self._outbox.prune(older_than=KEEP_SENT_ROWS)
            try:
                channels = await self._outbox.pending_channels()
            except StoreUnavailable as exc:
                log.error("outbox unreadable, retrying in 5 s: %s", exc)
                channels = []
                await self._sleep(5)
            for channel in channels:
                if channel not in self._drainers:
                    self._drainers[channel] = asyncio.create_task(
                        self._drain(channel), name=f"delivery-{channel}"
                    )
            await asyncio.sleep(SCAN_INTERVAL)  # wake-ups during a burst make one scan
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=30)

    async def _drain(self, channel: str) -> None:
        try:
            while not self._stopping.is_set():
                row = await self._outbox.head(channel)
                if row is None:
                    return
                wait = row.due_at - self._clock()
                if wait > 0:
                    await self._sleep(wait)
                    continue
                await self._deliver(row)
        except StoreUnavailable as exc:
            log.error("outbox unreadable for %s: %s", channel, exc)
            await self._sleep(5)
        except Exception:
            log.exception("delivery to %s stopped by an unexpected error", channel)
            await self._sleep(5)
        finally:
            self._drainers.pop(channel, None)
            self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _deliver(self, row: OutboxRow) -> None:
        try:
            await self._send(row)
        except SlackError as exc:
            await self._failed(row, exc)

    async def _failed(self, row: OutboxRow, exc: SlackError) -> None:
        method = "chat.update" if row.kind == "update" else "chat.postMessage"
        self._metrics.inc("slack_calls_total", method=method, outcome=exc.error)
        give_up = exc.permanent or (
            not exc.known_transient and row.attempts + 1 >= MAX_UNKNOWN_ATTEMPTS
        )
        if give_up:
            log.error(
                "Slack refused %s for task %s in %s: %s; kept in the outbox as failed (row %d)",
                row.kind,
                row.task_id,
                row.channel,
                exc.error,
                row.id,
            )
            await self._outbox.fail(row, exc.error)
            return
        delay = exc.retry_after if exc.retry_after is not None else backoff(row.attempts)
        log.warning(
            "Slack %s for task %s in %s failed (%s); retry in %.1f s",
            row.kind,
            row.task_id,
            row.channel,
            exc.error,
            delay,
        )
        await self._outbox.retry(row, exc.error, delay)

    async def _send(self, row: OutboxRow) -> None:
        if row.kind == "root":
            await self._send_root(row)
            return
        root_ts, shown = await self._outbox.thread(row)
        if row.event_id is not None and shown is not None and row.event_id <= shown:
            await self._outbox.skip(row, "the root already shows it")
            return
        if row.kind == "update":
            await self._send_update(row, root_ts)
            return
        if row.kind == "reply":
            render = await self._reply_renderer(row)
            if render is None:
                await self._outbox.fail(row, "event not found")
                return
        else:
            notice = build_notice(row.task_id, row.text or "")

            def render(image: bool) -> Message:
                return notice

        await self._post(row, render, thread_ts=root_ts)
        await self._outbox.done(row)

    async def _send_root(self, row: OutboxRow) -> None:
        # Read the last event before the task, so the root shows at least that event.
        shown_event = await self._outbox.last_event_id(row.family, row.task_id)
        task = await self._tasks.get(row.family, row.task_id)
        if task is None:
            await self._outbox.fail(row, "task not found")
            return
        ts = await self._post(row, functools.partial(_task_message, task))
        await self._outbox.done(row, root_ts=ts, shown_event=shown_event)

    async def _send_update(self, row: OutboxRow, root_ts: str | None) -> None:
        task = await self._tasks.get(row.family, row.task_id)
        if root_ts is None or task is None:
            await self._outbox.skip(row, "no root message to update")
            return
        try:
            await self._gateway.update(row.channel, root_ts, build_task_message(task))
        except SlackError as exc:
            if not exc.image_failed:
                raise
            await self._gateway.update(
                row.channel, root_ts, build_task_message(task, with_image=False)
            )
        self._metrics.inc("slack_calls_total", method="chat.update", outcome="ok")
        await self._outbox.done(row)

    async def _reply_renderer(self, row: OutboxRow) -> Callable[[bool], Message] | None:
        event = await self._outbox.event(row.event_id or 0)
        if event is None:
            return None
        update = event_update(event)
        finished = float(event["received_at"])

        def render(image: bool) -> Message:
            return build_update_message(update, with_image=image, finished_at=finished)

        return render

    async def _post(
        self, row: OutboxRow, render: Callable[[bool], Message], thread_ts: str | None = None
    ) -> str:
        delay = self._pacer.delay(row.channel)
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            ts = await self._gateway.post(row.channel, render(True), thread_ts)
        except SlackError as exc:
            if not exc.image_failed:
                raise
            log.warning(
                "Slack could not fetch an image for task %s; sending without it", row.task_id
            )
            ts = await self._gateway.post(row.channel, render(False), thread_ts)
        self._metrics.inc("slack_calls_total", method="chat.postMessage", outcome="ok")
        return ts
