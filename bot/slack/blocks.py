"""Block Kit building blocks: Slack's limits, text escaping, and one function per kind of block.

Text from outside (prompts, provider messages, task ids, URLs) goes through `escape` or
`escaped` so it cannot mention anyone or forge a link; every builder keeps Slack's limits
(slack-platform.md section 5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

from bot.kie.products import PRODUCTS

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
IMAGE_TITLE_MAX = 2000
#: A result that is text is shown on its card up to this many characters; a longer one is cut
#: there, and the whole text is posted into the task's thread.
TEXT_ON_CARD = 2900


@dataclass(frozen=True, slots=True)
class Message:
    """A Slack message: `text` is the one-line notification fallback, `blocks` the Block Kit."""

    text: str
    blocks: list[dict[str, Any]]


# --- text helpers -----------------------------------------------------------------------------


def escape(value: str) -> str:
    """Escape `&`, `<`, `>` so outside text cannot form a mention, a link or a date."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(value: str, limit: int) -> str:
    """`value` cut to at most `limit` characters, ending in an ellipsis when cut."""
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def escaped(value: str, limit: int) -> str:
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


def one_line(value: str) -> str:
    """`value` with every run of whitespace (newlines too) made one space."""
    return " ".join(value.split())


def code(value: str) -> str:
    """An inline code span for outside text such as a task id."""
    return "`" + escaped(one_line(value).replace("`", "'"), TASK_ID_MAX) + "`"


def quote(value: str) -> str:
    """A mrkdwn block quote of outside text, every line quoted."""
    quoted: list[str] = []
    room = MESSAGE_MAX
    for line in value.strip().splitlines() or [""]:
        fits = len(escape(line)) <= room - 3
        piece = "> " + escaped(line, max(room - 3, 1))
        quoted.append(piece)
        if not fits:
            break
        room -= len(piece) + 1
    return "\n".join(quoted)


def is_web_url(url: str) -> bool:
    """True for an http(s) URL Slack accepts in a button or an image block."""
    return url.startswith(("https://", "http://")) and len(url) <= URL_MAX and " " not in url


def utc(epoch: float) -> str:
    """`epoch` as a UTC date, like "2026-12-09 14:03 UTC"."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def slack_date(epoch: float) -> str:
    """A Slack date token shown in the reader's time zone, with a UTC fallback."""
    return f"<!date^{int(epoch)}^{{date_short_pretty}} {{time}}|{utc(epoch)}>"


# --- block helpers ----------------------------------------------------------------------------


def header(value: str) -> dict[str, Any]:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(value, HEADER_MAX), "emoji": True},
    }


def section(mrkdwn: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(mrkdwn, SECTION_MAX)}}


def context(mrkdwn: str) -> dict[str, Any]:
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": truncate(mrkdwn, CONTEXT_MAX)}],
    }


def link_button(text: str, url: str, action_id: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": truncate(text, BUTTON_TEXT_MAX)},
        "url": url,
        "action_id": action_id,
    }


def image(url: str, alt_text: str, title: str = "") -> dict[str, Any]:
    """An image block; `title` (plain text, optional) is shown above the image."""
    block: dict[str, Any] = {
        "type": "image",
        "image_url": url,
        "alt_text": truncate(alt_text, ALT_TEXT_MAX),
    }
    if title:
        block["title"] = {"type": "plain_text", "text": truncate(title, IMAGE_TITLE_MAX)}
    return block


def sections(lines: list[str]) -> list[dict[str, Any]]:
    """`lines` packed into as few sections as the section text limit allows."""
    blocks: list[dict[str, Any]] = []
    chunk = ""
    for line in lines:
        line = truncate(line, SECTION_MAX)
        if chunk and len(chunk) + 1 + len(line) > SECTION_MAX:
            blocks.append(section(chunk))
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else line
    if chunk:
        blocks.append(section(chunk))
    return blocks


def text_sections(value: str, limit: int) -> list[dict[str, Any]]:
    """Outside text, its first `limit` characters escaped (ending in an ellipsis when cut), in
    as many sections as the escaping needs; no entity is cut in half."""
    cut = len(value) > limit
    blocks: list[dict[str, Any]] = []
    chunk: list[str] = []
    size = 0
    for char in value[: limit - 1] if cut else value:
        piece = escape(char)
        if size + len(piece) > SECTION_MAX - 1:
            blocks.append(section("".join(chunk)))
            chunk, size = [], 0
        chunk.append(piece)
        size += len(piece)
    if cut:
        chunk.append("…")
    if chunk:
        blocks.append(section("".join(chunk)))
    return blocks


def text_pieces(text: str, limit: int = SECTION_MAX) -> list[str]:
    """`text` in pieces that each fit one message section once escaped (at most `limit`
    characters), cut at a line break or a space near the end when there is one."""
    parts: list[str] = []
    rest = text.strip()
    while rest:
        cut, size = len(rest), 0
        for n, char in enumerate(rest):
            size += len(escape(char))
            if size > limit:
                cut = n
                break
        if cut < len(rest):
            space = max(rest.rfind("\n", 0, cut), rest.rfind(" ", 0, cut))
            cut = space if space > cut // 2 else cut
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].strip()
    return parts


def capped(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`blocks` within Slack's 50-block limit, saying so when some were left out."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    left = len(blocks) - (MAX_BLOCKS - 1)
    return [*blocks[: MAX_BLOCKS - 1], context(f"_{left} more blocks not shown._")]


def fallback(value: str) -> str:
    """The notification text: one line, escaped, under 300 characters."""
    return escaped(one_line(value), TEXT_MAX)


#: What Slack user and conversation ids look like.
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,30}")
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,30}")


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def action_button(text: str, action_id: str, value: str) -> dict[str, Any]:
    return {"type": "button", "text": plain(text), "action_id": action_id, "value": value}


def slack_time(epoch: float) -> str:
    """A Slack time token (like "12:03") in the reader's time zone, with a UTC fallback."""
    fallback = datetime.fromtimestamp(epoch, UTC).strftime("%H:%M UTC")
    return f"<!date^{int(epoch)}^{{time}}|{fallback}>"


def mention(user_id: str) -> str:
    """A mention of a Slack user, or the id as code when it is no user id."""
    return f"<@{user_id}>" if _USER_ID.fullmatch(user_id) else code(user_id)


def channel_link(channel_id: str) -> str:
    """A link to a Slack channel, or the id as code when it is no channel id."""
    return f"<#{channel_id}>" if _CHANNEL_ID.fullmatch(channel_id) else code(channel_id)


def is_channel_id(value: Any) -> TypeGuard[str]:
    """True for a Slack conversation id (`C…`, `G…`, `D…`)."""
    return isinstance(value, str) and bool(_CHANNEL_ID.fullmatch(value))


def is_user_id(value: Any) -> TypeGuard[str]:
    """True for a Slack user id (`U…`, `W…`)."""
    return isinstance(value, str) and bool(_USER_ID.fullmatch(value))


def product_label(product: str) -> str:
    """The product's human name, or its slug when the registry does not know it."""
    found = PRODUCTS.get(product)
    return found.label if found else product


def short_id(task_id: str) -> str:
    return truncate(one_line(task_id), TASK_ID_MAX)
