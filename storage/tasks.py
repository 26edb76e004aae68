"""Tasks and their event log: `apply` is the one place that records what was learnt."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.kie.failures import explain_failure
from bot.kie.products import FAMILIES, PRODUCTS
from bot.task import Applied, State, Task, TaskUpdate, Track, merge
from storage.database import Batched, Connection, Database, Row, lock
from storage.ledger import record_outcome
from storage.outbox import (
    PROGRESS_EVERY,
    enqueue_card_update,
    enqueue_news,
    enqueue_note,
    enqueue_progress,
    enqueue_root,
    root_key,
)
from storage.people import person_news
from storage.videos import queue_video

Clock = Callable[[], float]


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """The JSON text of `value` with sorted keys and no spaces: equal content, equal text."""
    return _CANONICAL.encode(value)


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event of the log: the update it recorded, and when it arrived (Unix seconds)."""

    update: TaskUpdate
    received_at: float


class TaskStore:
    """Tasks, the event log and the channels that follow each task.

    With `save_videos` (SLACK_SAVE_VIDEOS), a video that news brings to a task whose cards are
    out is queued, in the transaction that brings it, to be saved into the thread of every
    channel that follows the task. The videos a card shows when it is first posted are queued
    by the delivery as it posts it (`SavedVideos.queue`): a new task's callback writes no video
    rows, and a burst of them leaves no pile of videos waiting for their threads.
    """

    def __init__(
        self, db: Database, *, clock: Clock = time.time, save_videos: bool = False
    ) -> None:
        self._db = db
        self._clock = clock
        self._save_videos = save_videos
        #: Set whenever a committed transaction added outbox rows.
        self.outbox_ready = asyncio.Event()

    async def apply(self, update: TaskUpdate, *, channel: str | None = None) -> Applied:
        """Record `update` in one transaction: event row, task row and the Slack work it implies.

        `channel` (a callback route or the default channel) is used only when no channel follows
        the task yet. An update whose content was already stored is a duplicate and changes
        nothing. Returns after the commit.
        """
        body = canonical_json(update.raw)
        stored = _Update.of(update, body, channel, self._clock(), self._save_videos)
        if self._db.dialect == "postgresql":
            applied = await self._db.write(_first_news(stored))
        else:
            applied = await self._db.write(functools.partial(_first_news_sqlite, stored))
        if applied.queued:
            self.outbox_ready.set()
        return applied

    async def follow(
        self, family: str, task_id: str, channel: str, *, note: str | None = None
    ) -> bool:
        """Make `channel` follow a stored task (it gets the task's root message, and `note`,
        mrkdwn made by the bot, in its thread).

        Returns False when the channel already followed it.
        """
        now = self._clock()

        def write(conn: Connection) -> bool:
            if not _add_follower(conn, family, task_id, channel, now):
                return False
            enqueue_root(conn, family, task_id, channel, now)
            if note:
                enqueue_note(
                    conn, family, task_id, channel, f"followed:{family}:{task_id}", note, now
                )
            return True

        added = await self._db.write(write)
        if added:
            self.outbox_ready.set()
        return added

    async def asked(self, family: str, task_id: str) -> None:
        """Record that kie.ai just answered a question about the task.

        While the task runs, each following channel whose root is posted gets an update of it
        that shows the progress, at most once every `PROGRESS_EVERY` seconds.
        """
        now = self._clock()

        def write(conn: Connection) -> bool:
            row = conn.execute(
                "SELECT state, progress_at FROM tasks WHERE family = ? AND task_id = ?",
                (family, task_id),
            ).fetchone()
            if row is None:
                return False
            last = row["progress_at"]
            due = row["state"] == State.RUNNING.value and (
                last is None or now - last >= PROGRESS_EVERY
            )
            conn.execute(
                "UPDATE tasks SET polled_at = ?, progress_at = ? WHERE family = ? AND task_id = ?",
                (now, now if due else last, family, task_id),
            )
            if not due:
                return False
            rows = conn.execute(
                """SELECT channel FROM task_channels
                   WHERE family = ? AND task_id = ? AND root_ts IS NOT NULL""",
                (family, task_id),
            ).fetchall()
            for found in rows:
                enqueue_progress(conn, family, task_id, found["channel"], now)
            return bool(rows)

        if await self._db.write(write):
            self.outbox_ready.set()

    async def get(self, family: str, task_id: str) -> Task | None:
        row = await self._db.fetchone(
            "SELECT * FROM tasks WHERE family = ? AND task_id = ?", (family, task_id)
        )
        return _task(row) if row else None

    async def find(self, task_id: str) -> list[Task]:
        """Every stored task with this id (normally one), most recent first."""
        rows = await self._db.fetchall(
            # A task id alone, one family at a time: the primary key leads with the family.
            f"""SELECT * FROM tasks WHERE family IN ({", ".join("?" * len(FAMILIES))})
                AND task_id = ? ORDER BY updated_at DESC""",
            (*FAMILIES, task_id),
        )
        return [_task(row) for row in rows]

    async def for_channel(self, channel: str, limit: int = 10) -> list[Task]:
        """The tasks `channel` follows, the most recently followed first (read through the
        channel's index, however many tasks it follows)."""
        rows = await self._db.fetchall(
            """SELECT t.* FROM task_channels c JOIN tasks t
                 ON t.family = c.family AND t.task_id = c.task_id
               WHERE c.channel = ? ORDER BY c.followed_at DESC LIMIT ?""",
            (channel, limit),
        )
        return [_task(row) for row in rows]

    async def of_person(self, user: str, *, running: bool, limit: int = 10) -> list[Placed]:
        """The tasks `user` started from Slack that run now (oldest first), or that ended (most
        recent first), each with the first channel that follows it and its root there."""
        order = "t.created_at" if running else "t.updated_at DESC"
        first = """SELECT c.{} FROM task_channels c WHERE c.family = t.family
                   AND c.task_id = t.task_id ORDER BY c.followed_at LIMIT 1"""
        rows = await self._db.fetchall(
            f"""SELECT t.*, ({first.format("channel")}) AS first_channel,
                       ({first.format("root_ts")}) AS first_root
                FROM tasks t WHERE t.requested_by = ? AND t.state {"=" if running else "!="} ?
                ORDER BY {order} LIMIT ?""",
            (user, State.RUNNING.value, limit),
        )
        return [Placed(_task(row), row["first_channel"], row["first_root"]) for row in rows]

    async def event(self, event_id: int) -> RecordedEvent | None:
        """One event of the log, as the update it recorded and when it arrived."""
        row = await self._db.fetchone("SELECT * FROM events WHERE id = ?", (event_id,))
        if row is None:
            return None
        return RecordedEvent(event_update(row), float(row["received_at"]))

    async def ping(self, *, write: bool = False) -> None:
        """Raise `StoreUnavailable` unless the database answers a read (and with `write`, takes
        an empty write transaction: reads may pass while writes do not, e.g. a locked SQLite)."""
        await self._db.fetchone("SELECT 1")
        if write:
            await self._db.write(lambda conn: None)


