"""Block Kit messages about tasks: pure builders, no I/O.

`build_task_message` renders a task's root message (updated in place as the task moves),
`build_update_message` one piece of news as a thread reply, and `build_notice` a short thread
note. Text from outside (prompts, provider
messages, task ids, URLs) is escaped so it cannot mention anyone or forge a link, and Slack's
Block Kit limits (slack-platform.md section 5) are kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

from bot.kie.failures import Explanation, explain_failure
from bot.kie.products import PRODUCTS, RESULT_RETENTION_DAYS, model_name
from bot.kie.submit import GenerationRequest
from bot.task import Source, State, Task, TaskUpdate
from bot.video.saved import SavedVideo

MAX_BLOCKS = 50
SECTION_MAX = 3000
HEADER_MAX = 150
BUTTON_TEXT_MAX = 75
URL_MAX = 3000
ALT_TEXT_MAX = 2000
ACTIONS_MAX = 25
CONTEXT_MAX = 2000
TEXT_MAX = 299
PROMPT_EXCERPT = 200
MESSAGE_MAX = 2000
TASK_ID_MAX = 120
MODEL_MAX = 120

#: The card's line once its video is saved into the thread.
SAVED_IN_THREAD = "🎬 Saved in the thread: plays in Slack and stays after kie.ai deletes the link."


@dataclass(frozen=True, slots=True)
class Message:
    """A Slack message: `text` is the one-line notification fallback, `blocks` the Block Kit."""

    text: str
    blocks: list[dict[str, Any]]


# --- text helpers -----------------------------------------------------------------------------


def escape(value: str) -> str:
    """Escape `&`, `<`, `>` so outside text cannot form a mention, a link or a date."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _truncate(value: str, limit: int) -> str:
    """`value` cut to at most `limit` characters, ending in an ellipsis when cut."""
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def _escaped(value: str, limit: int) -> str:
    """`escape(value)` within `limit` characters, cut between entities, never inside one."""
    whole = escape(value)
    if len(whole) <= limit:
        return whole
    out: list[str] = []
    size = 0
    for char in value:
        piece = escape(char)
        if size + len(piece) > limit - 1:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out).rstrip() + "…"


def _one_line(value: str) -> str:
    """`value` with every run of whitespace (newlines too) made one space."""
    return " ".join(value.split())


def _code(value: str) -> str:
    """An inline code span for outside text such as a task id."""
    return "`" + _escaped(_one_line(value).replace("`", "'"), TASK_ID_MAX) + "`"


def _quote(value: str) -> str:
    """A mrkdwn block quote of outside text, every line quoted."""
    quoted: list[str] = []
    room = MESSAGE_MAX
    for line in value.strip().splitlines() or [""]:
        fits = len(escape(line)) <= room - 3
        piece = "> " + _escaped(line, max(room - 3, 1))
        quoted.append(piece)
        if not fits:
            break
        room -= len(piece) + 1
    return "\n".join(quoted)


def _label(product: str) -> str:
    """The product's human name, or its slug when the registry does not know it."""
    found = PRODUCTS.get(product)
    return found.label if found else product


def _is_web_url(url: str) -> bool:
    """True for an http(s) URL Slack accepts in a button or an image block."""
    return url.startswith(("https://", "http://")) and len(url) <= URL_MAX and " " not in url


def _utc(epoch: float) -> str:
    """`epoch` as a UTC date, like "2026-12-09 14:03 UTC"."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _slack_date(epoch: float) -> str:
    """A Slack date token shown in the reader's time zone, with a UTC fallback."""
    return f"<!date^{int(epoch)}^{{date_short_pretty}} {{time}}|{_utc(epoch)}>"


# --- block helpers ----------------------------------------------------------------------------


def _header(value: str) -> dict[str, Any]:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": _truncate(value, HEADER_MAX), "emoji": True},
    }


def _section(mrkdwn: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _truncate(mrkdwn, SECTION_MAX)}}


def _context(mrkdwn: str) -> dict[str, Any]:
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": _truncate(mrkdwn, CONTEXT_MAX)}],
    }


def _button(text: str, url: str, action_id: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": _truncate(text, BUTTON_TEXT_MAX)},
        "url": url,
        "action_id": action_id,
    }


