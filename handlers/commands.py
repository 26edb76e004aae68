"""The `/kie` slash command: help, status, poll, list, url, credits; new, veo, runway and image
start generations (handlers/generate.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from bot.config import Settings
from bot.kie.client import KieClient, KieError
from bot.kie.products import POLL_PRODUCTS, PRODUCTS, Product, product_names
from bot.slack.blocks import Message, channel_link, escape, mention
from bot.slack.messages import build_channel_message, build_task_message
from bot.task import Task, TaskUpdate
from bot.usage import PERIODS, Period, model_words, period_start, summarize, usage_lines
from storage.database import StoreUnavailable
from storage.ledger import UsageStore
from storage.people import People
from storage.polls import PollSchedule
from storage.routes import RouteStore
from storage.tasks import TaskStore

if TYPE_CHECKING:
    from handlers.generate import Generate

log = logging.getLogger(__name__)

#: Answers not ready by then are acknowledged first and sent by response URL (Slack waits 3 s).
ACK_WITHIN = 1.5
#: What a task id may look like: kie.ai's ids are hex, UUIDs and words joined by _ or -.
TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")

USAGE = f"""*/kie* — kie.ai generations in Slack: videos, images and music
• `/kie status <taskId> [product]` — the task's state, results or explained failure (only you see it)
• `/kie poll <taskId> [product]` — ask kie.ai now and follow the task in this channel until it ends
• `/kie list` — this channel's most recent tasks
• `/kie url` — the callback URLs that post into this channel (paste one as `callBackUrl`)
• `/kie credits` — remaining kie.ai credits
• `/kie usage [today|week|month]` — generations started from Slack and what they cost (only you see it)
• `/kie notify off`, `/kie notify on` — stop or restart the direct message when a generation of yours is done
• `/kie veo <prompt>`, `/kie runway <prompt>` — start a video here (costs kie.ai credits)
• `/kie image <prompt>` — start an image here with the bot's image model (costs kie.ai credits)
• `/kie new` — a form to start a video or an image: model, prompt, image, options
• `/kie help` — this text
Products: {product_names()}."""


class Ack(Protocol):
    async def __call__(self, **kwargs: Any) -> None: ...


Respond = Callable[..., Awaitable[Any]]


class Unusable(Exception):
    """A command the bot cannot carry out; the message says what to type or fix."""


@dataclass
class Commands:
    """The `/kie` command; each answer goes only to the caller unless it follows a task."""

    settings: Settings
    tasks: TaskStore
    routes: RouteStore
    schedule: PollSchedule
    client: KieClient | None
    clock: Callable[[], float] = field(default=time.time)
    #: Starts generations (`new`, `veo`, `runway`, `image`); None where the bot cannot.
    generate: Generate | None = None
    #: The usage ledger, for `/kie usage`; None where the bot keeps none.
    usage: UsageStore | None = None
    #: Each person's choice of direct messages, for `/kie notify`; None where the bot has none.
    people: People | None = None

    async def handle(self, ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        """Answer one `/kie` invocation; never raises for anything the user typed."""
        reply = Reply(ack, respond)
        text = str(command.get("text") or "")
        channel = str(command.get("channel_id") or "")
        user = str(command.get("user_id") or "")
        words = text.split()
        sub = words[0].lower() if words else "help"
        log.info("/kie %r from %s in %s", sub[:20], user, channel)
        work = asyncio.ensure_future(self._answer(reply, sub, words[1:], channel, user, command))
        await asyncio.wait([work], timeout=ACK_WITHIN)
        if not work.done() and not reply.acknowledged:
            # Slack gives up after 3 s: acknowledge now, the answer follows by response URL.
            await reply.say("Working on it…")
        await work

    async def _answer(
        self,
        reply: Reply,
        sub: str,
        args: list[str],
        channel: str,
        user: str,
        command: dict[str, Any],
    ) -> None:
        try:
            if sub in ("new", "veo", "runway", "image"):
                if self.generate is None:
                    raise Unusable("Starting generations from Slack is not available in this bot.")
                if sub == "new":
                    await self.generate.open_form(reply, command)
                else:
                    await self.generate.slash(reply, sub, command)
            elif sub == "help":
                await reply.say(USAGE)
            elif sub == "status":
                await self._status(reply, args)
            elif sub == "poll":
                await self._poll(reply, args, channel)
            elif sub == "list":
                await self._list(reply, channel)
            elif sub == "url":
                await self._url(reply, channel, user)
            elif sub == "credits":
                await self._credits(reply)
            elif sub == "notify":
                await self._notify(reply, args, user)
            elif sub == "usage":
                await self._usage(reply, args, user)
            else:
                raise Unusable(f"Unknown sub-command `{_shown(sub)}`. Try `/kie help`.")
        except Unusable as exc:
            log.info("/kie %r answered: %s", sub[:20], exc)
            await reply.say(str(exc))
        except StoreUnavailable as exc:
            log.error("/kie %r: store unavailable: %s", sub[:20], exc)
            await reply.say("The bot's database is not answering; try again in a minute.")
        except Exception:
            log.exception("/kie %r failed", sub[:20])
            await reply.say("Something went wrong on the bot's side; its log has the details.")

    # --- status --------------------------------------------------------------------------------

    async def _status(self, reply: Reply, args: list[str]) -> None:
        task_id, product = _task_args("status", args)
        known = await self._known(task_id, product)
        if known is not None and known.state.is_final:
            await reply.card(known)
            return
        if self.client is None:
            if known is None:
                raise Unusable(
                    f"I have never seen task `{_shown(task_id)}`, and KIE_API_KEY is not set, "
                    "so I cannot ask kie.ai."
                )
            await reply.card(known, note="From the bot's own record: KIE_API_KEY is not set.")
            return
        await reply.say(f"Asking kie.ai about `{task_id}`…")
        try:
            update = await self._lookup(task_id, product, known)
        except KieError as exc:
            if known is None:
                await reply.say(kie_problem(exc, task_id, product))
                return
            note = f"From the bot's own record: {kie_problem(exc, task_id)}"
            await reply.card(known, note)
            return
        applied = await self.tasks.apply(update)
        await self.tasks.asked(PRODUCTS[update.product].family, update.task_id)
        task = applied.task or await self._known(task_id, product)
        if task is not None:
            await reply.card(task)

    # --- poll ----------------------------------------------------------------------------------

    async def _poll(self, reply: Reply, args: list[str], channel: str) -> None:
        task_id, product = _task_args("poll", args)
        if self.client is None:
            raise Unusable("Polling needs a kie.ai API key: set KIE_API_KEY and restart the bot.")
        if not channel:
            raise Unusable("Run `/kie poll` in the channel that should follow the task.")
        known = await self._known(task_id, product)
        await reply.say(f"Asking kie.ai about `{task_id}`…")
        try:
            update = await self._lookup(task_id, product, known)
        except KieError as exc:
            await reply.say(kie_problem(exc, task_id, product))
            return
        applied = await self.tasks.apply(update)
        family = PRODUCTS[update.product].family
        await self.tasks.asked(family, update.task_id)
        current = applied.task or await self.tasks.get(family, update.task_id)
        state = current.state if current is not None else update.state
        added = await self.tasks.follow(family, update.task_id, channel)
        if not state.is_final:
            await self.schedule.start(family, update.task_id, delay=self.settings.poll_interval)
            every = f"every {self.settings.poll_interval} s until it ends (for up to a day)"
            news = f"It is still generating; I will ask kie.ai {every}."
        else:
            news = f"It has already {state.value}."
        where = "This channel follows it now" if added else "This channel already follows it"
        await reply.say(
            f"{where}: task `{update.task_id}` ({PRODUCTS[update.product].label}). {news}"
        )

    # --- list, url, credits --------------------------------------------------------------------

    async def _list(self, reply: Reply, channel: str) -> None:
        tasks = await self.tasks.for_channel(channel, limit=10)
        if not tasks:
            await reply.say("No tasks in this channel yet. Use `/kie poll <taskId>` or `/kie url`.")
            return
        now = self.clock()
        lines = [f"*Recent tasks in this channel* ({len(tasks)})"] + [
            f"• `{task.task_id}` {PRODUCTS[task.product].label} — {_state_word(task)}, "
            f"{ago(now - task.updated_at)}"
            for task in tasks
        ]
        await reply.say("\n".join(lines))

    async def _url(self, reply: Reply, channel: str, user: str) -> None:
        if not channel:
            raise Unusable("Run `/kie url` in the channel the callbacks should post to.")
        token = await self.routes.issue(channel, created_by=user or None)
        base = self.settings.public_url
        lines = ["*Callback URLs for this channel* (paste one as `callBackUrl`):"] + [
            f"• {product.label}: `{base}/callbacks/{product.slug}/{token}`"
            for product in PRODUCTS.values()
        ]
        lines.append("Anyone with one of these URLs can post into this channel; keep them private.")
        await reply.say("\n".join(lines))

    async def _credits(self, reply: Reply) -> None:
        if self.client is None:
            raise Unusable("Checking credits needs a kie.ai API key: set KIE_API_KEY.")
        await reply.say("Asking kie.ai for the credit balance…")
        try:
            credits = await self.client.credits()
        except KieError as exc:
            await reply.say(kie_problem(exc, None))
            return
        await reply.say(f"kie.ai credits remaining: *{credits:g}*")

    # --- usage ---------------------------------------------------------------------------------

    async def _usage(self, reply: Reply, args: list[str], user: str) -> None:
        """Generations started from Slack in the period and what they cost: everyone's lines to
        an admin, the totals and the caller's own lines to anyone else."""
        if self.usage is None:
            raise Unusable("This bot keeps no usage ledger.")
        period = (args[0].lower() if args else "today").strip()
        if period not in PERIODS or len(args) > 1:
            raise Unusable("Type `/kie usage`, `/kie usage week` or `/kie usage month`.")
        now = self.clock()
        rows = await self.usage.since(period_start(cast(Period, period), now))
        admin = user in self.settings.kie_admins
        left: float | None = None
        if self.client is not None:
            with contextlib.suppress(KieError):
                left = await self.client.credits()
        summary = summarize(rows, only_user=None if admin else user)
        label = {"today": "today (UTC)", "week": "this week", "month": "this month"}[period]
        lines = usage_lines(
            summary,
            label=label,
            credits_left=left,
            person=mention,
            channel=channel_link,
            model=model_words,
        )
        limit = self.settings.kie_daily_limit_per_person
        if limit is not None and not admin:
            used = await self.usage.count_today(user)
            lines.append(f"*Your daily limit:* {used} of {limit} used today (UTC)")
        if not admin:
            lines.append("_You see the totals and your own lines; admins see everyone's._")
        if self.client is None:
            lines.append("_Credits left: unknown (KIE_API_KEY is not set)._")
        message = build_channel_message("\n".join(lines))
        await reply.say(message.text, message.blocks)

    # --- notify --------------------------------------------------------------------------------

    async def _notify(self, reply: Reply, args: list[str], user: str) -> None:
        """`/kie notify off|on`: whether the caller gets a direct message when a generation of
        theirs is done; with no word, what it is now."""
        if self.people is None or not user:
            raise Unusable("Direct messages are not available in this bot.")
        word = args[0].lower() if len(args) == 1 else ""
        if args and word not in ("on", "off"):
            raise Unusable("Type `/kie notify off` or `/kie notify on`.")
        if word:
            await self.people.set_dm(user, word == "on")
        on = await self.people.wants_dm(user) if not word else word == "on"
        if on:
            await reply.say(
                "You get a direct message when a generation you started is done, with a link "
                "to its thread. `/kie notify off` stops them."
            )
        else:
            await reply.say(
                "No direct messages when your generations are done; their results still come "
                "into their threads. `/kie notify on` turns them back on."
            )

    # --- helpers -------------------------------------------------------------------------------

    async def _known(self, task_id: str, product: Product | None) -> Task | None:
        tasks = await self.tasks.find(task_id)
        if product is not None:
            tasks = [task for task in tasks if task.family == product.family]
        return tasks[0] if tasks else None

    async def _lookup(
        self, task_id: str, product: Product | None, known: Task | None
    ) -> TaskUpdate:
        assert self.client is not None
        if product is None and known is not None:
            product = PRODUCTS[known.product]
        if product is not None:
            return await self.client.record(product, task_id)
        found = await self.client.find(task_id, POLL_PRODUCTS)
        if found is None:
            raise KieError(
                "not_found", f"kie.ai has no task `{task_id}` for any product ({product_names()})."
            )
        return found


