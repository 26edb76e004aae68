"""Slack's external upload, streamed: files.getUploadURLExternal, the bytes, files.completeUploadExternal.

Unlike the SDK's `files_upload_v2`, which reads the whole file into memory, the bytes go from an
async iterable straight to the upload URL, so a result file never sits in memory whole.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from yarl import URL

from bot.kie.media import Media, media_of_url, track_length
from bot.video.errors import TransferError

#: Slack's `ok: false` errors that pass by themselves.
_TRANSIENT = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})
#: What conversations.join answers for a channel the bot cannot join by itself.
_CANNOT_JOIN = frozenset(
    {"method_not_supported_for_channel_type", "channel_not_found", "is_private"}
)

_EXPLANATIONS = {
    "missing_scope": "The app lacks the Slack scope {needed}: add it under OAuth & Permissions and reinstall the app.",
    "not_in_channel": "The bot is not a member of this private channel: invite it (`/invite @kie`) and retry.",
    "channel_not_found": "Slack does not know this channel, or the bot cannot see it.",
    "is_archived": "The channel is archived.",
    "storage_limit_reached": "The workspace's file storage is full.",
    "file_uploads_disabled": "File uploads are turned off in this workspace.",
    "file_uploads_except_images_disabled": "This workspace only accepts image uploads.",
    "file_upload_size_restricted": "The workspace's admins limit the size of uploads.",
    "restricted_action": "The workspace's admins do not let the app upload files here.",
    "invalid_auth": "Slack refused the bot token.",
    "token_revoked": "The bot token has been revoked.",
    "ratelimited": "Slack asked the bot to slow down; it tries again.",
    "network": "Slack could not be reached; the bot tries again.",
}


class UploadError(TransferError):
    """An upload Slack refused or that did not get through; `reason` is Slack's error code,
    `http_<status>` or `network`."""

    def __init__(
        self,
        reason: str,
        detail: str = "",
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        needed: str | None = None,
    ) -> None:
        super().__init__(
            reason,
            detail,
            retryable=retryable,
            retry_after=retry_after,
            explanation=_explain(reason, needed),
        )
        self.needed = needed


def _explain(reason: str, needed: str | None) -> str:
    if reason == "missing_scope":
        return _EXPLANATIONS[reason].format(needed=needed or "files:write")
    if reason in _EXPLANATIONS:
        return _EXPLANATIONS[reason]
    if reason.startswith("http_"):
        return f"Slack answered HTTP {reason[5:]} to the upload."
    return f"Slack refused the upload ({reason})."


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file shared into a channel (and thread)."""

    file_id: str
    title: str
    channel: str
    thread_ts: str | None
    size: int


async def upload_file(
    client: AsyncWebClient,
    session: aiohttp.ClientSession,
    body: AsyncIterable[bytes],
    *,
    length: int,
    filename: str,
    title: str,
    channel: str,
    thread_ts: str | None = None,
    join: bool = True,
    before_complete: Callable[[str], Awaitable[None]] | None = None,
) -> UploadedFile:
    """Upload exactly `length` bytes from `body` and share the file into `channel`/`thread_ts`.

    The bytes are POSTed to Slack's upload URL with `session` as they come. When sharing
    answers `not_in_channel` and `join` is true, the bot joins the (public) channel and shares
    once more. `before_complete(file_id)` runs once the bytes are at Slack, just before sharing
    is asked for: the moment from which the file may show in the thread. Raises `UploadError`;
    an error raised by `body` itself is raised unchanged.
    """
    if length <= 0:
        raise ValueError("Slack needs the length of a non-empty file")
    ticket = await _call(client.files_getUploadURLExternal(filename=filename, length=length))
    upload_url, file_id = ticket.get("upload_url"), ticket.get("file_id")
    if (
        not isinstance(upload_url, str)
        or not upload_url.startswith(("https://", "http://"))
        or not isinstance(file_id, str)
        or not file_id
    ):
        raise UploadError("bad_answer", "files.getUploadURLExternal gave no upload_url or file_id")
    await _send(session, upload_url, body, length)
    if before_complete is not None:
        await before_complete(file_id)
    await complete_upload(client, file_id, title, channel, thread_ts, join=join)
    return UploadedFile(file_id, title, channel, thread_ts, length)


async def complete_upload(
    client: AsyncWebClient,
    file_id: str,
    title: str,
    channel: str,
    thread_ts: str | None,
    *,
    join: bool = True,
) -> None:
    """Share the uploaded file `file_id` into `channel`/`thread_ts` (files.completeUploadExternal).

    Also for asking again when an earlier answer was lost: Slack shares a file once, and answers
    `file_not_found` for a file that is no longer waiting to be shared. `not_in_channel` with
    `join` joins the (public) channel and asks once more. Raises `UploadError`.
    """
    try:
        await _complete(client, file_id, title, channel, thread_ts)
    except UploadError as exc:
        if exc.reason != "not_in_channel" or not join:
            raise
        await join_channel(client, channel)
        await _complete(client, file_id, title, channel, thread_ts)


