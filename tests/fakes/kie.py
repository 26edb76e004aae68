"""A fake kie.ai API: programmable answer sequences per endpoint and task id."""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from aiohttp import web

from tests.fakes.server import LocalServer

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
        self.credits: Answer = (200, {"code": 200, "msg": "success", "data": 100})
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

    async def _get(self, request: web.Request) -> web.Response:
        path = request.path
        self.requests.append((path, dict(request.query)))
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _json(401, {"code": 401, "msg": "You do not have access permissions"})
        if path == "/api/v1/chat/credit":
            return _json(*self.credits)
        answers = self.scripts.get((path, request.query.get("taskId", "")))
        if not answers:
            return _json(*self.default)
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return _json(*answer)

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
        if path == DOWNLOAD_URL:
            name = key.rsplit("/", 1)[-1] or "file"
            fresh = f"https://download.example.com/{name}?token=fresh-{len(self.posts)}"
            return _json(200, {"code": 200, "msg": "success", "data": fresh})
        if path == FOUR_K:
            answer = {"code": 200, "msg": "success", "data": {"taskId": key, "resultUrls": None}}
            return _json(200, answer)
        return _json(*self.default)


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
