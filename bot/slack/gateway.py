"""The one façade over Slack's Web API that the delivery worker uses (console mode: `console.py`)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.metrics import Metrics
from bot.slack.blocks import Message
from bot.slack.upload import UploadError, complete_upload, upload_file

log = logging.getLogger(__name__)

#: Errors that no retry can pass: fix the channel or the token, then resend by hand.
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "ekm_access_denied",
        "restricted_action",
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "invalid_arguments",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
    }
)
#: Errors Slack documents as passing: retried for as long as it takes.
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


#: The metrics' name for a whole external upload (files.getUploadURLExternal, the bytes,
#: files.completeUploadExternal).
UPLOAD_METHOD = "files.uploadExternal"

#: Outcomes counted by name in the metrics; any other error is counted as `other`.
KNOWN_OUTCOMES = PERMANENT_ERRORS | TRANSIENT_ERRORS | {"ok", "network_error", "timeout"}


def outcome(error: str) -> str:
    """`error` as a metrics label: itself when known (or an HTTP 5xx), else `other`."""
    if error in KNOWN_OUTCOMES or (error.startswith("http_5") and error[5:].isdigit()):
        return error
    return "other"


class SlackError(Exception):
    """A Slack call that did not go through.

    `error` is Slack's error name (or `http_<status>`, `network_error`, `timeout`); `detail` says
    more for the log. `permanent` errors stop retrying; `retry_after` is Slack's own wait (429);
    `image_failed` means Slack could not fetch an image of the message, which may be sent again
    without it.
    """

    def __init__(
        self,
        error: str,
        *,
        detail: str = "",
        permanent: bool = False,
        retry_after: float | None = None,
        image_failed: bool = False,
    ) -> None:
        super().__init__(f"{error}: {detail}" if detail else error)
        self.error = error
        self.detail = detail
        self.permanent = permanent
        self.retry_after = retry_after
        self.image_failed = image_failed

    @property
    def passing(self) -> bool:
        """Trouble that passes by itself: 429, HTTP 5xx, network errors, known transient errors."""
        return (
            self.retry_after is not None
            or self.error in TRANSIENT_ERRORS
            or self.error in ("network_error", "timeout")
            or self.error.startswith("http_5")
        )

    @property
    def unreachable(self) -> bool:
        """Slack as a whole is not answering (not a 429, not one message's problem)."""
        return self.passing and self.retry_after is None


class SlackGateway(Protocol):
    """Posting and updating messages; raises `SlackError`."""

    async def post(self, channel: str, message: Message, thread_ts: str | None = None) -> str:
        """Post `message` (in the thread of `thread_ts` if given); return its ts."""
        ...

    async def update(self, channel: str, ts: str, message: Message) -> None:
        """Replace the message at `ts` with `message`."""
        ...

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
        """Upload `length` bytes from `body` as a file and share it into the thread of
        `thread_ts`; return its file id. `before_complete(file_id)` runs once the bytes are
        there, before sharing is asked for. Raises `TransferError`."""
        ...

    async def share(self, channel: str, thread_ts: str, file_id: str, title: str) -> None:
        """Ask again to share the uploaded file `file_id` into the thread (an earlier answer was
        lost). Raises `TransferError`; `file_not_found` when the file is no longer waiting."""
        ...

    async def publish_home(self, user: str, view: dict[str, Any]) -> None:
        """Publish `view` as `user`'s Home tab of the bot."""
        ...

    async def open_dm(self, user: str) -> str:
        """The id of the bot's direct-message conversation with `user` (opened if need be)."""
        ...

    async def permalink(self, channel: str, ts: str) -> str:
        """A link to the message at `ts` in `channel` (into its thread for a reply)."""
        ...


class WebApiGateway:
    """Slack's Web API through one `AsyncWebClient` (retries are the worker's, not the SDK's).

    Every call is counted and timed in the metrics, by method and outcome.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        metrics: Metrics,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._client = client
        self._metrics = metrics
        #: Where a file's bytes are POSTed (Slack's upload URL); the client's own by default.
        self._session = session or client.session

    async def post(self, channel: str, message: Message, thread_ts: str | None = None) -> str:
        response = await self._call(
            "chat.postMessage",
            self._client.chat_postMessage(
                channel=channel,
                text=message.text,
                blocks=message.blocks,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
            ),
        )
        ts = response.get("ts")
        if not isinstance(ts, str) or not ts:
            raise SlackError("invalid_response", detail="chat.postMessage answered without a ts")
        return ts

    async def update(self, channel: str, ts: str, message: Message) -> None:
        await self._call(
            "chat.update",
            self._client.chat_update(
                channel=channel, ts=ts, text=message.text, blocks=message.blocks
            ),
        )

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
        if self._session is None:
            raise UploadError("network", "no HTTP session for the upload", retryable=True)
        started = time.perf_counter()
        try:
            uploaded = await upload_file(
                self._client,
                self._session,
                body,
                length=length,
                filename=filename,
                title=title,
                channel=channel,
                thread_ts=thread_ts,
                before_complete=before_complete,
            )
        except UploadError as exc:
            self._metrics.slack_call(
                UPLOAD_METHOD, outcome(exc.reason), time.perf_counter() - started
            )
            raise
        self._metrics.slack_call(UPLOAD_METHOD, "ok", time.perf_counter() - started)
        return uploaded.file_id

    async def share(self, channel: str, thread_ts: str, file_id: str, title: str) -> None:
        started = time.perf_counter()
        try:
            await complete_upload(self._client, file_id, title, channel, thread_ts)
        except UploadError as exc:
            self._metrics.slack_call(
                "files.completeUploadExternal", outcome(exc.reason), time.perf_counter() - started
            )
            raise
        self._metrics.slack_call(
            "files.completeUploadExternal", "ok", time.perf_counter() - started
        )

    async def publish_home(self, user: str, view: dict[str, Any]) -> None:
        await self._call("views.publish", self._client.views_publish(user_id=user, view=view))

    async def open_dm(self, user: str) -> str:
        response = await self._call(
            "conversations.open", self._client.conversations_open(users=user)
        )
        return _answered(response, "conversations.open", "channel", "id")

    async def permalink(self, channel: str, ts: str) -> str:
        response = await self._call(
            "chat.getPermalink", self._client.chat_getPermalink(channel=channel, message_ts=ts)
        )
        return _answered(response, "chat.getPermalink", "permalink")

    async def _call(self, method: str, call: Awaitable[AsyncSlackResponse]) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            response = await call
        except SlackApiError as exc:
            error = _classify(exc)
        except TimeoutError:
            error = SlackError("timeout", detail=f"{method} timed out")
        except (aiohttp.ClientError, OSError) as exc:
            error = SlackError("network_error", detail=f"{type(exc).__name__}: {exc}")
        else:
            self._metrics.slack_call(method, "ok", time.perf_counter() - started)
            return dict(response.data) if isinstance(response.data, dict) else {}
        self._metrics.slack_call(method, outcome(error.error), time.perf_counter() - started)
        raise error


def _answered(response: dict[str, Any], method: str, *keys: str) -> str:
    """The text at `keys` in Slack's answer to `method`; `invalid_response` when missing."""
    value: Any = response
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, str) or not value:
        raise SlackError("invalid_response", detail=f"{method} answered without {'.'.join(keys)}")
    return value


def _classify(exc: SlackApiError) -> SlackError:
    response = exc.response
    status = getattr(response, "status_code", 0) or 0
    data = response.data if isinstance(getattr(response, "data", None), dict) else {}
    said = str(data.get("error") or "")
    error = said or f"http_{status}"
    if status == 429 or error == "ratelimited":
        headers = getattr(response, "headers", {}) or {}
        retry_after = headers.get("Retry-After") or headers.get("retry-after") or "1"
        try:
            wait = min(3600.0, max(0.0, float(retry_after)))
        except ValueError:
            wait = 1.0
        return SlackError("ratelimited", retry_after=wait)
    if status >= 500:
        return SlackError(f"http_{status}", detail=said)
    if error == "invalid_blocks":
        detail = " ".join(str(m) for m in (data.get("response_metadata") or {}).get("messages", []))
        if "image" in detail.lower() or "image" in str(data.get("errors", "")).lower():
            return SlackError(error, detail=detail, image_failed=True)
    return SlackError(error, permanent=error in PERMANENT_ERRORS)