async def join_channel(client: AsyncWebClient, channel: str) -> None:
    """Join a public channel (`conversations.join`, scope channels:join).

    A private channel cannot be joined this way: that raises `UploadError("not_in_channel")`,
    whose explanation asks for an invitation.
    """
    try:
        await _call(client.conversations_join(channel=channel))
    except UploadError as exc:
        if exc.reason in _CANNOT_JOIN:
            raise UploadError(
                "not_in_channel", f"conversations.join answered {exc.reason}"
            ) from None
        raise


async def _complete(
    client: AsyncWebClient, file_id: str, title: str, channel: str, thread_ts: str | None
) -> None:
    await _call(
        client.files_completeUploadExternal(
            files=[{"id": file_id, "title": title}], channel_id=channel, thread_ts=thread_ts
        )
    )


async def _send(
    session: aiohttp.ClientSession, url: str, body: AsyncIterable[bytes], length: int
) -> None:
    """POST `length` bytes from `body` to `url` as a raw body with a Content-Length."""
    failures: list[BaseException] = []

    async def feed() -> AsyncIterator[bytes]:
        sent = 0
        try:
            async for chunk in body:
                sent += len(chunk)
                if sent > length:
                    raise UploadError("length_mismatch", f"more than the {length} bytes announced")
                yield chunk
            if sent != length:
                raise UploadError("length_mismatch", f"{sent} bytes, not the {length} announced")
        except Exception as exc:
            failures.append(exc)
            raise

    # No total limit for a large file; a stalled connection still fails.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
    headers = {"Content-Length": str(length), "Content-Type": "application/octet-stream"}
    try:
        async with session.post(
            URL(url, encoded=True),
            data=feed(),
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
        ) as response:
            status = response.status
            answer = (await response.content.read(1024)).decode(errors="replace")
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        if failures:
            raise failures[0] from None
        raise UploadError("network", f"{type(exc).__name__}: {exc}", retryable=True) from None
    if failures:
        raise failures[0]
    if status != 200:
        retryable = status in (408, 429) or status >= 500
        raise UploadError(f"http_{status}", f"upload URL answered {answer!r}", retryable=retryable)


async def _call(call: Awaitable[AsyncSlackResponse]) -> dict[str, Any]:
    try:
        response = await call
    except SlackApiError as exc:
        raise _classify(exc) from None
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise UploadError("network", f"{type(exc).__name__}: {exc}", retryable=True) from None
    return dict(response.data) if isinstance(response.data, dict) else {}


def _classify(exc: SlackApiError) -> UploadError:
    response = exc.response
    status = getattr(response, "status_code", 0) or 0
    data = response.data if isinstance(getattr(response, "data", None), dict) else {}
    error = str(data.get("error") or f"http_{status}")
    if status == 429 or error == "ratelimited":
        headers = getattr(response, "headers", None) or {}
        raw = headers.get("Retry-After") or headers.get("retry-after") or "1"
        try:
            wait = max(0.0, float(raw))
        except ValueError:
            wait = 1.0
        return UploadError(
            "ratelimited", f"retry after {wait:g} s", retryable=True, retry_after=wait
        )
    if status >= 500 or error in _TRANSIENT:
        return UploadError(error, f"HTTP {status}", retryable=True)
    needed = data.get("needed")
    return UploadError(error, f"HTTP {status}", needed=needed if isinstance(needed, str) else None)


def file_title(product: str, prompt: str | None, limit: int = 80) -> str:
    """`Veo 3.1 · A cat surfs a wave at…`: the product label and the prompt's start, one line."""
    label = " ".join(product.split()) or "kie.ai"
    text = _one_line(prompt or "")
    if not text:
        return label[:limit]
    room = limit - len(label) - 3
    if room < 10:
        return label[:limit]
    if len(text) > room:
        cut = text[: room - 1]
        space = cut.rfind(" ")
        text = (cut[:space] if space > room // 2 else cut).rstrip(" ,.;:-") + "…"
    return f"{label} · {text}"


def track_title(title: str, duration: float | None, limit: int = 80) -> str:
    """`Iron Man (3:18)`: a song's title and, when known, its length; "" for no title."""
    name = _one_line(title)
    length = f" ({track_length(duration)})" if duration else ""
    if len(name) + len(length) > limit:
        name = name[: max(limit - len(length) - 1, 1)].rstrip() + "…"
    return f"{name}{length}" if name else ""


#: The extension of a saved file whose URL names none of its kind.
_USUAL_EXTENSIONS: dict[Media, str] = {"video": "mp4", "image": "png", "audio": "mp3"}


def file_name(task_id: str, index: int = 0, url: str | None = None, kind: Media = "video") -> str:
    """`kie-<task id>-<n>.<ext>`: a safe file name whose extension is the URL's when that names a
    file of `kind` (`.jpg` for a JPEG image), else the kind's usual one (mp4, png, mp3)."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", task_id).strip("-")[:64] or "file"
    extension = _USUAL_EXTENSIONS[kind]
    try:
        name = URL(url or "").path.rsplit("/", 1)[-1]
    except ValueError:
        name = ""
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix.isalnum() and media_of_url(f"/file.{suffix}") == kind:
        extension = suffix
    return f"kie-{safe}-{index + 1}.{extension}"


def _one_line(text: str) -> str:
    return " ".join(_printable(text).split())


def _printable(text: str) -> str:
    return "".join(c if unicodedata.category(c)[0] != "C" else " " for c in text)
