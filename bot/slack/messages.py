"""Block Kit messages about tasks: pure builders, no I/O.

`build_task_message` renders a task's root message (updated in place as the task moves),
`build_update_message` one piece of news as a thread reply, and `build_notice` a short thread
note. The blocks they are made of (and the escaping of outside text) are in `bot.slack.blocks`,
the card's buttons in `bot.slack.buttons`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.kie.failures import Explanation, explain_failure
from bot.kie.media import NOUNS, Media, track_length
from bot.kie.products import PRODUCTS, RESULT_RETENTION_DAYS, model_name
from bot.kie.submit import GenerationRequest
from bot.slack.blocks import (
    ACTIONS_MAX,
    MODEL_MAX,
    PROMPT_EXCERPT,
    SECTION_MAX,
    TEXT_ON_CARD,
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
    text_sections,
    truncate,
)
from bot.slack.buttons import task_actions
from bot.task import Source, State, Task, TaskUpdate
from bot.video.saved import SavedVideo

#: The card's line once its one result is saved into the thread, by the result's kind.
SAVED_NOTES: dict[Media, str] = {
    "video": "🎬 Saved in the thread: plays in Slack and stays after kie.ai deletes the link.",
    "image": "🖼 Saved in the thread: stays after kie.ai deletes the link.",
    "audio": "🎵 Saved in the thread: plays in Slack and stays after kie.ai deletes the link.",
}
#: The card's line once its video is saved into the thread.
SAVED_IN_THREAD = SAVED_NOTES["video"]
#: At most this many images are shown on a card (a Midjourney grid's four); the rest are links.
IMAGES_ON_CARD = 4

_ICONS: dict[Media, str] = {"video": "🎬", "image": "🖼", "audio": "🎵"}
#: What a kind is called in a card's title (singular, plural); a product label that ends in
#: one of these words already says it.
_TITLE_WORDS: dict[Media, tuple[str, ...]] = {
    "video": ("video", "videos"),
    "image": ("image", "images"),
    "audio": ("audio", "music"),
}
#: The link button to each result file.
_OPEN: dict[Media, str] = {"video": "Open video", "image": "Open image", "audio": "Play track"}
#: How far a staged task (Suno music) has come, as its running card says it.
_STAGE_WORDS = {"text": "lyrics ready", "first": "first track ready"}
_STAGE_NOTES = {
    "text": "The lyrics are written; the tracks come next. This message is updated as they arrive.",
    "first": "The first track is ready; the others come next. This message is updated as they"
    " arrive.",
}
_UPDATED_LATER = "This message is updated when kie.ai reports the result."


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


def _expiry(
    item: Task | TaskUpdate, kind: Media, finished_at: float | None, now: float | None
) -> list[dict[str, Any]]:
    """The context line saying when kie.ai deletes the results, if the finish time is known and
    there are result links.

    Products whose links may not last `RESULT_RETENTION_DAYS` (Market: maybe a day) get a warning
    to save the results soon instead of a promise.
    """
    if finished_at is None or finished_at <= 0 or not item.result_urls:
        return []
    found = PRODUCTS.get(item.product)
    days = found.result_days if found else RESULT_RETENTION_DAYS
    expires = finished_at + days * 86_400
    when = slack_date(expires)
    files = NOUNS[kind][1]
    if days < RESULT_RETENTION_DAYS:
        span = "a day" if days == 1 else f"{days} days"
        if now is not None and now >= expires:
            return [context(f"⌛ These links may have expired: they can expire within {span}.")]
        return [
            context(
                f"⌛ {escape(product_label(item.product))} links may expire within {span}"
                f" (by {when}); download or save the {files} soon."
            )
        ]
    if now is not None and now >= expires:
        return [context(f"⌛ These links expired on {when}.")]
    return [
        context(
            f"⌛ Links expire {when} ({RESULT_RETENTION_DAYS} days after the result);"
            f" download the {files} before then."
        )
    ]


def _saved_notes(
    item: Task | TaskUpdate,
    kind: Media,
    saved: Mapping[str, SavedVideo] | None,
    finished_at: float | None,
    now: float | None,
) -> list[dict[str, Any]]:
    """What became of the result files saved into the thread, and the expiry line while a link
    is all there is.

    Every file saved: one line saying so, no expiry. Otherwise a line per file that is saved,
    on its way, or not saved (with the reason), then the expiry line: those links still matter.
    Without records (saving off) only the expiry line.
    """
    known = [(n, saved[url]) for n, url in enumerate(item.result_urls, 1) if saved and url in saved]
    if not known:
        return _expiry(item, kind, finished_at, now)
    count = len(item.result_urls)
    icon, word = _ICONS[kind], NOUNS[kind][0]
    plays = "" if kind == "image" else " play in Slack and"
    if all(outcome.saved for _, outcome in known) and len(known) == count:
        if count == 1:
            return [context(SAVED_NOTES[kind])]
        return [
            context(
                f"{icon} All {count} {NOUNS[kind][1]} are saved in the thread: they{plays} stay"
                " after kie.ai deletes the links."
            )
        ]
    lines: list[str] = []
    for n, outcome in known:
        name = f"the {word}" if count == 1 else f"{word} {n}"
        if outcome.saved:
            its = "it plays in Slack and stays" if plays else "it stays"
            lines.append(f"{icon} {name[0].upper()}{name[1:]} is saved in the thread: {its}.")
        elif outcome.refused:
            why = escape(one_line(outcome.explanation or outcome.reason or "no reason given"))
            where = "" if count == 1 else f" ({name})"
            lines.append(f"⚠️ Not saved in Slack{where}: {truncate(why, 400)} The link stays.")
        else:
            lines.append(f"📥 Saving {name} into the thread…")
    return [context("\n".join(lines)), *_expiry(item, kind, finished_at, now)]


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


# --- the results on a card --------------------------------------------------------------------


@dataclass(slots=True)
class _Results:
    """How a card shows its result files: `shown` right under the summary (images, the track
    list, a text), then the link `buttons`, the links that cannot be buttons (`as_text`), and
    `after` the buttons (a video's thumbnail, a track's cover)."""

    shown: list[dict[str, Any]] = field(default_factory=list)
    buttons: list[dict[str, Any]] = field(default_factory=list)
    as_text: list[str] = field(default_factory=list)
    after: list[dict[str, Any]] = field(default_factory=list)

    def link(self, kind: Media, n: int, url: str) -> None:
        """Result file `n` as a link button, or as a line of text when it cannot be one."""
        if is_web_url(url) and len(self.buttons) < ACTIONS_MAX:
            name = _OPEN[kind] if n == 1 else f"{_OPEN[kind]} {n}"
            self.buttons.append(link_button(name, url, f"open_{kind}_{len(self.buttons) + 1}"))
        else:
            self.as_text.append(f"• {escaped(url, SECTION_MAX - 100)}")

    def blocks(self, kind: Media, actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The result blocks in order, with the task's own `actions` after the link buttons."""
        links = f"{NOUNS[kind][0].capitalize()} links"
        more = self.buttons or any(block["type"] == "image" for block in self.shown)
        heading = f"*More {links.lower()}:*" if more else f"*{links}:*"
        return [
            *self.shown,
            *([{"type": "actions", "elements": self.buttons}] if self.buttons else []),
            *actions,
            *(sections([heading, *self.as_text]) if self.as_text else []),
            *self.after,
        ]


