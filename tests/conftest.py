"""Shared test helpers: fixture paths, the bot on a free port, fake Slack and fake kie.ai."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest
from aiohttp import web

from bot.config import Settings
from bot.kie.signature import signed_headers
from bot.server import create_app
from bot.slack.delivery import ChannelPacer
from storage.backends import open_database
from storage.database import Database
from tests.fakes.kie import Answer, FakeKie, fixture_answer
from tests.fakes.server import LocalServer
from tests.fakes.slack import FakeSlack

#: Example payloads: kie.ai's documented bodies, plus our own for documented variants.
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CALLBACKS = FIXTURES / "callbacks"
POLLS = FIXTURES / "poll"


class Clock:
    """A clock the test moves by hand (a store's or the bot's `clock`)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def poll(name: str) -> Answer:
    """kie.ai's answer to a poll, from the fixture file `tests/fixtures/poll/<name>`."""
    return fixture_answer(POLLS / name)


HMAC_KEY = "test-webhook-hmac-key-do-not-use"
SIGNING_SECRET = "test-signing-secret"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start the tests that take minutes first, so the workers share out the short ones."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


def product_of(name: str) -> str:
    """The product slug a fixture file name starts with (the longest one that fits)."""
    from bot.kie.products import PRODUCTS

    return max((slug for slug in PRODUCTS if name.startswith(slug + "-")), key=len)


def callback_files() -> list[Path]:
    """Every callback fixture that names a task (not the `_signed-…` requests, not `data: null`)."""
    return sorted(
        path
        for path in CALLBACKS.glob("*.json")
        if not path.name.startswith("_") and "data-null" not in path.name
    )


def load(name: str) -> Any:
    """A fixture body by file name, from any fixture folder."""
    for folder in (CALLBACKS, POLLS, FIXTURES / "common", FIXTURES / "market"):
        if (folder / name).exists():
            return json.loads((folder / name).read_text())
    raise FileNotFoundError(name)


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Wait until `check()` is truthy (returns it) or fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)