def _task_args(sub: str, args: list[str]) -> tuple[str, Product | None]:
    usage = f"Usage: `/kie {sub} <taskId> [product]`, e.g. `/kie {sub} veo_task_abc123 veo`."
    if not args:
        raise Unusable(f"Which task? {usage}")
    if len(args) > 2:
        raise Unusable(f"Too many words: a task id has no spaces. {usage}")
    task_id = args[0]
    if not TASK_ID.fullmatch(task_id):
        raise Unusable(
            "That is not a kie.ai task id (letters, digits, `_`, `-`, `.`, `:`; at most 128). "
            + usage
        )
    if len(args) == 1:
        return task_id, None
    product = PRODUCTS.get(args[1].lower())
    if product is None:
        raise Unusable(f"Unknown product `{_shown(args[1])}`. Products: {product_names()}.")
    return task_id, product


def _shown(value: str) -> str:
    """Outside text fit to quote back: one line, short, escaped, no backticks."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in value)[:40].replace("`", "'")
    return escape(cleaned) + ("…" if len(value) > 40 else "")


def kie_problem(exc: KieError, task_id: str | None, product: Product | None = None) -> str:
    """A kie.ai error in one line for the person who asked, with what to do about it."""
    if exc.kind == "not_found" and task_id is not None and product is None:
        return f"{exc} Check the id, or give the product: `/kie status {task_id} veo`."
    if exc.kind == "unavailable":
        return f"{exc}. Try again in a minute."
    return str(exc)


def _state_word(task: Task) -> str:
    return {"running": "generating", "succeeded": "ready", "failed": "failed"}[task.state.value]


def ago(seconds: float) -> str:
    """How long ago, as people say it: "just now", "7 min ago", "3 h ago", "2 days ago"."""
    if seconds < 90:
        return "just now"
    if seconds < 5400:
        return f"{round(seconds / 60)} min ago"
    if seconds < 129600:
        return f"{round(seconds / 3600)} h ago"
    return f"{round(seconds / 86400)} days ago"


def _with_note(message: Message, note: str | None) -> Message:
    if not note:
        return message
    block = {"type": "context", "elements": [{"type": "mrkdwn", "text": escape(note)[:2000]}]}
    return Message(message.text, [*message.blocks[:49], block])


class Reply:
    """Answers only the caller: the first answer goes in the acknowledgement (within Slack's
    3 s), later ones through the response URL."""

    def __init__(self, ack: Ack, respond: Respond) -> None:
        self._ack = ack
        self._respond = respond
        self.acknowledged = False

    async def say(self, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        answer: dict[str, Any] = {"text": text, "response_type": "ephemeral"}
        if blocks is not None:
            answer["blocks"] = blocks
        if not self.acknowledged:
            self.acknowledged = True
            await self._ack(**answer)
        else:
            await self._respond(**answer, replace_original=False)

    async def done(self) -> None:
        """Acknowledge with no answer, unless something was answered already."""
        if not self.acknowledged:
            self.acknowledged = True
            await self._ack()

    async def card(self, task: Task, note: str | None = None) -> None:
        message = _with_note(build_task_message(task), note)
        await self.say(message.text, message.blocks)