def _results(item: Task | TaskUpdate, kind: Media, *, with_image: bool) -> _Results:
    """The result files of `item` as its card shows them: a video as a link and its thumbnail,
    an image as itself (up to `IMAGES_ON_CARD`, without `with_image` as links), audio as a
    track list with its cover; a success without files shows its text, if any."""
    found = _Results()
    if kind == "image":
        _images(item, found, with_image=with_image)
    else:
        for n, url in enumerate(item.result_urls, 1):
            found.link(kind, n, url)
    if kind == "audio" and item.result_urls:
        found.shown.append(section(_track_list(item)))
    label = product_label(item.product)
    picture = _cover(item) if kind == "audio" else next(iter(item.image_urls), "")
    if with_image and kind != "image" and is_web_url(picture):
        what = "cover" if kind == "audio" else "thumbnail"
        found.after.append(image(picture, f"{label} {what} for task {short_id(item.task_id)}"))
    if not item.result_urls and item.result_text:
        found.shown.extend(text_sections(item.result_text, TEXT_ON_CARD))
        if len(item.result_text) > TEXT_ON_CARD:
            found.shown.append(context("The whole text is in the thread."))
    return found


def _images(item: Task | TaskUpdate, found: _Results, *, with_image: bool) -> None:
    """The first images shown as themselves (alt text naming the product and task, numbered
    titles when there are several), the others as links."""
    count = len(item.result_urls)
    what = f"{product_label(item.product)}{_about(item)} image"
    for n, url in enumerate(item.result_urls, 1):
        if with_image and is_web_url(url) and len(found.shown) < IMAGES_ON_CARD:
            alt = f"{what}, task {short_id(item.task_id)}"
            if count > 1:
                alt = f"{what} {n} of {count}, task {short_id(item.task_id)}"
            found.shown.append(image(url, alt, f"Image {n}" if count > 1 else ""))
        else:
            found.link("image", n, url)


def _track_list(item: Task | TaskUpdate) -> str:
    """The tracks, each with its title (or "Track n") and length, under how many are ready."""
    tracks = {track.url: track for track in item.tracks}
    count = len(item.result_urls)
    first = item.state is State.RUNNING and item.stage == "first" and count == 1
    lines = ["*First track ready:*" if first else f"*{_counted('audio', count)} ready:*"]
    for n, url in enumerate(item.result_urls, 1):
        track = tracks.get(url)
        title = truncate(one_line(track.title), MODEL_MAX) if track and track.title else ""
        line = f"🎵 *{escape(title)}*" if title else f"🎵 Track {n}"
        if track and track.duration:
            line += f" · {track_length(track.duration)}"
        lines.append(line)
    return "\n".join(lines)


