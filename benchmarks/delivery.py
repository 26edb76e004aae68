"""Delivery benchmark: from a kie.ai callback to the Slack post, through the outbox and the worker.

Run:  /work/venv/bin/python benchmarks/delivery.py [--latency-count 30] [--burst 1000]

A fake Slack Web API (tests/fakes/slack.py) runs in this process's event loop and records the
monotonic time of every call; the bot runs as a subprocess (`python -m bot serve`) on 127.0.0.1
with `SLACK_API_URL` pointing at the fake. Nothing leaves this machine.

Phase 1 (latency, unloaded): `--latency-count` Veo success callbacks, one at a time, to
`POST /callbacks/veo` (routed to `KIE_DEFAULT_CHANNEL`), `--latency-gap` s apart so the per-channel
pacer always has a token. A callback's latency runs from just before its POST to the moment the
fake Slack received the chat.postMessage that names its task id.

Phase 2 (burst): `--channels` callback routes are written straight into the bot's SQLite file
(routes need `/kie url` otherwise), then `--burst` callbacks are sent as fast as `--clients`
concurrent clients can, callback i to `/callbacks/veo/<route i % channels>`. Measured: time to
acknowledge them all, time until the fake has every root post (from the first POST), per-channel
posting rate, lost and doubled posts. The pacer allows 3 posts at once then 1/s per channel, so
the drain takes about burst / channels seconds; the wait is bounded by `--drain-timeout`.

Phase 3 (a video into its thread): a second bot, with SLACK_SAVE_VIDEOS=on and
DOWNLOAD_ALLOW_PRIVATE_HOSTS=on, and a fake kie.ai file server (tests/fakes/kie.py) in this
process. `--video-count` Veo success callbacks, one at a time and `--video-gap` s apart (each
costs two posts, the root and the card's update, so the channel's pacer always has tokens), each
naming its own `--video-mb` file (with a Content-Length, as kie.ai's storage sends). Measured from just before the POST to
the moment the fake Slack received the files.completeUploadExternal that shares the file into the
task's thread (the file is playable from then on), and to the card's update saying it is saved.

Phase 4 (memory): a third bot process saves a `--big-video-mb` video. Its peak resident memory
(VmHWM in /proc/<pid>/status) is read after a 1 MB warm-up video (the baseline) and again once the
big one is shared; VmRSS is sampled meanwhile. Target: the peak grows by less than 64 MB.
`--spool` serves the big video without a Content-Length, so the bot spools it to disk first.

Targets: phase 1 p50 < 50 ms; phase 2 zero lost, zero doubled, per-channel rate after the burst
<= 1/s; phase 4 peak growth < 64 MB. This is a measurement, not a test: it exits 0 unless the bot
or a fake could not be started (exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import itertools
import json
import os
import re
import sqlite3
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
from processes import (  # noqa: E402
    HOST,
    Server,
    SetupError,
    free_port,
    percentile,
    run_in_tempdir,
    start,
    stop,
    wait_ready,
)

from tests.fakes.kie import FakeFile, FakeKie  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
VEO_SUCCESS = FIXTURES / "callbacks" / "veo-success.json"
TASK_ID_MARKER = "__BENCH_TASK_ID__"
#: The task ids this script makes; found in a posted message's notification text.
TASK_ID_PATTERN = re.compile(r"(?:warm|lat|burst)_\d{5}")
LATENCY_CHANNEL = "CBENCH0"
ROUTE_TOKEN = "benchroute{n}"
BURST_CHANNEL = "CBURST{n}"
#: The pacer's burst: the first posts of a channel that may go out at once.
PACER_BURST = 3
#: Sliding window for the per-channel rate.
RATE_WINDOW = 10.0
#: Allowance for timer and network jitter when judging a rate against 1/s.
RATE_TOLERANCE = 1.01
REQUEST_TIMEOUT = 10.0
#: Phase 1: how long one callback may take to reach the fake Slack before it counts as lost.
POST_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0


# --------------------------------------------------------------------------- callbacks


class Callbacks:
    """Veo success callback bodies with a chosen task id."""

    def __init__(self) -> None:
        body = json.loads(VEO_SUCCESS.read_text(encoding="utf-8"))
        body["data"]["taskId"] = TASK_ID_MARKER
        self._template = json.dumps(body, separators=(",", ":"))

    def body(self, task_id: str) -> bytes:
        return self._template.replace(TASK_ID_MARKER, task_id).encode()


HEADERS = {"Content-Type": "application/json"}


async def post(session: aiohttp.ClientSession, url: str, body: bytes) -> str:
    """POST one callback; the outcome as a short label ("received" when all is well)."""
    try:
        async with session.post(url, data=body, headers=HEADERS) as response:
            payload = await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return type(exc).__name__
    if response.status == 200 and b'"received"' in payload:
        return "received"
    return f"{response.status} {payload[:60].decode(errors='replace')}"


# --------------------------------------------------------------------------- what Slack saw


@dataclass
class RootPost:
    task_id: str
    channel: str
    at: float


class SlackLog:
    """An incremental index of the fake's chat.postMessage calls by the task id in their text."""

    def __init__(self, fake: FakeSlack) -> None:
        self._fake = fake
        self._seen = 0
        self.roots: dict[str, list[RootPost]] = defaultdict(list)
        self.methods: Counter[str] = Counter()
        self.unmatched = 0

    def refresh(self) -> None:
        calls = self._fake.calls
        for method, params, at in calls[self._seen :]:
            self.methods[method] += 1
            if method != "chat.postMessage" or params.get("thread_ts"):
                continue
            found = TASK_ID_PATTERN.search(str(params.get("text", "")))
            if found is None:
                self.unmatched += 1
                continue
            channel = str(params.get("channel", ""))
            self.roots[found.group(0)].append(RootPost(found.group(0), channel, at))
        self._seen = len(calls)

    def first(self, task_id: str) -> RootPost | None:
        self.refresh()
        posts = self.roots.get(task_id)
        return posts[0] if posts else None


