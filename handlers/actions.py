"""The buttons on a task's card and the share modal.

Each click is acknowledged at once, then answered only to the person who clicked, through the
click's response URL; what belongs to everyone goes into the task's thread through the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.kie.client import KieClient, KieError
from bot.kie.media import NOUNS
from bot.kie.payload import as_mapping
from bot.kie.products import MAX_TASK_ID, POLL_PRODUCTS, PRODUCTS, Product
from bot.slack.blocks import escape, is_channel_id, is_user_id, mention
from bot.slack.buttons import (
    COMMENT_MAX,
    SHARE_CHANNEL,
    SHARE_COMMENT,
    build_fresh_links,
    build_share_modal,
    read_button_value,
    shared_note,
    upscale_note,
)
from bot.task import State, Task, TaskUpdate
from bot.usage import limit_refusal, limits_of
from handlers.commands import Ack, Respond, Unusable, ago, kie_problem
from storage.database import StoreUnavailable
from storage.ledger import LimitReached, Start
from storage.requests import RequestStore
from storage.routes import RouteStore
from storage.tasks import TaskStore

log = logging.getLogger(__name__)

#: The 1080p version is asked for every POLL_INTERVAL seconds, for at most this long.
HD_FOR = 600.0
#: A 4K request with no result yet counts as being made for this long (kie.ai: 5 to 10 min).
FOUR_K_FOR = 3600.0
#: kie.ai's download links last this long.
FRESH_LINK_SECONDS = 20 * 60
#: At most this many result files get a fresh link per click.
MAX_LINKS = 10

OOPS = "Something went wrong on the bot's side; its log has the details."
DATABASE_DOWN = "The bot's database is not answering; try again in a minute."


@dataclass(frozen=True, slots=True)
class Click:
    """A click on a card's button, as far as its payload can be read."""

    user: str
    channel: str
    product: Product
    task_id: str
    trigger_id: str

    @property
    def shown(self) -> str:
        """The task id fit to quote back in mrkdwn."""
        return _shown(self.task_id)


