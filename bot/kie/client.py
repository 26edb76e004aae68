"""The kie.ai API client: one aiohttp session, Bearer auth, the envelope rule, retries."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp

from bot.kie import payload
from bot.kie.payload import as_mapping, code_of, message_of, text, url_list
from bot.kie.products import MAX_TASK_ID, PayloadError, Product
from bot.kie.submit import GenerationRequest, request_body
from bot.metrics import Metrics
from bot.task import State, TaskUpdate

log = logging.getLogger(__name__)

#: Codes worth another try: rate limited, maintenance, server errors.
RETRYABLE = frozenset({429, 455, 500, 502, 503, 504})
#: Codes that mean "no such task" on the record endpoints.
NOT_FOUND = frozenset({404, 422})

DOWNLOAD_URL_PATH = "/api/v1/common/download-url"
#: kie.ai's File Upload API (kie-api README §6i): its own host, the same key.
UPLOAD_BASE = "https://kieai.redpandaai.co"
UPLOAD_PATH = "/api/file-stream-upload"
#: Where uploaded files go at kie.ai (they are deleted there after a day or three).
UPLOAD_FOLDER = "kie-slack"
HD_VIDEO_PATH = "/api/v1/veo/get-1080p-video"
FOUR_K_PATH = "/api/v1/veo/get-4k-video"


class KieError(Exception):
    """A kie.ai call that did not give an answer; `str()` is one line for a person.

    `detail` is kie.ai's own message and `body` its whole answer, when it sent one.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        code: int | None = None,
        *,
        detail: str = "",
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        # "auth", "credits", "not_found", "invalid", "unavailable", "external" (a file that
        # kie.ai did not make)
        self.kind = kind
        self.code = code
        self.detail = detail
        self.body = body


@dataclass(frozen=True, slots=True)
class Envelope:
    """kie.ai's `{"code", "msg", "data"}`; `code` is the real status, whatever the HTTP one."""

    code: int
    message: str
    data: Any
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class FourK:
    """kie.ai's answer to a 4K request: `requested` (it starts making it now), `processing`
    (it was already being made), or `ready` (already made; `update` carries the result)."""

    status: Literal["requested", "processing", "ready"]
    update: TaskUpdate | None = None


