"""Block Kit messages about tasks: pure builders, no I/O.

`build_task_message` renders a task's root message (updated in place as the task moves),
`build_update_message` one piece of news as a thread reply, and `build_notice` a short thread
note. The blocks they are made of (and the escaping of outside text) are in `bot.slack.blocks`,
the card's buttons in `bot.slack.buttons`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.kie.failures import Explanation, explain_failure
from bot.kie.products import PRODUCTS, RESULT_RETENTION_DAYS, model_name
from bot.kie.submit import GenerationRequest
from bot.slack.blocks import (
    ACTIONS_MAX,
    MODEL_MAX,
    PROMPT_EXCERPT,
    SECTION_MAX,
    Message,
    capped,
    code,
    context,
    escape,
    escaped,
    fallback,
    header,
    image,
    is_web_url,
    link_button,
    mention,
    one_line,
    product_label,
    quote,
    section,
    sections,
    short_id,
    slack_date,
    slack_time,
    truncate,
)
from bot.slack.buttons import task_actions
from bot.task import Source, State, Task, TaskUpdate
from bot.video.saved import SavedVideo

#: The card's line once its video is saved into the thread.
SAVED_IN_THREAD = "🎬 Saved in the thread: plays in Slack and stays after kie.ai deletes the link."


# --- cards ------------------------------------------------------------------------------------


def _summary(item: Task | TaskUpdate) -> str:
    """The model (Market tasks), the task id, the prompt excerpt and the credits consumed, each
    when known."""
    lines = [f"*Model:* {escape(_model(item))}"] if _model(item) else []
    lines.append(f"*Task:* {code(item.task_id)}")
    if item.prompt and item.prompt.strip():
        lines.append(f"*Prompt:* {escape(truncate(one_line(item.prompt), PROMPT_EXCERPT))}")
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
    shown = code(origin)
    link = task.origin_link or ""
    if _MESSAGE_LINK.fullmatch(link):
        return f"{what} {shown} (<{link}|its message>)"
    return f"{what} {shown}"


def _model(item: Task | TaskUpdate) -> str:
    """The Market model's name in words, one short line; empty when no model is known."""
    return truncate(one_line(model_name(item.model)), MODEL_MAX) if item.model else ""


def _about(item: Task | TaskUpdate) -> str:
    """` (<model name>)` for the notification text of a Market task; empty otherwise."""
    return f" ({_model(item)})" if _model(item) else ""


def _amount(credits: float) -> str:
    """Credits as people write them: 55, 1,200, 0.5."""
    return f"{credits:,.2f}".rstrip("0").rstrip(".")