def _image(url: str, alt_text: str) -> dict[str, Any]:
    return {"type": "image", "image_url": url, "alt_text": _truncate(alt_text, ALT_TEXT_MAX)}


def _sections(lines: list[str]) -> list[dict[str, Any]]:
    """`lines` packed into as few sections as the section text limit allows."""
    blocks: list[dict[str, Any]] = []
    chunk = ""
    for line in lines:
        line = _truncate(line, SECTION_MAX)
        if chunk and len(chunk) + 1 + len(line) > SECTION_MAX:
            blocks.append(_section(chunk))
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else line
    if chunk:
        blocks.append(_section(chunk))
    return blocks


def _capped(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`blocks` within Slack's 50-block limit, saying so when some were left out."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    left = len(blocks) - (MAX_BLOCKS - 1)
    return [*blocks[: MAX_BLOCKS - 1], _context(f"_{left} more blocks not shown._")]


def _fallback(value: str) -> str:
    """The notification text: one line, escaped, under 300 characters."""
    return _escaped(_one_line(value), TEXT_MAX)


# --- cards ------------------------------------------------------------------------------------


def _summary(item: Task | TaskUpdate) -> str:
    """The model (Market tasks), the task id, the prompt excerpt and the credits consumed, each
    when known."""
    lines = [f"*Model:* {escape(_model(item))}"] if _model(item) else []
    lines.append(f"*Task:* {_code(item.task_id)}")
    if item.prompt and item.prompt.strip():
        lines.append(f"*Prompt:* {escape(_truncate(_one_line(item.prompt), PROMPT_EXCERPT))}")
    if item.credits is not None:
        lines.append(f"*Credits used:* {_amount(item.credits)}")
    if isinstance(item, Task):  # started from Slack: who asked, and what it repeats
        if item.requested_by:
            lines.append(f"*Asked by:* {mention(item.requested_by)}")
        if item.origin:
            lines.append(_origin_line(item, item.origin))
    return "\n".join(lines)


#: What a link to a Slack message looks like (built by the bot from a click's payload).
_MESSAGE_LINK = re.compile(r"https://[a-z0-9-]{1,63}\.slack\.com/archives/[A-Z0-9]{3,30}/p\d{6,20}")


def _origin_line(task: Task, origin: str) -> str:
    """The line naming the task this one repeats ("Again of") or extends ("Extends"), linked to
    that task's message when the link is known."""
    request = GenerationRequest.from_json(task.request)
    what = "*Extends:*" if request is not None and request.extends else "*Again of:*"
    shown = _code(origin)
    link = task.origin_link or ""
    if _MESSAGE_LINK.fullmatch(link):
        return f"{what} {shown} (<{link}|its message>)"
    return f"{what} {shown}"


def _model(item: Task | TaskUpdate) -> str:
    """The Market model's name in words, one short line; empty when no model is known."""
    return _truncate(_one_line(model_name(item.model)), MODEL_MAX) if item.model else ""


def _about(item: Task | TaskUpdate) -> str:
    """` (<model name>)` for the notification text of a Market task; empty otherwise."""
    return f" ({_model(item)})" if _model(item) else ""


def _amount(credits: float) -> str:
    """Credits as people write them: 55, 1,200, 0.5."""
    return f"{credits:,.2f}".rstrip("0").rstrip(".")


def _short_id(task_id: str) -> str:
    return _truncate(_one_line(task_id), TASK_ID_MAX)


def _poll_note(source: Source) -> list[dict[str, Any]]:
    if source != "poll":
        return []
    return [_context("Learnt by polling kie.ai: no callback arrived for this result.")]


def _expiry(product: str, finished_at: float | None, now: float | None) -> list[dict[str, Any]]:
    """The context line saying when kie.ai deletes the results, if the finish time is known.

    Products whose links may not last `RESULT_RETENTION_DAYS` (Market: maybe a day) get a warning
    to save the videos soon instead of a promise.
    """
    if finished_at is None or finished_at <= 0:
        return []
    found = PRODUCTS.get(product)
    days = found.result_days if found else RESULT_RETENTION_DAYS
    expires = finished_at + days * 86_400
    when = _slack_date(expires)
    if days < RESULT_RETENTION_DAYS:
        span = "a day" if days == 1 else f"{days} days"
        if now is not None and now >= expires:
            return [_context(f"⌛ These links may have expired: they can expire within {span}.")]
        return [
            _context(
                f"⌛ {escape(_label(product))} links may expire within {span} (by {when});"
                " download or save the videos soon."
            )
        ]
    if now is not None and now >= expires:
        return [_context(f"⌛ These links expired on {when}.")]
    return [
        _context(
            f"⌛ Links expire {when} ({RESULT_RETENTION_DAYS} days after the result);"
            " download the videos before then."
        )
    ]


def _video_notes(
    item: Task | TaskUpdate,
    videos: Mapping[str, SavedVideo] | None,
    finished_at: float | None,
    now: float | None,
) -> list[dict[str, Any]]:
    """What became of the videos saved into the thread, and the expiry line while a link is
    all there is.

    Every video saved: one line saying so, no expiry. Otherwise a line per video that is saved,
    on its way, or not saved (with the reason), then the expiry line: those links still matter.
    Without records (saving off) only the expiry line.
    """
    known = [
        (n, videos[url]) for n, url in enumerate(item.video_urls, 1) if videos and url in videos
    ]
    if not known:
        return _expiry(item.product, finished_at, now)
    count = len(item.video_urls)
    if all(video.saved for _, video in known) and len(known) == count:
        if count == 1:
            return [_context(SAVED_IN_THREAD)]
        return [
            _context(
                f"🎬 All {count} videos are saved in the thread: they play in Slack and stay after"
                " kie.ai deletes the links."
            )
        ]
    lines: list[str] = []
    for n, video in known:
        name = "The video" if count == 1 else f"Video {n}"
        if video.saved:
            lines.append(f"🎬 {name} is saved in the thread: it plays in Slack and stays.")
        elif video.refused:
            why = escape(_one_line(video.explanation or video.reason or "no reason given"))
            where = "" if count == 1 else f" (video {n})"
            lines.append(f"⚠️ Not saved in Slack{where}: {_truncate(why, 400)} The link stays.")
        else:
            lines.append(f"📥 Saving {name[0].lower()}{name[1:]} into the thread…")
    return [_context("\n".join(lines)), *_expiry(item.product, finished_at, now)]


def _failure_lines(item: Task | TaskUpdate, explanation: Explanation) -> list[str]:
    """The explanation heading, the provider's message quoted, and the next step."""
    code, message = item.code, item.message
    said = f"kie.ai said (code {code}):" if code is not None else "kie.ai said:"
    quoted = _quote(message) if message.strip() else "> _(no message)_"
    return [
        f"*{explanation.heading}*",
        f"{said}\n{quoted}",
        f"*Next step:* {explanation.next_step}",
    ]


def _running(item: Task | TaskUpdate) -> Message:
    label = _label(item.product)
    blocks = [
        _header(f"⏳ {label} is generating"),
        _section(_summary(item)),
        *(_progress(item) if isinstance(item, Task) else []),
        _context("This message is updated when kie.ai reports the result."),
        *(task_actions(item) if isinstance(item, Task) else []),
        *_poll_note(item.source),
    ]
    text = f"⏳ {label}{_about(item)} task {_short_id(item.task_id)} is generating"
    return Message(_fallback(text), blocks)


def _failed(item: Task | TaskUpdate) -> Message:
    label = _label(item.product)
    explanation = explain_failure(item.product, item.code, item.message)
    blocks = [
        _header(f"❌ {label} task failed"),
        _section(_summary(item)),
        _section("\n".join(_failure_lines(item, explanation))),
        *(task_actions(item) if isinstance(item, Task) else []),
        *_poll_note(item.source),
    ]
    text = f"❌ {label}{_about(item)} task {_short_id(item.task_id)} failed: {explanation.heading}"
    return Message(_fallback(text), _capped(blocks))


def _succeeded(
    item: Task | TaskUpdate,
    *,
    with_image: bool,
    finished_at: float | None,
    now: float | None,
    saved: Mapping[str, SavedVideo] | None = None,
) -> Message:
    label = _label(item.product)
    buttons: list[dict[str, Any]] = []
    as_text: list[str] = []
    for url in item.video_urls:
        if _is_web_url(url) and len(buttons) < ACTIONS_MAX:
            n = len(buttons) + 1
            name = "Open video" if n == 1 else f"Open video {n}"
            buttons.append(_button(name, url, f"open_video_{n}"))
        else:
            as_text.append(f"• {_escaped(url, SECTION_MAX - 100)}")

    count = len(item.video_urls)
    videos = "1 video" if count == 1 else f"{count} videos"
    blocks: list[dict[str, Any]] = [
        _header(f"✅ {label} video ready"),
        _section(f"*Product:* {escape(label)}\n{_summary(item)}"),
    ]
    if not item.video_urls:
        blocks.append(_section("_kie.ai reported success but sent no video URL._"))
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    if isinstance(item, Task):  # a task's own card, not a reply about one piece of news
        blocks.extend(task_actions(item))
    if as_text:
        blocks.extend(_sections(["*More video links:*" if buttons else "*Video links:*", *as_text]))
    thumbnail = next(iter(item.image_urls), "")
    if with_image and _is_web_url(thumbnail):
        blocks.append(_image(thumbnail, f"{label} thumbnail for task {_short_id(item.task_id)}"))
    if item.code is not None and item.code != 200:
        # The task succeeded, then a later update failed (a 4K upgrade, a stale retry).
        explanation = explain_failure(item.product, item.code, item.message)
        heading, *rest = _failure_lines(item, explanation)
        blocks.append(_section("\n".join([f"⚠️ A later update failed: {heading}", *rest])))
    blocks.extend(_video_notes(item, saved, finished_at, now))
    blocks.extend(_poll_note(item.source))
    text = f"✅ {label}{_about(item)} video ready for task {_short_id(item.task_id)} ({videos})"
    return Message(_fallback(text), _capped(blocks))


def _card(
    item: Task | TaskUpdate,
    *,
    with_image: bool,
    finished_at: float | None,
    now: float | None,
    saved: Mapping[str, SavedVideo] | None = None,
) -> Message:
    if item.state is State.SUCCEEDED:
        return _succeeded(
            item, with_image=with_image, finished_at=finished_at, now=now, saved=saved
        )
    if item.state is State.FAILED:
        return _failed(item)
    return _running(item)


# --- buttons and progress ---------------------------------------------------------------------

VALUE_MAX = 2000
METADATA_MAX = 3000
COMMENT_MAX = 1000

#: The action ids of the buttons on a task's card (stable: Bolt routes clicks by them), and
#: the callback id of the share modal.
FRESH_LINK = "kie_fresh_link"
GET_1080P = "kie_get_1080p"
UPSCALE_4K = "kie_upscale_4k"
SHARE = "kie_share"
POLL_NOW = "kie_poll_now"
#: Starting generations from a card: the same request again, and (Veo) the video continued.
AGAIN = "kie_again"
EXTEND = "kie_extend"
SHARE_VIEW = "kie_share"
#: The share modal's inputs: the block id and the action id of each.
SHARE_CHANNEL = "channel"
SHARE_COMMENT = "comment"

#: What Slack user and conversation ids look like.
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,30}")
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,30}")


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def _action(text: str, action_id: str, value: str) -> dict[str, Any]:
    return {"type": "button", "text": _plain(text), "action_id": action_id, "value": value}


