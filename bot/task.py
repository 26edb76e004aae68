"""The task's domain: what one piece of news says (`TaskUpdate`), what is known (`Task`), and how
news merges into what is known (`merge`). Storage, rendering and commands all import it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

#: Where news came from: a callback, a poll, or kie.ai's answer to a request made from Slack
#: (a 1080p or 4K version).
Source = Literal["callback", "poll", "request"]


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
    a poll answer), kept for the event log. `model` (a Market model id such as
    `kling-2.6/text-to-video`) and `credits` (credits consumed) are set only when kie.ai says.
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
    model: str | None = None
    credits: float | None = None


@dataclass(frozen=True, slots=True)
class Task:
    """A task as stored: the merged result of every update learnt about it.

    `code`/`message` are the provider's code and message of the latest update. A task that
    succeeded stays `SUCCEEDED` when a later update fails (a 4K upgrade that cannot be made, a
    retried old failure); that failure is then in `code`/`message`.
    Times are Unix seconds; `finished_at` is when the task's results (or final state) arrived,
    `polled_at` when kie.ai last answered a question about the task.
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
    created_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float | None = None
    model: str | None = None
    credits: float | None = None
    polled_at: float | None = None
    #: Set for a task started from Slack: who asked (a user id), the request as JSON (for
    #: `Again`), and the task it repeats with a link to that task's message.
    requested_by: str | None = None
    request: str | None = None
    origin: str | None = None
    origin_link: str | None = None

    @classmethod
    def first(cls, update: TaskUpdate, now: float) -> Task:
        """The task as its first update describes it."""
        return cls(
            product=update.product,
            task_id=update.task_id,
            state=update.state,
            video_urls=update.video_urls,
            image_urls=update.image_urls,
            code=update.code,
            message=update.message,
            prompt=update.prompt,
            source=update.source,
            created_at=now,
            updated_at=now,
            finished_at=now if update.state.is_final else None,
            model=update.model,
            credits=update.credits,
        )

    @property
    def family(self) -> str:
        from bot.kie.products import PRODUCTS  # the registry imports this module

        return PRODUCTS[self.product].family


@dataclass(frozen=True, slots=True)
class Applied:
    """What `apply` did: `duplicate` when nothing was new; `news` when Slack has something to show.

    `channels` are the channels that follow the task after the update; `queued` is True when
    Slack work was written for them.
    """

    duplicate: bool
    news: bool = False
    task: Task | None = None
    channels: tuple[str, ...] = ()
    queued: bool = False


def merge(old: Task | None, update: TaskUpdate, now: float) -> tuple[Task, bool]:
    """The task after `update`, and whether that changes what Slack should show."""
    if old is None:
        return Task.first(update, now), True
    if update.state is State.RUNNING:
        if old.state is State.RUNNING and (
            (not old.prompt and update.prompt) or (not old.model and update.model)
        ):
            return replace(
                old, prompt=old.prompt or update.prompt, model=old.model or update.model
            ), False
        return old, False  # nothing new, or a stale "still generating" after a final answer
    new_videos = tuple(url for url in update.video_urls if url not in old.video_urls)
    new_images = tuple(url for url in update.image_urls if url not in old.image_urls)
    state = update.state
    if state is State.FAILED and old.state is State.SUCCEEDED:
        state = State.SUCCEEDED  # a failed upgrade (or a stale retry) leaves the video in place
    news = (
        state is not old.state
        or bool(new_videos)
        or (
            update.state is State.FAILED
            and (update.code, update.message) != (old.code, old.message)
        )
    )
    if not news:
        return old, False
    task = replace(
        old,
        state=state,
        video_urls=old.video_urls + new_videos,
        image_urls=old.image_urls + new_images,
        code=update.code,
        message=update.message,
        prompt=old.prompt or update.prompt,
        source=update.source,
        model=old.model or update.model,
        credits=update.credits if update.credits is not None else old.credits,
        updated_at=now,
        finished_at=now if new_videos or old.finished_at is None else old.finished_at,
    )
    return task, True