def accepted_roots(fake: FakeSlack) -> Counter[str]:
    """Task id -> root messages the fake accepted (answered ok) for it."""
    counts: Counter[str] = Counter()
    for message in fake.messages:
        if message.thread_ts is None:
            found = TASK_ID_PATTERN.search(message.text)
            if found is not None:
                counts[found.group(0)] += 1
    return counts


# --------------------------------------------------------------------------- statistics


def max_in_window(times: Sequence[float], window: float) -> int:
    """The most of `times` (sorted) that fall in any half-open window [t, t + window)."""
    best = 0
    for i, begin in enumerate(times):
        best = max(best, bisect.bisect_left(times, begin + window, lo=i) - i)
    return best


@dataclass
class ChannelRate:
    channel: str
    posts: int
    window_rate: float
    steady_rate: float
    min_gap_ms: float


def channel_rate(channel: str, times: list[float]) -> ChannelRate:
    times = sorted(times)
    steady = times[PACER_BURST:]
    steady_rate = (
        (len(steady) - 1) / (steady[-1] - steady[0])
        if len(steady) >= 2 and steady[-1] > steady[0]
        else float("nan")
    )
    gaps = [b - a for a, b in itertools.pairwise(steady)]
    return ChannelRate(
        channel,
        len(times),
        max_in_window(times, RATE_WINDOW) / RATE_WINDOW,
        steady_rate,
        min(gaps) * 1000 if gaps else float("nan"),
    )


# --------------------------------------------------------------------------- the bot


@dataclass
class Bot(Server):
    """The bot's process, and the SQLite file it was started on."""

    database: Path


