"""No input makes the callback route answer 500: arbitrary bytes and arbitrary JSON.

The bot runs on its own event loop in a thread, so Hypothesis can drive it synchronously.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config import Settings
from bot.kie.products import PRODUCTS
from bot.server import create_app
from tests.fakes.server import LocalServer

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
DATA_KEYS = ["taskId", "task_id", "info", "resultUrls", "video_url", "promptJson", "result_urls"]
CALLBACK_LIKE = st.fixed_dictionaries(
    {"code": JSON, "msg": JSON},
    optional={"data": st.dictionaries(st.sampled_from(DATA_KEYS), JSON, max_size=5)},
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
ANSWERS = {200, 400, 404}


@pytest.fixture(scope="module")
def bot_url(tmp_path_factory) -> Iterator[str]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    path = tmp_path_factory.mktemp("prop") / "bot.db"
    app = create_app(Settings(host="127.0.0.1", port=0, database_path=path))
    server = LocalServer(app)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    yield server.url
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def post(url: str, raw: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=raw, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@SETTINGS
@given(raw=st.binary(max_size=2000), product=st.sampled_from([*PRODUCTS, "nope"]))
def test_arbitrary_bytes_never_500(bot_url, raw, product):
    status, answer = post(f"{bot_url}/callbacks/{product}", raw)
    assert status in ANSWERS and isinstance(answer, dict)


@SETTINGS
@given(body=JSON | CALLBACK_LIKE, product=st.sampled_from(list(PRODUCTS)))
def test_arbitrary_json_never_500(bot_url, body, product):
    status, answer = post(f"{bot_url}/callbacks/{product}", json.dumps(body).encode())
    assert status in ANSWERS, answer
    assert ("status" in answer) if status == 200 else ("error" in answer)
