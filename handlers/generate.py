"""Starting generations from Slack: `/kie veo|runway|image <prompt>`, the `/kie new` form (also
opened on a message by the shortcut "Make a video from this"), a card's `Again` and `Extend`,
and a Midjourney grid's `Upscale n` and `Vary n`.

Each way ends in `Generate._start`: claim the submission's keys (so Slack's retries and double
clicks start nothing twice), ask kie.ai with this channel's callback route as `callBackUrl`,
then record the task, who asked and what in one transaction that makes the channel follow it
(its root message goes out through the outbox) and start polling for a callback that never
comes. Refusals, kie.ai's or the bot's, go only to the person who asked.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.kie.client import KieClient, KieError
from bot.kie.products import PRODUCTS
from bot.kie.submit import (
    RUNWAY,
    VEO_FAST,
    Catalog,
    GenerationRequest,
    ModelSpec,
    RequestError,
    build_request,
    extend_request,
    market_spec,
    mj_request,
)
from bot.slack.blocks import escape, mention
from bot.slack.buttons import is_mj_grid, read_button_value, read_mj_action
from bot.slack.files import StartImageError, hand_over
from bot.slack.forms import (
    ASPECT,
    DURATION,
    IMAGE,
    MODEL,
    PROMPT,
    QUALITY,
    FormValues,
    build_extend_form,
    build_new_form,
    read_form,
)
from bot.slack.from_message import (
    SlackImage,
    build_from_message_form,
    chosen_image,
    image_problem,
    image_to_check,
    read_shortcut,
    under_of,
)
from bot.task import State, Task, TaskUpdate
from bot.usage import ledger_start, limit_refusal, limits_of
from storage.database import StoreUnavailable
from storage.ledger import LimitReached, Limits
from storage.polls import PollSchedule
from storage.routes import RouteStore
from storage.submissions import Claim, Submission, SubmissionStore
from storage.tasks import Started, TaskStore

log = logging.getLogger(__name__)

#: A second click of the same button on the same card by the same person within this many
#: seconds is taken for a double click and starts nothing.
DOUBLE_CLICK = 10.0
#: How much of a prompt the answers quote.
QUOTE_MAX = 120

OOPS = "Something went wrong on the bot's side; its log has the details."
DATABASE_DOWN = "The bot's database is not answering; try again in a minute."

Say = Callable[[str], Awaitable[None]]
Ack = Callable[..., Awaitable[Any]]

_DOMAIN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_CHANNEL = re.compile(r"[CGD][A-Z0-9]{2,30}")
_TS = re.compile(r"\d{6,12}\.\d{1,8}")


class SlashReply(Protocol):
    """How a slash command answers: the first answer is the acknowledgement."""

    async def say(self, text: str, blocks: list[dict[str, Any]] | None = None) -> None: ...

    async def done(self) -> None: ...


@dataclass
class Generate:
    """Starts generations from Slack; `slack` (None in console mode) only opens the forms."""

    settings: Settings
    tasks: TaskStore
    routes: RouteStore
    schedule: PollSchedule
    submissions: SubmissionStore
    client: KieClient | None
    slack: AsyncWebClient | None = None
    catalog: Catalog = field(init=False)

    def __post_init__(self) -> None:
        configured = (*self.settings.kie_market_models, self.settings.kie_image_model)
        self.catalog = Catalog.build(configured)

    @property
    def limits(self) -> Limits:
        """The daily limits (KIE_DAILY_LIMIT_PER_PERSON, …_PER_CHANNEL) and their admins."""
        return limits_of(self.settings)

    def refusal(self, channel: str) -> str | None:
        """Why generations cannot be started from `channel` here, or None when they can."""
        if not self.settings.kie_submit:
            return (
                "Starting generations from Slack is turned off here (KIE_SUBMIT=off); "
                "ask whoever runs the bot."
            )
        allowed = self.settings.kie_submit_channels
        if allowed and channel not in allowed:
            where = ", ".join(f"<#{c}>" for c in allowed)
            return (
                f"Starting generations from Slack works only in {where} here "
                "(KIE_SUBMIT_CHANNELS); start it there, or ask whoever runs the bot."
            )
        if self.client is None:
            return (
                "Starting generations needs a kie.ai API key: whoever runs the bot should set "
                "KIE_API_KEY and restart it."
            )
        return None

    # --- /kie veo|runway|image <prompt> --------------------------------------------------------

    async def slash(self, reply: SlashReply, product: str, command: Mapping[str, Any]) -> None:
        """`/kie veo <prompt>`, `/kie runway <prompt>` or `/kie image <prompt>` (the model of
        KIE_IMAGE_MODEL) with that model's defaults."""
        channel, user = _text(command.get("channel_id")), _text(command.get("user_id"))
        example = "a red fox in the snow" if product == "image" else "a paper boat in the rain"
        usage = f"Usage: `/kie {product} <prompt>`, e.g. `/kie {product} {example}`."
        refused = self.refusal(channel)
        if refused:
            await reply.say(refused)
            return
        words = _text(command.get("text")).strip().split(maxsplit=1)
        prompt = _unescape(words[1]) if len(words) > 1 else ""
        spec = self._slash_spec(product)
        try:
            request = build_request(spec, prompt)
        except RequestError as exc:
            await reply.say(f"{exc} {usage}")
            return
        trigger = _text(command.get("trigger_id"))
        if not trigger or not channel or not user:
            await reply.say(
                "Slack sent this command without its channel, user or trigger id; run it again."
            )
            return
        claim = Claim((f"slash:{trigger}",))
        await self._start(reply.say, request, channel, user, claim, announce=True)

    def _slash_spec(self, product: str) -> ModelSpec:
        """The model a `/kie <product> <prompt>` starts."""
        if product == "image":
            model = self.settings.kie_image_model
            return self.catalog.get(f"market:{model}") or market_spec(model)
        return VEO_FAST if product == "veo" else RUNWAY

    # --- /kie new ------------------------------------------------------------------------------

    async def open_form(self, reply: SlashReply, command: Mapping[str, Any]) -> None:
        """`/kie new`: open the form (Slack allows it within 3 s of the command)."""
        channel = _text(command.get("channel_id"))
        refused = self.refusal(channel)
        if refused:
            await reply.say(refused)
            return
        if self.slack is None:
            await reply.say(
                "The form needs SLACK_BOT_TOKEN (console mode cannot open it); use "
                "`/kie veo <prompt>`, `/kie runway <prompt>` or `/kie image <prompt>` instead."
            )
            return
        view = build_new_form(self.catalog, channel, _text(command.get("response_url")) or None)
        problem = await self._open(_text(command.get("trigger_id")), view)
        if problem:
            await reply.say(f"{problem} Run `/kie new` again.")
            return
        await reply.done()

    async def from_message(self, ack: Ack, body: Mapping[str, Any], respond: Any) -> None:
        """The message shortcut: the `/kie new` form with the message's text as the prompt and
        its image offered as the start image; the task goes into the message's thread."""
        await ack()
        say = _clicker(respond)
        used_on = read_shortcut(body)
        refused = self.refusal(used_on.channel) if used_on.channel else "Use it on a message."
        if refused or self.slack is None:
            await say(refused or "The form needs SLACK_BOT_TOKEN; the bot runs in console mode.")
            return
        view = build_from_message_form(
            self.catalog, used_on, _text(body.get("response_url")) or None
        )
        problem = await self._open(_text(body.get("trigger_id")), view)
        if problem:
            await say(f"{problem} Use the shortcut again.")

    async def form_submitted(self, ack: Ack, body: Mapping[str, Any]) -> None:
        """The `/kie new` form: errors go back into the form, next to their field."""
        view = body.get("view")
        form = read_form(view)
        values = form.values
        image = chosen_image(view)  # the message's image, from the shortcut
        view_id = _text(view.get("id")) if isinstance(view, Mapping) else ""
        user = _text(_get(body, "user", "id"))
        spec = self.catalog.get(values.get(MODEL) or "")
        refused = self.refusal(form.channel) if form.channel else "Open the form from a channel."
        if refused:
            await ack(response_action="errors", errors={MODEL: _plain(refused)})
            return
        if spec is None:
            await ack(response_action="errors", errors={MODEL: "Choose a model from the list."})
            return
        try:
            request = build_request(
                spec,
                values.get(PROMPT) or "",
                image_url=image_to_check(values.get(IMAGE), image),
                duration=_number(values.get(DURATION)),
                aspect_ratio=values.get(ASPECT),
                quality=values.get(QUALITY),
            )
        except RequestError as exc:
            named, problem = image_problem(exc, image)
            await ack(response_action="errors", errors={named: problem})
            return
        if not view_id or not user:
            await ack(response_action="errors", errors={PROMPT: "Slack sent an incomplete form."})
            return
        await ack()
        say = _responder(form.response_url)
        claim = Claim((f"view:{view_id}",))
        await self._guarded(say, self._form_start(say, request, form, user, claim, image))

    async def _form_start(
        self,
        say: Say,
        request: GenerationRequest,
        form: FormValues,
        user: str,
        claim: Claim,
        image: SlackImage | None,
    ) -> None:
        """Start the form's request, into the thread of the shortcut's message if it has one;
        the message's image, when chosen, is handed to kie.ai first (fetched from Slack,
        uploaded to kie.ai) and its link sent as the image."""
        if image is not None:
            assert self.slack is not None and self.client is not None  # the form opened
            try:
                url = await hand_over(self.slack, self.client, image)
            except StartImageError as exc:
                await say(f"The message's image could not be used: {exc} Nothing was started.")
                return
            request = replace(request, image_url=url)
        await self._start(say, request, form.channel, user, claim, under=under_of(form.metadata))

    # --- Again and Extend on a card ------------------------------------------------------------

    async def again(self, ack: Ack, body: Mapping[str, Any], respond: Any) -> None:
        """`Again`: the task's request once more, as a new task with a root of its own."""
        await self._clicked(ack, body, respond, self._again)

    async def _again(self, say: Say, body: Mapping[str, Any]) -> None:
        channel, user = _text(_get(body, "channel", "id")), _text(_get(body, "user", "id"))
        task = await self._clicked_task(body)
        if task is None:
            await say("I do not know that task any more; start a new one with `/kie new`.")
            return
        request = GenerationRequest.from_json(task.request)
        if request is None:
            await say(
                "That task was not started from Slack, so there is no request to send again; "
                "start one with `/kie new`."
            )
            return
        thread = None
        if request.extends:  # an extension or upscale again: into the thread it went to
            thread = await self._thread(request.product, request.extends, channel)
        again = f"again:{task.family}:{task.task_id}:{channel}:{user}"
        await self._start_clicked(say, body, request, task, again, thread)

    async def extend(self, ack: Ack, body: Mapping[str, Any], respond: Any) -> None:
        """`Extend` (Veo): a form asks how the video goes on."""
        await self._clicked(ack, body, respond, self._extend)

    async def _extend(self, say: Say, body: Mapping[str, Any]) -> None:
        channel = _text(_get(body, "channel", "id"))
        task = await self._clicked_task(body)
        if task is None or task.family != "veo" or task.state is not State.SUCCEEDED:
            await say("Only a Veo video that is ready can be extended.")
            return
        if self.slack is None:
            await say("The form needs SLACK_BOT_TOKEN; the bot runs in console mode.")
            return
        view = build_extend_form(
            task.product, task.task_id, task.prompt, channel, _text(body.get("response_url"))
        )
        problem = await self._open(_text(body.get("trigger_id")), view)
        if problem:
            await say(f"{problem} Click `Extend` again.")

    async def extend_submitted(self, ack: Ack, body: Mapping[str, Any]) -> None:
        """The `Extend` form: kie.ai's extend, into the thread of the video it continues."""
        view = body.get("view")
        form = read_form(view)
        view_id = _text(view.get("id")) if isinstance(view, Mapping) else ""
        user = _text(_get(body, "user", "id"))
        task_id = _text(form.metadata.get("task_id"))
        refused = self.refusal(form.channel) if form.channel else "Open the form from a channel."
        if refused or not task_id or not view_id or not user:
            problem = refused or "Slack sent an incomplete form; click `Extend` again."
            await ack(response_action="errors", errors={PROMPT: _plain(problem)})
            return
        try:
            original = await self.tasks.get("veo", task_id)
        except StoreUnavailable:  # the form is answered within 3 s all the same
            original = None
        try:
            request = extend_request(
                task_id,
                form.values.get(PROMPT) or "",
                GenerationRequest.from_json(original.request if original else None),
            )
        except RequestError as exc:
            await ack(response_action="errors", errors={PROMPT: str(exc)})
            return
        await ack()
        say = _responder(form.response_url)
        await self._guarded(say, self._extend_start(say, request, form.channel, user, view_id))

    async def _extend_start(
        self, say: Say, request: GenerationRequest, channel: str, user: str, view_id: str
    ) -> None:
        extends = request.extends or ""
        thread = await self._thread("veo", extends, channel)
        await self._start(
            say, request, channel, user, Claim((f"view:{view_id}",)), origin=extends, thread=thread
        )

    # --- Upscale n and Vary n on a Midjourney grid ---------------------------------------------

    async def mj_follow_up(self, ack: Ack, body: Mapping[str, Any], respond: Any) -> None:
        """`Upscale n` or `Vary n`: kie.ai upscales or varies picture n of the grid as a new
        Midjourney task, whose result comes into the grid's thread."""
        await self._clicked(ack, body, respond, self._mj_follow_up)

    async def _mj_follow_up(self, say: Say, body: Mapping[str, Any]) -> None:
        channel, user = _text(_get(body, "channel", "id")), _text(_get(body, "user", "id"))
        wanted = read_mj_action(_action(body).get("action_id"))
        grid = await self._clicked_task(body)
        if wanted is None or grid is None or not is_mj_grid(grid):
            await say("Only a Midjourney image grid that is ready can be upscaled or varied.")
            return
        what, index = wanted
        request = mj_request(grid.task_id, grid.prompt, what, index)
        picture = f"mj:{what}:{index}:{grid.task_id}:{channel}:{user}"
        thread = await self._thread("mj", grid.task_id, channel)
        await self._start_clicked(say, body, request, grid, picture, thread)

    async def _start_clicked(
        self,
        say: Say,
        body: Mapping[str, Any],
        request: GenerationRequest,
        clicked: Task,
        double_click: str,
        thread: tuple[str, str] | None,
    ) -> None:
        """Start `request` for a click on the card of `clicked`, which the new task names and
        links; a second click under `double_click` within `DOUBLE_CLICK` seconds, or Slack's
        retry of the click, starts nothing."""
        user = _text(_get(body, "user", "id"))
        clicked_at = f"click:{_text(_action(body).get('action_ts'))}:{user}"
        await self._start(
            say,
            request,
            _text(_get(body, "channel", "id")),
            user,
            Claim((clicked_at,), window=(double_click, DOUBLE_CLICK)),
            origin=clicked.task_id,
            origin_link=_permalink(body),
            thread=thread,
        )

    # --- the one way a generation starts -------------------------------------------------------

    async def _start(
        self,
        say: Say,
        request: GenerationRequest,
        channel: str,
        user: str,
        claim: Claim,
        *,
        announce: bool = False,
        origin: str | None = None,
        origin_link: str | None = None,
        thread: tuple[str, str] | None = None,
        under: str | None = None,
    ) -> None:
        """Claim (and count against the daily limits), ask kie.ai, record the task and start
        polling; tell `say` how it went. The task's root goes into the thread of another task
        (`thread`), of the message `under` (a shortcut's), or starts its own."""
        try:
            held = await self.submissions.claim(
                claim, channel, user, start=ledger_start(request, user, channel), limits=self.limits
            )
        except LimitReached as reached:
            log.info("%s not started for %s in %s: %s", request.product, user, channel, reached)
            await say(limit_refusal(reached, self.limits, time.time()))
            return
        if held is not None:
            log.info("submission %s delivered again: %s", claim.keys[0][:60], held.state)
            await say(_held_text(held))
            return
        if announce:
            await say(f"Starting {escape(request.summary())}…")
        assert self.client is not None  # `refusal` said so
        token = await self.routes.issue(channel, created_by=user or None)
        callback_url = f"{self.settings.public_url}/callbacks/{request.product}/{token}"
        try:
            task_id = await self.client.submit(request, callback_url)
        except KieError as exc:
            log.info("kie.ai did not start %s for %s: %s", request.product, user, exc)
            await self.submissions.refused(claim, str(exc))
            await say(f"kie.ai did not start the {request.noun}: {escape(str(exc))}.")
            return
        except Exception:
            await self.submissions.refused(claim, "the bot failed while asking kie.ai")
            raise
        family = PRODUCTS[request.product].family
        log.info(
            "started %s task %s for %s",
            request.product,
            task_id,
            user,
            extra={"task_id": task_id, "channel": channel},
        )
        update = TaskUpdate(
            product=request.product,
            task_id=task_id,
            state=State.RUNNING,
            prompt=request.prompt,
            source="request",
            raw={"taskId": task_id, "request": request.to_json()},
            model=request.model if request.product == "market" else None,
            media=request.media,
        )
        started = Started(user, request.to_json(), origin, origin_link)
        note = _thread_note(user, request, task_id) if thread is not None else None
        try:
            await self.submissions.started(
                claim, update, channel, started, thread=thread, note=note, under=under
            )
        except StoreUnavailable as exc:
            log.error(
                "task %s started at kie.ai but not recorded: %s",
                task_id,
                exc,
                extra={"task_id": task_id, "channel": channel},
            )
            await say(
                f"kie.ai started it as task `{escape(task_id)}`, but the bot's database is not "
                "answering; the result still comes to this channel by its callback."
            )
            return
        try:  # a callback that never comes is covered by polling
            await self.schedule.start(family, task_id, delay=self.settings.poll_interval)
        except StoreUnavailable as exc:  # then by the quiet-task poll, ten minutes on
            log.warning("task %s: polling not scheduled: %s", task_id, exc)
        where = _where(request) if thread else "into its thread here"
        if under and not thread:
            where = "into the thread of the message you started it from"
        await say(
            f"Started {escape(request.summary())} as task `{escape(task_id)}`: the result comes "
            f"{where}. kie.ai charges its credits for it (`/kie credits` shows what is left)."
        )

    # --- helpers -------------------------------------------------------------------------------

    async def _clicked(
        self,
        ack: Ack,
        body: Mapping[str, Any],
        respond: Any,
        work: Callable[[Say, Mapping[str, Any]], Awaitable[None]],
    ) -> None:
        """A click on a button that starts a generation: acknowledged at once; `work` runs only
        where generations may start, and every answer goes only to the clicker."""
        await ack()
        say = _clicker(respond)
        refused = self.refusal(_text(_get(body, "channel", "id")))
        if refused:
            await say(refused)
            return
        await self._guarded(say, work(say, body))

    async def _guarded(self, say: Say, work: Awaitable[None]) -> None:
        """Run `work`; whatever goes wrong is said to the person, never left silent."""
        try:
            await work
        except StoreUnavailable as exc:
            log.error("starting a generation: store unavailable: %s", exc)
            await say(DATABASE_DOWN)
        except Exception:
            log.exception("starting a generation failed")
            await say(OOPS)

    async def _open(self, trigger_id: str, view: dict[str, Any]) -> str | None:
        """Open `view` for the trigger; None when it opened, else what went wrong."""
        assert self.slack is not None
        if not trigger_id:
            return "Slack sent no trigger id, so no form can open."
        try:
            await self.slack.views_open(trigger_id=trigger_id, view=view)
        except SlackApiError as exc:
            error = _text(exc.response.get("error")) if exc.response is not None else ""
            log.warning("views.open refused: %s", error or exc)
            return f"Slack would not open the form ({escape(error or 'no reason given')})."
        except Exception as exc:  # network trouble: the trigger expires within 3 s anyway
            log.warning("views.open failed: %s", type(exc).__name__)
            return "Slack did not answer in time to open the form."
        return None

    async def _clicked_task(self, body: Mapping[str, Any]) -> Task | None:
        named = read_button_value(_action(body).get("value"))
        if named is None or named[0] not in PRODUCTS:
            return None
        return await self.tasks.get(PRODUCTS[named[0]].family, named[1])

    async def _thread(self, product: str, task_id: str, channel: str) -> tuple[str, str] | None:
        """The thread of `product`'s task in `channel` (its id and root ts), when its root is
        posted."""
        family = PRODUCTS[product].family
        root = await self.submissions.thread_root(family, task_id, channel) if task_id else None
        return (task_id, root) if root else None