@dataclass(frozen=True, slots=True)
class Placed:
    """A task and where it is: the first channel that follows it, and its root's ts there
    (None while the root is not posted)."""

    task: Task
    channel: str | None
    root_ts: str | None


class BesideTasks:
    """A store whose writes go with the tasks': the same database and clock, and the task
    store's `outbox_ready` to set when a write queued Slack work."""

    def __init__(self, db: Database, tasks: TaskStore, *, clock: Clock = time.time) -> None:
        self._db = db
        self._tasks = tasks
        self._clock = clock


@dataclass(frozen=True)
class _Update:
    """An update ready to store, its rows made before the transaction: its event, and its
    task as it stands when this is the task's first news."""

    update: TaskUpdate
    channel: str | None
    now: float
    save_videos: bool
    family: str
    event: tuple[Any, ...]
    task: Task
    task_row: tuple[Any, ...]

    @classmethod
    def of(
        cls, update: TaskUpdate, body: str, channel: str | None, now: float, save_videos: bool
    ) -> _Update:
        family = PRODUCTS[update.product].family
        content_hash = hashlib.sha256(body.encode()).hexdigest()
        videos, images = _json_list(update.result_urls), _json_list(update.image_urls)
        event = _event_row(family, update, body, content_hash, videos, images, now)
        task, _ = merge(None, update, now, family)
        task_row = _task_row(family, task, videos, images)
        return cls(update, channel, now, save_videos, family, event, task, task_row)


def _apply(
    update: TaskUpdate,
    body: str,
    channel: str | None,
    now: float,
    conn: Connection,
    *,
    save_videos: bool = False,
) -> Applied:
    """Record `update` within the caller's write transaction."""
    stored = _Update.of(update, body, channel, now, save_videos)
    if getattr(conn, "dialect", "sqlite") == "postgresql":
        return _first_news(stored)(conn)
    return _first_news_sqlite(stored, conn)