def _poll_note(source: Source) -> list[dict[str, Any]]:
    if source != "poll":
        return []
    return [context("Learnt by polling kie.ai: no callback arrived for this result.")]


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
    when = slack_date(expires)
    if days < RESULT_RETENTION_DAYS:
        span = "a day" if days == 1 else f"{days} days"
        if now is not None and now >= expires:
            return [context(f"⌛ These links may have expired: they can expire within {span}.")]
        return [
            context(
                f"⌛ {escape(product_label(product))} links may expire within {span} (by {when});"
                " download or save the videos soon."
            )
        ]
    if now is not None and now >= expires:
        return [context(f"⌛ These links expired on {when}.")]
    return [
        context(
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
        (n, videos[url]) for n, url in enumerate(item.result_urls, 1) if videos and url in videos
    ]
    if not known:
        return _expiry(item.product, finished_at, now)
    count = len(item.result_urls)
    if all(video.saved for _, video in known) and len(known) == count:
        if count == 1:
            return [context(SAVED_IN_THREAD)]
        return [
            context(
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
            why = escape(one_line(video.explanation or video.reason or "no reason given"))
            where = "" if count == 1 else f" (video {n})"
            lines.append(f"⚠️ Not saved in Slack{where}: {truncate(why, 400)} The link stays.")
        else:
            lines.append(f"📥 Saving {name[0].lower()}{name[1:]} into the thread…")
    return [context("\n".join(lines)), *_expiry(item.product, finished_at, now)]


def _failure_lines(item: Task | TaskUpdate, explanation: Explanation) -> list[str]:
    """The explanation heading, the provider's message quoted, and the next step."""
    code, message = item.code, item.message
    said = f"kie.ai said (code {code}):" if code is not None else "kie.ai said:"
    quoted = quote(message) if message.strip() else "> _(no message)_"
    return [
        f"*{explanation.heading}*",
        f"{said}\n{quoted}",
        f"*Next step:* {explanation.next_step}",
    ]


def _running(item: Task | TaskUpdate) -> Message:
    label = product_label(item.product)
    blocks = [
        header(f"⏳ {label} is generating"),
        section(_summary(item)),
        *(_progress(item) if isinstance(item, Task) else []),
        context("This message is updated when kie.ai reports the result."),
        *(task_actions(item) if isinstance(item, Task) else []),
        *_poll_note(item.source),
    ]
    text = f"⏳ {label}{_about(item)} task {short_id(item.task_id)} is generating"
    return Message(fallback(text), blocks)


def _failed(item: Task | TaskUpdate) -> Message:
    label = product_label(item.product)
    explanation = explain_failure(item.product, item.code, item.message)
    blocks = [
        header(f"❌ {label} task failed"),
        section(_summary(item)),
        section("\n".join(_failure_lines(item, explanation))),
        *(task_actions(item) if isinstance(item, Task) else []),
        *_poll_note(item.source),
    ]
    text = f"❌ {label}{_about(item)} task {short_id(item.task_id)} failed: {explanation.heading}"
    return Message(fallback(text), capped(blocks))


def _succeeded(
    item: Task | TaskUpdate,
    *,
    with_image: bool,
    finished_at: float | None,
    now: float | None,
    saved: Mapping[str, SavedVideo] | None = None,
) -> Message:
    label = product_label(item.product)
    buttons: list[dict[str, Any]] = []
    as_text: list[str] = []
    for url in item.result_urls:
        if is_web_url(url) and len(buttons) < ACTIONS_MAX:
            n = len(buttons) + 1
            name = "Open video" if n == 1 else f"Open video {n}"
            buttons.append(link_button(name, url, f"open_video_{n}"))
        else:
            as_text.append(f"• {escaped(url, SECTION_MAX - 100)}")

    count = len(item.result_urls)
    videos = "1 video" if count == 1 else f"{count} videos"
    blocks: list[dict[str, Any]] = [
        header(f"✅ {label} video ready"),
        section(f"*Product:* {escape(label)}\n{_summary(item)}"),
    ]
    if not item.result_urls:
        blocks.append(section("_kie.ai reported success but sent no video URL._"))
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    if isinstance(item, Task):  # a task's own card, not a reply about one piece of news
        blocks.extend(task_actions(item))
    if as_text:
        blocks.extend(sections(["*More video links:*" if buttons else "*Video links:*", *as_text]))
    thumbnail = next(iter(item.image_urls), "")
    if with_image and is_web_url(thumbnail):
        blocks.append(image(thumbnail, f"{label} thumbnail for task {short_id(item.task_id)}"))
    if item.code is not None and item.code != 200:
        # The task succeeded, then a later update failed (a 4K upgrade, a stale retry).
        explanation = explain_failure(item.product, item.code, item.message)
        heading, *rest = _failure_lines(item, explanation)
        blocks.append(section("\n".join([f"⚠️ A later update failed: {heading}", *rest])))
    blocks.extend(_video_notes(item, saved, finished_at, now))
    blocks.extend(_poll_note(item.source))
    text = f"✅ {label}{_about(item)} video ready for task {short_id(item.task_id)} ({videos})"
    return Message(fallback(text), capped(blocks))


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
        return [context(f"⏱ Waiting since {slack_date(task.created_at)}")]
    running = _duration(task.polled_at - task.created_at)
    return [context(f"⏱ Running for {running} · kie.ai last asked {slack_time(task.polled_at)}")]


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
        section(shown or "_(empty notice)_"),
        context(f"Task {code(task_id)}"),
    ]
    return Message(fallback(f"{text} (task {short_id(task_id)})"), blocks)


def build_channel_message(mrkdwn: str) -> Message:
    """A message of the bot's own to a channel (an alert, a digest): `mrkdwn` is made by the
    bot, its mentions and channel links stay; cut into sections within Slack's limits."""
    lines = mrkdwn.strip().splitlines() or ["_(empty message)_"]
    first = lines[0]
    return Message(fallback(_plain_line(first)), capped(sections(lines)))


def _plain_line(mrkdwn: str) -> str:
    """A line of the bot's mrkdwn as a notification text: no emphasis marks or emoji codes."""
    return re.sub(r":[a-z_]+: ?", "", mrkdwn).replace("*", "").strip()