def bot_env(port: int, database: Path, slack_api_url: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in (
        "SLACK_SIGNING_SECRET",
        "KIE_API_KEY",
        "KIE_WEBHOOK_HMAC_KEY",
        "KIE_SIGNATURE_TOLERANCE",
        "POLL_INTERVAL",
    ):
        env.pop(name, None)
    env.update(
        HOST=HOST,
        PORT=str(port),
        DATABASE_URL=f"sqlite:///{database}",
        SLACK_BOT_TOKEN="xoxb-bench",
        SLACK_API_URL=slack_api_url,
        KIE_DEFAULT_CHANNEL=LATENCY_CHANNEL,
        LOG_LEVEL="WARNING",
        # Nothing leaves this machine, even if a code path tried.
        KIE_API_URL=f"http://{HOST}:9",
        PUBLIC_URL=f"http://{HOST}:{port}",
        # Phases 1 and 2 measure posts; their example.com video links are not fetched.
        SLACK_SAVE_VIDEOS="off",
    )
    return env


def start_bot(tmp: Path, slack_api_url: str) -> Bot:
    port = free_port()
    database = tmp / "delivery.db"
    env = bot_env(port, database, slack_api_url)
    server = start("bot", [sys.executable, "-m", "bot", "serve"], env, port, tmp)
    return Bot(server.name, server.process, server.base, server.stderr_path, database)


def add_routes(database: Path, channels: int) -> list[str]:
    """Bind `channels` route tokens to channels, as `/kie url` would; the tokens."""
    tokens = [ROUTE_TOKEN.format(n=n) for n in range(channels)]
    try:
        with contextlib.closing(sqlite3.connect(database, timeout=10)) as conn, conn:
            conn.executemany(
                "INSERT OR REPLACE INTO routes (token, channel, created_by, created_at) "
                "VALUES (?, ?, 'bench', ?)",
                [(t, BURST_CHANNEL.format(n=n), time.time()) for n, t in enumerate(tokens)],
            )
    except sqlite3.Error as exc:
        raise SetupError(f"cannot write routes into {database}: {exc}") from exc
    return tokens


def outbox_status(database: Path) -> dict[str, int]:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
            rows = conn.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall()
    except sqlite3.Error as exc:
        return {f"unreadable: {exc}": 0}
    return {str(status): int(count) for status, count in rows}


# --------------------------------------------------------------------------- phases


@dataclass
class Latency:
    sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    ack_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    warm_up_ms: float = float("nan")


async def wait_posted(log: SlackLog, task_id: str, timeout: float) -> RootPost | None:
    deadline = time.monotonic() + timeout
    while (found := log.first(task_id)) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.002)
    return found


async def latency_phase(
    session: aiohttp.ClientSession,
    bot: Bot,
    log: SlackLog,
    callbacks: Callbacks,
    *,
    count: int,
    gap: float,
) -> Latency:
    out = Latency()
    url = f"{bot.base}/callbacks/veo"
    ids = [("warm_00000", True)] + [(f"lat_{i:05d}", False) for i in range(count)]
    next_at = time.monotonic()
    for task_id, warm_up in ids:
        delay = next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        next_at = time.monotonic() + gap
        body = callbacks.body(task_id)
        started = time.monotonic()
        outcome = await post(session, url, body)
        acked = time.monotonic()
        if outcome != "received":
            out.errors[outcome] += 1
            continue
        found = await wait_posted(log, task_id, POST_TIMEOUT)
        latency = (found.at - started) * 1000 if found else None
        if warm_up:
            out.warm_up_ms = latency if latency is not None else float("nan")
            continue
        out.sent += 1
        out.ack_ms.append((acked - started) * 1000)
        if latency is None:
            out.lost += 1
        else:
            out.latencies_ms.append(latency)
    return out


@dataclass
class Burst:
    sent: int = 0
    ack_s: float = float("nan")
    drain_s: float = float("nan")
    drained: bool = False
    errors: Counter[str] = field(default_factory=Counter)
    posted: int = 0
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    misrouted: list[str] = field(default_factory=list)
    rates: list[ChannelRate] = field(default_factory=list)
    outbox: dict[str, int] = field(default_factory=dict)


