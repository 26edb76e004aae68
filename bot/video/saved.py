"""What became of a result file (a video, an image, a track) in one channel: the card shows
it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SaveState(StrEnum):
    """Where saving one result file into one thread stands.

    `pending`: not shared yet (queued, or a try that stopped before sharing was asked for: a new
    try uploads afresh, and Slack discards the unshared file). `completing`: the bytes of
    `file_id` are at Slack and sharing it into the thread was asked for; the answer may have
    been lost, so a new try asks again for that file instead of uploading another.
    """

    PENDING = "pending"
    COMPLETING = "completing"
    SAVED = "saved"
    NOT_SAVED = "not_saved"


@dataclass(frozen=True, slots=True)
class SavedVideo:
    """One result file in one channel's thread: saved as `file_id`, not saved (`reason` and
    `explanation`, a sentence for the card), or still on its way."""

    url: str
    state: SaveState
    file_id: str | None = None
    title: str | None = None
    size: int | None = None
    reason: str | None = None
    explanation: str | None = None

    @property
    def saved(self) -> bool:
        return self.state is SaveState.SAVED

    @property
    def refused(self) -> bool:
        """Not saved, for a reason the card explains."""
        return self.state is SaveState.NOT_SAVED