def _held_text(held: Submission) -> str:
    if held.state == "submitted":
        return (
            f"Already started as task `{escape(held.task_id or '?')}`; nothing more is sent to "
            "kie.ai."
        )
    if held.state == "refused":
        return f"This was already tried, and it did not start: {escape(held.outcome or '')}."
    return "This is already being started (it arrived twice); nothing more is sent to kie.ai."


def _thread_note(user: str, request: GenerationRequest, task_id: str) -> str:
    """The thread's note that someone asked to extend the video, or to upscale or vary a
    picture of the grid (mrkdwn made by the bot)."""
    if request.action is not None:
        picture = (request.index or 0) + 1
        asked = (
            f"🔍 {mention(user)} asked to upscale picture {picture}"
            if request.action == "upscale"
            else f"🔀 {mention(user)} asked for variations of picture {picture}"
        )
        return (
            f"{asked}.\nkie.ai is making it as task `{escape(task_id)}`; it will arrive in this "
            "thread."
        )
    prompt = " ".join(request.prompt.split())
    quoted = escape(prompt if len(prompt) <= QUOTE_MAX else prompt[: QUOTE_MAX - 1] + "…")
    return (
        f"⏩ {mention(user)} asked to extend this video: _{quoted}_\n"
        f"kie.ai is making the extension as task `{escape(task_id)}`; it will arrive in this "
        "thread."
    )