class RateLimiter:
    """At most `rate` request starts per second, in order of arrival."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            if self._next > now:
                await asyncio.sleep(self._next - now)
                now = self._next
            self._next = now + self._interval


class KieClient:
    """kie.ai's API on a shared session; every request waits its turn in the rate limiter."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: str,
        metrics: Metrics,
        *,
        rate: float = 10.0,
        attempts: int = 3,
        timeout: float = 15.0,
        backoff: float = 0.5,
        upload_url: str | None = None,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._upload_base = (upload_url or upload_base(self._base)).rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._metrics = metrics
        self._limiter = RateLimiter(rate)
        self._attempts = attempts
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._backoff = backoff

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Envelope:
        """GET `path`; retry what can pass; raise `KieError` for any answer but code 200."""
        return await self._call("GET", path, params=params)

    async def post(self, path: str, body: Mapping[str, Any]) -> Envelope:
        """POST `body` as JSON to `path`; the same rules as `get`."""
        return await self._call("POST", path, body=body)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Envelope:
        return await self._retried(lambda: self._request(method, path, params, body))

    async def _retried(self, send: Callable[[], Awaitable[Envelope]]) -> Envelope:
        """`send()` until kie.ai answers code 200, through passing trouble; `KieError` else."""
        problem = "no answer"
        for attempt in range(self._attempts):
            if attempt:
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1) * (1 + random.random()))
            await self._limiter.wait()
            try:
                envelope = await send()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                problem = f"network error: {type(exc).__name__}"
                continue
            if envelope.code == 200:
                return envelope
            if envelope.code in RETRYABLE:
                problem = f"code {envelope.code}: {envelope.message or 'no message'}"
                continue
            raise _error(envelope)
        raise KieError("unavailable", f"kie.ai is not answering ({problem})")

    async def _request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        payload: Mapping[str, Any] | None,
    ) -> Envelope:
        async with self._session.request(
            method,
            self._base + path,
            params=params,
            json=payload,
            headers=self._headers,
            timeout=self._timeout,
        ) as response:
            raw = await response.read()
            status = response.status
        return self._envelope(path, raw, status)

    def _envelope(self, path: str, raw: bytes, status: int) -> Envelope:
        """kie.ai's answer read as its envelope (one made up when it sent no JSON), counted."""
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, Mapping):
            body = {"code": status, "msg": f"HTTP {status} with no JSON envelope"}
        code = code_of(body.get("code"))
        if code is None:
            code = status if status != 200 else 500
        self._metrics.kie_request(path, code)
        return Envelope(code, message_of(body), body.get("data"), body)

    async def record(self, product: Product, task_id: str) -> TaskUpdate:
        """The task's state as kie.ai reports it, as a `TaskUpdate` from the product's poller."""
        try:
            envelope = await self.get(product.poll_path, {"taskId": task_id})
        except KieError as exc:
            if exc.kind == "not_found":
                raise KieError(
                    "not_found", f"kie.ai has no {product.slug} task {task_id}"
                ) from None
            raise
        try:
            return product.parse_poll(envelope.body, task_id)
        except PayloadError as exc:
            raise KieError(
                "not_found", f"kie.ai has no {product.slug} task {task_id} ({exc})"
            ) from None

    async def find(self, task_id: str, products: tuple[Product, ...]) -> TaskUpdate | None:
        """Ask each product's endpoint about `task_id` (at once); the first record found, or None.

        Raises the first error other than "not found" when no product knows the task.
        """
        results = await asyncio.gather(
            *(self.record(product, task_id) for product in products), return_exceptions=True
        )
        for result in results:
            if isinstance(result, TaskUpdate):
                return result
        for result in results:
            if isinstance(result, KieError) and result.kind != "not_found":
                raise result
            if isinstance(result, BaseException) and not isinstance(result, KieError):
                raise result
        return None

    async def download_url(self, url: str) -> str:
        """A temporary download link (valid 20 minutes) for a file that kie.ai made.

        Raises `KieError`; its kind is "external" when kie.ai did not make the file (422).
        """
        try:
            envelope = await self.post(DOWNLOAD_URL_PATH, {"url": url})
        except KieError as exc:
            if exc.code == 422:
                raise KieError(
                    "external",
                    f"kie.ai gives download links only for files it made (422: "
                    f"{exc.detail or 'no message'})",
                    422,
                    detail=exc.detail,
                ) from None
            raise
        link = text(envelope.data)
        if not link.startswith(("https://", "http://")):
            raise KieError(
                "unavailable", "kie.ai answered the download-link request without a link"
            )
        return link

    async def hd_video(self, task_id: str, index: int = 0) -> TaskUpdate | None:
        """The 1080p version of a Veo video as news about the task, or None while kie.ai is
        still making it (for a minute or two it answers "processing" with a non-200 code)."""
        try:
            envelope = await self.get(HD_VIDEO_PATH, {"taskId": task_id, "index": str(index)})
        except KieError as exc:
            if "processing" in exc.detail.lower():
                return None
            raise
        url = text(as_mapping(envelope.data).get("resultUrl"))
        if not url:
            return None
        return TaskUpdate(
            product="veo",
            task_id=task_id,
            state=State.SUCCEEDED,
            result_urls=(url,),
            code=200,
            message=envelope.message,
            source="request",
            raw=envelope.body,
        )

    async def request_4k(self, task_id: str, callback_url: str, index: int = 0) -> FourK:
        """Ask kie.ai to make the 4K version of a Veo video; the result comes to `callback_url`.

        kie.ai answers a repeated request with 422: "processing", or the finished version.
        """
        body = {"taskId": task_id, "index": index, "callBackUrl": callback_url}
        try:
            await self.post(FOUR_K_PATH, body)
        except KieError as exc:
            if exc.code != 422:
                raise
            data = as_mapping((exc.body or {}).get("data"))
            videos = url_list(data.get("resultUrls") or data.get("result_urls"))
            if videos:
                images = url_list(data.get("imageUrls") or data.get("image_urls"))
                update = TaskUpdate(
                    product="veo-4k",
                    task_id=task_id,
                    state=State.SUCCEEDED,
                    result_urls=videos,
                    image_urls=images,
                    code=200,
                    message=exc.detail,
                    source="request",
                    raw=exc.body,
                )
                return FourK("ready", update)
            if "processing" in exc.detail.lower():
                return FourK("processing")
            raise
        return FourK("requested")

    async def submit(self, request: GenerationRequest, callback_url: str) -> str:
        """Start `request` at kie.ai with `callback_url` as its `callBackUrl`; its task id.

        One POST, never retried: a lost answer must not start a second paid video. A refusal
        raises `KieError` whose text says what to fix (credits, parameters, the key, waiting).
        """
        path, body = request_body(request, callback_url)
        await self._limiter.wait()
        try:
            envelope = await self._request("POST", path, None, body)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise KieError(
                "unavailable",
                f"kie.ai did not answer ({type(exc).__name__}), so it may or may not have "
                "started it; if it did, the result still comes to this channel",
            ) from None
        if envelope.code != 200:
            raise _refusal(envelope)
        task_id = payload.first_text(payload.as_mapping(envelope.data), "taskId", "task_id")
        if not task_id or len(task_id) > MAX_TASK_ID or not task_id.isprintable():
            raise KieError("unavailable", "kie.ai accepted the request but named no task id")
        return task_id

    async def upload_file(self, data: bytes, name: str, mimetype: str) -> str:
        """Upload a file to kie.ai's File Upload API; the link (`downloadUrl`) a generation
        takes as its input. Passing trouble is tried again, like `get`; the file gets a name of
        its own (kie.ai overwrites a file uploaded under a name used before)."""
        stored_as = f"{uuid.uuid4().hex}{_extension(name)}"

        def form() -> aiohttp.FormData:  # a form is sent once: each try builds its own
            fields = aiohttp.FormData()
            fields.add_field("file", data, filename=name, content_type=mimetype)
            fields.add_field("uploadPath", UPLOAD_FOLDER)
            fields.add_field("fileName", stored_as)
            return fields

        envelope = await self._retried(lambda: self._send_form(UPLOAD_PATH, form()))
        link = text(as_mapping(envelope.data).get("downloadUrl"))
        if not link.startswith(("https://", "http://")):
            raise KieError("unavailable", "kie.ai took the file but gave no link to it")
        return link

    async def _send_form(self, path: str, form: aiohttp.FormData) -> Envelope:
        async with self._session.post(
            self._upload_base + path,
            data=form,
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=120),
        ) as response:
            raw = await response.read()
            status = response.status
        return self._envelope(path, raw, status)

    async def credits(self) -> float:
        """The account's remaining credits."""
        envelope = await self.get("/api/v1/chat/credit")
        if isinstance(envelope.data, bool) or not isinstance(envelope.data, int | float):
            raise KieError("unavailable", "kie.ai answered the credit query without a number")
        return float(envelope.data)