def _slack_time(epoch: float) -> str:
    """A Slack time token (like "12:03") in the reader's time zone, with a UTC fallback."""
    fallback = datetime.fromtimestamp(epoch, UTC).strftime("%H:%M UTC")
    return f"<!date^{int(epoch)}^{{time}}|{fallback}>"


def _duration(seconds: float) -> str:
    """A span as people say it: "under a minute", "7 min", "2 h 5 min"."""
    minutes = int(max(seconds, 0) // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def _progress(task: Task) -> list[dict[str, Any]]:
    """How long a running task has been running, as of when kie.ai was last asked about it."""
    if task.created_at <= 0:
        return []
    if task.polled_at is None:
        return [_context(f"⏱ Waiting since {_slack_date(task.created_at)}")]
    running = _duration(task.polled_at - task.created_at)
    return [_context(f"⏱ Running for {running} · kie.ai last asked {_slack_time(task.polled_at)}")]


_UPSCALE_CONFIRM = {
    "title": _plain("Upscale to 4K?"),
    "text": {
        "type": "mrkdwn",
        "text": "The 4K version costs extra kie.ai credits (about twice a Veo Fast generation) "
        "and takes 5 to 10 minutes to make. It will arrive in this thread.",
    },
    "confirm": _plain("Upscale"),
    "deny": _plain("Cancel"),
}


def button_value(task: Task) -> str:
    """What a card's button carries: the task's product and id, as JSON."""
    return json.dumps({"product": task.product, "task_id": task.task_id})


def read_button_value(value: Any) -> tuple[str, str] | None:
    """The product and task id that a button's value names, or None when it names none."""
    if not isinstance(value, str) or len(value) > VALUE_MAX:
        return None
    try:
        found = json.loads(value)
    except (ValueError, RecursionError):
        return None
    if not isinstance(found, dict):
        return None
    product, task_id = found.get("product"), found.get("task_id")
    if not isinstance(product, str) or not isinstance(task_id, str) or not task_id:
        return None
    return product, task_id


def task_actions(task: Task) -> list[dict[str, Any]]:
    """The actions block of a task's card, or none: on a success `Fresh link`, on Veo
    `Get 1080p` and `Upscale to 4K` (behind a confirm dialog), and `Share to channel`; on a
    running task `Poll now`; on a task started from Slack that ended `Again`; on a Veo success
    `Extend`."""
    value = button_value(task)
    product = PRODUCTS.get(task.product)
    if product is None or len(value) > VALUE_MAX:
        return []
    elements: list[dict[str, Any]] = []
    if task.state is State.SUCCEEDED:
        if task.video_urls:
            elements.append(_action("Fresh link", FRESH_LINK, value))
        if product.family == "veo":
            elements.append(_action("Get 1080p", GET_1080P, value))
            upscale = _action("Upscale to 4K", UPSCALE_4K, value)
            elements.append({**upscale, "confirm": _UPSCALE_CONFIRM})
        elements.append(_action("Share to channel", SHARE, value))
    elif task.state is State.RUNNING:
        elements.append(_action("Poll now", POLL_NOW, value))
    if task.state.is_final and task.request:  # started from Slack: the same request again
        elements.append(_action("Again", AGAIN, value))
    if task.state is State.SUCCEEDED and product.family == "veo":
        elements.append(_action("Extend", EXTEND, value))
    if not elements:
        return []
    return [{"type": "actions", "elements": elements[:ACTIONS_MAX]}]


def mention(user_id: str) -> str:
    """A mention of a Slack user, or the id as code when it is no user id."""
    return f"<@{user_id}>" if _USER_ID.fullmatch(user_id) else _code(user_id)


def channel_link(channel_id: str) -> str:
    """A link to a Slack channel, or the id as code when it is no channel id."""
    return f"<#{channel_id}>" if _CHANNEL_ID.fullmatch(channel_id) else _code(channel_id)


def is_channel_id(value: Any) -> TypeGuard[str]:
    """True for a Slack conversation id (`C…`, `G…`, `D…`)."""
    return isinstance(value, str) and bool(_CHANNEL_ID.fullmatch(value))


def is_user_id(value: Any) -> TypeGuard[str]:
    """True for a Slack user id (`U…`, `W…`)."""
    return isinstance(value, str) and bool(_USER_ID.fullmatch(value))


# --- public builders --------------------------------------------------------------------------


def build_task_message(
    task: Task,
    *,
    with_image: bool = True,
    now: float | None = None,
    saved: Mapping[str, SavedVideo] | None = None,
) -> Message:
    """The root message of `task` in a channel, for posting and for every later update in place.

    `now` (Unix seconds) only decides whether the links are said to expire or to have expired.
    `saved` (by URL) says what became of each video saved into this channel's thread.
    """
    return _card(task, with_image=with_image, finished_at=task.finished_at, now=now, saved=saved)


def build_update_message(
    update: TaskUpdate, *, with_image: bool = True, finished_at: float | None = None
) -> Message:
    """A thread reply for one piece of news about a task (a 4K result, new URLs, a failure).

    `finished_at` (Unix seconds) is when the result arrived; without it no expiry line is shown.
    """
    return _card(update, with_image=with_image, finished_at=finished_at, now=None)


def build_notice(task_id: str, text: str, *, mrkdwn: bool = False) -> Message:
    """A short plain thread message about a task, such as "Stopped polling after a day".

    With `mrkdwn`, `text` is mrkdwn made by the bot: its mentions and channel links stay.
    """
    shown = text.strip() if mrkdwn else escape(text.strip())
    blocks = [
        _section(shown or "_(empty notice)_"),
        _context(f"Task {_code(task_id)}"),
    ]
    return Message(_fallback(f"{text} (task {_short_id(task_id)})"), blocks)


def upscale_note(user_id: str) -> str:
    """The thread's note that someone asked for the 4K version (mrkdwn for `build_notice`)."""
    return (
        f"{mention(user_id)} asked for the 4K version (it costs extra credits and takes "
        "5 to 10 minutes); it will arrive in this thread."
    )


def shared_note(user_id: str, origin: str, comment: str) -> str:
    """The note in the thread of a channel a task was shared to (mrkdwn for `build_notice`)."""
    note = f"Shared by {mention(user_id)} from {channel_link(origin)}"
    said = _escaped(comment.strip(), COMMENT_MAX)
    return f"{note}: {said}" if said else note


def build_fresh_links(task_id: str, links: list[str], problems: list[str], until: float) -> Message:
    """The answer to `Fresh link`: a download button per link kie.ai gave (valid until
    `until`, Unix seconds), and a line for each video it gave none for."""
    buttons: list[dict[str, Any]] = []
    as_text: list[str] = []
    for n, link in enumerate(links, start=1):
        name = "Download video" if len(links) == 1 else f"Download video {n}"
        if _is_web_url(link) and len(buttons) < ACTIONS_MAX:
            buttons.append(_button(name, link, f"open_video_{len(buttons) + 1}"))
        else:
            as_text.append(f"• {name}: {_escaped(link, SECTION_MAX - 100)}")
    blocks: list[dict[str, Any]] = []
    if links:
        blocks.append(
            _section(
                f"*Fresh download links* for {_code(task_id)}: valid 20 minutes, until "
                f"{_slack_time(until)}."
            )
        )
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    blocks.extend(_sections(as_text))
    blocks.extend(_sections([f"• {_escaped(p, SECTION_MAX - 100)}" for p in problems]))
    if links:
        text = f"Fresh download links for task {_short_id(task_id)} (valid 20 minutes)"
    else:
        text = f"No fresh download link for task {_short_id(task_id)}"
    return Message(_fallback(text), _capped(blocks))


def build_share_modal(task: Task, origin: str) -> dict[str, Any]:
    """The `Share to channel` modal: a channel picker and an optional comment.

    Its `private_metadata` carries the task and the channel it is shared from.
    """
    metadata = json.dumps({"product": task.product, "task_id": task.task_id, "channel": origin})
    return {
        "type": "modal",
        "callback_id": SHARE_VIEW,
        "title": _plain("Share to channel"),
        "submit": _plain("Share"),
        "close": _plain("Cancel"),
        "private_metadata": metadata[:METADATA_MAX],
        "blocks": [
            _section(
                f"Share the {escape(_label(task.product))} task {_code(task.task_id)}: the "
                "channel gets its card and video, and follows it from now on."
            ),
            {
                "type": "input",
                "block_id": SHARE_CHANNEL,
                "label": _plain("Channel"),
                "element": {
                    "type": "conversations_select",
                    "action_id": SHARE_CHANNEL,
                    "default_to_current_conversation": False,
                    "filter": {"include": ["public", "private"], "exclude_bot_users": True},
                    "placeholder": _plain("Choose a channel"),
                },
            },
            {
                "type": "input",
                "block_id": SHARE_COMMENT,
                "optional": True,
                "label": _plain("Comment"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": SHARE_COMMENT,
                    "multiline": True,
                    "max_length": COMMENT_MAX,
                },
            },
            _context("For a private channel, invite the bot there first (`/invite @kie`)."),
        ],
    }
