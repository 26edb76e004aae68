"""`TaskUpdate`: what one callback or poll answer says about one task."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

Source = Literal["callback", "poll"]


class State(StrEnum):
    """Where a generation task stands."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self is not State.RUNNING


@dataclass(frozen=True, slots=True)
class TaskUpdate:
    """One piece of news about a task, whatever its source.

    `code` and `message` are the provider's own; `raw` is the body as received (a callback body or
    a poll answer), kept for the event log.
    """

    product: str
    task_id: str
    state: State
    video_urls: tuple[str, ...] = ()
    image_urls: tuple[str, ...] = ()
    code: int | None = None
    message: str = ""
    prompt: str | None = None
    source: Source = "callback"
    raw: Any = field(default=None, compare=False, repr=False)