def _counted(kind: Media, count: int) -> str:
    """`count` results of `kind` in words: "1 video", "4 images", "2 tracks"."""
    return f"{count} {NOUNS[kind][0 if count == 1 else 1]}"


def _cover(item: Task | TaskUpdate) -> str:
    """The cover of an audio result: the first image URL, else the first track's cover."""
    return next(iter(item.image_urls), "") or next(
        (track.cover for track in item.tracks if track.cover), ""
    )


def _named(item: Task | TaskUpdate, kind: Media, *, about: bool = False) -> str:
    """The product and what its results are, as a title says it: "Runway video", "Midjourney
    images", "Suno music" (the label already says it), with the Market model when `about`."""
    label = product_label(item.product)
    words = _TITLE_WORDS[kind]
    said = f"{label}{_about(item)}" if about else label
    if label.lower().endswith(words):
        return said
    return f"{said} {words[1 if kind == 'image' and len(item.result_urls) > 1 else 0]}"


def task_name(item: Task | TaskUpdate) -> str:
    """What a task makes, by its product and Market model: "Runway video", "kie.ai Market
    (Nano Banana) image", "Suno music"."""
    return _named(item, item.kind, about=True)


# --- cards ------------------------------------------------------------------------------------


def _running(
    item: Task | TaskUpdate,
    *,
    with_image: bool,
    saved: Mapping[str, SavedVideo] | None = None,
) -> Message:
    """A task still at work; a staged task (Suno music) says how far it has come and shows the
    tracks it has made so far."""
    label = product_label(item.product)
    kind = item.kind
    stage = _STAGE_WORDS.get(item.stage or "")
    blocks = [
        header(f"⏳ {label}: {stage}" if stage else f"⏳ {label} is generating{_making(item)}"),
        section(_summary(item)),
    ]
    if item.result_urls:
        blocks.extend(_results(item, kind, with_image=with_image).blocks(kind, []))
        blocks.extend(_saved_notes(item, kind, saved, None, None))
    blocks.extend(
        [
            *(_progress(item) if isinstance(item, Task) else []),
            context(_STAGE_NOTES.get(item.stage or "", _UPDATED_LATER)),
            *(task_actions(item) if isinstance(item, Task) else []),
            *_poll_note(item.source),
        ]
    )
    what = f"{label}{_about(item)} task {short_id(item.task_id)}"
    text = f"⏳ {what}: {stage}" if stage else f"⏳ {what} is generating{_making(item)}"
    return Message(fallback(text), capped(blocks))


def _making(item: Task | TaskUpdate) -> str:
    """` an image` (or ` audio`) while a task whose kind is known is still at work, where the
    product's name does not say it; videos, and tasks whose kind is not known yet, say nothing."""
    if item.media not in ("image", "audio") or item.media in product_label(item.product).lower():
        return ""
    return " an image" if item.media == "image" else " audio"


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
    """A success: its files shown as what they are (or its text); a success with neither says
    so and is no failure."""
    label = product_label(item.product)
    kind = item.kind
    count = len(item.result_urls)
    task = short_id(item.task_id)
    if count:
        title = f"✅ {_named(item, kind)} ready"
        text = (
            f"✅ {_named(item, kind, about=True)} ready for task {task} ({_counted(kind, count)})"
        )
    elif item.result_text:
        title = f"✅ {label} text ready"
        text = f"✅ {label}{_about(item)} text ready for task {task}"
    else:
        title = f"✅ {label} task done"
        text = f"✅ {label}{_about(item)} task {task} done: nothing to attach"
    blocks: list[dict[str, Any]] = [
        header(title),
        section(f"*Product:* {escape(label)}\n{_summary(item)}"),
    ]
    if not count and not item.result_text:
        blocks.append(
            section("_Done, nothing to attach: kie.ai reported success but sent no file._")
        )
    actions = task_actions(item) if isinstance(item, Task) else []
    blocks.extend(_results(item, kind, with_image=with_image).blocks(kind, actions))
    if item.code is not None and item.code != 200:
        # The task succeeded, then a later update failed (a 4K upgrade, a stale retry).
        explanation = explain_failure(item.product, item.code, item.message)
        heading, *rest = _failure_lines(item, explanation)
        blocks.append(section("\n".join([f"⚠️ A later update failed: {heading}", *rest])))
    blocks.extend(_saved_notes(item, kind, saved, finished_at, now))
    blocks.extend(_poll_note(item.source))
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
    return _running(item, with_image=with_image, saved=saved)


def duration(seconds: float) -> str:
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
    running = duration(task.polled_at - task.created_at)
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
    `saved` (by URL) says what became of each result file saved into this channel's thread.
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