def _first_news_sqlite(stored: _Update, conn: Connection) -> Applied:
    """SQLite: the update as a first news, statement by statement (no round trips to save)."""
    # Most updates are the first news of a task: the event goes in as news and the task row
    # after it, with no read; only a task that is stored already is read back and merged.
    event_id = _insert_event(conn, stored.event)
    new = event_id is not None and _insert_task(conn, stored.task_row)
    if new and stored.channel is not None:
        family, task_id, channel, now = (
            stored.family,
            stored.update.task_id,
            stored.channel,
            stored.now,
        )
        _add_follower(conn, family, task_id, channel, now)
        enqueue_root(conn, family, task_id, channel, now)  # it queues the videos
    return _stored(stored, conn, event_id, new)


def _first_news(stored: _Update) -> Batched[Applied]:
    """PostgreSQL: for a new task, `_insert_task`, `_insert_event` and, given a channel,
    `_add_follower` and `enqueue_root` as one statement (`_FIRST_NEWS`); a task stored before
    then has its event inserted and its news merged. Alone, the statement runs outside a
    transaction (one round trip for a new task); a group of writes sends its callbacks'
    statements together (`Batched`)."""
    channel = stored.channel
    root = None if channel is None else root_key(stored.family, stored.update.task_id, channel)
    params = (*stored.task_row, channel, stored.now, root, *stored.event[2:])

    def settled(row: Row) -> Applied | None:
        return _new_task(stored) if row[1] else None

    def then(conn: Connection, row: Row) -> Applied:
        if row[1]:
            return _new_task(stored)
        return _stored(stored, conn, _insert_event(conn, stored.event), new=False)

    return Batched(_FIRST_NEWS, params, then, settled)


def _new_task(stored: _Update) -> Applied:
    followers = () if stored.channel is None else (stored.channel,)
    return Applied(False, True, stored.task, followers, queued=bool(followers))


def _stored(stored: _Update, conn: Connection, event_id: int | None, new: bool) -> Applied:
    """What the update did, once its event (`event_id`, None for a duplicate) and, when `new`,
    its task, follower and root post are written; a task stored before is merged here."""
    update, channel, now, family = stored.update, stored.channel, stored.now, stored.family
    if event_id is None:
        return Applied(duplicate=True)
    if new:
        return _new_task(stored)
    # Replicas merge one task's news in turn. A new task needs no lock: a replica inserting
    # the same task waits for this transaction on the key, then merges here.
    lock(conn, f"task:{family}:{update.task_id}")
    old = _select_task(conn, family, update.task_id)
    assert old is not None  # the insert just met its row
    task, news = merge(old, update, now)
    if not news:
        conn.execute("UPDATE events SET news = 0 WHERE id = ?", (event_id,))
    elif update.state.is_final:  # a start from Slack learns its outcome (the ledger)
        _record_outcome(conn, family, update)
    if task is not old:
        _upsert_task(conn, family, task)
    if news and old.requested_by:  # started from Slack: its Home tab, and a DM at the end
        ended = task.state.is_final and not old.state.is_final
        person_news(conn, family, update.task_id, old.requested_by, ended=ended, now=now)
    following = conn.execute(  # a task stored without a channel has no followers yet
        "SELECT channel FROM task_channels WHERE family = ? AND task_id = ?",
        (family, update.task_id),
    ).fetchall()
    channels = tuple(row["channel"] for row in following)
    if not channels and channel is not None:
        _add_follower(conn, family, update.task_id, channel, now)
        enqueue_root(conn, family, update.task_id, channel, now)  # it queues the videos
        return Applied(False, news, task, (channel,), queued=True)
    if news:
        known = old.result_urls
        brought = [url for url in task.result_urls if url not in known]
        # A task still running that moved a stage on (Suno's lyrics, its first track) changes
        # its root in place; a final answer also gets a reply in the thread.
        staged = task.state is State.RUNNING
        for follower in channels:
            if staged:
                key = f"stage:{event_id}"
                enqueue_card_update(conn, family, update.task_id, follower, key, now)
            else:
                enqueue_news(conn, family, update.task_id, follower, event_id, now)
            if stored.save_videos:  # after the reply that announces them
                for url in brought:
                    reply = None if staged else event_id
                    queue_video(conn, family, update.task_id, follower, url, reply, now)
    return Applied(False, news, task, channels, queued=news and bool(channels))


def _record_outcome(conn: Connection, family: str, update: TaskUpdate) -> None:
    heading = None
    if update.state is State.FAILED:
        heading = explain_failure(update.product, update.code, update.message).heading
    outcome = update.state.value
    record_outcome(conn, family, update.task_id, update.product, outcome, heading, update.credits)