async def burst_phase(
    bot: Bot,
    fake: FakeSlack,
    log: SlackLog,
    callbacks: Callbacks,
    *,
    total: int,
    channels: int,
    clients: int,
    drain_timeout: float,
    settle: float,
) -> Burst:
    out = Burst()
    tokens = add_routes(bot.database, channels)
    expected = {f"burst_{i:05d}": BURST_CHANNEL.format(n=i % channels) for i in range(total)}
    jobs = [
        (f"{bot.base}/callbacks/veo/{tokens[i % channels]}", callbacks.body(f"burst_{i:05d}"))
        for i in range(total)
    ]
    queue = iter(jobs)

    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client() -> None:
            for url, body in queue:
                out.sent += 1
                outcome = await post(session, url, body)
                if outcome != "received":
                    out.errors[outcome] += 1

        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(clients)))
        out.ack_s = time.monotonic() - started

    deadline = started + drain_timeout
    while True:
        log.refresh()
        missing = [task_id for task_id in expected if task_id not in log.roots]
        if not missing:
            out.drained = True
            break
        if time.monotonic() >= deadline or bot.process.poll() is not None:
            break
        await asyncio.sleep(0.05)
    if out.drained:
        last = max(log.roots[task_id][0].at for task_id in expected)
        out.drain_s = last - started
    # A while longer, so that a late second post of the same task would be seen.
    await asyncio.sleep(settle)
    log.refresh()

    accepted = accepted_roots(fake)
    by_channel: dict[str, list[float]] = defaultdict(list)
    for task_id, channel in expected.items():
        posts = log.roots.get(task_id, [])
        if accepted[task_id] == 0:
            out.lost.append(task_id)
        if len(posts) > 1 or accepted[task_id] > 1:
            out.doubled.append(task_id)
        if any(p.channel != channel for p in posts):
            out.misrouted.append(task_id)
        out.posted += accepted[task_id]
        for p in posts:
            by_channel[p.channel].append(p.at)
    out.rates = [channel_rate(channel, times) for channel, times in sorted(by_channel.items())]
    out.outbox = outbox_status(bot.database)
    return out


# --------------------------------------------------------------------------- videos

VIDEO_CHANNEL = "CVIDEO0"
MB = 1_000_000
#: The largest growth of the bot's peak resident memory while it saves the big video.
MEMORY_TARGET_MB = 64.0
VIDEO_TIMEOUT = 120.0
FILE_NAME = re.compile(r"kie-(.+)-1\.mp4")


def start_video_bot(tmp: Path, slack_api_url: str, name: str) -> Bot:
    """A bot that saves result videos and may download from this machine's fake kie.ai."""
    port = free_port()
    database = tmp / f"{name}.db"
    env = bot_env(port, database, slack_api_url)
    env.update(
        SLACK_SAVE_VIDEOS="on",
        DOWNLOAD_ALLOW_PRIVATE_HOSTS="on",
        SAVE_VIDEO_MAX_MB="1000",
        KIE_DEFAULT_CHANNEL=VIDEO_CHANNEL,
    )
    server = start(name, [sys.executable, "-m", "bot", "serve"], env, port, tmp)
    return Bot(server.name, server.process, server.base, server.stderr_path, database)


def video_body(task_id: str, url: str) -> bytes:
    body = json.loads(VEO_SUCCESS.read_text(encoding="utf-8"))
    body["data"]["taskId"] = task_id
    body["data"]["info"]["resultUrls"] = [url]
    return json.dumps(body).encode()


def shared_at(fake: FakeSlack, task_id: str) -> float | None:
    """When the fake Slack received the call that shared `task_id`'s file into a thread."""
    for method, params, at in fake.calls:
        if method != "files.completeUploadExternal":
            continue
        try:
            ids = [str(f.get("id")) for f in json.loads(params.get("files") or "[]")]
        except (ValueError, AttributeError):
            continue
        for file_id in ids:
            upload = fake.uploads.get(file_id)
            if (
                upload is not None
                and upload.completed
                and upload.thread_ts
                and (found := FILE_NAME.fullmatch(upload.filename))
                and found.group(1) == task_id
            ):
                return at
    return None


def card_saved_at(fake: FakeSlack, task_id: str) -> float | None:
    """When the fake Slack received the update that made `task_id`'s card say it is saved."""
    for method, params, at in fake.calls:
        if (
            method == "chat.update"
            and task_id in str(params.get("text", ""))
            and "Saved in the thread" in json.dumps(params.get("blocks"), ensure_ascii=False)
        ):
            return at
    return None


