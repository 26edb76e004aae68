"""The delivery worker: the only code that calls Slack. It drains the outbox one channel at a
time per channel, oldest row first, paced, and waits out Slack's trouble until each row is sent
or meets an error that no retry can pass. Result files (videos, images, tracks) are saved into
their threads on a lane of their own per channel, so a long transfer holds back no post."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp

from bot.kie.media import noun
from bot.kie.products import PRODUCTS, model_name
from bot.slack.blocks import TEXT_ON_CARD, Message, text_pieces
from bot.slack.gateway import SlackError, SlackGateway
from bot.slack.home import Link, build_done_message
from bot.slack.messages import (
    build_channel_message,
    build_notice,
    build_task_message,
    build_update_message,
)
from bot.slack.upload import UploadError, file_name, file_title, track_title
from bot.task import Task
from bot.video.errors import TransferError
from bot.video.saved import SavedVideo, SaveState
from bot.video.transfer import open_video
from storage.database import StoreUnavailable
from storage.health import StoreHealth
from storage.leases import Leases
from storage.outbox import Outbox, OutboxRow
from storage.tasks import TaskStore
from storage.videos import SavedVideos
from storage.wakeups import wake_here

log = logging.getLogger(__name__)

#: An `ok: false` error the code does not know is tried this many times, then kept as failed.
MAX_UNKNOWN_ATTEMPTS = 5
#: The shortest time between two looks for channels with work: under a stream of callbacks,
#: each look is a read of the outbox, and a new channel's first post waits at most this long.
SCAN_INTERVAL = 0.1
#: The longest time without a look at the outbox. On PostgreSQL, work that another process
#: queued or made due (another replica, an operator's `kie-slack outbox retry`) wakes the
#: delivery at once (`storage.wakeups`); this look is the fallback while that cannot.
RECHECK = 2.0
#: The longest wait between two tries of one row while Slack is in trouble.
MAX_BACKOFF = 60.0
#: A replica renews its claim on a channel this often while it sends the channel's rows.
RENEW_EVERY = 10.0
#: While Slack does not answer, the log says so at most this often.
OUTAGE_LOG_EVERY = 60.0
#: While a result file keeps failing for a passing reason, the log says so at most this often.
FILE_TROUBLE_LOG_EVERY = 60.0
#: Files transferred at once, over all channels (each streams through a fixed-size buffer).
MAX_TRANSFERS = 2
#: While the store cannot record a row that Slack accepted, it is tried again at most this far
#: apart (seconds): a row left pending would be sent twice.
MAX_RECORD_WAIT = 5.0

#: Message links kept in memory (a link never changes); the oldest go first past this many.
LINKS_KEPT = 5000

T = TypeVar("T")


class HomeViews(Protocol):
    """Renders a person's Home tab as it is now (`bot.home.HomeTab`)."""

    async def view(self, user: str, link: Link) -> dict[str, Any]: ...


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


class FileTrouble:
    """Result files that keep failing for a passing reason (their host or Slack in trouble): a
    warning for each at its first failure, then at most one a minute while it goes on."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._logged_at: dict[int, float] = {}

    def failed(self, row: OutboxRow, what: str, reason: str, retry_hours: float) -> None:
        """Try `row.attempts + 1` of the file `what` ("image 2") met passing trouble."""
        now = self._clock()
        logged = self._logged_at.get(row.id)
        if logged is not None and now - logged < FILE_TROUBLE_LOG_EVERY:
            return
        self._logged_at[row.id] = now
        log.warning(
            "%s of task %s not saved in %s yet: %s; %d tries so far, retried for up to %g hours",
            what,
            row.task_id,
            row.channel,
            reason,
            row.attempts + 1,
            retry_hours,
            extra={"task_id": row.task_id, "channel": row.channel},
        )

    def ended(self, row: OutboxRow) -> None:
        """The file's row is finished (saved, or not saved for good)."""
        self._logged_at.pop(row.id, None)


@dataclass(frozen=True, slots=True)
class VideoTransfers:
    """How result files of every kind are fetched (SLACK_SAVE_VIDEOS=on): `downloads` is a
    session from `bot.video.download.download_session()`, `max_bytes` the cap
    (SAVE_VIDEO_MAX_MB), and `spool_dir` where a file without a Content-Length waits on disk
    (the system's default)."""

    downloads: aiohttp.ClientSession
    max_bytes: int
    spool_dir: Path | None = None


