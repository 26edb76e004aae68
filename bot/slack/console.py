"""Console mode: with no Slack token, every message is printed as plain text for a person."""

from __future__ import annotations

import itertools
import re
import sys
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any, TextIO

from bot.kie.media import Media, media_of_url
from bot.slack.blocks import Message, one_line

# --- console ----------------------------------------------------------------------------------

_DATE = re.compile(r"<!date\^[^|>]*\|([^>]*)>")
_LINK = re.compile(r"<([^|>]+)\|([^>]*)>")
_BARE = re.compile(r"<([^|>]+)>")
_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")


def _plain(mrkdwn: str) -> str:
    """mrkdwn made readable as plain text: dates, links and bold resolved, entities unescaped."""
    value = _DATE.sub(r"\1", mrkdwn)
    value = _LINK.sub(r"\2 (\1)", value)
    value = _BARE.sub(r"\1", value)
    value = _BOLD.sub(r"\1", value)
    return value.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _text_of(obj: Any) -> str:
    """The text of a text object (plain_text or mrkdwn), as plain text."""
    if not isinstance(obj, dict):
        return ""
    value = str(obj.get("text", ""))
    return _plain(value) if obj.get("type") == "mrkdwn" else value


def _image_line(image: dict[str, Any]) -> str:
    """An image as `[image: its alt text] its URL`."""
    alt = one_line(str(image.get("alt_text") or ""))
    url = image.get("image_url", "")
    return f"[image: {alt}] {url}" if alt else f"[image] {url}"


def _console_lines(block: dict[str, Any]) -> list[str]:
    kind = block.get("type")
    if kind == "header":
        title = _text_of(block.get("text"))
        return [title, "─" * min(len(title), 60)]
    if kind == "section":
        lines = _text_of(block.get("text")).splitlines()
        for field in block.get("fields") or []:
            lines.extend(_text_of(field).splitlines())
        return lines
    if kind == "actions":
        return [
            f"[{_text_of(element.get('text'))}] {element.get('url', '')}".rstrip()
            for element in block.get("elements", [])
        ]
    if kind == "image":
        return [_image_line(block)]
    if kind == "context":
        return [
            "· " + (_image_line(e) if e.get("type") == "image" else _text_of(e))
            for e in block.get("elements", [])
        ]
    if kind == "divider":
        return ["─" * 40]
    return [f"[{kind} block]"]


def render_console(
    channel: str, message: Message, thread_ts: str | None = None, update_ts: str | None = None
) -> str:
    """`message` as readable plain text for console mode (no Slack token), one line per item."""
    if update_ts:
        where = f"(update of {update_ts})"
    elif thread_ts:
        where = f"(reply in thread {thread_ts})"
    else:
        where = "(new message)"
    target = channel if channel.startswith(("#", "@")) else f"#{channel}"
    return _rendered(f"── {target} {where}", message.blocks, message.text)


def render_home(user: str, view: dict[str, Any]) -> str:
    """A Home tab as readable plain text for console mode."""
    return _rendered(f"── Home tab of @{user} (published)", view.get("blocks") or [], "")


def _rendered(title: str, blocks: list[dict[str, Any]], text: str) -> str:
    lines = [title]
    body = [line for block in blocks for line in _console_lines(block)]
    if not body:
        body = [_plain(text)]
    lines.extend(f"   {line}" if line else "" for line in body)
    return "\n".join(lines)


def file_size(size: int) -> str:
    """A file size as Slack shows it, in decimal units: `12.3 MB`, `850 kB`."""
    if size >= 1_000_000_000:
        return f"{size / 1_000_000_000:.1f} GB"
    if size >= 1_000_000:
        return f"{size / 1_000_000:.1f} MB"
    return f"{max(1, round(size / 1000))} kB"


#: What a file shared into a thread is, as the console says it, by its kind.
_FILE_KINDS: dict[Media | None, str] = {
    "video": "a video that plays in Slack",
    "image": "an image Slack shows",
    "audio": "a track that plays in Slack",
}


def render_file(
    channel: str, thread_ts: str, title: str, filename: str, size: int | None = None
) -> str:
    """A file shared into a thread, as a person sees it in Slack: its title, size, name and
    kind (by the name's extension)."""
    target = channel if channel.startswith("#") else f"#{channel}"
    sized = f" ({file_size(size)})" if size is not None else ""
    return "\n".join(
        [
            f"── {target} (file in thread {thread_ts})",
            f"   📎 {title}{sized}",
            f"   {filename} · {_FILE_KINDS.get(media_of_url(filename), 'a file')}",
        ]
    )


class ConsoleGateway:
    """Console mode: every message is printed for a person to read; a video is downloaded as in
    Slack mode (every check applies) and printed as the file the thread would show."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out
        self._counter = itertools.count(1)

    async def post(self, channel: str, message: Message, thread_ts: str | None = None) -> str:
        ts = f"{int(time.time())}.{next(self._counter):06d}"
        self._print(render_console(channel, message, thread_ts=thread_ts))
        return ts

    async def update(self, channel: str, ts: str, message: Message) -> None:
        self._print(render_console(channel, message, update_ts=ts))

    async def upload(
        self,
        channel: str,
        thread_ts: str,
        body: AsyncIterable[bytes],
        *,
        length: int,
        filename: str,
        title: str,
        before_complete: Callable[[str], Awaitable[None]],
    ) -> str:
        received = 0
        async for chunk in body:  # read to the end, as Slack would, and let go
            received += len(chunk)
        file_id = f"FCONSOLE{next(self._counter):06d}"
        await before_complete(file_id)
        self._print(render_file(channel, thread_ts, title, filename, received))
        return file_id

    async def share(self, channel: str, thread_ts: str, file_id: str, title: str) -> None:
        self._print(render_file(channel, thread_ts, title, file_id))

    async def publish_home(self, user: str, view: dict[str, Any]) -> None:
        self._print(render_home(user, view))

    async def open_dm(self, user: str) -> str:
        return f"@{user}"  # printed as a direct message to the person

    async def permalink(self, channel: str, ts: str) -> str:
        return f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}"

    def _print(self, text: str) -> None:
        out = self._out or sys.stdout
        out.write(text.rstrip("\n") + "\n\n")
        out.flush()
