"""The one error type of a result file (a video, an image, a track) not saved into Slack."""

from __future__ import annotations


class TransferError(Exception):
    """A result file that was not downloaded or not uploaded.

    `reason` is a short code to branch on (`too_large`, `gone`, `missing_scope`, …), `detail` a
    sentence for logs, `explanation` a sentence for the card. `retryable` errors may pass on a
    later try (after `retry_after` seconds when Slack said so); the others need a person.
    """

    def __init__(
        self,
        reason: str,
        detail: str = "",
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        explanation: str = "",
    ) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.retryable = retryable
        self.retry_after = retry_after
        self.explanation = explanation or detail or reason