@dataclass
class Bot:
    """The real server on loopback, with an HTTP client session."""

    server: LocalServer
    http: aiohttp.ClientSession
    settings: Settings

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def app(self) -> web.Application:
        return self.server.app

    async def callback(
        self,
        product: str,
        body: Any,
        *,
        sign: bool | None = None,
        route: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """POST a callback; signed when the bot has a key (unless `sign=False`)."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"Content-Type": "application/json"}
        key = self.settings.kie_webhook_hmac_key
        if key and sign is not False and isinstance(body, dict):
            data = body.get("data") or {}
            # Runway Aleph keeps its task id at the top level of the body.
            task_id = data.get("taskId") or data.get("task_id") or body.get("taskId", "")
            sent |= signed_headers(key, task_id, int(time.time()))
        sent |= headers or {}
        path = f"/callbacks/{product}" + (f"/{route}" if route else "")
        async with self.http.post(self.url + path, data=raw, headers=sent) as response:
            return response.status, await response.json(content_type=None)


BotFactory = Callable[..., Awaitable[Bot]]

#: Where the tests find a PostgreSQL server they may create databases on (`.ci/run` starts one).
POSTGRES_ENV = "KIE_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The PostgreSQL server's URL; without one these tests say so (and fail in CI)."""
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if not url:
        message = (
            f"PostgreSQL tests need {POSTGRES_ENV}=postgresql://… "
            "(bash .ci/run starts a throwaway server and sets it)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped after it)."""
    import psycopg

    name = f"kie_test_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(urlsplit(postgres_server)._replace(path=f"/{name}"))
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


#: Opens a connection to the test's one fresh database (`opener`); call it again for another
#: connection to the same database, as a second replica would have.
Opener = Callable[[], Awaitable[Database]]


@pytest.fixture(params=["sqlite", "postgresql"])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """The stores' tests on every backend: a SQLite file, and a fresh PostgreSQL database."""
    opened: list[Database] = []
    postgres = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None

    async def open_() -> Database:
        database = await open_database(tmp_path / "store.db", postgres)
        opened.append(database)
        return database

    yield open_
    for database in opened:
        await database.close()


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    slack = await FakeSlack().start()
    yield slack
    await slack.stop()
    assert slack.invalid == [], "the bot sent messages Slack would refuse"


@pytest.fixture
async def fake_kie() -> AsyncIterator[FakeKie]:
    kie = await FakeKie().start()
    yield kie
    await kie.stop()


def saving_settings(channel: str) -> dict[str, Any]:
    """Settings of a bot that saves result files (downloaded from loopback too) into the
    threads of `channel`, its default channel."""
    return {
        "kie_default_channel": channel,
        "slack_save_videos": True,
        "download_allow_private_hosts": True,
    }


@pytest.fixture
async def start_bot(tmp_path: Path) -> AsyncIterator[BotFactory]:
    """Start bots: `await start_bot(slack=..., kie=..., clock=..., **settings)`; all stop at
    the end."""
    started: list[Bot] = []

    async def start(
        slack: FakeSlack | None = None,
        kie: FakeKie | None = None,
        pacer: ChannelPacer | None = None,
        clock: Callable[[], float] = time.time,
        **overrides: Any,
    ) -> Bot:
        settings = Settings(
            host="127.0.0.1",
            port=0,
            # A SQLite file serves one bot: a second bot in the same test gets its own.
            database_path=tmp_path / (f"bot{len(started)}.db" if started else "bot.db"),
            slack_bot_token="xoxb-test" if slack else None,
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=slack.api_url if slack else "http://127.0.0.1:9/api/",
            kie_api_key=kie.api_key if kie else None,
            kie_api_url=kie.url if kie else "http://127.0.0.1:9",
            poll_interval=1,
            # The fixtures' videos are example.com links that nothing serves: saving them stays
            # off unless a test turns it on (tests/e2e/test_saved_videos.py).
            slack_save_videos=False,
        )
        settings = replace(settings, **overrides)
        app = create_app(settings, clock=clock, pacer=pacer or ChannelPacer(rate=50, burst=50))
        server = await LocalServer(app).start()
        bot = Bot(server, aiohttp.ClientSession(), replace(settings, port=server.port))
        started.append(bot)
        return bot

    yield start
    for bot in reversed(started):
        await bot.http.close()
        await bot.server.stop()


async def scrape(bot: Bot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """`GET /metrics`, parsed by prometheus_client's own parser: {(name, labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    async with bot.http.get(f"{bot.url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def signed_form_headers(body: str, secret: str = SIGNING_SECRET) -> dict[str, str]:
    """The headers of a form POST signed the way Slack signs requests (v0)."""
    from slack_sdk.signature import SignatureVerifier

    timestamp = str(int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature or "",
    }


_TRIGGERS = itertools.count(1)


async def slash(
    bot: Bot,
    slack: FakeSlack,
    text: str,
    *,
    channel: str = "C0CMD",
    user: str = "U0USER",
    secret: str = SIGNING_SECRET,
    trigger_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """A signed `/kie` slash command over HTTP; returns the HTTP status and the JSON answer.

    Each call has a trigger id of its own unless `trigger_id` is given (Slack's retry of one
    invocation carries the same one); `headers` are added (e.g. `X-Slack-Retry-Num`).
    """
    from urllib.parse import urlencode

    body = urlencode(slash_fields(slack, text, channel=channel, user=user, trigger_id=trigger_id))
    sent = signed_form_headers(body, secret) | (headers or {})
    async with bot.http.post(f"{bot.url}/slack/events", data=body, headers=sent) as response:
        raw = await response.text()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw


def slash_fields(
    slack: FakeSlack,
    text: str,
    *,
    channel: str = "C0CMD",
    user: str = "U0USER",
    trigger_id: str | None = None,
) -> dict[str, str]:
    """The fields of a `/kie` invocation, as Slack sends them (a form, or a Socket Mode
    envelope's payload)."""
    return {
        "team_id": "T000FAKE",
        "channel_id": channel,
        "user_id": user,
        "command": "/kie",
        "text": text,
        "trigger_id": trigger_id or f"{next(_TRIGGERS)}.2.3",
        "api_app_id": "A0APP",
        "response_url": slack.response_url(),
    }


async def post_interaction(bot: Bot, payload: dict[str, Any]) -> tuple[int, Any]:
    """POST an interaction payload to /slack/events, signed like Slack; the status and the
    answer (JSON when it is, else the text)."""
    from urllib.parse import urlencode

    body = urlencode({"payload": json.dumps(payload)})
    headers = signed_form_headers(body)
    async with bot.http.post(f"{bot.url}/slack/events", data=body, headers=headers) as response:
        raw = await response.text()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw


def find_button(message: Any, text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The actions block and the button whose visible text is `text` in a posted message."""
    for block in message.blocks:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("text", {}).get("text") == text:
                return block, element
    raise AssertionError(f"no button {text!r} in {message.content}")


async def click(
    bot: Bot, slack: FakeSlack, message: Any, text: str, **options: Any
) -> tuple[int, Any]:
    """Click the button `text` of a message the bot posted (a `Posted` of the fake Slack): a
    signed `block_actions` payload (see `button_payload` for the options), POSTed like Slack."""
    return await post_interaction(bot, button_payload(slack, message, text, **options))


def button_payload(
    slack: FakeSlack,
    message: Any,
    text: str,
    *,
    user: str = "U0USER",
    response_url: str = "1",
    action_ts: str | None = None,
) -> dict[str, Any]:
    """The `block_actions` payload of a click on the button `text` of a posted message, built
    from the blocks as posted, like Slack sends it.

    `action_ts` is Slack's time of the click: give the same one twice for a retried click.
    """
    block, button = find_button(message, text)
    return {
        "type": "block_actions",
        "team": {"id": "T000FAKE", "domain": "fake"},
        "user": {"id": user, "username": "someone", "team_id": "T000FAKE"},
        "api_app_id": "A0APP",
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": message.channel,
            "is_ephemeral": False,
        },
        "trigger_id": f"1337.42.{len(slack.calls)}.{time.monotonic_ns()}",
        "channel": {"id": message.channel, "name": "somewhere"},
        "message": {
            "type": "message",
            "ts": message.ts,
            "text": message.text,
            "blocks": message.blocks,
        },
        "response_url": slack.response_url(response_url),
        "actions": [
            {
                "action_id": button["action_id"],
                "block_id": block.get("block_id", "b0"),
                "text": button["text"],
                "value": button.get("value"),
                "type": "button",
                "action_ts": action_ts or f"{time.time():.6f}",
            }
        ],
    }


async def submit_view(
    bot: Bot,
    view: dict[str, Any],
    values: dict[str, Any],
    *,
    user: str = "U0USER",
    view_id: str = "V00000001",
) -> tuple[int, Any]:
    """Submit a modal the bot opened (as the fake Slack recorded it), with `values` by block
    id: a conversation id for a `conversations_select`, an option value for a
    `static_select`, text for a `plain_text_input` (None: left empty; missing: its initial
    value), the ticked values for `checkboxes` (missing: as the form offered them)."""
    state: dict[str, Any] = {}
    for block in view["blocks"]:
        element = block.get("element") if block.get("type") == "input" else None
        if element is None:
            continue
        value = values.get(block["block_id"], element.get("initial_value"))
        if element["type"] == "conversations_select":
            entry = {"type": "conversations_select", "selected_conversation": value}
        elif element["type"] == "checkboxes":
            offered = [o["value"] for o in element.get("initial_options", [])]
            ticked = values.get(block["block_id"], offered)
            options = [o for o in element["options"] if o["value"] in (ticked or [])]
            entry = {"type": "checkboxes", "selected_options": options}
        elif element["type"] == "static_select":
            chosen = {"value": value, "text": {"type": "plain_text", "text": value}}
            entry = {"type": "static_select", "selected_option": chosen if value else None}
        else:
            entry = {"type": element["type"], "value": value}
        state[block["block_id"]] = {element["action_id"]: entry}
    payload = {
        "type": "view_submission",
        "team": {"id": "T000FAKE", "domain": "fake"},
        "user": {"id": user, "username": "someone", "team_id": "T000FAKE"},
        "api_app_id": "A0APP",
        "token": "legacy-verification-token",
        "trigger_id": "1337.43.1",
        "view": {
            **view,
            "id": view_id,
            "team_id": "T000FAKE",
            "state": {"values": state},
            "hash": "1.abc",
        },
        "response_urls": [],
    }
    return await post_interaction(bot, payload)