async def wait_for(check: Callable[[], float | None], timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while (found := check()) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    return found


@dataclass
class VideoLatency:
    size_mb: float
    shared_ms: list[float] = field(default_factory=list)
    card_ms: list[float] = field(default_factory=list)
    lost: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    uploads: int = 0


async def video_phase(
    session: aiohttp.ClientSession,
    bot: Bot,
    fake: FakeSlack,
    kie: FakeKie,
    *,
    count: int,
    size: int,
    gap: float,
) -> VideoLatency:
    out = VideoLatency(size / MB)
    next_at = time.monotonic()
    for i in range(count + 1):  # the first one warms the bot up and is not counted
        delay = next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        next_at = time.monotonic() + gap
        task_id = f"video_{i:05d}"
        url = kie.serve_file(f"{task_id}.mp4", FakeFile(size))
        started = time.monotonic()
        outcome = await post(session, f"{bot.base}/callbacks/veo", video_body(task_id, url))
        if outcome != "received":
            out.errors[outcome] += 1
            continue
        shared = await wait_for(lambda t=task_id: shared_at(fake, t), VIDEO_TIMEOUT)
        card = await wait_for(lambda t=task_id: card_saved_at(fake, t), POST_TIMEOUT)
        if i == 0:
            continue
        if shared is None:
            out.lost += 1
            continue
        out.shared_ms.append((shared - started) * 1000)
        if card is not None:
            out.card_ms.append((card - started) * 1000)
    out.uploads = fake.count("files.getUploadURLExternal")
    return out


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in kB, from /proc; empty elsewhere."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    values = {}
    for line in status.splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values


@dataclass
class Memory:
    size_mb: float
    spooled: bool
    baseline_hwm_kb: int = 0
    baseline_rss_kb: int = 0
    peak_hwm_kb: int = 0
    max_rss_sampled_kb: int = 0
    transfer_s: float = float("nan")
    saved: bool = False
    available: bool = True

    @property
    def growth_mb(self) -> float:
        return (self.peak_hwm_kb - self.baseline_hwm_kb) * 1024 / MB


async def memory_phase(
    session: aiohttp.ClientSession,
    bot: Bot,
    fake: FakeSlack,
    kie: FakeKie,
    *,
    size: int,
    spooled: bool,
) -> Memory:
    out = Memory(size / MB, spooled)
    pid = bot.process.pid
    warm_url = kie.serve_file("warm.mp4", FakeFile(MB))
    await post(session, f"{bot.base}/callbacks/veo", video_body("memory_warm", warm_url))
    await wait_for(lambda: card_saved_at(fake, "memory_warm"), VIDEO_TIMEOUT)
    await asyncio.sleep(0.5)  # let the warm-up's buffers go
    before = memory_kb(pid)
    if not before:
        out.available = False
        return out
    out.baseline_hwm_kb, out.baseline_rss_kb = before["VmHWM"], before["VmRSS"]
    url = kie.serve_file("big.mp4", FakeFile(size, length_header=not spooled))
    started = time.monotonic()
    await post(session, f"{bot.base}/callbacks/veo", video_body("memory_big", url))
    deadline = started + VIDEO_TIMEOUT * 5
    while time.monotonic() < deadline:
        out.max_rss_sampled_kb = max(out.max_rss_sampled_kb, memory_kb(pid).get("VmRSS", 0))
        if shared_at(fake, "memory_big") is not None:
            out.saved = True
            break
        await asyncio.sleep(0.05)
    out.transfer_s = time.monotonic() - started
    out.peak_hwm_kb = memory_kb(pid).get("VmHWM", 0)
    return out


def print_video(v: VideoLatency) -> None:
    print(
        f"  {len(v.shared_ms)} callbacks, one at a time, each a {v.size_mb:g} MB video: "
        f"callback -> file shared in the thread p50 {percentile(v.shared_ms, 0.5):.0f} ms  "
        f"max {max(v.shared_ms, default=float('nan')):.0f} ms "
        f"({v.size_mb / (percentile(v.shared_ms, 0.5) / 1000):.0f} MB/s end to end)"
    )
    print(
        f"  callback -> card says saved p50 {percentile(v.card_ms, 0.5):.0f} ms | lost {v.lost} | "
        f"uploads started {v.uploads} (one per video, warm-up included) | "
        f"errors {sum(v.errors.values())}{f' {dict(v.errors)}' if v.errors else ''}"
    )


def print_memory(m: Memory) -> None:
    if not m.available:
        print("  /proc/<pid>/status is not readable here: no memory figures")
        return
    how = "spooled to disk (no Content-Length)" if m.spooled else "streamed (Content-Length)"
    print(
        f"  a {m.size_mb:g} MB video, {how}: "
        f"{'shared' if m.saved else 'NOT shared'} after {m.transfer_s:.1f} s "
        f"({m.size_mb / m.transfer_s:.0f} MB/s)"
    )
    print(
        f"  bot VmHWM {m.baseline_hwm_kb / 1024:.1f} MiB before -> {m.peak_hwm_kb / 1024:.1f} MiB "
        f"after: grew {m.growth_mb:.1f} MB; VmRSS {m.baseline_rss_kb / 1024:.1f} MiB before, "
        f"at most {m.max_rss_sampled_kb / 1024:.1f} MiB sampled during"
    )


# --------------------------------------------------------------------------- report


def print_latency(lat: Latency, gap: float) -> None:
    print(
        f"  {lat.sent} callbacks, {gap:g} s apart: callback -> chat.postMessage "
        f"p50 {percentile(lat.latencies_ms, 0.5):.1f} ms  "
        f"p99 {percentile(lat.latencies_ms, 0.99):.1f} ms  "
        f"max {max(lat.latencies_ms, default=float('nan')):.1f} ms"
    )
    print(
        f"  ack (POST answered) p50 {percentile(lat.ack_ms, 0.5):.1f} ms, "
        f"max {max(lat.ack_ms, default=float('nan')):.1f} ms | warm-up callback "
        f"{lat.warm_up_ms:.1f} ms (not counted) | lost {lat.lost} | "
        f"errors {sum(lat.errors.values())}{f' {dict(lat.errors)}' if lat.errors else ''}"
    )


def print_burst(b: Burst, channels: int, clients: int, drain_timeout: float) -> None:
    errors = sum(b.errors.values())
    print(
        f"  {b.sent} callbacks over {channels} channels, {clients} clients: "
        f"all answered in {b.ack_s:.2f} s ({b.sent / b.ack_s:.0f} req/s), "
        f"non-200/unexpected {errors}{f' {dict(b.errors)}' if b.errors else ''}"
    )
    if b.drained:
        print(f"  drain: the fake had every root post {b.drain_s:.1f} s after the first POST")
    else:
        print(f"  drain: NOT complete after {drain_timeout:g} s (--drain-timeout)")
    print(
        f"  root posts accepted {b.posted}, lost {len(b.lost)}, doubled {len(b.doubled)}, "
        f"in the wrong channel {len(b.misrouted)}"
    )
    for name, ids in (("lost", b.lost), ("doubled", b.doubled), ("misrouted", b.misrouted)):
        if ids:
            print(f"    {name}: {', '.join(ids[:10])}{' ...' if len(ids) > 10 else ''}")
    print(f"  outbox rows by status: {b.outbox}")
    print(
        f"  {'channel':<9} {'posts':>5} {'max/10s win':>12} {'after burst':>12} {'min gap ms':>11}"
    )
    for r in b.rates:
        print(
            f"  {r.channel:<9} {r.posts:>5} {r.window_rate:>10.2f}/s "
            f"{r.steady_rate:>10.3f}/s {r.min_gap_ms:>11.1f}"
        )


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def print_summary(lat: Latency, b: Burst, log: SlackLog) -> None:
    p50 = percentile(lat.latencies_ms, 0.5)
    window = max((r.window_rate for r in b.rates), default=float("nan"))
    steady = max((r.steady_rate for r in b.rates), default=float("nan"))
    print()
    print(f"{'figure':<44} {'value':>14}  target")
    rows = [
        ("latency p50 (callback -> Slack post)", f"{p50:.1f} ms", "< 50 ms", p50 < 50),
        (
            "latency p99 / max",
            f"{percentile(lat.latencies_ms, 0.99):.0f} / "
            f"{max(lat.latencies_ms, default=float('nan')):.0f} ms",
            "",
            None,
        ),
        ("burst: time to acknowledge all", f"{b.ack_s:.2f} s", "", None),
        (
            "burst: time to drain (from first POST)",
            f"{b.drain_s:.1f} s" if b.drained else "not drained",
            "",
            None,
        ),
        ("burst: lost", str(len(b.lost)), "0", not b.lost),
        ("burst: doubled", str(len(b.doubled)), "0", not b.doubled),
        ("burst: non-200 answers", str(sum(b.errors.values())), "0", not b.errors),
        ("burst: max per-channel rate, 10 s window", f"{window:.2f}/s", "", None),
        (
            "burst: max per-channel rate after 3-burst",
            f"{steady:.3f}/s",
            f"<= 1/s (+{RATE_TOLERANCE - 1:.0%} jitter)",
            steady <= RATE_TOLERANCE,
        ),
    ]
    for name, value, target, ok in rows:
        judged = f"{target} -> {verdict(ok)}" if ok is not None else ""
        print(f"{name:<44} {value:>14}  {judged}")
    others = {m: n for m, n in log.methods.items() if m != "chat.postMessage"}
    print(
        f"Slack calls: chat.postMessage {log.methods['chat.postMessage']}, others {others}; "
        f"posts without a bench task id {log.unmatched}"
    )


def print_bot_log(bot: Bot, returncode: int | None) -> None:
    lines = []
    with contextlib.suppress(OSError):
        lines = bot.stderr_path.read_text(errors="replace").splitlines()
    print(f"bot exit code {returncode}; {len(lines)} line(s) on its stderr (LOG_LEVEL=WARNING)")
    for line in lines[:15]:
        print(f"  | {line}")
    if len(lines) > 15:
        print(f"  | ... {len(lines) - 15} more")


# --------------------------------------------------------------------------- the run


async def run(args: argparse.Namespace, tmp: Path) -> None:
    if not args.videos_only:
        await run_posts(args, tmp)
    if not args.no_videos:
        if not args.videos_only:
            print()
        await run_videos(args, tmp)


async def run_posts(args: argparse.Namespace, tmp: Path) -> None:
    callbacks = Callbacks()
    fake = FakeSlack()
    try:
        await fake.start()
    except OSError as exc:
        raise SetupError(f"the fake Slack could not start: {exc}") from exc
    bot: Bot | None = None
    returncode: int | None = None
    try:
        bot = start_bot(tmp, fake.api_url)
        log = SlackLog(fake)
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await wait_ready(session, bot, label="the bot")
            print(
                f"Phase 1: latency, unloaded: {args.latency_count} callbacks to "
                f"{LATENCY_CHANNEL}, one at a time"
            )
            lat = await latency_phase(
                session, bot, log, callbacks, count=args.latency_count, gap=args.latency_gap
            )
            print_latency(lat, args.latency_gap)

        print(
            f"Phase 2: burst of {args.burst} callbacks over {args.channels} routed channels "
            f"(drain bounded at {args.drain_timeout:g} s)"
        )
        burst = await burst_phase(
            bot,
            fake,
            log,
            callbacks,
            total=args.burst,
            channels=args.channels,
            clients=args.clients,
            drain_timeout=args.drain_timeout,
            settle=args.settle,
        )
        print_burst(burst, args.channels, args.clients, args.drain_timeout)
        print_summary(lat, burst, log)
        if fake.invalid:
            print(f"fake Slack refused {len(fake.invalid)} message(s): {fake.invalid[0]}")
    finally:
        if bot is not None:
            returncode = stop(bot, STOP_TIMEOUT)
            print_bot_log(bot, returncode)
        await fake.stop()


async def run_videos(args: argparse.Namespace, tmp: Path) -> None:
    fake, kie = FakeSlack(), FakeKie()
    try:
        await fake.start()
        await kie.start()
    except OSError as exc:
        raise SetupError(f"a fake could not start: {exc}") from exc
    bots: list[Bot] = []
    timeout = aiohttp.ClientTimeout(total=VIDEO_TIMEOUT)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            bots.append(start_video_bot(tmp, fake.api_url, "video-bot"))
            await wait_ready(session, bots[-1], label="the video bot")
            size = int(args.video_mb * MB)
            print(
                f"Phase 3: a video into its thread: {args.video_count} callbacks "
                f"{args.video_gap:g} s apart, each with a {args.video_mb:g} MB video "
                "(plus one to warm up)"
            )
            video = await video_phase(
                session, bots[-1], fake, kie, count=args.video_count, size=size, gap=args.video_gap
            )
            print_video(video)

            bots.append(start_video_bot(tmp, fake.api_url, "memory-bot"))
            await wait_ready(session, bots[-1], label="the memory bot")
            print(
                f"Phase 4: memory while a {args.big_video_mb:g} MB video is saved "
                f"(a fresh bot process, pid {bots[-1].process.pid})"
            )
            memory = await memory_phase(
                session,
                bots[-1],
                fake,
                kie,
                size=int(args.big_video_mb * MB),
                spooled=args.spool,
            )
            print_memory(memory)
        print_video_summary(video, memory)
        if fake.invalid:
            print(f"fake Slack refused {len(fake.invalid)} message(s): {fake.invalid[0]}")
    finally:
        for bot in bots:
            print_bot_log(bot, stop(bot, STOP_TIMEOUT))
        await kie.stop()
        await fake.stop()


def print_video_summary(video: VideoLatency, memory: Memory) -> None:
    print()
    print(f"{'figure':<52} {'value':>12}  target")
    shared = percentile(video.shared_ms, 0.5)
    print(f"{f'{video.size_mb:g} MB video: callback -> file in thread, p50':<52} {shared:>9.0f} ms")
    print(
        f"{f'{video.size_mb:g} MB video: callback -> card says saved, p50':<52} "
        f"{percentile(video.card_ms, 0.5):>9.0f} ms"
    )
    if memory.available:
        growth = memory.growth_mb
        ok = memory.saved and growth < MEMORY_TARGET_MB
        print(
            f"{f'{memory.size_mb:g} MB video: growth of the peak RSS (VmHWM)':<52} "
            f"{growth:>9.1f} MB  < {MEMORY_TARGET_MB:g} MB -> {verdict(ok)}"
        )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--latency-count", type=int, default=30, help="phase 1 callbacks")
    parser.add_argument(
        "--latency-gap", type=float, default=1.1, help="phase 1 seconds between callbacks"
    )
    parser.add_argument("--burst", type=int, default=1000, help="phase 2 callbacks")
    parser.add_argument("--channels", type=int, default=10, help="phase 2 routed channels")
    parser.add_argument("--clients", type=int, default=50, help="phase 2 concurrent clients")
    parser.add_argument(
        "--drain-timeout", type=float, default=180.0, help="phase 2 wait for every post (s)"
    )
    parser.add_argument(
        "--settle", type=float, default=2.0, help="phase 2 wait after the drain for doubles (s)"
    )
    parser.add_argument("--video-count", type=int, default=5, help="phase 3 videos")
    parser.add_argument("--video-mb", type=float, default=20.0, help="phase 3 video size (MB)")
    parser.add_argument(
        "--video-gap", type=float, default=2.2, help="phase 3 seconds between callbacks"
    )
    parser.add_argument("--big-video-mb", type=float, default=300.0, help="phase 4 video size (MB)")
    parser.add_argument(
        "--spool", action="store_true", help="phase 4: serve the video without a Content-Length"
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--videos-only", action="store_true", help="run phases 3 and 4 only")
    which.add_argument("--no-videos", action="store_true", help="run phases 1 and 2 only")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if not 1 <= args.video_count <= 1000 or not 0 < args.video_mb <= 1000:
        parser.error("--video-count must be in [1, 1000] and --video-mb in (0, 1000]")
    if not 1 <= args.big_video_mb <= 1000:
        parser.error("--big-video-mb must be in [1, 1000]")
    if not 1 <= args.latency_count <= 10_000 or not 1 <= args.burst <= 100_000:
        parser.error("--latency-count must be in [1, 10000] and --burst in [1, 100000]")
    if not 1 <= args.channels <= 1000 or not 1 <= args.clients <= 1000:
        parser.error("--channels and --clients must be in [1, 1000]")
    if args.latency_gap < 0 or not 0 < args.drain_timeout <= 3600 or args.settle < 0:
        parser.error("--latency-gap, --settle >= 0 and --drain-timeout in (0, 3600]")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_in_tempdir("delivery", lambda tmp: run(args, tmp), keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