def _select_task(conn: Connection, family: str, task_id: str) -> Task | None:
    row = conn.execute(
        "SELECT * FROM tasks WHERE family = ? AND task_id = ?", (family, task_id)
    ).fetchone()
    return _task(row) if row else None


_INSERT_EVENT = """INSERT INTO events (family, task_id, product, source, content_hash, body,
                                      state, result_urls, image_urls, code, message, prompt,
                                      news, received_at, model, credits, media, stage, tracks,
                                      result_text)
                  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                  ON CONFLICT (product, task_id, source, content_hash) DO NOTHING
                  RETURNING id"""


def _insert_event(conn: Connection, event: tuple[Any, ...]) -> int | None:
    """Log an update as news; its event id, or None when the same content is logged already."""
    row = conn.execute(_INSERT_EVENT, event).fetchone()
    return int(row[0]) if row else None


def _event_row(
    family: str,
    update: TaskUpdate,
    body: str,
    content_hash: str,
    videos: str,
    images: str,
    now: float,
) -> tuple[Any, ...]:
    return (
        family,
        update.task_id,
        update.product,
        update.source,
        content_hash,
        body,
        update.state.value,
        videos,
        images,
        update.code,
        update.message,
        update.prompt,
        1,
        now,
        update.model,
        update.credits,
        update.media,
        update.stage,
        _json_tracks(update.tracks),
        update.result_text,
    )


_INSERT_TASK = """INSERT INTO tasks (family, task_id, product, state, result_urls, image_urls,
                                    code, message, prompt, source, created_at, updated_at,
                                    finished_at, model, credits, media, stage, tracks,
                                    result_text)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
_INSERT_NEW_TASK = _INSERT_TASK + " ON CONFLICT (family, task_id) DO NOTHING"
_UPSERT_TASK = (
    _INSERT_TASK
    + """ ON CONFLICT (family, task_id) DO UPDATE SET
               state = excluded.state, result_urls = excluded.result_urls,
               image_urls = excluded.image_urls, code = excluded.code,
               message = excluded.message, prompt = excluded.prompt, source = excluded.source,
               updated_at = excluded.updated_at, finished_at = excluded.finished_at,
               model = excluded.model, credits = excluded.credits, media = excluded.media,
               stage = excluded.stage, tracks = excluded.tracks,
               result_text = excluded.result_text"""
)


def _insert_task(conn: Connection, task: tuple[Any, ...]) -> bool:
    """Store a task that is not stored yet; False, writing nothing, when it is."""
    return conn.execute(_INSERT_NEW_TASK, task).rowcount > 0


#: A new task's first news on PostgreSQL, in one statement that is atomic on its own: the task
#: when it is new, and then its event and, given a channel, its follower and root post. For a
#: task stored before it writes nothing (its event goes in with the merge). Answers the event's
#: id and whether the task was new. One statement for every callback, with or without a
#: channel, so that a group of them goes to PostgreSQL as one pipeline (`Batched`).
_FIRST_NEWS = f"""WITH task AS ({_INSERT_NEW_TASK} RETURNING family, task_id),
     given AS (SELECT ?::text AS channel, ?::double precision AS at, ?::text AS root_key),
     event AS (
         INSERT INTO events (family, task_id, product, source, content_hash, body, state,
                             result_urls, image_urls, code, message, prompt, news, received_at,
                             model, credits, media, stage, tracks, result_text)
         SELECT family, task_id, ?::text, ?::text, ?::text, ?::text, ?::text, ?::text, ?::text,
                ?::integer, ?::text, ?::text, ?::integer, ?::double precision, ?::text,
                ?::double precision, ?::text, ?::text, ?::text, ?::text
         FROM task
         ON CONFLICT (product, task_id, source, content_hash) DO NOTHING
         RETURNING id),
     follower AS (
         INSERT INTO task_channels (family, task_id, channel, followed_at)
         SELECT family, task_id, channel, at FROM task, given WHERE channel IS NOT NULL
         ON CONFLICT DO NOTHING),
     root AS (
         INSERT INTO outbox (key, kind, channel, family, task_id, next_attempt_at, created_at)
         SELECT root_key, 'root', channel, family, task_id, at, at
         FROM task, given WHERE channel IS NOT NULL
         ON CONFLICT (key) DO NOTHING)
