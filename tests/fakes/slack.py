"""A fake Slack Web API: records every call, validates Block Kit, injects faults on demand."""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from tests.fakes.server import LocalServer


@dataclass
class Posted:
    """A message as the fake Slack holds it."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    updates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def content(self) -> str:
        """Text and block JSON, for substring checks."""
        return self.text + json.dumps(self.blocks)


@dataclass
class Fault:
    """What the next call of `method` gets instead of a success."""

    method: str
    status: int = 200
    error: str | None = None
    retry_after: int | None = None
    drop: bool = False
    #: More keys of the error answer, e.g. {"needed": "files:write"} for missing_scope.
    extra: dict[str, Any] = field(default_factory=dict)
    #: The call does its work first, then the answer is the fault (an answer lost on the way).
    after: bool = False


@dataclass
class Upload:
    """A file of Slack's external upload: announced, its bytes received, then shared."""

    file_id: str
    filename: str
    length: int
    received: int | None = None
    sha256: str | None = None
    chunked: bool = False
    authorization: bool = False
    completed: bool = False
    title: str | None = None
    channel: str | None = None
    thread_ts: str | None = None


@dataclass
class Socket:
    """One Socket Mode connection the bot opened."""

    request: web.Request
    ws: web.WebSocketResponse


class FakeSlack(LocalServer):
    """Slack's Web API at `{url}/api/`; response URLs at `{url}/commands/...`; Socket Mode's
    WebSocket at `{url}/socket` (handed out by `apps.connections.open`)."""

    def __init__(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/commands/{rest:.*}", self._response_url)
        app.router.add_post("/upload/v1/{file_id}", self._upload_bytes)
        app.router.add_get("/socket", self._socket)
        app.router.add_get("/files-pri/{team}/{name}", self._file)
        super().__init__(app)
        self.calls: list[tuple[str, dict[str, Any], float]] = []
        self.messages: list[Posted] = []
        self.responses: list[dict[str, Any]] = []
        self.invalid: list[str] = []
        self.faults: list[Fault] = []
        self.channel_errors: dict[str, str] = {}
        #: While set, every Web API call is answered with this HTTP status (an outage).
        self.outage_status: int | None = None
        #: Every Nth message call meets a fault in turn: a 503, a 429 (Retry-After 1), a drop.
        self.flaky_every: int | None = None
        self._message_calls = 0
        self.reject_images = False
        self._ts = itertools.count(1)
        #: Files of the external upload by id; `fail_next("upload", ...)` breaks the bytes' POST.
        self.uploads: dict[str, Upload] = {}
        #: Channels the bot is not in: "public" ones it may join, "private" ones it may not.
        self.not_joined: dict[str, str] = {}
        self.joins: list[str] = []
        self._file_ids = itertools.count(1)
        #: Modals opened with `views.open`, as the bot sent them.
        self.views: list[dict[str, Any]] = []
        #: Socket Mode: the open connection (None until the bot connects, or after a drop),
        #: how many were opened, and the bot's acknowledgements of envelopes, in order.
        self.socket: Socket | None = None
        self.sockets_opened = 0
        self.acks: list[dict[str, Any]] = []
        self._envelope_ids = itertools.count(1)
        #: Home tabs published with `views.publish`, by user, in order.
        self.homes: dict[str, list[dict[str, Any]]] = {}
        #: Files people attached to messages (`attach`), by name: bytes and type; each
        #: download of one: its name and whether it carried the bot token.
        self.files: dict[str, tuple[bytes, str]] = {}
        self.downloads: list[tuple[str, bool]] = []

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, name: str = "1") -> str:
        return f"{self.url}/commands/T000FAKE/{name}"

    def person_posts(
        self, channel: str, text: str, files: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """A message a person posts (not the bot): kept like the bot's, and returned as Slack
        puts it in a shortcut's payload."""
        ts = f"{int(time.time())}.{next(self._ts):06d}"
        self.messages.append(Posted(channel, ts, text, []))
        message: dict[str, Any] = {"type": "message", "user": "U0PERSON", "ts": ts, "text": text}
        if files:
            message["files"] = files
        return message

    def attach(self, name: str, data: bytes, mimetype: str = "image/png") -> dict[str, Any]:
        """A file a person attached, as a message's `files[]` names it (its private URLs on
        this fake's own host, which hands it out for the bot token only)."""
        self.files[name] = (data, mimetype)
        url = f"{self.url}/files-pri/T000FAKE-F{len(self.files):08d}/{name}"
        return {
            "id": f"F{len(self.files):08d}",
            "name": name,
            "mimetype": mimetype,
            "url_private": url,
            "url_private_download": url + "?download=1",
        }

    def dm_channel(self, user: str) -> str:
        """The id of the bot's direct-message conversation with `user`."""
        return "D" + user.removeprefix("U")

    def fail_next(self, method: str, **kwargs: Any) -> None:
        self.faults.append(Fault(method, **kwargs))

    def in_channel(self, channel: str) -> list[Posted]:
        return [m for m in self.messages if m.channel == channel]

    def roots(self, channel: str) -> list[Posted]:
        return [m for m in self.in_channel(channel) if m.thread_ts is None]

    def replies(self, root: Posted) -> list[Posted]:
        return [m for m in self.messages if m.thread_ts == root.ts]

    def count(self, method: str) -> int:
        return sum(1 for name, _, _ in self.calls if name == method)

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            raw = await request.read()
            if request.content_type == "application/json":
                params.update(json.loads(raw or b"{}"))
            else:
                params.update(dict(parse_qsl(raw.decode())))
        return params

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params = await self._params(request)
        self.calls.append((method, params, time.monotonic()))
        # apps.connections.open takes the app-level token, every other method the bot token.
        token = "Bearer xapp-" if method == "apps.connections.open" else "Bearer xoxb-"
        if not request.headers.get("Authorization", "").startswith(token):
            return web.json_response({"ok": False, "error": "not_authed"})
        if self.outage_status is not None:
            return web.json_response({"ok": False}, status=self.outage_status)
        if self.flaky_every and method in ("chat.postMessage", "chat.update"):
            self._message_calls += 1
            if self._message_calls % self.flaky_every == 0:
                turn = self._message_calls // self.flaky_every % 3
                self.faults.insert(
                    0,
                    (
                        Fault(method, status=503),
                        Fault(method, status=429, error="ratelimited", retry_after=1),
                        Fault(method, drop=True),
                    )[turn],
                )
        fault = next((f for f in self.faults if f.method == method), None)
        if fault is not None:
            self.faults.remove(fault)
            if fault.after:
                self._answer(method, params)
            if fault.drop:
                assert request.transport is not None
                request.transport.close()
                raise ConnectionResetError("dropped by the fake")
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else None
            body = {"ok": False, "error": fault.error or f"http_{fault.status}", **fault.extra}
            return web.json_response(body, status=fault.status, headers=headers)
        return self._answer(method, params)

    def _answer(self, method: str, params: dict[str, Any]) -> web.Response:
        if method == "auth.test":
            return web.json_response(
                {"ok": True, "team_id": "T000FAKE", "user_id": "U000BOT", "bot_id": "B000BOT"}
            )
        if method in ("chat.postMessage", "chat.update"):
            return self._message(method, params)
        if method == "files.getUploadURLExternal":
            return self._upload_url(params)
        if method == "files.completeUploadExternal":
            return self._complete_upload(params)
        if method == "conversations.join":
            return self._join(params)
        if method == "views.open":
            return self._open_view(params)
        if method == "views.publish":
            return self._publish_view(params)
        if method == "conversations.open":
            users = str(params.get("users") or "")
            if not users or "," in users:
                return web.json_response({"ok": False, "error": "invalid_arguments"})
            return web.json_response({"ok": True, "channel": {"id": self.dm_channel(users)}})
        if method == "chat.getPermalink":
            return self._permalink(params)
        if method == "apps.connections.open":
            return web.json_response({"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"})
        return web.json_response({"ok": True})

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        """Socket Mode: `hello`, then the envelopes a test sends; records the acks."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets_opened += 1
        self.socket = Socket(request, ws)
        await ws.send_json(
            {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0APP"}}
        )
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                self.acks.append(json.loads(message.data))
        if self.socket is not None and self.socket.ws is ws:
            self.socket = None
        return ws

    async def envelope(self, kind: str, payload: dict[str, Any]) -> str:
        """Send an envelope (`slash_commands`, `interactive`, `events_api`) over the open
        socket; returns its id, which the bot's ack must carry."""
        if self.socket is None:
            raise AssertionError("the bot has no Socket Mode connection open")
        envelope_id = f"env-{next(self._envelope_ids)}"
        await self.socket.ws.send_json(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": kind != "events_api",
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )
        return envelope_id

    def ack(self, envelope_id: str) -> dict[str, Any] | None:
        """The bot's acknowledgement of an envelope, once it came."""
        return next((a for a in self.acks if a.get("envelope_id") == envelope_id), None)

    async def drop_socket(self) -> None:
        """Cut the connection without a close frame, as a network failure does."""
        if self.socket is not None:
            assert self.socket.request.transport is not None
            self.socket.request.transport.abort()
            self.socket = None

    async def refresh_socket(self) -> None:
        """Ask the bot to open a new connection, as Slack does every few hours."""
        if self.socket is not None:
            socket, self.socket = self.socket, None
            await socket.ws.send_json({"type": "disconnect", "reason": "refresh_requested"})

    def _open_view(self, params: dict[str, Any]) -> web.Response:
        """A modal: Slack checks the trigger id and the view, and answers with its id."""
        if not params.get("trigger_id"):
            return web.json_response({"ok": False, "error": "invalid_trigger_id"})
        view = self._valid_view(params, "view")
        if view is None:
            return web.json_response({"ok": False, "error": "invalid_arguments"})
        self.views.append(view)
        return web.json_response(
            {"ok": True, "view": {**view, "id": f"V{len(self.views):08d}", "state": {"values": {}}}}
        )

    def _publish_view(self, params: dict[str, Any]) -> web.Response:
        """A Home tab: Slack checks the view and its user."""
        view = self._valid_view(params, "Home tab")
        user = str(params.get("user_id") or "")
        if view is None or not user or view.get("type") != "home":
            return web.json_response({"ok": False, "error": "invalid_arguments"})
        self.homes.setdefault(user, []).append(view)
        return web.json_response({"ok": True, "view": {**view, "id": f"VHOME{user}"}})

    def _valid_view(self, params: dict[str, Any], what: str) -> dict[str, Any] | None:
        """The view a `views.*` call sends, when Slack would take it (a bad one is recorded)."""
        view = params.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        if not isinstance(view, dict):
            return None
        try:
            View(**view).validate_json()
        except Exception as exc:
            self.invalid.append(f"invalid {what} {view!r}: {exc}")
            return None
        return view

    def home(self, user: str) -> str:
        """The Home tab last published for `user`, as text and block JSON (empty: none)."""
        views = self.homes.get(user)
        return json.dumps(views[-1], ensure_ascii=False) if views else ""

    def _permalink(self, params: dict[str, Any]) -> web.Response:
        """A link to a message the fake holds; into its thread for a reply."""
        channel, ts = str(params.get("channel") or ""), str(params.get("message_ts") or "")
        found = next((m for m in self.messages if m.ts == ts and m.channel == channel), None)
        if found is None:
            return web.json_response({"ok": False, "error": "message_not_found"})
        link = f"https://fake.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        if found.thread_ts:
            link += f"?thread_ts={found.thread_ts}&cid={channel}"
        return web.json_response({"ok": True, "channel": channel, "permalink": link})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        """A private file: its bytes for the bot token, Slack's sign-in page without it."""
        name = request.match_info["name"]
        authorized = request.headers.get("Authorization", "").startswith("Bearer xoxb-")
        self.downloads.append((name, authorized))
        if name not in self.files:
            return web.Response(status=404, text="Not Found", content_type="text/plain")
        if not authorized:
            return web.Response(text="<html>Sign in to Slack</html>", content_type="text/html")
        data, mimetype = self.files[name]
        return web.Response(body=data, content_type=mimetype)

    def _message(self, method: str, params: dict[str, Any]) -> web.Response:
        channel = str(params.get("channel", ""))
        if channel in self.channel_errors:
            return web.json_response({"ok": False, "error": self.channel_errors[channel]})
        blocks = params.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        problem = _block_problem(params.get("text"), blocks)
        if problem:
            self.invalid.append(problem)
            return web.json_response({"ok": False, "error": "invalid_blocks", "errors": [problem]})
        if self.reject_images and any(b.get("type") == "image" for b in blocks):
            return web.json_response(
                {
                    "ok": False,
                    "error": "invalid_blocks",
                    "errors": ["downloading image failed [json-pointer:/blocks/1/image_url]"],
                    "response_metadata": {
                        "messages": [
                            "[ERROR] downloading image failed [json-pointer:/blocks/1/image_url]"
                        ]
                    },
                }
            )
        if method == "chat.update":
            target = next((m for m in self.messages if m.ts == params.get("ts")), None)
            if target is None or target.channel != channel:
                return web.json_response({"ok": False, "error": "message_not_found"})
            target.updates.append({"text": target.text, "blocks": target.blocks})
            target.text, target.blocks = str(params["text"]), blocks
            return web.json_response({"ok": True, "channel": channel, "ts": target.ts})
        ts = f"{int(time.time())}.{next(self._ts):06d}"
        thread_ts = params.get("thread_ts") or None
        self.messages.append(Posted(channel, ts, str(params["text"]), blocks, thread_ts))
        return web.json_response({"ok": True, "channel": channel, "ts": ts})

    async def _response_url(self, request: web.Request) -> web.Response:
        self.responses.append(await request.json())
        return web.Response(text="ok", content_type="text/plain")

    def shared(self, channel: str, thread_ts: str | None = None) -> list[Upload]:
        """Files shared into `channel` (into the thread of `thread_ts` when given)."""
        return [
            u
            for u in self.uploads.values()
            if u.completed
            and u.channel == channel
            and (thread_ts is None or u.thread_ts == thread_ts)
        ]

    def _upload_url(self, params: dict[str, Any]) -> web.Response:
        filename = str(params.get("filename") or "")
        try:
            length = int(params.get("length", ""))
        except ValueError:
            length = 0
        if not filename or length <= 0:
            return web.json_response({"ok": False, "error": "missing_argument"})
        file_id = f"F{next(self._file_ids):08d}"
        self.uploads[file_id] = Upload(file_id, filename, length)
        return web.json_response(
            {"ok": True, "upload_url": f"{self.url}/upload/v1/{file_id}", "file_id": file_id}
        )

    async def _upload_bytes(self, request: web.Request) -> web.StreamResponse:
        """The upload URL: streams the body through a hash, answers like Slack in text/plain."""
        file_id = request.match_info["file_id"]
        self.calls.append(("upload", {"file_id": file_id}, time.monotonic()))
        upload = self.uploads.get(file_id)
        if upload is None:
            return web.Response(status=404, text="unknown file", content_type="text/plain")
        fault = next((f for f in self.faults if f.method == "upload"), None)
        if fault is not None:
            self.faults.remove(fault)
            if fault.drop:
                assert request.transport is not None
                request.transport.close()
                raise ConnectionResetError("dropped by the fake")
            return web.Response(
                status=fault.status, text="upload failed", content_type="text/plain"
            )
        digest = hashlib.sha256()
        size = 0
        try:
            async for chunk in request.content.iter_chunked(1 << 16):
                digest.update(chunk)
                size += len(chunk)
        except ConnectionError:
            return web.Response(status=400, text="body broken off", content_type="text/plain")
        upload.received, upload.sha256 = size, digest.hexdigest()
        upload.chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        upload.authorization = "Authorization" in request.headers
        return web.Response(text=f"OK - {size}", content_type="text/plain")

    def _complete_upload(self, params: dict[str, Any]) -> web.Response:
        try:
            files = json.loads(params.get("files") or "[]")
        except ValueError:
            files = None
        if not isinstance(files, list) or not files:
            return web.json_response({"ok": False, "error": "invalid_arguments"})
        uploads = [self.uploads.get(str(f.get("id"))) for f in files if isinstance(f, dict)]
        if len(uploads) != len(files) or any(
            u is None or u.completed or u.received != u.length for u in uploads
        ):
            return web.json_response({"ok": False, "error": "file_not_found"})
        channel = str(params.get("channel_id") or "")
        if channel in self.channel_errors:
            return web.json_response({"ok": False, "error": self.channel_errors[channel]})
        if channel in self.not_joined:
            return web.json_response({"ok": False, "error": "not_in_channel"})
        answered = []
        for upload, meta in zip(uploads, files, strict=True):
            assert upload is not None
            upload.completed = True
            upload.title = meta.get("title") or upload.filename
            upload.channel = channel or None
            upload.thread_ts = params.get("thread_ts") or None
            answered.append({"id": upload.file_id, "title": upload.title, "name": upload.filename})
        return web.json_response({"ok": True, "files": answered})

    def _join(self, params: dict[str, Any]) -> web.Response:
        channel = str(params.get("channel") or "")
        if channel in self.channel_errors:
            return web.json_response({"ok": False, "error": self.channel_errors[channel]})
        if self.not_joined.get(channel) == "private":
            return web.json_response(
                {"ok": False, "error": "method_not_supported_for_channel_type"}
            )
        self.not_joined.pop(channel, None)
        self.joins.append(channel)
        return web.json_response({"ok": True, "channel": {"id": channel}})


def _block_problem(text: Any, blocks: list[dict[str, Any]]) -> str | None:
    """Why Slack would refuse this message, or None."""
    if not isinstance(text, str) or not text.strip():
        return "no_text: every message needs a notification text"
    if len(blocks) > 50:
        return "more than 50 blocks"
    for block in blocks:
        try:
            parsed = Block.parse(block)
            if parsed is None:
                return f"unknown block {block!r}"
            parsed.validate_json()
        except Exception as exc:
            return f"invalid block {block!r}: {exc}"
    return None