@dataclass(slots=True)
class Lane:
    """One kind of Slack work that each channel drains in order, one row at a time: the posts,
    or the file transfers (which may take minutes and must not hold the posts back).

    `name` prefixes the lease a replica holds on a channel's lane; `slots`, when given, caps
    how many rows of this lane are in flight across all channels.
    """

    name: str
    channels: Callable[[], Awaitable[list[str]]]
    head: Callable[[str], Awaitable[OutboxRow | None]]
    slots: asyncio.Semaphore | None = None
    #: The shortest time between two looks for channels with work in this lane.
    scan_every: float = 0.0
    scanned_at: float = float("-inf")
    running: dict[str, asyncio.Task[None]] = field(default_factory=dict)


class Delivery:
    """Sends outbox rows to Slack; started and stopped with the app.

    `retry_hours` is how long a row keeps being retried through passing trouble (429, 5xx,
    network) after it was written. `videos` records what became of each result file and feeds
    the cards; `transfers` (None when saving is off) fetches the files to save. `health` hears
    of the store's trouble (said once a minute, not once per look at the outbox). `home`
    renders each person's Home tab when it is published.
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
        videos: SavedVideos | None = None,
        transfers: VideoTransfers | None = None,
        health: StoreHealth | None = None,
        home: HomeViews | None = None,
    ) -> None:
        self._outbox = outbox
        self._home = home
        self._links: dict[tuple[str, str], str] = {}
        self._health = health or StoreHealth()
        self._leases = leases
        self._tasks = tasks
        self._gateway = gateway
        self._retry_seconds = retry_hours * 3600.0
        self._pacer = pacer or ChannelPacer()
        self._clock = clock
        self._weather = SlackWeather()
        self._file_trouble = FileTrouble(clock)
        self._wake = tasks.outbox_ready
        self._main: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._videos = videos
        self._transfers = transfers
        self._posts = Lane("channel", outbox.pending_channels, outbox.head)
        self._lanes = (
            self._posts,
            Lane(
                "videos",
                outbox.video_channels,
                outbox.video_head,
                slots=asyncio.Semaphore(MAX_TRANSFERS),
                # Finding the files whose thread is ready reads every waiting file row: not
                # on every wake-up of a busy outbox, at most once per look-again interval.
                scan_every=RECHECK,
            ),
        )

    async def start(self) -> None:
        await self._outbox.due_now()  # rows left by an earlier run are sent at once
        self._wake.set()
        self._main = asyncio.create_task(self._run(), name="delivery")

    async def stop(self, timeout: float = 10.0) -> None:
        """Let in-flight sends finish (up to `timeout` s), then stop."""
        self._stopping.set()
        wake_here(self._wake)
        running = [task for lane in self._lanes for task in lane.running.values()]
        tasks = [t for t in (self._main, *running) if t is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _run(self) -> None:
        renewed_at = 0.0
        while not self._stopping.is_set():
            self._wake.clear()
            if self._leases is not None and self._clock() - renewed_at > RENEW_EVERY:
                renewed_at = self._clock()
                with contextlib.suppress(StoreUnavailable):
                    await self._leases.renew_all()
            for lane in self._lanes:
                await self._start_lanes(lane)
            await asyncio.sleep(SCAN_INTERVAL)  # wake-ups during a burst make one scan
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=RECHECK)

    async def _start_lanes(self, lane: Lane) -> None:
        """A drainer for each channel with work in `lane` that this process may claim."""
        if time.monotonic() - lane.scanned_at < lane.scan_every:
            return
        lane.scanned_at = time.monotonic()
        try:
            for channel in await lane.channels():
                if channel not in lane.running and await self._claim(lane, channel):
                    lane.running[channel] = asyncio.create_task(
                        self._drain(lane, channel), name=f"{lane.name}-{channel}"
                    )
        except StoreUnavailable as exc:  # looked at again in 5 s
            self._health.failed(exc)
            await self._sleep(5)

    async def _claim(self, lane: Lane, channel: str) -> bool:
        """Whether this process may work `channel`'s lane now (one replica per channel)."""
        if self._leases is None:
            return True
        return await self._leases.claim(f"{lane.name}:{channel}")

    async def _drain(self, lane: Lane, channel: str) -> None:
        """Send `channel`'s rows of `lane`, oldest first, until none is left or due."""
        renewed = self._clock()
        try:
            while not self._stopping.is_set():
                if self._clock() - renewed > RENEW_EVERY:
                    if not await self._claim(lane, channel):
                        log.warning("%s %s was taken over by another replica", lane.name, channel)
                        return
                    renewed = self._clock()
                row = await lane.head(channel)
                if row is None:
                    return
                wait = row.due_at - self._clock()
                if wait > 0:  # look again soon: an operator or a recovery may make it due
                    await self._sleep(min(wait, RECHECK))
                    continue
                async with lane.slots or contextlib.nullcontext():
                    await self._deliver(row)
        except StoreUnavailable as exc:  # the channel is taken up again in 5 s
            self._health.failed(exc)
            await self._sleep(5)
        except Exception:
            log.exception("%s of %s stopped by an unexpected error", lane.name, channel)
            await self._sleep(5)
        finally:
            if self._leases is not None:
                with contextlib.suppress(StoreUnavailable):
                    await self._leases.release(f"{lane.name}:{channel}")
            lane.running.pop(channel, None)
            wake_here(self._wake)  # another look: work may have come while the lane ended

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
                self._weather.trouble(exc, len(self._posts.running))
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
            await self._retry_later(row, reason, exc.retry_after, row.kind)
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

    async def _retry_later(
        self, row: OutboxRow, reason: str, retry_after: float | None, what: str
    ) -> None:
        """Try `row` again after passing trouble: Slack's own wait (a 429, not counted as a
        try), else the backoff of its tries."""
        delay = retry_after if retry_after is not None else backoff(row.attempts)
        log.debug(
            "%s of task %s in %s: %s; retry in %.1f s",
            what,
            row.task_id,
            row.channel,
            reason,
            delay,
            extra={"task_id": row.task_id, "channel": row.channel},
        )
        await self._outbox.retry(row, reason, delay, counted=retry_after is None)

    async def _send(self, row: OutboxRow) -> None:
        if row.kind == "video":
            await self._save_video(row)
            return
        if row.kind == "root":
            await self._send_root(row)
            return
        if row.kind == "message":  # the bot's own message to a channel (an alert, a digest)
            message = build_channel_message(row.text or "")
            await self._post(row, lambda image: message)
            await self._recorded(lambda: self._outbox.done(row))
            return
        if row.kind == "home":  # a person's Home tab (the row's channel is the person)
            await self._publish_home(row)
            return
        if row.kind == "dm":
            await self._send_dm(row)
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
            notice = build_notice(row.task_id, row.text or "", mrkdwn=row.kind == "note")

            def render(image: bool) -> Message:
                return notice

        await self._post(row, render, thread_ts=await self._outbox.parent(row))
        await self._recorded(lambda: self._outbox.done(row))

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
        if self._videos is not None and self._transfers is not None and task.result_urls:
            # Queued now, not with the callback: they go into the thread this card starts
            # (a running Suno task's first track too; its later ones come with their news).
            await self._videos.queue(row.family, row.task_id, row.channel, task.result_urls)
        saved = await self._saved_outcomes(row)

        def render(image: bool) -> Message:
            return build_task_message(task, with_image=image, saved=saved)

        # A task started from a message (the shortcut) has its card in that message's thread.
        ts = await self._post(row, render, thread_ts=await self._outbox.parent(row))
        await self._recorded(lambda: self._queue_whole_text(row, task))
        await self._recorded(lambda: self._outbox.done(row, root_ts=ts, shown_event=shown_event))

    async def _send_update(self, row: OutboxRow, root_ts: str | None) -> None:
        task = await self._tasks.get(row.family, row.task_id)
        if root_ts is None or task is None:
            await self._outbox.skip(row, "no root message to update")
            return
        if await self._outbox.borrowed(row):  # an extension: the root shows the video it extends
            await self._outbox.skip(row, "the thread's root shows another task")
            return
        saved = await self._saved_outcomes(row)

        def render(image: bool) -> Message:
            return build_task_message(task, with_image=image, saved=saved)

        await self._without_image_if_refused(
            row, render, lambda message: self._gateway.update(row.channel, root_ts, message)
        )
        await self._recorded(lambda: self._queue_whole_text(row, task))
        await self._recorded(lambda: self._outbox.done(row))

    async def _recorded(self, write: Callable[[], Awaitable[None]]) -> None:
        """Record what Slack has just accepted: while the store does not answer, try again
        (a row left pending would be sent twice), until the worker stops."""
        wait = 0.1
        while True:
            try:
                await write()
                return
            except StoreUnavailable as exc:
                if self._stopping.is_set():
                    raise
                self._health.failed(exc)
                await self._sleep(wait)
                wait = min(MAX_RECORD_WAIT, wait * 2)

    async def _queue_whole_text(self, row: OutboxRow, task: Task) -> None:
        """A result that is text too long for its card: the whole text into the card's thread,
        once, after the card (in as many messages as Slack's limits need)."""
        text = task.result_text
        if task.result_urls or not text or len(text) <= TEXT_ON_CARD:
            return
        key = f"text:{row.family}:{row.task_id}"
        await self._outbox.add_notices(row.family, row.task_id, row.channel, key, text_pieces(text))
        self._wake.set()

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

    # --- a person's Home tab, and the message that one of theirs ended ---------------------------

    async def _publish_home(self, row: OutboxRow) -> None:
        """Publish the person's Home tab as it is now."""
        if self._home is None:
            await self._outbox.skip(row, "this worker publishes no Home tab")
            return
        view = await self._home.view(row.channel, self._permalink)
        await self._gateway.publish_home(row.channel, view)
        await self._recorded(lambda: self._outbox.published(row))

    async def _send_dm(self, row: OutboxRow) -> None:
        """Tell the person who started the row's task that it ended, with the link to its
        thread (its root went out before this row, in the same channel)."""
        task = await self._tasks.get(row.family, row.task_id)
        if task is None or task.requested_by is None:
            await self._outbox.skip(row, "the task names no one to tell")
            return
        root_ts, _ = await self._outbox.thread(row)
        link = await self._permalink(row.channel, root_ts) if root_ts else None
        message = build_done_message(task, row.channel, link)
        dm = await self._gateway.open_dm(task.requested_by)
        await self._gateway.post(dm, message)
        await self._recorded(lambda: self._outbox.done(row))

    async def _permalink(self, channel: str, ts: str) -> str | None:
        """The link to a message (remembered: it never changes); None when Slack refuses it
        for good. Passing trouble is raised: the row waits it out."""
        link = self._links.get((channel, ts))
        if link is None:
            try:
                link = await self._gateway.permalink(channel, ts)
            except SlackError as exc:
                if exc.passing:
                    raise
                log.warning("no link to message %s in %s: %s", ts, channel, _described(exc))
                return None
            if len(self._links) >= LINKS_KEPT:
                del self._links[next(iter(self._links))]
            self._links[(channel, ts)] = link
        return link

    # --- result files into their threads -------------------------------------------------------

    async def _saved_outcomes(self, row: OutboxRow) -> dict[str, SavedVideo]:
        """What became of the task's files in the row's channel, for its card."""
        if self._videos is None:
            return {}
        return await self._videos.outcomes(row.family, row.task_id, row.channel)

    async def _save_video(self, row: OutboxRow) -> None:
        """Save the row's file (its URL in `row.text`: a video, an image or a track) into the
        task's thread, once.

        A file is shared into the thread only by files.completeUploadExternal, and its id is
        recorded (`completing`) before that is asked for: a try after a lost answer or a crash
        asks again for that same file instead of uploading another.
        """
        videos = self._videos
        if videos is None:
            await self._outbox.skip(row, "this worker does not save files")
            return
        record = await videos.get(row)
        if record is not None and record.saved and record.file_id:
            await videos.saved(row, record.file_id, record.title or "", record.size)
            return
        if self._transfers is None:
            await videos.not_saved(row, "off", SAVING_OFF, operator=False)
            return
        root_ts = await self._outbox.parent(row)
        task = await self._tasks.get(row.family, row.task_id)
        if root_ts is None or task is None:  # the root was refused for good: no thread
            await self._outbox.fail(row, "no thread: the task's message here was not posted")
            return
        url = row.text or ""
        index = task.result_urls.index(url) if url in task.result_urls else 0
        what = f"{noun(task.kind)} {index + 1}"
        title = _title(task, url)
        try:
            if record is not None and record.state is SaveState.COMPLETING and record.file_id:
                file_id, size = await self._share_again(row, root_ts, record)
            else:
                filename = file_name(task.task_id, index, url, task.kind)
                file_id, size = await self._transfer(row, root_ts, url, title, filename)
        except TransferError as exc:
            await self._not_saved(row, what, exc)
            return
        log.info(
            "%s of task %s saved in %s as %s",
            what,
            row.task_id,
            row.channel,
            file_id,
            extra={"task_id": row.task_id, "channel": row.channel},
        )
        self._file_trouble.ended(row)
        await videos.saved(row, file_id, title, size)
        self._wake.set()  # the card's update is queued

    async def _transfer(
        self, row: OutboxRow, root_ts: str, url: str, title: str, filename: str
    ) -> tuple[str, int]:
        """Stream the file from its link into the thread; its file id and size."""
        assert self._transfers is not None and self._videos is not None
        videos, transfers = self._videos, self._transfers
        async with open_video(
            transfers.downloads, url, max_bytes=transfers.max_bytes, spool_dir=transfers.spool_dir
        ) as (body, length):

            async def before_complete(file_id: str) -> None:
                await videos.completing(row, file_id, title, length)

            file_id = await self._gateway.upload(
                row.channel,
                root_ts,
                body,
                length=length,
                filename=filename,
                title=title,
                before_complete=before_complete,
            )
        return file_id, length

    async def _share_again(
        self, row: OutboxRow, root_ts: str, record: SavedVideo
    ) -> tuple[str, int | None]:
        """Ask again to share a file whose sharing was asked for and not answered.

        Slack shares a file once: `file_not_found` means it is no longer waiting, which after an
        unanswered request means that request shared it. It is counted as saved, never uploaded
        again (see the README on what this cannot tell apart).
        """
        assert record.file_id is not None
        try:
            await self._gateway.share(row.channel, root_ts, record.file_id, record.title or "")
        except TransferError as exc:
            if exc.reason != "file_not_found":
                raise
            log.warning(
                "file %s of task %s in %s is no longer waiting to be shared: counted as shared "
                "by the earlier request whose answer was lost",
                record.file_id,
                row.task_id,
                row.channel,
                extra={"task_id": row.task_id, "channel": row.channel},
            )
        return record.file_id, record.size

    async def _not_saved(self, row: OutboxRow, what: str, exc: TransferError) -> None:
        """A try that failed: retried through passing trouble within the retry window, else
        recorded for the card (and kept as failed when a person can fix the cause)."""
        assert self._videos is not None
        where = {"task_id": row.task_id, "channel": row.channel}
        reason = f"{exc.reason}: {exc.detail}" if exc.detail else exc.reason
        if exc.retryable:
            if self._clock() - row.window_start <= self._retry_seconds:
                self._file_trouble.failed(row, what, reason, self._retry_seconds / 3600)
                await self._retry_later(row, reason, exc.retry_after, what)
                return
            hours = f"{self._retry_seconds / 3600:g}"
            explanation = (
                f"Saving it met trouble for {hours} hours (kie.ai's file server or Slack did not"
                " answer); `kie-slack outbox retry` tries again."
            )
            operator = True
        else:
            explanation = exc.explanation
            operator = isinstance(exc, UploadError)  # Slack's refusal: a person can fix it
        if operator:
            log.error(
                "%s of task %s not saved in %s: %s; kept as failed (row %d): fix the "
                "cause, then `kie-slack outbox retry %d`",
                what,
                row.task_id,
                row.channel,
                reason,
                row.id,
                row.id,
                extra=where,
            )
        else:
            log.warning(
                "%s of task %s not saved in %s: %s",
                what,
                row.task_id,
                row.channel,
                reason,
                extra=where,
            )
        self._file_trouble.ended(row)
        await self._videos.not_saved(row, exc.reason, explanation, operator=operator)
        self._wake.set()  # the card's update is queued


#: The card's reason for a file queued while saving was on, sent after it was turned off.
SAVING_OFF = "Saving files into Slack is turned off here (SLACK_SAVE_VIDEOS=off)."


def _title(task: Task, url: str) -> str:
    """The saved file's title: a track's own name and length ("Iron Man (3:18)"), else the
    product (or Market model) and the prompt's start."""
    if task.kind == "audio":
        track = next((t for t in task.tracks if t.url == url), None)
        if track is not None and (title := track_title(track.title, track.duration)):
            return title
    return file_title(model_name(task.model) if task.model else _label(task), task.prompt)


def _label(task: Task) -> str:
    found = PRODUCTS.get(task.product)
    return found.label if found else task.product