SELECT (SELECT id FROM event), EXISTS (SELECT 1 FROM task)"""


def _upsert_task(conn: Connection, family: str, task: Task) -> None:
    videos, images = _json_list(task.result_urls), _json_list(task.image_urls)
    conn.execute(_UPSERT_TASK, _task_row(family, task, videos, images))


def _task_row(family: str, task: Task, videos: str, images: str) -> tuple[Any, ...]:
    return (
        family,
        task.task_id,
        task.product,
        task.state.value,
        videos,
        images,
        task.code,
        task.message,
        task.prompt,
        task.source,
        task.created_at,
        task.updated_at,
        task.finished_at,
        task.model,
        task.credits,
        task.media,
        task.stage,
        _json_tracks(task.tracks),
        task.result_text,
    )


def _json_tracks(tracks: tuple[Track, ...]) -> str | None:
    return json.dumps([track.as_json() for track in tracks]) if tracks else None


def _tracks(value: str | None) -> tuple[Track, ...]:
    if not value:
        return ()
    read = (Track.from_json(item) for item in json.loads(value))
    return tuple(track for track in read if track is not None)


def _json_list(values: tuple[str, ...]) -> str:
    return json.dumps(values) if values else "[]"


def _add_follower(
    conn: Connection,
    family: str,
    task_id: str,
    channel: str,
    now: float,
    *,
    thread_ts: str | None = None,
) -> bool:
    cursor = conn.execute(
        """INSERT INTO task_channels (family, task_id, channel, followed_at, thread_ts)
           VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
        (family, task_id, channel, now, thread_ts),
    )
    return cursor.rowcount > 0


def _shared_fields(row: Row) -> dict[str, Any]:
    """The columns that tasks and events both keep, read back into Python values."""
    return {
        "product": row["product"],
        "task_id": row["task_id"],
        "state": State(row["state"]),
        "result_urls": tuple(json.loads(row["result_urls"])),
        "image_urls": tuple(json.loads(row["image_urls"])),
        "code": row["code"],
        "message": row["message"],
        "prompt": row["prompt"],
        "source": row["source"],
        "model": row["model"],
        "credits": row["credits"],
        "media": row["media"],
        "stage": row["stage"],
        "tracks": _tracks(row["tracks"]),
        "result_text": row["result_text"],
    }


def _task(row: Row) -> Task:
    return Task(
        **_shared_fields(row),
        family=row["family"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        polled_at=row["polled_at"],
        requested_by=row["requested_by"],
        request=row["request"],
        origin=row["origin"],
        origin_link=row["origin_link"],
    )


def event_update(row: Row) -> TaskUpdate:
    """The `TaskUpdate` an event row recorded."""
    return TaskUpdate(**_shared_fields(row), raw=json.loads(row["body"]))


@dataclass(frozen=True, slots=True)
class Started:
    """How a task was started from Slack: who asked (a user id), the request as JSON, and the
    task it repeats with a link to that task's message, when it is a repeat."""

    requested_by: str
    request: str
    origin: str | None = None
    origin_link: str | None = None


def record_started(
    conn: Connection,
    update: TaskUpdate,
    channel: str,
    now: float,
    started: Started,
    *,
    thread: tuple[str, str] | None = None,
    note: str | None = None,
    under: str | None = None,
) -> Applied:
    """Record a task that was just started from Slack, in the caller's write transaction.

    The task is stored from `update` (running) with who asked and what, and `channel` follows
    it: with a root message of its own (posted into the thread of the message `under`, when
    given: a message shortcut), or, with `thread` (another task's id and its root's ts in
    `channel`), in that task's thread, starting with `note` (mrkdwn made by the bot). The other
    task's root keeps showing that task. The person's Home tab is published again.
    """
    family = PRODUCTS[update.product].family
    applied = _apply(update, canonical_json(update.raw), None, now, conn)
    conn.execute(
        """UPDATE tasks SET requested_by = COALESCE(requested_by, ?),
               request = COALESCE(request, ?), origin = COALESCE(origin, ?),
               origin_link = COALESCE(origin_link, ?)
           WHERE family = ? AND task_id = ?""",
        (
            started.requested_by,
            started.request,
            started.origin,
            started.origin_link,
            family,
            update.task_id,
        ),
    )
    if thread is None:
        if _add_follower(conn, family, update.task_id, channel, now, thread_ts=under):
            enqueue_root(conn, family, update.task_id, channel, now)
    else:
        origin, root_ts = thread
        added = conn.execute(
            """INSERT INTO task_channels (family, task_id, channel, root_ts, followed_at,
                                          thread_of)
               VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
            (family, update.task_id, channel, root_ts, now, origin),
        ).rowcount
        if added and note:
            key = f"started:{family}:{update.task_id}"
            enqueue_note(conn, family, update.task_id, channel, key, note, now)
    # After the root: a direct message (a callback that came first) follows it in the channel.
    ended = applied.task is not None and applied.task.state.is_final
    person_news(conn, family, update.task_id, started.requested_by, ended=ended, now=now)
    return applied
