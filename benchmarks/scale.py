"""Scale benchmark: the bot on a store of 1,000,000 tasks: its memory, `/kie list` and `/kie status`
over HTTP, and the store's scans timed directly.

Run:  .venv/bin/python benchmarks/scale.py [--tasks 1000000] [--postgres URL] [--explain]

The store: SQLite in a temporary folder, or with `--postgres URL` a fresh database that this
script creates on that server and drops at the end. The bot's own `storage.backends.open_database`
creates and migrates it; then it is filled in one pass over the tasks, in transactions of
`CHUNK` tasks (executemany on SQLite, COPY on PostgreSQL, which is then vacuumed and analysed as
autovacuum would have done on a server that has run for a while; SQLite gets no ANALYZE, as the
bot runs none). The task ids are 32 random-looking hex digits, as kie.ai's are, so every index on
them is filled in random order as in a store that has run for a year:

  tasks          `--tasks` over the last 365 days, evenly; products and outcomes as a team might
                 have them (Veo most, then Market, Runway, Suno, images; 1 in 10 failed), each
                 row made from a real callback fixture (tests/fixtures) through the product's
                 own parser and `bot.task.merge`; 4 in 10 started from Slack (who asked, what);
                 those of the last 5 minutes still running (polled when started from Slack)
  task_channels  one follower per task over `CHANNELS` channels, Zipf-distributed (the busiest
                 channel follows about 1 task in 6); 1 in 50 tasks also shared into a second one
  events         one per task (its latest callback) for the tasks of the last `RETENTION_DAYS`
                 days only: KIE_RETENTION_DAYS (default 90) deletes older callback events, so a
                 store kept that way never holds more; older tasks keep their row (`/kie status`
                 still answers from it)
  outbox         the rows a store kept that way holds: every post and file row of the tasks
                 of the last `RETENTION_DAYS` days, done (older finished rows are deleted with
                 the events); a failed root for 3 tasks in 1,000 of any age (failed rows are
                 kept for an operator); a backlog as after a Slack outage: the last
                 `--tasks`/2,000 tasks' posts and files still pending; and `--tasks`/1,000 file
                 rows of tasks whose thread is posted, waiting an hour to be retried (their
                 file host in trouble)

Not filled: saved_videos, the usage ledger, routes, submissions (no timed path reads them).

Measured:
  in process   each scan of the store, called through the bot's store classes on the bot's own
               database object (so with its thread hop), before the bot starts: what the
               delivery scans (`Outbox.pending_channels`, `head`, `video_channels`,
               `video_head`, `last_event_id`), what `/kie list` and `/kie status` read
               (`TaskStore.for_channel`, `TaskStore.find`), and, without a target, the scans
               that run on a timer: the poller's claim of due polls (`PollSchedule.due`, every
               5 s with a kie.ai key, a write transaction) and the outbox counts of GET
               /metrics (`Outbox.stats`); p50/p99 over many calls
  over HTTP    `kie-slack serve` (`python -m bot serve`, console mode, with a signing secret,
               and a kie.ai key whose API address answers nothing, so the poller runs its scans;
               SLACK_SAVE_VIDEOS=off, as the fixtures' files are example.com's: nothing leaves
               this machine) on that store; signed `/kie` slash commands to
               POST /slack/events, one at a time, each timed from the request to its whole
               answer (the answer comes in the HTTP acknowledgement): `/kie help` (no store read:
               the HTTP, signature and Bolt cost), `/kie list` in the busiest and a quiet
               channel, `/kie status` of a finished task and of a task older than the events
               kept; p50/p99. On two CPUs or more the bot runs on one CPU and this script on
               another (taskset); a PostgreSQL server runs where it is
  memory       the bot's VmRSS once it answers /healthz and after the commands, and its peak
               (VmHWM) at the end, from /proc/PID/status

The pending backlog starts draining when the bot starts (console mode prints each post): the
commands are timed while the delivery works through it.

Targets (issue 18, point 6): the bot's resident memory under 100 MB (its peak, VmHWM); `/kie
list`, `/kie status` and the delivery's and commands' scans under 10 ms (judged on p99).
`--explain` prints the query plan of every scan (EXPLAIN QUERY PLAN; on PostgreSQL EXPLAIN
ANALYZE, in a transaction rolled back); a scan over its target gets its plan printed anyway.
A measurement, not a test: exits 0 unless the PostgreSQL database could not be made or the bot
not started (exit 2).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import itertools
import json
import os
import random
import shutil
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import psycopg  # noqa: E402
from ingest import bot_env  # noqa: E402
from postgres_server import scratch_database  # noqa: E402
from processes import (  # noqa: E402
    HOST,
    Server,
    free_port,
    percentile,
    run_in_tempdir,
    start,
    stop,
    wait_ready,
)

from bot.kie.products import PRODUCTS  # noqa: E402
from bot.task import State, Task, TaskUpdate, merge  # noqa: E402
from storage.backends import open_database  # noqa: E402
from storage.database import Database  # noqa: E402
from storage.outbox import Outbox, video_key  # noqa: E402
from storage.polls import PollSchedule  # noqa: E402
from storage.tasks import TaskStore, canonical_json  # noqa: E402
from tests.conftest import signed_form_headers  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures"
DAY = 86400.0
SPAN_DAYS = 365
RETENTION_DAYS = 90
CHANNELS = 200
#: Tasks per transaction while the store is built.
CHUNK = 50_000
#: Tasks younger than this (seconds) are still running.
RUNNING_SECONDS = 300.0
SLACK_STARTED = 0.4
SHARED = 0.02
FAILED_ROOTS = 0.003
USERS = 50
SIGNING_SECRET = "scale-signing-secret-not-a-secret"
TARGET_RSS_MB = 100.0
TARGET_MS = 10.0
#: In process: calls per scan (fewer when a scan is slow: at most `BUDGET` seconds each).
CALLS = 400
WARMUP = 10
BUDGET = 20.0
#: The product mix: product, weight, success fixture, failure fixture.
MIX: tuple[tuple[str, float, str, str], ...] = (
    ("veo", 40, "callbacks/veo-success.json", "callbacks/veo-fail-400-content-policy.json"),
    ("market", 15, "market/callback-success.json", "market/callback-fail.json"),
    ("runway", 12, "callbacks/runway-success.json", "callbacks/runway-fail-500.json"),
    ("suno", 10, "callbacks/suno-complete.json", "callbacks/suno-fail-400-copyright.json"),
    ("4o-image", 8, "callbacks/4o-image-success.json", "callbacks/4o-image-fail-400.json"),
    (
        "flux-kontext",
        6,
        "callbacks/flux-kontext-success.json",
        "callbacks/flux-kontext-fail-400.json",
    ),
    ("mj", 5, "callbacks/mj-success.json", "callbacks/mj-fail-500.json"),
    ("aleph", 4, "callbacks/aleph-success.json", "callbacks/aleph-fail-400.json"),
)
FAILED_SHARE = 0.1

TASK_COLUMNS = (
    "family", "task_id", "product", "state", "result_urls", "image_urls", "code", "message",
    "prompt", "source", "created_at", "updated_at", "finished_at", "model", "credits", "media",
    "stage", "tracks", "result_text", "requested_by", "request", "next_poll_at", "poll_until",
)  # fmt: skip
EVENT_COLUMNS = (
    "id", "family", "task_id", "product", "source", "content_hash", "body", "state",
    "result_urls", "image_urls", "code", "message", "prompt", "news", "received_at", "model",
    "credits", "media", "stage", "tracks", "result_text",
)  # fmt: skip
FOLLOWER_COLUMNS = (
    "family", "task_id", "channel", "root_ts", "root_event_id", "followed_at", "thread_of",
)  # fmt: skip
OUTBOX_COLUMNS = (
    "id", "key", "kind", "channel", "family", "task_id", "event_id", "text", "status",
    "attempts", "next_attempt_at", "last_error", "created_at", "done_at", "unknown_errors",
    "retry_since",
)  # fmt: skip

Rows = dict[str, list[tuple[Any, ...]]]


# --------------------------------------------------------------------------- what is stored


@dataclass(frozen=True)
class Template:
    """One callback fixture, parsed: the columns its task and event rows get, by name."""

    family: str
    fixture_id: str
    body: str
    task: dict[str, Any]
    event: dict[str, Any]
    result_urls: tuple[str, ...]

    @property
    def succeeded(self) -> bool:
        return bool(self.task["state"] == State.SUCCEEDED.value)


def template(slug: str, fixture: str) -> Template:
    """The task and event columns of the fixture's callback as the bot stores them."""
    raw = json.loads((FIXTURES / fixture).read_text(encoding="utf-8"))
    update = PRODUCTS[slug].parse_callback(raw)
    family = PRODUCTS[slug].family
    task, _ = merge(None, update, 0.0, family)
    shared = shared_columns(task)
    event = shared | {"source": update.source, "news": 1}
    return Template(
        family, update.task_id, canonical_json(update.raw), shared, event, task.result_urls
    )


