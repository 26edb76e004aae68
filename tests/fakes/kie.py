"""A fake kie.ai API: programmable answer sequences per endpoint and task id."""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
import time
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import aiohttp
from aiohttp import web

from bot.kie.media import media_of_model
from bot.kie.signature import signed_headers
from tests.fakes.server import LocalServer

#: kie.ai's endpoints that start a generation, and the product whose callbacks they send.
GENERATE = {
    "/api/v1/veo/generate": "veo",
    "/api/v1/veo/extend": "veo",
    "/api/v1/runway/generate": "runway",
    "/api/v1/jobs/createTask": "market",
    "/api/v1/mj/generateUpscale": "mj",
    "/api/v1/mj/generateVary": "mj",
}
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

Answer = tuple[int, Any]  # HTTP status, JSON body

RECORD_NULL: Answer = (200, {"code": 422, "msg": "record is null", "data": None})

#: kie.ai's download-link, 1080p and 4K endpoints.
DOWNLOAD_URL = "/api/v1/common/download-url"
GET_1080P = "/api/v1/veo/get-1080p-video"
FOUR_K = "/api/v1/veo/get-4k-video"
#: The Market (jobs API) poll endpoint.
MARKET_RECORD = "/api/v1/jobs/recordInfo"
#: Market recordInfo answers by state: the repository's copies of kie.ai's examples.
MARKET_RECORDS = Path(__file__).resolve().parent.parent / "fixtures" / "market"


