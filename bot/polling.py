"""Polling kie.ai for tasks whose callback is late: one APScheduler job, the schedule in SQLite."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.kie.client import KieClient, KieError
from bot.kie.products import PRODUCTS
from bot.metrics import Metrics
from storage.database import StoreUnavailable
from storage.health import StoreHealth
from storage.polls import DuePoll, PollSchedule
from storage.tasks import TaskStore

log = logging.getLogger(__name__)

#: The longest wait between two polls of one task after errors.
MAX_POLL_BACKOFF = 600.0


def gave_up_text(task_id: str) -> str:
    return (
        f"I stopped asking kie.ai about task {task_id}: it has not finished after a day. "
        f"Check it by hand with /kie status {task_id}, or in the kie.ai dashboard's logs."
    )


class Poller:
    """Each tick polls the tasks that are due, a few at a time, and schedules their next poll."""

    def __init__(
        self,
        schedule: PollSchedule,
        tasks: TaskStore,
        client: KieClient,
        metrics: Metrics,
        *,
        interval: float,
        clock: Callable[[], float] = time.time,
        concurrency: int = 10,
        health: StoreHealth | None = None,
    ) -> None:
        self._schedule = schedule
        self._tasks = tasks
        self._client = client
        self._metrics = metrics
        self._interval = interval
        self._clock = clock
        self._slots = asyncio.Semaphore(concurrency)
        self._ticking: asyncio.Task[None] | None = None
        self._health = health or StoreHealth()

    async def tick(self) -> None:
        """Poll every due task (the client keeps kie.ai at 10 requests per second)."""
        self._ticking = asyncio.current_task()
        try:
            await self._tick()
        finally:
            self._ticking = None

    async def finish(self, timeout: float = 10.0) -> None:
        """Let a running tick end (cancelled after `timeout` s); for shutdown."""
        ticking = self._ticking
        if ticking is not None and not ticking.done():
            _, pending = await asyncio.wait([ticking], timeout=timeout)
            for task in pending:
                task.cancel()

    async def _tick(self) -> None:
        try:
            due = await self._schedule.due()
        except StoreUnavailable as exc:  # the poll schedule waits; said once a minute
            self._health.failed(exc)
            return
        await asyncio.gather(*(self._poll(poll) for poll in due))

    async def _poll(self, poll: DuePoll) -> None:
        async with self._slots:
            try:
                await self._poll_one(poll)
            except StoreUnavailable as exc:  # asked again when its claim runs out
                self._health.failed(exc)

    async def _poll_one(self, poll: DuePoll) -> None:
        if self._clock() >= poll.until:
            log.warning(
                "giving up on task %s after a day without a final answer",
                poll.task_id,
                extra={"task_id": poll.task_id},
            )
            await self._schedule.give_up(poll, gave_up_text(poll.task_id))
            return
        product = PRODUCTS[poll.product]
        try:
            update = await self._client.record(product, poll.task_id)
        except KieError as exc:
            delay = min(MAX_POLL_BACKOFF, self._interval * 2 ** (poll.failures + 1))
            log.warning(
                "poll of %s failed (%s); next try in %.0f s",
                poll.task_id,
                exc,
                delay,
                extra={"task_id": poll.task_id},
            )
            self._metrics.poll(product.slug, exc.kind)
            await self._schedule.next(poll, delay, failed=True)
            return
        self._metrics.poll(product.slug, update.state.value)
        await self._tasks.apply(update)
        await self._schedule.next(poll, self._interval, failed=False)
        await self._tasks.asked(poll.family, poll.task_id)


def start_scheduler(
    job: Callable[[], Awaitable[None]], tick_seconds: float, name: str
) -> AsyncIOScheduler:
    """An APScheduler running `job` every `tick_seconds` (one run at a time, missed runs folded
    into one); call it in the loop (the poller's tick, the spend watch's)."""
    scheduler = AsyncIOScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
    )
    scheduler.add_job(job, "interval", seconds=tick_seconds, id=name, replace_existing=True)
    scheduler.start()
    return scheduler
