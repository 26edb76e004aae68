"""The delivery worker: the only code that calls Slack. It drains the outbox one channel at a
time per channel, oldest row first, paced, and waits out Slack's trouble until each row is sent
or meets an error that no retry can pass."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.slack.gateway import SlackError, SlackGateway
from bot.slack.messages import Message, build_notice, build_task_message, build_update_message
from storage.database import StoreUnavailable
from storage.leases import Leases
from storage.outbox import Outbox, OutboxRow
from storage.tasks import TaskStore

log = logging.getLogger(__name__)

#: An `ok: false` error the code does not know is tried this many times, then kept as failed.
MAX_UNKNOWN_ATTEMPTS = 5
#: Sent rows are kept this long (for a look at what went out), then deleted.
KEEP_SENT_ROWS = 7 * 86400.0
PRUNE_EVERY = 3600.0
#: The shortest time between two looks for channels with work.
SCAN_INTERVAL = 0.01
#: The longest time without a look at the outbox: rows that another process made due (an
#: operator's `kie-slack outbox retry`) are sent within about this long.
RECHECK = 2.0
#: The longest wait between two tries of one row while Slack is in trouble.
MAX_BACKOFF = 60.0
#: A replica renews its claim on a channel this often while it sends the channel's rows.
RENEW_EVERY = 10.0
#: While Slack does not answer, the log says so at most this often.
OUTAGE_LOG_EVERY = 60.0

T = TypeVar("T")


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


def backoff(attempts: int) -> float:
    """Seconds before try number `attempts + 1`: exponential with jitter, capped."""
    ceiling = min(MAX_BACKOFF, 2.0**attempts)
    return ceiling / 2 + random.random() * ceiling / 2


class SlackWeather:
    """Whether Slack answers: one log line when it stops, one a minute while it stays away, one
    when it is back — not one per row."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._since: float | None = None
        self._logged_at = 0.0

    @property
    def down(self) -> bool:
        return self._since is not None

    def trouble(self, error: SlackError, waiting: int) -> None:
        """A call met passing trouble; `waiting` is how many channels have work."""
        now = self._clock()
        if self._since is None:
            self._since = self._logged_at = now
            log.warning(
                "Slack is not answering (%s); messages are kept and retried", _described(error)
            )
        elif now - self._logged_at >= OUTAGE_LOG_EVERY:
            self._logged_at = now
            log.warning(
                "Slack has not answered for %.0f s (%s); %d channels wait, nothing is lost",
                now - self._since,
                _described(error),
                waiting,
            )

    def answered(self) -> bool:
        """A call went through; True when that ends an outage."""
        if self._since is None:
            return False
        log.warning(
            "Slack answers again after %.0f s; sending what waited", self._clock() - self._since
        )
        self._since = None
        return True


def _described(error: SlackError) -> str:
    return f"{error.error}: {error.detail}" if error.detail else error.error


