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

Targets: phase 1 p50 < 50 ms; phase 2 zero lost, zero doubled, per-channel rate after the burst
<= 1/s. This is a measurement, not a test: it exits 0 unless the bot or the fake could not be
started (exit 2).
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
from collections.abc import Sequence
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
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
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