class FakeKie(LocalServer):
    """kie.ai at `url`: each (path, taskId) answers its script in order, the last one repeating."""

    def __init__(self, api_key: str = "kie-test-key", tls: ssl.SSLContext | None = None) -> None:
        app = web.Application()
        app.router.add_get("/api/v1/{rest:.*}", self._get)
        app.router.add_post("/api/v1/{rest:.*}", self._post)
        app.router.add_get("/files/{name}", self._file)
        app.router.add_post("/api/file-stream-upload", self._upload)
        super().__init__(app)
        #: With `tls`, the same app also answers https on `tls_port`.
        self._tls = tls
        self.tls_port = 0
        #: Result files by name (`serve_file`), redirects by name (`redirect`), names asked for.
        self.files: dict[str, FakeFile] = {}
        self.redirects: dict[str, tuple[int, str]] = {}
        self.file_requests: list[str] = []
        self.api_key = api_key
        self.requests: list[tuple[str, dict[str, str]]] = []
        #: Every POST: its path and JSON body.
        self.posts: list[tuple[str, Any]] = []
        self.scripts: dict[tuple[str, str], list[Answer]] = defaultdict(list)
        #: Generations started (`GENERATE` endpoints), in order; refusals to answer instead,
        #: each used once; the task ids to give out next (else made up).
        self.started: list[StartedTask] = []
        self.refusals: dict[str, list[Answer]] = defaultdict(list)
        self.next_ids: list[str] = []
        self.credits: Answer = (200, {"code": 200, "msg": "success", "data": 100})
        #: Files uploaded to the File Upload API (kie-api README §6i), in order.
        self.uploads: list[Uploaded] = []
        self.default: Answer = RECORD_NULL

    def script(self, path: str, task_id: str, *answers: Answer) -> None:
        """Answer `path?taskId=task_id` with `answers` in turn, repeating the last.

        A POST is scripted by its body's `taskId`, or its `url` (the download-link endpoint).
        """
        self.scripts[(path, task_id)].extend(answers)

    def script_market(self, task_id: str, *states: str) -> None:
        """Answer `GET /api/v1/jobs/recordInfo?taskId=task_id` with Market records in `states`
        ("generating", "success" or "fail"), in turn, repeating the last."""
        self.script(MARKET_RECORD, task_id, *(market_record(task_id, state) for state in states))

    def polls(self, task_id: str) -> int:
        return sum(1 for _, query in self.requests if query.get("taskId") == task_id)

    async def start(self, port: int = 0) -> Self:
        await super().start(port)
        if self._tls is not None:
            assert self._runner is not None
            site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._tls)
            await site.start()
            self.tls_port = self._runner.addresses[-1][1]
        return self

    def serve_file(self, name: str, file: FakeFile) -> str:
        """Serve `file` at `/files/{name}`; returns its http URL."""
        self.files[name] = file
        return f"{self.url}/files/{name}"

    def redirect(self, name: str, to: str, status: int = 302) -> str:
        """Answer `/files/{name}` with a redirect to `to`; returns its http URL."""
        self.redirects[name] = (status, to)
        return f"{self.url}/files/{name}"

    async def _file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.file_requests.append(name)
        if name in self.redirects:
            status, to = self.redirects[name]
            return web.Response(status=status, headers={"Location": to})
        file = self.files.get(name)
        if file is None:
            return web.Response(status=404, text="Not Found", content_type="text/plain")
        if file.status != 200:
            return web.Response(status=file.status, text=file.body, content_type="text/plain")
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        chunks: Iterator[bytes] = pattern_chunks(file.size)
        if file.gzip:
            # Small on the wire whatever `size` is: the pattern compresses a thousandfold.
            compressed = list(_gzip(chunks))
            chunks = iter(compressed)
            response.headers["Content-Encoding"] = "gzip"
            wire = sum(len(c) for c in compressed)
        else:
            wire = file.size if file.declared is None else file.declared
        if file.length_header:
            response.content_length = wire
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        for number, chunk in enumerate(chunks):
            await response.write(chunk)
            if number == 0 and file.gate is not None and not file.gate.is_set():
                file.paused.set()
                await file.gate.wait()
        if file.length_header and not file.gzip and wire > file.size:
            assert request.transport is not None
            request.transport.close()  # the rest of the promised body never comes
            raise ConnectionResetError("cut short by the fake")
        await response.write_eof()
        return response

    async def _upload(self, request: web.Request) -> web.Response:
        """kie.ai's File Upload API: a multipart `file`, `uploadPath` and `fileName`; answers
        with the file's `downloadUrl`, as kie.ai's endpoint page shows."""
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _json(401, {"success": False, "code": 401, "msg": "Unauthorized"})
        form = await request.post()
        file = form.get("file")
        if not isinstance(file, web.FileField):
            return _json(400, {"success": False, "code": 400, "msg": "file is required"})
        name = str(form.get("fileName") or file.filename)
        uploaded = Uploaded(
            file.file.read(), file.filename, file.content_type, str(form.get("uploadPath")), name
        )
        self.uploads.append(uploaded)
        data = {
            "fileName": name,
            "downloadUrl": uploaded.download_url,
            "mimeType": file.content_type,
        }
        return _json(
            200, {"success": True, "code": 200, "msg": "File uploaded successfully", "data": data}
        )

    async def _get(self, request: web.Request) -> web.Response:
        path = request.path
        self.requests.append((path, dict(request.query)))
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _json(401, {"code": 401, "msg": "You do not have access permissions"})
        if path == "/api/v1/chat/credit":
            return _json(*self.credits)
        answers = self.scripts.get((path, request.query.get("taskId", "")))
        if not answers:
            running = self._running_record(path, request.query.get("taskId", ""))
            return _json(*(running or self.default))
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return _json(*answer)

    # --- starting generations ------------------------------------------------------------------

    def refuse(self, path: str, code: int, msg: str, status: int = 200) -> None:
        """Answer the next POST to `path` (a `GENERATE` endpoint) with kie.ai's refusal."""
        self.refusals[path].append((status, {"code": code, "msg": msg, "data": None}))

    def task(self, task_id: str) -> StartedTask:
        """The started generation with this task id."""
        return next(started for started in self.started if started.task_id == task_id)

    def _generate(self, path: str, body: dict[str, Any]) -> Answer:
        """Start a generation like kie.ai: remember the body, answer a new task id."""
        if self.refusals.get(path):
            return self.refusals[path].pop(0)
        n = len(self.started) + 1
        if self.next_ids:
            task_id = self.next_ids.pop(0)
        elif path.endswith("/extend"):
            task_id = f"veo_extend_task_fake{n:06d}"
        elif GENERATE[path] == "veo":
            task_id = f"veo_task_fake{n:06d}"
        elif GENERATE[path] == "runway":
            task_id = f"{n:08x}-0000-4000-8000-00000000f4ce"
        elif path.endswith("/generateUpscale"):
            task_id = f"mj_upscale_fake{n:06d}"
        else:
            task_id = f"{n:032x}"
        self.started.append(StartedTask(path, body, task_id))
        return 200, {"code": 200, "msg": "success", "data": {"taskId": task_id}}

    def _running_record(self, path: str, task_id: str) -> Answer | None:
        """A started task that no script answers for is still generating."""
        started = next((s for s in self.started if s.task_id == task_id), None)
        if started is None:
            return None
        name = {
            "/api/v1/veo/record-info": "poll/veo-record-info-generating.json",
            "/api/v1/runway/record-detail": "poll/runway-record-detail-generating.json",
            "/api/v1/mj/record-info": "poll/mj-record-info-generating.json",
        }.get(path)
        if path == MARKET_RECORD:
            return market_record(task_id, "generating")
        if name is None:
            return None
        body = json.loads((FIXTURES / name).read_text())
        body["data"]["taskId"] = task_id
        return 200, body

    def result_record(self, task_id: str) -> Answer:
        """The poll answer of a started task that has succeeded (see `callback_body`)."""
        started = self.task(task_id)
        video = started.video_url
        if started.product == "veo":
            body = json.loads((FIXTURES / "poll/veo-record-info-success.json").read_text())
            body["data"]["taskId"] = body["data"]["response"]["taskId"] = task_id
            body["data"]["response"]["resultUrls"] = [video]
            body["data"]["response"]["originUrls"] = []
            return 200, body
        if started.product == "runway":
            body = json.loads((FIXTURES / "poll/runway-record-detail-success.json").read_text())
            body["data"]["taskId"] = task_id
            body["data"]["videoInfo"].update(taskId=task_id, videoUrl=video)
            return 200, body
        status, body = market_record(task_id, "success")
        body["data"]["resultJson"] = json.dumps({"resultUrls": [video]})
        return status, body

    def script_result(self, task_id: str) -> None:
        """From now on, polls of the started task answer that it succeeded."""
        started = self.task(task_id)
        path = {"veo": "/api/v1/veo/record-info", "runway": "/api/v1/runway/record-detail"}
        self.scripts[(path.get(started.product, MARKET_RECORD), task_id)] = [
            self.result_record(task_id)
        ]

    async def deliver(
        self, task_id: str, outcome: str = "success", signed_with: str | None = None
    ) -> tuple[int, Any]:
        """POST the started task's callback to its `callBackUrl`, as kie.ai would when it ends;
        the bot's HTTP status and answer."""
        started = self.task(task_id)
        headers = {"Content-Type": "application/json"}
        if signed_with:
            headers |= signed_headers(signed_with, task_id, int(time.time()))
        body = started.callback_body(outcome)
        async with (
            aiohttp.ClientSession() as session,
            session.post(started.callback_url, json=body, headers=headers) as response,
        ):
            return response.status, await response.json(content_type=None)

    def posted(self, path: str) -> list[Any]:
        """The JSON bodies POSTed to `path`, in order."""
        return [body for posted, body in self.posts if posted == path]

    async def _post(self, request: web.Request) -> web.Response:
        """POSTs: scripted answers, else kie.ai's success for the download-link and 4K
        endpoints (a fresh link on another host; the 4K request accepted)."""
        path = request.path
        try:
            body = await request.json()
        except ValueError:
            body = None
        self.posts.append((path, body))
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _json(401, {"code": 401, "msg": "You do not have access permissions"})
        fields = body if isinstance(body, dict) else {}
        key = str(fields.get("taskId") or fields.get("url") or "")
        answers = self.scripts.get((path, key))
        if answers:
            return _json(*(answers.pop(0) if len(answers) > 1 else answers[0]))
        if path in GENERATE:
            return _json(*self._generate(path, fields))
        if path == DOWNLOAD_URL:
            name = key.rsplit("/", 1)[-1] or "file"
            fresh = f"https://download.example.com/{name}?token=fresh-{len(self.posts)}"
            return _json(200, {"code": 200, "msg": "success", "data": fresh})
        if path == FOUR_K:
            answer = {"code": 200, "msg": "success", "data": {"taskId": key, "resultUrls": None}}
            return _json(200, answer)
        return _json(*self.default)


