"""JSON answers in one compact form: `{"status":"received"}`."""

from __future__ import annotations

import functools
import json
from typing import Any

from aiohttp import web

_dumps = functools.partial(json.dumps, separators=(",", ":"), ensure_ascii=False)


def json_answer(data: Any, status: int = 200) -> web.Response:
    """A compact JSON response."""
    return web.json_response(data, status=status, dumps=_dumps)


def json_error(status: int, reason: str) -> web.Response:
    """`{"error": reason}` with `status`."""
    return json_answer({"error": reason}, status)