def shared_columns(task: Task | TaskUpdate) -> dict[str, Any]:
    """The columns tasks and events both have, as `storage.tasks` writes them."""
    return {
        "product": task.product,
        "state": task.state.value,
        "result_urls": json.dumps(task.result_urls) if task.result_urls else "[]",
        "image_urls": json.dumps(task.image_urls) if task.image_urls else "[]",
        "code": task.code,
        "message": task.message,
        "prompt": task.prompt,
        "source": task.source,
        "model": task.model,
        "credits": task.credits,
        "media": task.media,
        "stage": task.stage,
        "tracks": json.dumps([t.as_json() for t in task.tracks]) if task.tracks else None,
        "result_text": task.result_text,
    }


RUNNING = {
    "state": State.RUNNING.value,
    "result_urls": "[]",
    "image_urls": "[]",
    "code": None,
    "message": "",
    "credits": None,
    "stage": None,
    "tracks": None,
    "result_text": None,
}


def task_id(i: int) -> str:
    """Task `i`'s id: 32 hex digits that look random (two bijections of `i`, so all differ)."""
    mask = (1 << 64) - 1
    high = (i * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & mask
    return f"{high:016x}{(i * 0xC2B2AE3D27D4EB4F) & mask:016x}"


def channel_id(n: int) -> str:
    return f"C0SCALE{n:03d}"


@dataclass
class Plan:
    """Which task is what, decided up front (and seeded): every table is filled from this."""

    tasks: int
    now: float
    templates: list[Template]
    kinds: list[int]
    channels: list[int]
    slack: bytearray
    shared: dict[int, int]
    failed_roots: set[int]
    file_backlog: set[int]
    outbox_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def created(self, i: int) -> float:
        span = SPAN_DAYS * DAY
        return self.now - span + (i + 0.5) * span / self.tasks

    def first_after(self, age: float) -> int:
        """The first task created less than `age` seconds before `now`."""
        span = SPAN_DAYS * DAY
        return max(0, min(self.tasks, int((span - age) * self.tasks / span)))

    @property
    def first_event(self) -> int:
        return self.first_after(RETENTION_DAYS * DAY)

    @property
    def first_running(self) -> int:
        return min(self.first_after(RUNNING_SECONDS), self.tasks - 3)

    @property
    def first_pending(self) -> int:
        return self.tasks - max(10, self.tasks // 2000)

    def event_id(self, i: int) -> int | None:
        return i - self.first_event + 1 if i >= self.first_event else None

    def followers(self, i: int) -> list[int]:
        second = self.shared.get(i)
        return [self.channels[i]] if second is None else [self.channels[i], second]


def make_plan(tasks: int, seed: int) -> Plan:
    rng = random.Random(seed)
    templates: list[Template] = []
    weights: list[float] = []
    for slug, weight, success, failure in MIX:
        templates += [template(slug, success), template(slug, failure)]
        weights += [weight * (1 - FAILED_SHARE), weight * FAILED_SHARE]
    kinds = rng.choices(range(len(templates)), weights, k=tasks)
    zipf = [1 / (rank + 1) for rank in range(CHANNELS)]
    channels = rng.choices(range(CHANNELS), zipf, k=tasks)
    slack = bytearray(rng.random() < SLACK_STARTED for _ in range(tasks))
    shared = {
        i: (channels[i] + rng.randrange(1, CHANNELS)) % CHANNELS
        for i in rng.sample(range(tasks), int(tasks * SHARED))
    }
    plan = Plan(tasks, time.time(), templates, kinds, channels, slack, shared, set(), set())
    settled = range(plan.first_pending)
    plan.failed_roots = set(rng.sample(settled, int(len(settled) * FAILED_ROOTS)))
    posted = [
        i
        for i in range(plan.first_event, plan.first_pending)
        if templates[kinds[i]].succeeded and i not in plan.failed_roots
    ]
    plan.file_backlog = set(rng.sample(posted, min(len(posted), tasks // 1000)))
    return plan


# --------------------------------------------------------------------------- the rows


def chunk_rows(plan: Plan, first: int, last: int) -> Rows:
    """The rows of tasks `first` … `last - 1` in every table."""
    rows: Rows = {"tasks": [], "task_channels": [], "events": [], "outbox": []}
    for i in range(first, last):
        kind = plan.templates[plan.kinds[i]]
        tid = task_id(i)
        created = plan.created(i)
        running = i >= plan.first_running
        finished = None if running else created + 60 + (i % 240)
        rows["tasks"].append(task_row(plan, i, kind, tid, created, finished))
        event = plan.event_id(i)
        if event is not None:
            rows["events"].append(event_row(kind, event, tid, finished or created, running))
        for channel in plan.followers(i):
            rows["task_channels"].append(follower_row(plan, i, kind, tid, channel, event))
            rows["outbox"] += outbox_rows(plan, i, kind, tid, channel, event, finished)
    return rows


def task_row(
    plan: Plan, i: int, kind: Template, tid: str, created: float, finished: float | None
) -> tuple[Any, ...]:
    columns = kind.task | ({} if finished is not None else RUNNING)
    slack = bool(plan.slack[i])
    polled = slack and finished is None
    values = columns | {
        "family": kind.family,
        "task_id": tid,
        "created_at": created,
        "updated_at": finished or created,
        "finished_at": finished,
        "requested_by": f"U0SCALE{i % USERS:02d}" if slack else None,
        "request": json.dumps({"product": columns["product"], "prompt": columns["prompt"]})
        if slack
        else None,
        "next_poll_at": plan.now + 30 if polled else None,
        "poll_until": plan.now + DAY if polled else None,
    }
    return tuple(values[name] for name in TASK_COLUMNS)


def event_row(kind: Template, event: int, tid: str, at: float, running: bool) -> tuple[Any, ...]:
    body = kind.body.replace(kind.fixture_id, tid)
    values = (
        kind.event
        | (RUNNING if running else {})
        | {
            "id": event,
            "family": kind.family,
            "task_id": tid,
            "content_hash": hashlib.sha256(body.encode()).hexdigest(),
            "body": body,
            "received_at": at,
        }
    )
    return tuple(values[name] for name in EVENT_COLUMNS)


def root_posted(plan: Plan, i: int) -> bool:
    return i < plan.first_pending and i not in plan.failed_roots


def follower_row(
    plan: Plan, i: int, kind: Template, tid: str, channel: int, event: int | None
) -> tuple[Any, ...]:
    created = plan.created(i)
    root_ts = f"{created + 2:.6f}" if root_posted(plan, i) else None
    shown = event if root_ts is not None else None
    return (kind.family, tid, channel_id(channel), root_ts, shown, created, None)


def outbox_rows(
    plan: Plan,
    i: int,
    kind: Template,
    tid: str,
    channel: int,
    event: int | None,
    finished: float | None,
) -> list[tuple[Any, ...]]:
    """The outbox rows of task `i` in `channel` that the store still keeps."""
    created = plan.created(i)
    thread = Thread(plan, kind.family, tid, channel_id(channel))
    root = f"root:{kind.family}:{tid}:{thread.channel}"
    if i in plan.failed_roots:
        return [thread.row(root, "root", "failed", created, error="channel_not_found")]
    if i < plan.first_event:  # finished rows are deleted with the events
        return []
    status = "pending" if i >= plan.first_pending else "done"
    made = [thread.row(root, "root", status, created)]
    if plan.slack[i] and finished is not None and event is not None:
        made += [
            thread.row(f"{post}:{event}:{thread.channel}", post, status, finished, event=event)
            for post in ("reply", "update")
        ]
    for url in kind.result_urls if finished is not None else ():
        key = video_key(kind.family, tid, thread.channel, url)
        if i in plan.file_backlog:
            late = {"error": "download timed out", "due": 3600.0}
            made.append(thread.row(key, "video", "pending", created, text=url, **late))
        else:
            made.append(thread.row(key, "video", status, created, text=url))
    return made


@dataclass(frozen=True)
class Thread:
    """A task's thread in one channel: where its outbox rows go."""

    plan: Plan
    family: str
    task_id: str
    channel: str

    def row(
        self,
        key: str,
        kind: str,
        status: str,
        at: float,
        *,
        event: int | None = None,
        text: str | None = None,
        error: str | None = None,
        due: float = 0.0,
    ) -> tuple[Any, ...]:
        """The outbox row under `key`, written at `at`; a pending one is due `due` s from now."""
        pending = status == "pending"
        tries = 3 if error else 0 if pending else 1
        values = {
            "id": next(self.plan.outbox_ids),
            "key": key,
            "kind": kind,
            "channel": self.channel,
            "family": self.family,
            "task_id": self.task_id,
            "event_id": event,
            "text": text,
            "status": status,
            "attempts": tries,
            "next_attempt_at": self.plan.now + due if pending else at,
            "last_error": error,
            "created_at": at,
            "done_at": None if pending else at + 1.5,
            "unknown_errors": 0,
            "retry_since": None,
        }
        return tuple(values[name] for name in OUTBOX_COLUMNS)


# --------------------------------------------------------------------------- loading


class Loader(Protocol):
    """Writes rows into the migrated schema, in the bot's tables."""

    def insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None: ...

    def commit(self) -> None: ...

    def finish(self) -> None: ...


class SqliteLoader:
    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.execute("PRAGMA synchronous=OFF")
        self._conn.execute(
            "PRAGMA cache_size=-1000000"
        )  # 1 GB: random index inserts stay in memory
        self._conn.execute("BEGIN")

    def insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" * len(columns))
        self._conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def commit(self) -> None:
        self._conn.execute("COMMIT")
        self._conn.execute("BEGIN")

    def finish(self) -> None:
        self._conn.execute("COMMIT")
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._conn.close()


class PostgresLoader:
    def __init__(self, url: str) -> None:
        self._conn = psycopg.connect(url)

    def insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        with (
            self._conn.cursor() as cursor,
            cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def commit(self) -> None:
        self._conn.commit()

    def finish(self) -> None:
        for table in ("events", "outbox"):  # ids were given: the identity goes on after them
            self._conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"
            )
        self._conn.commit()
        self._conn.autocommit = True
        self._conn.execute("VACUUM ANALYZE")
        self._conn.close()


TABLES = (
    ("tasks", TASK_COLUMNS),
    ("task_channels", FOLLOWER_COLUMNS),
    ("events", EVENT_COLUMNS),
    ("outbox", OUTBOX_COLUMNS),
)


@dataclass
class Built:
    seconds: float
    counts: Counter[str]
    size_mb: float


def fill(plan: Plan, loader: Loader) -> Counter[str]:
    counts: Counter[str] = Counter()
    for first in range(0, plan.tasks, CHUNK):
        rows = chunk_rows(plan, first, min(plan.tasks, first + CHUNK))
        for table, columns in TABLES:
            loader.insert(table, columns, rows[table])
            counts[table] += len(rows[table])
        loader.commit()
        print(f"  {min(plan.tasks, first + CHUNK):>9,} tasks stored", end="\r", flush=True)
    loader.finish()
    print()
    return counts


async def build(plan: Plan, store: Store) -> Built:
    started = time.monotonic()
    db = await open_database(store.path, store.postgres)  # the bot's migrations
    await db.close()
    loader: Loader = PostgresLoader(store.postgres) if store.postgres else SqliteLoader(store.path)
    counts = fill(plan, loader)
    return Built(time.monotonic() - started, counts, store.size_mb())


# --------------------------------------------------------------------------- the store


@dataclass(frozen=True)
class Store:
    """Where the store is: a SQLite file, or a PostgreSQL database (`postgres`)."""

    path: Path
    postgres: str | None = None

    @property
    def database_url(self) -> str:
        return self.postgres or f"sqlite:///{self.path}"

    def version(self) -> str:
        if self.postgres is None:
            return f"SQLite {sqlite3.sqlite_version}"
        with psycopg.connect(self.postgres) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return f"PostgreSQL {row[0] if row else '?'}"

    def size_mb(self) -> float:
        if self.postgres is None:
            return (
                sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*")) / 2**20
            )
        with psycopg.connect(self.postgres) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return float(row[0] if row else 0) / 2**20


# --------------------------------------------------------------------------- what is asked


@dataclass(frozen=True)
class Subjects:
    """The channels and tasks the scans and commands ask about."""

    busy: str
    quiet: str
    old: str
    recent_family: str
    recent: str
    old_family: str
    pending_channel: str
    idle_channel: str
    file_channel: str


def subjects(plan: Plan) -> Subjects:
    counts = Counter(plan.channels)
    quiet = min(counts, key=lambda c: (counts[c], c))
    pending = Counter(plan.channels[i] for i in range(plan.first_pending, plan.tasks))
    files = Counter(plan.channels[i] for i in plan.file_backlog)
    idle = next(c for c in range(CHANNELS) if c not in pending)
    recent = next(
        i
        for i in range(plan.first_pending - 1, 0, -1)
        if plan.templates[plan.kinds[i]].succeeded and plan.slack[i]
    )
    old = next(i for i in range(plan.first_event // 2, plan.tasks) if i not in plan.shared)
    return Subjects(
        busy=channel_id(counts.most_common(1)[0][0]),
        quiet=channel_id(quiet),
        old=task_id(old),
        recent_family=plan.templates[plan.kinds[recent]].family,
        recent=task_id(recent),
        old_family=plan.templates[plan.kinds[old]].family,
        pending_channel=channel_id(pending.most_common(1)[0][0]),
        idle_channel=channel_id(idle),
        file_channel=channel_id(files.most_common(1)[0][0]) if files else channel_id(0),
    )


@dataclass
class Measured:
    """Something timed again and again (seconds each); `target`: whether 10 ms applies."""

    name: str
    target: bool
    times: list[float] = field(default_factory=list)

    def p(self, q: float) -> float:
        """The `q` quantile in milliseconds."""
        return percentile(self.times, q) * 1000

    @property
    def met(self) -> bool:
        return self.p(0.99) <= TARGET_MS

    @property
    def remarks(self) -> str:
        return ""


@dataclass
class Timed(Measured):
    """A scan of the store, timed in process."""

    note: str = ""
    #: The query plans of its statements, when they are shown.
    plans: list[str] = field(default_factory=list)

    @property
    def remarks(self) -> str:
        return f"  ({self.note})" if self.note else ""


Call = Callable[[], Awaitable[object]]


def scans(db: Database, who: Subjects) -> list[tuple[str, Call, bool, str]]:
    """Each scan: its name, the call, whether the 10 ms target applies, and a note."""
    tasks, outbox = TaskStore(db), Outbox(db)
    schedule = PollSchedule(db, tasks)
    return [
        ("TaskStore.for_channel busiest, 10", lambda: tasks.for_channel(who.busy, 10), True, ""),
        ("TaskStore.for_channel quiet, 10", lambda: tasks.for_channel(who.quiet, 10), True, ""),
        ("TaskStore.find recent task", lambda: tasks.find(who.recent), True, ""),
        ("TaskStore.find unknown id", lambda: tasks.find("f" * 32), True, ""),
        ("Outbox.pending_channels", outbox.pending_channels, True, ""),
        ("Outbox.head busiest backlog", lambda: outbox.head(who.pending_channel), True, ""),
        ("Outbox.head nothing pending", lambda: outbox.head(who.idle_channel), True, ""),
        ("Outbox.video_channels", outbox.video_channels, True, ""),
        ("Outbox.video_head most files", lambda: outbox.video_head(who.file_channel), True, ""),
        (
            "Outbox.last_event_id recent",
            lambda: outbox.last_event_id(who.recent_family, who.recent),
            True,
            "",
        ),
        (
            "Outbox.last_event_id no events",
            lambda: outbox.last_event_id(who.old_family, who.old),
            True,
            "",
        ),
        ("PollSchedule.due (every 5 s)", schedule.due, False, "a write transaction"),
        ("Outbox.stats (GET /metrics)", outbox.stats, False, ""),
    ]


async def time_call(call: Call, calls: int) -> list[float]:
    """Seconds per call, after `WARMUP` calls: `calls` of them, fewer (at least 5) if they
    take more than `BUDGET` seconds together."""
    for _ in range(WARMUP):
        await call()
    times: list[float] = []
    deadline = time.monotonic() + BUDGET
    while len(times) < calls and (len(times) < 5 or time.monotonic() < deadline):
        began = time.perf_counter()
        await call()
        times.append(time.perf_counter() - began)
    return times


async def measure_scans(store: Store, who: Subjects, args: argparse.Namespace) -> list[Timed]:
    """Each scan timed; the plans of those over target (of all with --explain), taken now,
    before the bot works on the store."""
    db = await open_database(store.path, store.postgres)
    try:
        measured = []
        for name, call, target, note in scans(db, who):
            timed = Timed(name, target, await time_call(call, args.calls), note)
            if args.explain or (timed.target and not timed.met):
                timed.plans = explain(store, await recorded(db, call))
            measured.append(timed)
            print(f"  {name:<36} p50 {timed.p(0.5):8.3f} ms  p99 {timed.p(0.99):8.3f} ms")
        return measured
    finally:
        await db.close()


class Recording:
    """A connection that notes each statement it runs (for EXPLAIN)."""

    def __init__(self, conn: Any, noted: list[tuple[str, tuple[Any, ...]]]) -> None:
        self._conn = conn
        self._noted = noted

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        if sql.split(None, 1)[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK"):
            self._noted.append((sql, tuple(parameters)))
        return self._conn.execute(sql, parameters)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


async def recorded(db: Database, call: Call) -> list[tuple[str, tuple[Any, ...]]]:
    """The statements `call` runs, each once, with their parameters (it is called once more)."""
    noted: list[tuple[str, tuple[Any, ...]]] = []
    methods = {name: getattr(db, name) for name in ("run", "fetchall", "fetchone")}

    async def run(fn: Callable[[Any], Any]) -> Any:
        return await methods["run"](lambda conn: fn(Recording(conn, noted)))

    async def fetchall(sql: str, params: Sequence[Any] = ()) -> Any:
        noted.append((sql, tuple(params)))
        return await methods["fetchall"](sql, params)

    async def fetchone(sql: str, params: Sequence[Any] = ()) -> Any:
        noted.append((sql, tuple(params)))
        return await methods["fetchone"](sql, params)

    db.run, db.fetchall, db.fetchone = run, fetchall, fetchone  # type: ignore[method-assign]
    try:
        await call()
    finally:
        for name, method in methods.items():
            setattr(db, name, method)
    return list(dict.fromkeys(noted))


def explain(store: Store, statements: list[tuple[str, tuple[Any, ...]]]) -> list[str]:
    """The plan of each statement: SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN ANALYZE
    (in a transaction that is rolled back)."""
    lines: list[str] = []
    for sql, params in statements:
        lines.append("    " + " ".join(sql.split())[:300])
        if store.postgres is None:
            with contextlib.closing(sqlite3.connect(store.path)) as conn:
                plan = conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
            lines += [f"      {detail}" for _, _, _, detail in plan]
        else:
            text = sql.replace("%", "%%").replace("?", "%s")
            with psycopg.connect(store.postgres) as conn:
                plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + text, params).fetchall()
                conn.rollback()
            lines += [f"      {row[0]}" for row in plan]
    return lines


# --------------------------------------------------------------------------- the bot over HTTP


def slash_body(text: str, channel: str, n: int) -> str:
    return urlencode(
        {
            "team_id": "T0SCALE",
            "channel_id": channel,
            "user_id": "U0SCALE",
            "command": "/kie",
            "text": text,
            "trigger_id": f"{n}.1.1",
            "api_app_id": "A0SCALE",
            "response_url": f"http://{HOST}:9/response",
        }
    )


@dataclass
class Command(Measured):
    """A `/kie` command sent to the bot; an answer without `expect` in its text is wrong."""

    text: str = ""
    channel: str = ""
    expect: str = ""
    wrong: int = 0
    sample: str = ""

    @property
    def remarks(self) -> str:
        return f"  ({self.wrong} wrong answers, e.g. {self.sample})" if self.wrong else ""


def commands(who: Subjects) -> list[Command]:
    return [
        Command("/kie help (no store read)", False, text="help", channel=who.busy, expect="/kie"),
        Command(
            "/kie list busiest channel", True, text="list", channel=who.busy, expect="Recent tasks"
        ),
        Command(
            "/kie list quiet channel", True, text="list", channel=who.quiet, expect="Recent tasks"
        ),
        Command(
            "/kie status finished task",
            True,
            text=f"status {who.recent}",
            channel=who.busy,
            expect=who.recent,
        ),
        Command(
            "/kie status, events deleted",
            True,
            text=f"status {who.old}",
            channel=who.busy,
            expect=who.old,
        ),
    ]


_TRIGGERS = itertools.count(1)


async def ask(session: aiohttp.ClientSession, base: str, command: Command) -> None:
    """Send the command once (signed, as Slack does) and check its answer."""
    body = slash_body(command.text, command.channel, next(_TRIGGERS))
    headers = signed_form_headers(body, SIGNING_SECRET)
    async with session.post(f"{base}/slack/events", data=body, headers=headers) as response:
        raw = await response.read()
    text = ""
    with contextlib.suppress(ValueError, AttributeError):
        text = str(json.loads(raw).get("text", ""))
    if response.status != 200 or command.expect not in text or "Working on it" in text:
        command.wrong += 1
        command.sample = command.sample or f"{response.status} {text[:60]!r}"


async def measure_commands(base: str, asked: list[Command], requests: int) -> None:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for command in asked:
            send = functools.partial(ask, session, base, command)
            command.times = await time_call(send, requests)
            print(
                f"  {command.name:<36} p50 {command.p(0.5):8.3f} ms  p99 {command.p(0.99):8.3f} ms"
            )


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon and RssFile of a process in kB, from /proc; empty elsewhere."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    wanted = ("VmRSS", "VmHWM", "RssAnon", "RssFile")
    fields = (line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {name: int(rest.split()[0]) for name, rest in fields if name in wanted}


@dataclass
class BotRun:
    commands: list[Command]
    memory: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    ready_s: float = 0.0


def server_cpu() -> tuple[int | None, int | None]:
    """(this script's CPU, the bot's CPU) when there are two or more and taskset; else None."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return None, None
    return cpus[0], cpus[-1]


async def run_bot(store: Store, who: Subjects, tmp: Path, args: argparse.Namespace) -> BotRun:
    port = free_port()
    env = bot_env(port, store.database_url, args.log_level)
    # The fixtures' result links are example.com's: saving files stays off, so nothing is fetched.
    env.update(
        SLACK_SIGNING_SECRET=SIGNING_SECRET, KIE_API_KEY="scale-not-a-key", SLACK_SAVE_VIDEOS="off"
    )
    mine, theirs = server_cpu()
    if mine is not None:
        os.sched_setaffinity(0, {mine})
    began = time.monotonic()
    server = start("bot", [sys.executable, "-m", "bot", "serve"], env, port, tmp, cpu=theirs)
    result = BotRun(commands(who))
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, server)
        result.ready_s = time.monotonic() - began
        result.memory["ready"] = memory_kb(server.process.pid)
        await measure_commands(server.base, result.commands, args.requests)
        result.memory["after commands"] = memory_kb(server.process.pid)
    finally:
        stop(server)
        if mine is not None:
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    result.errors = error_lines(server)
    return result


def error_lines(server: Server) -> list[str]:
    """The lines of the bot's log at level ERROR."""
    with contextlib.suppress(OSError):
        text = server.stderr_path.read_text(errors="replace")
        return [line for line in text.splitlines() if " ERROR " in line]
    return []


# --------------------------------------------------------------------------- the report


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(built: Built, measured: list[Timed], bot: BotRun, store: Store) -> None:
    counts = built.counts
    print(
        f"\nscale benchmark, {store.version()}: {counts['tasks']:,} tasks, "
        f"{counts['task_channels']:,} followers, {counts['events']:,} events, "
        f"{counts['outbox']:,} outbox rows; built in {built.seconds:.0f} s, {built.size_mb:,.0f} MB"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"load average {os.getloadavg()[0]:.2f}; "
        f"bot ready {bot.ready_s:.1f} s after start\n"
    )
    print_rows("in process (the store, through the bot's database object)", measured)
    print_rows("over HTTP (signed slash commands to the bot)", bot.commands)
    print_memory(bot)
    print(f"bot log: {len(bot.errors)} ERROR lines")
    for line in bot.errors[:3]:
        print(f"  {line[:160]}")
    print()
    peak = max((v.get("VmHWM", 0) for v in bot.memory.values()), default=0) / 1024
    scans_ok = all(t.met for t in measured if t.target)
    http_ok = all(c.met for c in bot.commands if c.target)
    memory_ok = 0 < peak < TARGET_RSS_MB
    print(
        f"target: resident memory < {TARGET_RSS_MB:g} MB (peak {peak:.1f} MB): {verdict(memory_ok)}"
    )
    print(f"target: /kie list and /kie status < {TARGET_MS:g} ms (p99, HTTP): {verdict(http_ok)}")
    print(f"target: the store's scans < {TARGET_MS:g} ms (p99, in process): {verdict(scans_ok)}")
    for timed in measured:
        if timed.plans:
            print(f"plan of {timed.name}:")
            print("\n".join(timed.plans))


def print_rows(title: str, rows: Sequence[Measured]) -> None:
    print(f"{title:<50} {'calls':>6} {'p50 ms':>9} {'p99 ms':>9}  target")
    for row in rows:
        aim = verdict(row.met) if row.target else "-"
        print(
            f"  {row.name:<48} {len(row.times):>6} {row.p(0.5):>9.3f} {row.p(0.99):>9.3f}"
            f"  {aim}{row.remarks}"
        )


def print_memory(bot: BotRun) -> None:
    names = ("VmRSS", "VmHWM", "RssAnon", "RssFile")
    print(f"{'memory of the bot (MB)':<34}" + "".join(f"{name:>9}" for name in names))
    for when, values in bot.memory.items():
        print(f"  {when:<32}" + "".join(f"{values.get(k, 0) / 1024:>9.1f}" for k in names))


# --------------------------------------------------------------------------- the run


async def run(args: argparse.Namespace, tmp: Path) -> None:
    with contextlib.ExitStack() as stack:
        postgres = (
            stack.enter_context(scratch_database(args.postgres, "kie_scale"))
            if args.postgres
            else None
        )
        store = Store(tmp / "scale.db", postgres)
        where = "a PostgreSQL database" if postgres else store.path
        print(f"scale benchmark: building {args.tasks:,} tasks in {where}")
        plan = make_plan(args.tasks, args.seed)
        built = await build(plan, store)
        who = subjects(plan)
        print("in process:")
        measured = await measure_scans(store, who, args)
        print("over HTTP:")
        bot = await run_bot(store, who, tmp, args)
        report(built, measured, bot, store)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=1_000_000, help="tasks in the store")
    parser.add_argument(
        "--postgres", metavar="URL", help="build on PostgreSQL: a database created on this server"
    )
    parser.add_argument("--calls", type=int, default=CALLS, help="calls per scan in process")
    parser.add_argument("--requests", type=int, default=300, help="requests per command")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--log-level", default="WARNING", help="the bot's LOG_LEVEL")
    parser.add_argument("--explain", action="store_true", help="print every scan's query plan")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if args.tasks < 10_000:
        parser.error("--tasks must be at least 10,000")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_in_tempdir("scale", lambda tmp: run(args, tmp), keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
