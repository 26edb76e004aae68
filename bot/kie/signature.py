"""kie.ai webhook signatures: base64(HMAC-SHA256(key, taskId + "." + timestamp))."""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping

TIMESTAMP_HEADER = "X-Webhook-Timestamp"
SIGNATURE_HEADER = "X-Webhook-Signature"


def sign(key: str, task_id: str, timestamp: int | str) -> str:
    """The signature kie.ai sends for `task_id` at `timestamp`."""
    message = f"{task_id}.{timestamp}".encode()
    return base64.b64encode(hmac.digest(key.encode(), message, "sha256")).decode()


def signed_headers(key: str, task_id: str, timestamp: int) -> dict[str, str]:
    """The two headers of a signed callback."""
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(key, task_id, timestamp)}


def signature_problem(
    key: str, task_id: str, headers: Mapping[str, str], *, now: float, tolerance: int
) -> str | None:
    """Why the headers do not prove that kie.ai sent a callback for `task_id`; None if they do."""
    timestamp = headers.get(TIMESTAMP_HEADER, "").strip()
    signature = headers.get(SIGNATURE_HEADER, "").strip()
    if not timestamp or not signature:
        return f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header"
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return f"{TIMESTAMP_HEADER} is not Unix seconds"
    if abs(now - int(timestamp)) > tolerance:
        return f"{TIMESTAMP_HEADER} is more than {tolerance} s away from now"
    expected = sign(key, task_id, timestamp)
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        return "signature does not match"
    return None