@dataclass
class Uploaded:
    """A file uploaded to the fake's File Upload API."""

    data: bytes
    filename: str
    content_type: str
    upload_path: str
    file_name: str

    @property
    def download_url(self) -> str:
        return f"https://tempfile.redpandaai.co/{self.upload_path}/{self.file_name}"


@dataclass
class StartedTask:
    """A generation the fake started: the endpoint, the body the bot sent, the task id."""

    path: str
    body: Any
    task_id: str

    @property
    def product(self) -> str:
        return GENERATE[self.path]

    @property
    def callback_url(self) -> str:
        return str(self.body.get("callBackUrl") or "") if isinstance(self.body, dict) else ""

    @property
    def prompt(self) -> str:
        body = self.body if isinstance(self.body, dict) else {}
        found = body.get("prompt") or (body.get("input") or {}).get("prompt")
        return str(found or "")

    @property
    def video_url(self) -> str:
        return f"https://example.com/kie/result/{self.task_id}_0.mp4"

    @property
    def makes_images(self) -> bool:
        """Whether kie.ai makes images for this start: Midjourney's upscale and vary, or a
        Market image model."""
        model = str(self.body.get("model") or "") if isinstance(self.body, dict) else ""
        return self.product == "mj" or media_of_model(model) == "image"

    @property
    def result_urls(self) -> list[str]:
        """The files the task makes: one video or image; four images for a Vary (a grid)."""
        if not self.makes_images:
            return [self.video_url]
        count = 4 if self.path.endswith("/generateVary") else 1
        return [f"https://example.com/kie/result/{self.task_id}_{n}.png" for n in range(count)]

    def callback_body(self, outcome: str = "success") -> dict[str, Any]:
        """kie.ai's callback when the task ends: `success` with its results, or `fail`."""
        ok = outcome == "success"
        if self.product == "veo":
            name = "veo-extend-success" if self.path.endswith("/extend") else "veo-success"
            body = _fixture(f"callbacks/{name if ok else 'veo-fail-400-content-policy'}.json")
            body["data"]["taskId"] = self.task_id
            if ok:
                body["data"]["info"] = {"resultUrls": [self.video_url], "resolution": "720p"}
                body["data"].pop("promptJson", None)
            return body
        if self.product == "runway":
            body = _fixture(f"callbacks/runway-{'success' if ok else 'moderation'}.json")
            body["data"]["task_id"] = self.task_id
            if ok:
                body["data"]["video_url"] = self.video_url
                body["data"]["image_url"] = ""
            return body
        if self.product == "mj":
            body = _fixture(f"callbacks/mj-{'success' if ok else 'fail-500'}.json")
            body["data"]["taskId"] = self.task_id
            body["data"]["resultUrls"] = self.result_urls if ok else []
            return body
        body = _fixture(f"market/callback-{'success' if ok else 'fail'}.json")
        body["data"].update(
            taskId=self.task_id, model=self.body.get("model"), param=json.dumps(self.body)
        )
        if ok:
            body["data"]["resultJson"] = json.dumps({"resultUrls": self.result_urls})
        return body