def upload_base(api_url: str) -> str:
    """Where files are uploaded: kie.ai's upload host when `api_url` is kie.ai's own API, else
    `api_url` itself (a stand-in for kie.ai, such as the tests' fake, serves both)."""
    host = urlsplit(api_url).hostname or ""
    return UPLOAD_BASE if host == "kie.ai" or host.endswith(".kie.ai") else api_url


def _extension(name: str) -> str:
    """A file name's extension (".png"), when it is a short plain one; else none."""
    suffix = PurePosixPath(name).suffix.lower()
    return suffix if suffix[1:].isalnum() and len(suffix) <= 6 else ""


def _refusal(envelope: Envelope) -> KieError:
    """kie.ai's refusal to start a generation, worded for the person who asked."""
    code = envelope.code
    said = " ".join(envelope.message.split())[:300] or "no message"
    if code == 401:
        return KieError(
            "auth",
            f"kie.ai refused the bot's API key ({code}: {said}); whoever runs the bot should "
            "check KIE_API_KEY",
            code,
        )
    if code == 402:
        return KieError(
            "credits",
            f"the kie.ai account is out of credits ({code}: {said}); top it up at "
            "https://kie.ai/billing, then try again",
            code,
        )
    if code in (400, 422):
        return KieError(
            "invalid",
            f"kie.ai refused the request's parameters ({code}: {said}); change what it names "
            "and try again",
            code,
        )
    if code == 429:
        return KieError(
            "unavailable",
            f"kie.ai is limiting how fast new videos start ({code}: {said}); try again in a minute",
            code,
        )
    if code == 455 or code >= 500:
        return KieError(
            "unavailable",
            f"kie.ai is unavailable right now ({code}: {said}); try again later",
            code,
        )
    return KieError("invalid", f"kie.ai refused the request ({code}: {said})", code)


def _error(envelope: Envelope) -> KieError:
    code, message = envelope.code, envelope.message or "no message"
    if code == 401:
        kind, said = "auth", f"kie.ai refused the API key (401: {message}); check KIE_API_KEY"
    elif code == 402:
        kind, said = "credits", f"the kie.ai account is out of credits (402: {message})"
    elif code in NOT_FOUND:
        kind, said = "not_found", f"kie.ai: {code} {message}"
    else:
        kind, said = "invalid", f"kie.ai answered {code}: {message}"
    return KieError(kind, said, code, detail=envelope.message, body=envelope.body)
