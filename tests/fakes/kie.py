"""A fake kie.ai API: programmable answer sequences per endpoint and task id."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakes.server import LocalServer

Answer = tuple[int, Any]  # HTTP status, JSON body

RECORD_NULL: Answer = (200, {"code": 422, "msg": "record is null", "data": None})

#: The Market (jobs API) poll endpoint.
MARKET_RECORD = "/api/v1/jobs/recordInfo"
#: Market recordInfo answers by state: the repository's copies of kie.ai's examples.
MARKET_RECORDS = Path(__file__).resolve().parent.parent / "fixtures" / "market"


class FakeKie(LocalServer):
    """kie.ai at `url`: each (path, taskId) answers its script in order, the last one repeating."""

    def __init__(self, api_key: str = "kie-test-key") -> None:
        app = web.Application()
        app.router.add_get("/api/v1/{rest:.*}", self._get)
        super().__init__(app)
        self.api_key = api_key
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.scripts: dict[tuple[str, str], list[Answer]] = defaultdict(list)
        self.credits: Answer = (200, {"code": 200, "msg": "success", "data": 100})
        self.default: Answer = RECORD_NULL

    def script(self, path: str, task_id: str, *answers: Answer) -> None:
        """Answer `path?taskId=task_id` with `answers` in turn, repeating the last."""
        self.scripts[(path, task_id)].extend(answers)

    def script_market(self, task_id: str, *states: str) -> None:
        """Answer `GET /api/v1/jobs/recordInfo?taskId=task_id` with Market records in `states`
        ("generating", "success" or "fail"), in turn, repeating the last."""
        self.script(MARKET_RECORD, task_id, *(market_record(task_id, state) for state in states))

    def polls(self, task_id: str) -> int:
        return sum(1 for _, query in self.requests if query.get("taskId") == task_id)

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