class Delivery:
    """Sends outbox rows to Slack; started and stopped with the app.

    `retry_hours` is how long a row keeps being retried through passing trouble (429, 5xx,
    network) after it was written.
    """

    def __init__(
        self,
        outbox: Outbox,
        tasks: TaskStore,
        gateway: SlackGateway,
        *,
        retry_hours: float = 24.0,
        leases: Leases | None = None,
        pacer: ChannelPacer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._outbox = outbox
        self._leases = leases
        self._tasks = tasks
        self._gateway = gateway
        self._retry_seconds = retry_hours * 3600.0
        self._pacer = pacer or ChannelPacer()
        self._clock = clock
        self._weather = SlackWeather()
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
        pruned_at = renewed_at = 0.0
        while not self._stopping.is_set():
            self._wake.clear()
            if self._leases is not None and self._clock() - renewed_at > RENEW_EVERY:
                renewed_at = self._clock()
                with contextlib.suppress(StoreUnavailable):
                    await self._leases.renew_all()
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
                if channel not in self._drainers and await self._claim(channel):
                    self._drainers[channel] = asyncio.create_task(
                        self._drain(channel), name=f"delivery-{channel}"
                    )
            await asyncio.sleep(SCAN_INTERVAL)  # wake-ups during a burst make one scan
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=RECHECK)

    async def _claim(self, channel: str) -> bool:
        """Whether this process may send `channel`'s rows now (one replica per channel)."""
        if self._leases is None:
            return True
        try:
            return await self._leases.claim(f"channel:{channel}")
        except StoreUnavailable as exc:
            log.error("cannot claim channel %s: %s", channel, exc, extra={"channel": channel})
            return False

    async def _drain(self, channel: str) -> None:
        renewed = self._clock()
        try:
            while not self._stopping.is_set():
                if self._clock() - renewed > RENEW_EVERY:
                    if not await self._claim(channel):
                        log.warning("channel %s was taken over by another replica", channel)
                        return
                    renewed = self._clock()
                row = await self._outbox.head(channel)
                if row is None:
                    return
                wait = row.due_at - self._clock()
                if wait > 0:  # look again soon: an operator or a recovery may make it due
                    await self._sleep(min(wait, RECHECK))
                    continue
                await self._deliver(row)
        except StoreUnavailable as exc:
            log.error("outbox unreadable for %s: %s", channel, exc, extra={"channel": channel})
            await self._sleep(5)
        except Exception:
            log.exception("delivery to %s stopped by an unexpected error", channel)
            await self._sleep(5)
        finally:
            if self._leases is not None:
                with contextlib.suppress(StoreUnavailable):
                    await self._leases.release(f"channel:{channel}")
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
        else:
            if self._weather.answered() and await self._outbox.hurry():
                self._wake.set()

    async def _failed(self, row: OutboxRow, exc: SlackError) -> None:
        where = {"task_id": row.task_id, "channel": row.channel}
        reason = _described(exc)
        if exc.passing:
            if exc.unreachable:
                self._weather.trouble(exc, len(self._drainers))
            if self._clock() - row.window_start > self._retry_seconds:
                log.error(
                    "gave up on %s for task %s in %s after %.0f hours of Slack trouble (%s); "
                    "kept as failed (row %d): `kie-slack outbox retry %d` sends it again",
                    row.kind,
                    row.task_id,
                    row.channel,
                    self._retry_seconds / 3600,
                    reason,
                    row.id,
                    row.id,
                    extra=where,
                )
                await self._outbox.fail(row, reason)
                return
            counted = exc.retry_after is None  # a 429 is Slack's pace, not a failed try
            delay = exc.retry_after if exc.retry_after is not None else backoff(row.attempts)
            log.debug(
                "%s for task %s in %s: %s; retry in %.1f s",
                row.kind,
                row.task_id,
                row.channel,
                reason,
                delay,
                extra=where,
            )
            await self._outbox.retry(row, reason, delay, counted=counted)
            return
        if not exc.permanent and row.unknown_errors + 1 < MAX_UNKNOWN_ATTEMPTS:
            delay = backoff(row.attempts)
            log.warning(
                "Slack answered %s for task %s in %s; retry %d of %d in %.0f s",
                reason,
                row.task_id,
                row.channel,
                row.unknown_errors + 1,
                MAX_UNKNOWN_ATTEMPTS - 1,
                delay,
                extra=where,
            )
            await self._outbox.retry(row, reason, delay, unknown=True)
            return
        log.error(
            "Slack refused %s for task %s in %s: %s; kept as failed (row %d): fix the cause, "
            "then `kie-slack outbox retry %d`",
            row.kind,
            row.task_id,
            row.channel,
            reason,
            row.id,
            row.id,
            extra=where,
        )
        await self._outbox.fail(row, reason)

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
            if root_ts is None:  # the root never went out (refused for good): post one now
                await self._send_root(row)
                return
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
        """Post the task's card as its root in the row's channel, once."""
        root_ts, _ = await self._outbox.thread(row)
        if root_ts is not None:  # already posted (an operator resent an old root row)
            await self._outbox.skip(row, "the root is already posted")
            return
        # Read the last event before the task, so the root shows at least that event.
        shown_event = await self._outbox.last_event_id(row.family, row.task_id)
        task = await self._tasks.get(row.family, row.task_id)
        if task is None:
            await self._outbox.fail(row, "task not found")
            return

        def render(image: bool) -> Message:
            return build_task_message(task, with_image=image)

        ts = await self._post(row, render)
        await self._outbox.done(row, root_ts=ts, shown_event=shown_event)

    async def _send_update(self, row: OutboxRow, root_ts: str | None) -> None:
        task = await self._tasks.get(row.family, row.task_id)
        if root_ts is None or task is None:
            await self._outbox.skip(row, "no root message to update")
            return

        def render(image: bool) -> Message:
            return build_task_message(task, with_image=image)

        await self._without_image_if_refused(
            row, render, lambda message: self._gateway.update(row.channel, root_ts, message)
        )
        await self._outbox.done(row)

    async def _reply_renderer(self, row: OutboxRow) -> Callable[[bool], Message] | None:
        event = await self._tasks.event(row.event_id or 0)
        if event is None:
            return None

        def render(image: bool) -> Message:
            return build_update_message(
                event.update, with_image=image, finished_at=event.received_at
            )

        return render

    async def _post(
        self, row: OutboxRow, render: Callable[[bool], Message], thread_ts: str | None = None
    ) -> str:
        delay = self._pacer.delay(row.channel)
        if delay > 0:
            await asyncio.sleep(delay)
        return await self._without_image_if_refused(
            row, render, lambda message: self._gateway.post(row.channel, message, thread_ts)
        )

    async def _without_image_if_refused(
        self,
        row: OutboxRow,
        render: Callable[[bool], Message],
        send: Callable[[Message], Awaitable[T]],
    ) -> T:
        """`send(render(True))`; when Slack cannot fetch an image, send it again without."""
        try:
            return await send(render(True))
        except SlackError as exc:
            if not exc.image_failed:
                raise
        log.warning(
            "Slack could not fetch an image for task %s; sending without it",
            row.task_id,
            extra={"task_id": row.task_id, "channel": row.channel},
        )
        return await send(render(False))