class Answer:
    """Answers only the person who clicked, through the click's response URL (Slack accepts
    five answers there within 30 minutes). An answer that cannot be sent is logged."""

    def __init__(
        self, respond: Respond | None, *, missing: str = "a click came without a response URL"
    ) -> None:
        self._respond = respond
        self._missing = missing

    async def say(self, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        answer: dict[str, Any] = {
            "response_type": "ephemeral",
            "replace_original": False,
            "text": text,
        }
        if blocks is not None:
            answer["blocks"] = blocks
        if self._respond is None:
            log.warning("%s; its answer is lost: %s", self._missing, text)
            return
        try:
            await self._respond(**answer)
        except Exception as exc:
            log.warning("could not answer a click by its response URL: %r", exc)


Work = Callable[[Click, Task, Answer], Awaitable[None]]


@dataclass
class Actions:
    """The card's buttons (a method each) and the share modal's submission."""

    settings: Settings
    tasks: TaskStore
    routes: RouteStore
    requests: RequestStore
    client: KieClient | None
    clock: Callable[[], float] = field(default=time.time)
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    # --- the buttons ---------------------------------------------------------------------------

    async def fresh_link(self, ack: Ack, body: Mapping[str, Any], respond: Respond) -> None:
        """`Fresh link`: a kie.ai download link (valid 20 minutes) for each result file,
        whatever the product (kie.ai's download-url endpoint serves every file it made)."""
        await self._click(ack, body, respond, self._fresh_link)

    async def get_1080p(self, ack: Ack, body: Mapping[str, Any], respond: Respond) -> None:
        """`Get 1080p`: ask kie.ai for the 1080p version until it is ready; it goes into the
        thread like any result."""
        await self._click(ack, body, respond, self._get_1080p)

    async def upscale_4k(self, ack: Ack, body: Mapping[str, Any], respond: Respond) -> None:
        """`Upscale to 4K`: request the 4K version with this channel's callback route."""
        await self._click(ack, body, respond, self._upscale_4k)

    async def poll_now(self, ack: Ack, body: Mapping[str, Any], respond: Respond) -> None:
        """`Poll now`: ask kie.ai about a running task at once."""
        await self._click(ack, body, respond, self._poll_now)

    async def share(
        self, ack: Ack, body: Mapping[str, Any], respond: Respond, client: AsyncWebClient
    ) -> None:
        """`Share to channel`: open the modal with a channel picker and a comment."""

        async def open_modal(click: Click, task: Task, answer: Answer) -> None:
            await self._open_share(client, click, task)

        await self._click(ack, body, respond, open_modal)

    async def resume(self) -> None:
        """Take up the 1080p waits that a stopped process left open. The person who clicked
        is not answered (the click's response URL went with that process); the version still
        goes into the thread as news when kie.ai has it."""
        if self.client is None:
            return
        now = self.clock()
        for found in await self.requests.made_since("1080p", now - HD_FOR):
            product = next((p for p in POLL_PRODUCTS if p.family == found.family), None)
            if product is None:
                continue
            asked = found.request
            click = Click(asked.user_id, asked.channel, product, found.task_id, trigger_id="")
            log.info(
                "taking up the wait for the 1080p version of %s after a restart",
                found.task_id,
                extra={"task_id": found.task_id, "channel": asked.channel},
            )
            answer = Answer(None, missing="the bot restarted while it waited for kie.ai")
            remaining = HD_FOR - (now - asked.requested_at)
            self._spawn(self._wait_for_1080p(self.client, click, answer, remaining))

    async def close(self) -> None:
        """Stop the background work (the 1080p waits, which the next start takes up); for
        shutdown."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    async def _click(
        self, ack: Ack, body: Mapping[str, Any], respond: Respond | None, work: Work
    ) -> None:
        await ack()
        answer = Answer(respond)
        click: Click | None = None
        async with _explained(answer, lambda: click):
            click = _read_click(body)
            task = await self._task(click)
            await work(click, task, answer)

    async def _task(self, click: Click) -> Task:
        task = await self.tasks.get(click.product.family, click.task_id)
        if task is None:
            raise Unusable(
                f"I no longer know task {click.shown}, so this button can do nothing; "
                f"`/kie status {click.shown[1:-1]}` asks kie.ai about it."
            )
        return task

    def _kie(self, button: str) -> KieClient:
        if self.client is None:
            raise Unusable(f"{button} needs a kie.ai API key: set KIE_API_KEY and restart the bot.")
        return self.client

    # --- Fresh link ----------------------------------------------------------------------------

    async def _fresh_link(self, click: Click, task: Task, answer: Answer) -> None:
        kie = self._kie("Fresh link")
        urls = task.result_urls[:MAX_LINKS]
        one, many = NOUNS[task.kind]
        if not urls:
            raise Unusable(f"kie.ai sent no {many} for task {click.shown}, so there is no link.")
        found = await asyncio.gather(
            *(kie.download_url(url) for url in urls), return_exceptions=True
        )
        links: list[str] = []
        problems: list[str] = []
        errors: list[KieError] = []
        for n, (url, result) in enumerate(zip(urls, found, strict=True), start=1):
            name = f"The {one}" if len(urls) == 1 else f"{one.capitalize()} {n}"
            if isinstance(result, str):
                links.append(result)
            elif isinstance(result, KieError) and result.kind == "external":
                problems.append(
                    f"{name} is not a file kie.ai made, so kie.ai gives no fresh link for it; "
                    f"its own link stays: {url}"
                )
            elif isinstance(result, KieError):
                errors.append(result)
                problems.append(f"{name}: {kie_problem(result, click.task_id, click.product)}")
            else:
                raise result
        if errors and not links:
            raise errors[0]
        message = build_fresh_links(
            task.task_id, links, problems, until=self.clock() + FRESH_LINK_SECONDS, kind=task.kind
        )
        await answer.say(message.text, message.blocks)

    # --- Get 1080p -----------------------------------------------------------------------------

    async def _get_1080p(self, click: Click, task: Task, answer: Answer) -> None:
        kie = self._kie("Get 1080p")
        _veo_result(click, task, "Get 1080p")
        family = click.product.family
        asking = await self.requests.claim(
            family, task.task_id, "1080p", click.user, click.channel, stale_after=HD_FOR
        )
        if asking is not None:
            raise Unusable(
                f"I am already asking kie.ai for the 1080p version of {click.shown} "
                f"({mention(asking.user_id)} clicked {ago(self.clock() - asking.requested_at)}); "
                "it will appear in the thread."
            )
        await answer.say(
            f"Asking kie.ai for the 1080p version of {click.shown}; it will appear in the "
            "thread (kie.ai usually needs 1 to 3 minutes)."
        )
        self._spawn(self._wait_for_1080p(kie, click, answer))

    async def _wait_for_1080p(
        self, kie: KieClient, click: Click, answer: Answer, remaining: float = HD_FOR
    ) -> None:
        """Ask kie.ai every POLL_INTERVAL seconds until the 1080p version is ready (for the
        `remaining` seconds of the request's `HD_FOR`), then apply it as news about the task.

        The request is closed at the end, whatever the end, but not when shutdown cancels the
        wait: the next start takes it up (`resume`).
        """
        interval = float(self.settings.poll_interval)
        tries = max(1, int(remaining // interval))
        cancelled = False
        try:
            async with _explained(answer, lambda: click):
                update: TaskUpdate | None = None
                for attempt in range(tries):
                    if attempt:
                        await asyncio.sleep(interval)
                    update = await kie.hd_video(click.task_id)
                    if update is not None:
                        break
                if update is None:
                    raise Unusable(
                        f"kie.ai had no 1080p version of {click.shown} after "
                        f"{round(HD_FOR / 60)} minutes; click Get 1080p again later."
                    )
                applied = await self.tasks.apply(update)
                url = escape(update.result_urls[0])
                if applied.news and applied.channels:
                    await answer.say(f"The 1080p version of {click.shown} is in the thread: {url}")
                else:
                    await answer.say(f"The 1080p version of {click.shown}: {url}")
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            if not cancelled:
                with contextlib.suppress(StoreUnavailable):
                    await self.requests.release(click.product.family, click.task_id, "1080p")

    # --- Upscale to 4K -------------------------------------------------------------------------

    async def _upscale_4k(self, click: Click, task: Task, answer: Answer) -> None:
        kie = self._kie("Upscale to 4K")
        _veo_result(click, task, "Upscale to 4K")
        _in_channel(click, "Upscale to 4K")
        family = click.product.family
        counted = f"4k:{family}:{task.task_id}:{click.user}:{self.clock():.3f}"
        limits = limits_of(self.settings)
        try:
            making = await self.requests.claim(
                family,
                task.task_id,
                "4k",
                click.user,
                click.channel,
                stale_after=FOUR_K_FOR,
                ended_by="veo-4k",
                start=(counted, Start(click.user, click.channel, "veo-4k"), limits),
            )
        except LimitReached as reached:
            raise Unusable(limit_refusal(reached, limits, self.clock())) from None
        if making is not None:
            raise Unusable(
                f"The 4K version of {click.shown} is already being made: "
                f"{mention(making.user_id)} asked {ago(self.clock() - making.requested_at)}. "
                "It will arrive in the thread; nothing new was requested."
            )
        try:
            token = await self.routes.issue(click.channel, created_by=click.user or None)
            callback = f"{self.settings.public_url}/callbacks/veo-4k/{token}"
            result = await kie.request_4k(task.task_id, callback)
        except BaseException:
            with contextlib.suppress(StoreUnavailable):
                await self.requests.release(family, task.task_id, "4k", uncount=counted)
            raise
        if result.status != "requested":  # kie.ai made nothing new: it does not count
            await self.requests.uncount(counted)
        else:
            await self.requests.started(counted, family, task.task_id, "veo-4k")
        if result.status == "ready" and result.update is not None:
            applied = await self.tasks.apply(result.update)
            url = escape(result.update.result_urls[0])
            where = "it is in the thread" if applied.news and applied.channels else "here it is"
            await answer.say(
                f"kie.ai had already made the 4K version of {click.shown}; {where}: {url}"
            )
            return
        if result.status == "processing":
            await answer.say(
                f"kie.ai is already making the 4K version of {click.shown} (it was asked "
                "before); it will arrive in the thread. Nothing new was requested."
            )
            return
        await self.requests.announce(family, task.task_id, "4k", upscale_note(click.user))
        await answer.say(
            f"Asked kie.ai for the 4K version of {click.shown}. It costs extra credits and "
            "takes 5 to 10 minutes; it will arrive in this thread."
        )

    # --- Poll now ------------------------------------------------------------------------------

    async def _poll_now(self, click: Click, task: Task, answer: Answer) -> None:
        kie = self._kie("Poll now")
        update = await kie.record(PRODUCTS[task.product], task.task_id)
        await self.tasks.apply(update)
        await self.tasks.asked(click.product.family, task.task_id)
        current = await self.tasks.get(click.product.family, task.task_id) or task
        if current.state is State.RUNNING:
            text = "is still generating; the card shows how long it has been running"
        elif current.state is State.SUCCEEDED:
            text = "is ready: the card and its thread show the result"
        else:
            text = "failed: the card explains why"
        await answer.say(f"kie.ai says task {click.shown} {text}.")

    # --- Share to channel ----------------------------------------------------------------------

    async def _open_share(self, client: AsyncWebClient, click: Click, task: Task) -> None:
        if client.token is None:
            raise Unusable(
                "Share to channel needs a Slack bot token: set SLACK_BOT_TOKEN and restart the bot."
            )
        _in_channel(click, "Share to channel")
        if not click.trigger_id:
            raise Unusable(
                "Slack sent no trigger id with this click; click Share to channel again."
            )
        # The one Web API call made outside the delivery worker: Slack accepts a trigger id for
        # 3 s after the click, too soon for the outbox, so the modal opens here, through
        # Bolt's client.
        try:
            await client.views_open(
                trigger_id=click.trigger_id, view=build_share_modal(task, click.channel)
            )
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "no reason given")
            raise Unusable(
                f"Slack did not open the share dialog ({escape(error[:80])}); click "
                "Share to channel again."
            ) from None

    async def share_submitted(
        self, ack: Ack, body: Mapping[str, Any], view: Mapping[str, Any]
    ) -> None:
        """The share modal's submission: check it (errors are shown in the modal), then the
        chosen channel follows the task and gets its card, with who shared it and from where."""
        try:
            errors = await self._share(body, view)
        except StoreUnavailable as exc:
            log.error("share: store unavailable: %s", exc)
            errors = {SHARE_CHANNEL: DATABASE_DOWN}
        except Exception:
            log.exception("share to channel failed")
            errors = {SHARE_CHANNEL: OOPS}
        if errors:
            await ack(response_action="errors", errors=errors)
        else:
            await ack()

    async def _share(self, body: Mapping[str, Any], view: Mapping[str, Any]) -> dict[str, str]:
        """The modal's errors by block id; none when the task was shared."""
        target = as_mapping(_state(view, SHARE_CHANNEL)).get("selected_conversation")
        if not is_channel_id(target):
            return {SHARE_CHANNEL: "Choose the channel to share the task to."}
        comment = as_mapping(_state(view, SHARE_COMMENT)).get("value")
        comment = comment[:COMMENT_MAX] if isinstance(comment, str) else ""
        try:
            meta = json.loads(str(view.get("private_metadata") or ""))
        except (ValueError, RecursionError):
            meta = None
        meta = as_mapping(meta)
        product = PRODUCTS.get(str(meta.get("product")))
        task_id, origin = meta.get("task_id"), meta.get("channel")
        if product is None or not _is_task_id(task_id) or not is_channel_id(origin):
            return {SHARE_CHANNEL: "This dialog names no task I can read; open it again."}
        task = await self.tasks.get(product.family, task_id)
        if task is None:
            return {SHARE_CHANNEL: "I no longer know this task, so it cannot be shared."}
        if target == origin:
            return {SHARE_CHANNEL: "The task is already in this channel; choose another one."}
        user = str(as_mapping(body.get("user")).get("id") or "")
        note = shared_note(user, origin, comment)
        if not await self.tasks.follow(product.family, task.task_id, target, note=note):
            return {SHARE_CHANNEL: "That channel already has this task; choose another one."}
        log.info(
            "task %s shared by %s from %s",
            task.task_id,
            user,
            origin,
            extra={"task_id": task.task_id, "channel": target},
        )
        return {}

    # --- helpers -------------------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


@contextlib.asynccontextmanager
async def _explained(answer: Answer, click: Callable[[], Click | None]) -> AsyncIterator[None]:
    """Answer whatever stops the work with one clear line, never silence."""
    try:
        yield
    except Unusable as exc:
        await answer.say(str(exc))
    except KieError as exc:
        found = click()
        task_id, product = (found.task_id, found.product) if found else (None, None)
        await answer.say(kie_problem(exc, task_id, product))
    except StoreUnavailable as exc:
        log.error("button: store unavailable: %s", exc)
        await answer.say(DATABASE_DOWN)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("button click failed")
        await answer.say(OOPS)


def _read_click(body: Mapping[str, Any]) -> Click:
    actions = body.get("actions")
    action = as_mapping(actions[0]) if isinstance(actions, list) and actions else {}
    named = read_button_value(action.get("value"))
    if named is None or named[0] not in PRODUCTS or not _is_task_id(named[1]):
        raise Unusable("This button names no task I can read; it may come from an older card.")
    user = as_mapping(body.get("user")).get("id")
    channel = as_mapping(body.get("channel")).get("id") or as_mapping(body.get("container")).get(
        "channel_id"
    )
    trigger = body.get("trigger_id")
    return Click(
        user=user if is_user_id(user) else "",
        channel=channel if is_channel_id(channel) else "",
        product=PRODUCTS[named[0]],
        task_id=named[1],
        trigger_id=trigger if isinstance(trigger, str) else "",
    )


def _veo_result(click: Click, task: Task, button: str) -> None:
    if click.product.family != "veo":
        raise Unusable(f"{button} works only on Veo videos.")
    if task.state is not State.SUCCEEDED or not task.result_urls:
        raise Unusable(f"Task {click.shown} has no video yet, so {button} cannot work on it.")


def _in_channel(click: Click, button: str) -> None:
    if not click.channel:
        raise Unusable(f"Slack did not say which channel this card is in, so {button} cannot work.")


def _is_task_id(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and 0 < len(value) <= MAX_TASK_ID and value.isprintable()


def _shown(task_id: str) -> str:
    """Outside text fit to quote back: one short code span, escaped."""
    cleaned = escape(task_id[:80].replace("`", "'"))
    return f"`{cleaned}{'…' if len(task_id) > 80 else ''}`"


def _state(view: Mapping[str, Any], block: str) -> Any:
    """The value of the input `block` (its action id is the same) in a submitted view."""
    values = as_mapping(as_mapping(view.get("state")).get("values"))
    return as_mapping(values.get(block)).get(block)
