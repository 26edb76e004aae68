"""The task's domain: what one piece of news says (`TaskUpdate`), what is known (`Task`), and how
news merges into what is known (`merge`). Storage, rendering and commands all import it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from bot.kie.media import Media, media_kind

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
class Track:
    """One song of a music task: its id at kie.ai, file URL, title, length in seconds and cover."""

    id: str
    url: str
    title: str = ""
    duration: float | None = None
    cover: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "title": self.title,
            "duration": self.duration,
            "cover": self.cover,
        }

    @classmethod
    def from_json(cls, value: Any) -> Track | None:
        """A track stored by `as_json`; None for anything else."""
        if not isinstance(value, dict) or not isinstance(value.get("url"), str):
            return None
        duration = value.get("duration")
        return cls(
            id=str(value.get("id") or ""),
            url=value["url"],
            title=str(value.get("title") or ""),
            duration=float(duration) if isinstance(duration, int | float) else None,
            cover=str(value.get("cover") or ""),
        )


@dataclass(frozen=True, slots=True)
class TaskUpdate:
    """One piece of news about a task, whatever its source.

    `result_urls` are the result files (videos, images or audio: `media` says which when the
    parser knows); `image_urls` are thumbnails and covers. `code` and `message` are the
    provider's own; `raw` is the body as received (a callback body or a poll answer), kept for
    the event log. `model` (a Market model id such as `kling-2.6/text-to-video`) and `credits`
    (credits consumed) are set only when kie.ai says. `stage` is how far a task that reports
    stages has come (Suno: `text`, `first`, `complete`), `tracks` describe audio results, and
    `result_text` is a result that is text, not files (speech to text).
    """

    product: str
    task_id: str
    state: State
    result_urls: tuple[str, ...] = ()
    image_urls: tuple[str, ...] = ()
    code: int | None = None
    message: str = ""
    prompt: str | None = None
    source: Source = "callback"
    raw: Any = field(default=None, compare=False, repr=False)
    model: str | None = None
    credits: float | None = None
    media: Media | None = None
    stage: str | None = None
    tracks: tuple[Track, ...] = ()
    result_text: str | None = None

    @property
    def kind(self) -> Media:
        """What the results are: video, image or audio."""
        return media_kind(self.media, self.model, self.result_urls)


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
    result_urls: tuple[str, ...] = ()
    image_urls: tuple[str, ...] = ()
    code: int | None = None
    message: str = ""
    prompt: str | None = None
    source: Source = "callback"
    media: Media | None = None
    stage: str | None = None
    tracks: tuple[Track, ...] = ()
    result_text: str | None = None
    #: The task family (a Veo task and its 4K upgrade are one): the product's, as stored.
    family: str = ""
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
    def first(cls, update: TaskUpdate, now: float, family: str = "") -> Task:
        """The task as its first update describes it (`family` defaults to the product)."""
        return cls(
            product=update.product,
            task_id=update.task_id,
            state=update.state,
            result_urls=update.result_urls,
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
            media=update.media,
            stage=update.stage,
            tracks=update.tracks,
            result_text=update.result_text,
            family=family or update.product,
        )

    @property
    def kind(self) -> Media:
        """What the results are: video, image or audio."""
        return media_kind(self.media, self.model, self.result_urls)


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


#: The stages a staged task passes through (Suno music), in order.
STAGES = ("text", "first", "complete")


def _later_stage(old: str | None, new: str | None) -> bool:
    """Whether `new` is a stage past `old` (an unknown stage is never past anything)."""
    if new not in STAGES:
        return False
    return old not in STAGES or STAGES.index(new) > STAGES.index(old)


def _new_results(old: Task, update: TaskUpdate) -> tuple[tuple[str, ...], tuple[Track, ...]]:
    """The result URLs and tracks `update` brings that `old` has not got: a track already known
    by its id brings nothing, whatever its URL is now."""
    known_ids = {track.id for track in old.tracks if track.id}
    tracks = tuple(
        track
        for track in update.tracks
        if track.url not in old.result_urls and (not track.id or track.id not in known_ids)
    )
    skipped = {track.url for track in update.tracks} - {track.url for track in tracks}
    urls = tuple(
        url for url in update.result_urls if url not in old.result_urls and url not in skipped
    )
    return urls, tracks


def merge(old: Task | None, update: TaskUpdate, now: float, family: str = "") -> tuple[Task, bool]:
    """The task after `update`, and whether that changes what Slack should show (`family`
    names a new task's family)."""
    if old is None:
        return Task.first(update, now, family), True
    new_results, new_tracks = _new_results(old, update)
    if update.state is State.RUNNING:
        if old.state is State.RUNNING and (new_results or _later_stage(old.stage, update.stage)):
            # A staged task moved on (Suno's lyrics, then its first track): shown at once.
            return replace(
                old,
                result_urls=old.result_urls + new_results,
                image_urls=old.image_urls
                + tuple(url for url in update.image_urls if url not in old.image_urls),
                tracks=old.tracks + new_tracks,
                stage=update.stage if _later_stage(old.stage, update.stage) else old.stage,
                media=old.media or update.media,
                prompt=old.prompt or update.prompt,
                model=old.model or update.model,
                source=update.source,
                updated_at=now,
            ), True
        if old.state is State.RUNNING and (
            (not old.prompt and update.prompt) or (not old.model and update.model)
        ):
            return replace(
                old, prompt=old.prompt or update.prompt, model=old.model or update.model
            ), False
        return old, False  # nothing new, or a stale "still generating" after a final answer
    new_images = tuple(url for url in update.image_urls if url not in old.image_urls)
    state = update.state
    if state is State.FAILED and old.state is State.SUCCEEDED:
        state = State.SUCCEEDED  # a failed upgrade (or a stale retry) leaves the video in place
    news = (
        state is not old.state
        or bool(new_results)
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
        result_urls=old.result_urls + new_results,
        image_urls=old.image_urls + new_images,
        tracks=old.tracks + new_tracks,
        code=update.code,
        message=update.message,
        prompt=old.prompt or update.prompt,
        source=update.source,
        model=old.model or update.model,
        credits=update.credits if update.credits is not None else old.credits,
        media=old.media or update.media,
        stage=update.stage if _later_stage(old.stage, update.stage) else old.stage,
        result_text=update.result_text or old.result_text,
        updated_at=now,
        finished_at=now if new_results or old.finished_at is None else old.finished_at,
    )
    return task, True