def _fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


@dataclass
class FakeFile:
    """A result file: `size` bytes of `pattern_chunks`, or an error `status` with `body`.

    `length_header=False` sends no Content-Length (chunked). `declared` claims another
    Content-Length; above `size`, the connection closes after `size` bytes. `gzip` sends the
    body gzip-encoded (Content-Encoding), so Content-Length is the size on the wire only.
    With `gate`, the body stops after its first chunk until the gate is set; `paused` is set
    while it waits there.
    """

    size: int = 0
    status: int = 200
    body: str = ""
    length_header: bool = True
    declared: int | None = None
    gzip: bool = False
    gate: asyncio.Event | None = None
    paused: asyncio.Event = field(default_factory=asyncio.Event)


#: The bytes of every fake result file: this 64 KiB pattern, repeated and cut to size.
PATTERN = bytes(range(256)) * 256


def pattern_chunks(size: int) -> Iterator[bytes]:
    """`size` bytes of the repeated `PATTERN`, one chunk of at most 64 KiB at a time."""
    left = size
    while left > 0:
        chunk = PATTERN if left >= len(PATTERN) else PATTERN[:left]
        left -= len(chunk)
        yield chunk


def pattern_sha256(size: int) -> str:
    """The SHA-256 of a fake result file of `size` bytes."""
    digest = hashlib.sha256()
    for chunk in pattern_chunks(size):
        digest.update(chunk)
    return digest.hexdigest()


def _gzip(chunks: Iterator[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(wbits=31)
    for chunk in chunks:
        if out := compressor.compress(chunk):
            yield out
    yield compressor.flush()


def _json(status: int, body: Any) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def fixture_answer(path: Path) -> Answer:
    """A poll fixture file as an HTTP 200 answer."""
    return 200, json.loads(path.read_text())


def market_record(task_id: str, state: str) -> Answer:
    """A Market recordInfo answer in `state` ("generating", "success", "fail") for `task_id`."""
    status, body = fixture_answer(MARKET_RECORDS / f"record-info-{state}.json")
    body["data"]["taskId"] = task_id
    return status, body