def _where(request: GenerationRequest) -> str:
    """Where the result of a request that goes into another task's thread comes."""
    if request.action is not None:
        return "into the thread of the grid it comes from"
    return "into the thread of the video it extends"


def _permalink(body: Mapping[str, Any]) -> str | None:
    """The link to the clicked message, from the click's payload, when it can be built."""
    domain = _text(_get(body, "team", "domain"))
    channel = _text(_get(body, "channel", "id"))
    ts = _text(_get(body, "container", "message_ts"))
    if not (_DOMAIN.fullmatch(domain) and _CHANNEL.fullmatch(channel) and _TS.fullmatch(ts)):
        return None
    return f"https://{domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"


def _clicker(respond: Any) -> Say:
    """Answers only the person who clicked, through the click's response URL."""

    async def say(text: str) -> None:
        try:
            await respond(text=text, response_type="ephemeral", replace_original=False)
        except Exception as exc:
            log.warning("could not answer a click: %s", type(exc).__name__)

    return say


def _responder(response_url: str | None) -> Say:
    """Answers the person who submitted a form, through the response URL of the command or
    click that opened it; without one, the answer is only logged."""

    async def say(text: str) -> None:
        if response_url is None:
            log.info("a form's answer has no response URL: %s", text[:200])
            return
        try:
            await AsyncRespond(response_url=response_url)(
                text=text, response_type="ephemeral", replace_original=False
            )
        except Exception as exc:
            log.warning("could not answer a form: %s", type(exc).__name__)

    return say


def _action(body: Mapping[str, Any]) -> Mapping[str, Any]:
    actions = body.get("actions")
    first = actions[0] if isinstance(actions, list) and actions else None
    return first if isinstance(first, Mapping) else {}


def _get(body: Mapping[str, Any], *keys: str) -> Any:
    value: Any = body
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _number(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() and len(value) < 4 else None


def _unescape(text: str) -> str:
    """Slack sends `&`, `<` and `>` of a command's text as HTML entities."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _plain(mrkdwn: str) -> str:
    """A refusal for a form's error line, which shows plain text: no `<#C…>` links."""
    return re.sub(r"<#([A-Z0-9]+)(?:\|[^>]*)?>", r"#\1", mrkdwn)
