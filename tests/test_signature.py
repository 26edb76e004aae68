"""kie.ai webhook signatures against the documented test vectors."""

from __future__ import annotations

import json

from bot.kie.signature import sign, signature_problem
from tests.conftest import CALLBACKS


def test_documented_vectors():
    for name in ("_signed-request-veo.json", "_signed-request-runway.json"):
        vector = json.loads((CALLBACKS / name).read_text())
        task_id, timestamp = vector["signedMessage"].rsplit(".", 1)
        assert (
            sign(vector["webhookHmacKey"], task_id, timestamp)
            == vector["headers"]["X-Webhook-Signature"]
        )
        assert (
            signature_problem(
                vector["webhookHmacKey"],
                task_id,
                vector["headers"],
                now=int(timestamp),
                tolerance=1,
            )
            is None
        )


def test_tolerance_edges():
    headers = {"X-Webhook-Timestamp": "1000", "X-Webhook-Signature": sign("k", "t", 1000)}
    assert signature_problem("k", "t", headers, now=1300, tolerance=300) is None
    assert "away from now" in signature_problem("k", "t", headers, now=1301, tolerance=300)
