"""Callback ingest benchmark: kie-slack's POST /callbacks/veo against reference servers, with wrk.

Run:  .venv/bin/python benchmarks/ingest.py [--seconds 5] [--rounds 2] [--rate 500]
Needs wrk (Debian: `apt-get install wrk`); without it the benchmark says so and reports nothing.

Targets, each a subprocess on 127.0.0.1, all measured in one run:
  bare               an aiohttp handler that parses the JSON and answers (benchmarks/references.py)
  aiohttp+aiosqlite  the same plus one INSERT and one commit per request through aiosqlite
  kie-slack SQLite   `python -m bot serve` on a fresh SQLite file (console mode, so every new task
                     also gets its follower and outbox row, as with a default channel)
  kie-slack Postgres the same on a fresh PostgreSQL database (CREATE DATABASE kie_bench_<random>,
                     dropped at the end), on one of:
                     - a throwaway cluster this benchmark starts (`--start-postgres`; the default
                       without `--postgres` when Debian's binaries are under
                       /usr/lib/postgresql/*/bin): initdb in a temporary folder, 127.0.0.1 and a
                       free port, synchronous_commit=off (as SQLite's WAL with
                       synchronous=NORMAL; fsync stays on), pg_stat_statements with track=all
                       when installed; run as the `postgres` user when this is root; stopped and
                       removed at the end, also on error or Ctrl-C
                     - the server at `--postgres URL` (or a postgresql:// DATABASE_URL)
                     `--no-postgres` leaves it out; if the bot does not start on it, the table says
                     "not measured" and why.

With two CPUs or more, the load generators, this script and the throwaway PostgreSQL run on
one CPU (the client CPU) and the servers on another (`taskset`): the bot's CPU is its own, and
PostgreSQL's work is not done on it. Every request is a signed Veo success callback
(tests/fixtures/callbacks/veo-success.json) with a task id never sent before; the signatures are
computed ahead into a plan file, the same requests for every target.

Each round runs every target in turn (so a change in the machine's load hits them alike):
  saturation  wrk, one thread, `--connections` keep-alive connections, closed loop, after a
              one-second warm-up: requests/s, wrk's p50/p99, CPU per request, wrk's own CPU
  fixed rate  after a one-second pause that measures the CPU the server (and PostgreSQL) still
              spend on the burst before (the callbacks' posts, autovacuum),
              `--rate` requests/s open loop (benchmarks/openloop.py): a request's latency runs
              from its due time to its whole answer, so a late answer delays nothing else and
              counts in full (no coordinated omission); p50/p99/max, CPU per request, the
              generator's own CPU and send lag (it kept up if both are small)
CPU per request: the server's (user + system time of its process, all threads, from
/proc/PID/stat) and, for kie-slack on PostgreSQL, PostgreSQL's in its own column (the postmaster
and all its children, from /proc, split in the summary by kind of process; counted only when the
server runs on this machine), never added to the bot's. Also shown: how busy each of the two
CPUs was under wrk (/proc/stat). For PostgreSQL, pg_stat_statements is reset before each phase
and read after it: statements per stored callback (every call counts, BEGIN and COMMIT too: with
one statement at a time, the round trips; stored callbacks are the events rows added), and the
statements with the most calls, with their mean and longest execution.

Printed: two lines per target and round (saturation, fixed rate), then the medians over the
rounds with throughput and CPU as ratios to the bare handler's in the same round, PostgreSQL's
round trips and its top statements, what a callback costs on each store, and issue 18's targets,
met or not: kie-slack on PostgreSQL >= 0.75 x its throughput on SQLite (same round), p99 <= 5 ms
at 500 req/s, bot CPU per callback <= 1.5 x SQLite's; kie-slack on SQLite >= 0.45 x the bare
handler, p99 <= 2.5 ms at 500 req/s. Issue 10 measured kie.ai's Express receiver sample at
0.28 x bare the same way (it is not run here).
A measurement, not a test: exits 0 unless wrk is missing or a server does not start (exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import sqlite3
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from postgres_server import (
    PgServer,
    StatementCounter,
    Statements,
    local_data_directory,
    pg_bin,
    scratch_database,
    shorten,
    throwaway_cluster,
    version,
)
from processes import (
    HOST,
    Server,
    SetupError,
    free_port,
    pinned,
    run_in_tempdir,
    start,
    stop,
    wait_ready,
)

from bot.kie.signature import sign
from storage.postgres import safe_url

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "tests" / "fixtures"
VEO_SUCCESS = FIXTURES / "callbacks" / "veo-success.json"
WRK_SCRIPT = HERE / "ingest.lua"
HMAC_KEY = "bench-hmac-key-not-a-secret"
CALLBACK_PATH = "/callbacks/veo"
TASK_ID_MARKER = "__BENCH_TASK_ID__"
WARMUP_SECONDS = 1.0
#: The pause before the open loop, measuring what the server still does with no requests.
IDLE_SECONDS = 1.0
#: wrk's limit for one request, and the open-loop generator's wait for the last answers.
REQUEST_TIMEOUT = 10.0
BARE, REFERENCE, SQLITE, POSTGRES = (
    "bare",
    "aiohttp+aiosqlite",
    "kie-slack SQLite",
    "kie-slack PostgreSQL",
)
#: Issue 18's targets.
SQLITE_RATIO = 0.45  # x the bare handler's throughput
SQLITE_P99_MS = 2.5
POSTGRES_RATIO = 0.75  # x kie-slack on SQLite's throughput, same round
POSTGRES_P99_MS = 5.0
POSTGRES_CPU_RATIO = 1.5  # bot CPU per callback, x kie-slack on SQLite's
TOP_STATEMENTS = 8
#: Settings that change what the bot does per callback; shown when this environment sets them.
SHOWN_SETTINGS = ("SLACK_SAVE_VIDEOS", "SAVE_VIDEO_MAX_MB", "LOG_FORMAT", "POLL_INTERVAL")
WRK_MISSING = (
    "ingest benchmark: wrk is not installed; it drives the load. Install it with "
    "`apt-get install wrk` (Debian/Ubuntu) and run again."
)
NAN = float("nan")
P = TypeVar("P")


# --------------------------------------------------------------------------- requests


class Plans:
    """Plan files for wrk (ingest.lua) and openloop.py: signed requests with fresh task ids."""

    def __init__(self, tmp: Path) -> None:
        body = json.loads(VEO_SUCCESS.read_text(encoding="utf-8"))
        body["data"]["taskId"] = TASK_ID_MARKER
        self._head, self._tail = json.dumps(body, separators=(",", ":")).split(TASK_ID_MARKER)
        self._tmp = tmp

    def write(self, prefix: str, count: int) -> Path:
        """A plan of `count` requests with task ids `prefix`1 … `prefix``count`, signed now."""
        stamp = str(int(time.time()))
        lines = [CALLBACK_PATH, stamp, prefix, self._head, self._tail]
        lines += [sign(HMAC_KEY, f"{prefix}{n}", stamp) for n in range(1, count + 1)]
        path = self._tmp / f"{prefix}plan"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path


# --------------------------------------------------------------------------- figures


@dataclass
class Costs:
    """What one phase cost: CPU per request of the server and of PostgreSQL, how busy each CPU
    was, and for PostgreSQL the callbacks stored and the statements run."""

    server_us: float
    database_us: float
    busy: dict[int, float]
    #: The server's and PostgreSQL's CPU as a share of the phase's wall time.
    server_share: float
    database_share: float
    #: PostgreSQL's CPU per request by kind of process (see PgServer.cpu_seconds).
    database_kinds: dict[str, float] = field(default_factory=dict)
    stored: int | None = None
    statements: Statements | None = None
    #: The bot's own count of round trips to PostgreSQL (a pipeline counts once).
    round_trips: int | None = None

    def per_callback(self) -> float:
        """Statements per stored callback; NaN when not counted."""
        if self.statements is None or not self.stored:
            return NAN
        return self.statements.total() / self.stored

    def exec_us_per_callback(self) -> float:
        if self.statements is None or not self.stored:
            return NAN
        return sum(self.statements.exec_ms.values()) * 1000 / self.stored


@dataclass
class Saturation:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    costs: Costs
    generator_cpu: float


@dataclass
class FixedRate:
    sent: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    costs: Costs
    generator_cpu: float
    lag_p99_ms: float
    #: The server's and PostgreSQL's CPU shares in the IDLE_SECONDS before the phase.
    idle: tuple[float, float]


@dataclass
class Target:
    """A server under test; `skipped` says why it is not measured."""

    name: str
    server: Server | None = None
    skipped: str | None = None
    saturation: list[Saturation] = field(default_factory=list)
    fixed: list[FixedRate] = field(default_factory=list)
    acknowledged: int = 0
    database: Path | None = None
    postgres: PgServer | None = None
    counter: StatementCounter | None = None
    statements: Statements = field(default_factory=Statements)
    stored: int = 0
    round_trips: int = 0


@dataclass(frozen=True)
class Cpus:
    """Where things run: the load generators on `client`, the servers on `server`."""

    client: int | None
    server: int | None

    def describe(self) -> str:
        if self.server is None:
            return "not pinned (one CPU, or taskset missing): load and servers share the CPUs"
        return f"load generators on CPU {self.client}, servers on CPU {self.server} (taskset)"

    def pinned(self) -> list[int]:
        return [cpu for cpu in (self.client, self.server) if cpu is not None]


def choose_cpus(args: argparse.Namespace) -> Cpus:
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2 or shutil.which("taskset") is None:
        return Cpus(None, None)
    client = available[0] if args.client_cpu is None else args.client_cpu
    server = available[1] if args.server_cpu is None else args.server_cpu
    return Cpus(client, server)


# --------------------------------------------------------------------------- meters


def cpu_ticks() -> dict[int, tuple[int, int]]:
    """Per CPU, (busy, total) clock ticks since boot from /proc/stat; empty elsewhere."""
    ticks: dict[int, tuple[int, int]] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/stat").read_text().splitlines():
            name, *values = line.split()
            if name.startswith("cpu") and name[3:].isdigit():
                user, nice, system, idle, iowait, irq, softirq, steal = map(int, values[:8])
                busy = user + nice + system + irq + softirq
                ticks[int(name[3:])] = (busy, busy + idle + iowait + steal)
    return ticks


def children_cpu() -> float:
    """User + system CPU of this script's children that have exited (wrk once it is done)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def per_request(before: float | None, after: float | None, requests: int) -> float:
    """CPU seconds from `before` to `after` per request, in µs; NaN if not measured."""
    if before is None or after is None or not requests:
        return NAN
    return (after - before) / requests * 1e6


def share(before: float | None, after: float | None, seconds: float) -> float:
    """CPU seconds from `before` to `after` as a share of `seconds` of wall time."""
    return NAN if before is None or after is None else (after - before) / seconds


def round_trips(server: Server) -> int | None:
    """The bot's round trips to its database so far, from its /metrics page; None if unread."""
    try:
        with urllib.request.urlopen(f"{server.base}/metrics", timeout=5) as answer:
            page = answer.read().decode()
    except OSError:
        return None
    found = re.search(r"^kie_slack_database_round_trips_total (\S+)$", page, re.MULTILINE)
    return None if found is None else int(float(found.group(1)))


class Meter:
    """Readings before a phase; `stop` reads them again and gives the phase's Costs."""

    def __init__(self, target: Target) -> None:
        assert target.server is not None
        self._target = target
        self._stored: int | None = None
        if target.counter is not None:
            self._stored = target.counter.count("events")
            target.counter.reset()
        self._kinds = target.postgres.cpu_seconds() if target.postgres else None
        self._ticks = cpu_ticks()
        self._children = children_cpu()
        self._started = time.monotonic()
        self._server = target.server.cpu_seconds()
        self._round_trips = round_trips(target.server) if target.counter is not None else None

    def stop(self, requests: int) -> tuple[Costs, float]:
        """The phase's Costs, and the CPU share its load generator used (if it has exited)."""
        target = self._target
        assert target.server is not None
        server = target.server.cpu_seconds()
        ticks = cpu_ticks()
        kinds = target.postgres.cpu_seconds() if target.postgres else None
        seconds = time.monotonic() - self._started
        busy = {
            cpu: (busy - self._ticks[cpu][0]) / max(1, total - self._ticks[cpu][1])
            for cpu, (busy, total) in ticks.items()
            if cpu in self._ticks
        }
        before = None if self._kinds is None else sum(self._kinds.values())
        database = None if kinds is None else sum(kinds.values())
        costs = Costs(
            per_request(self._server, server, requests),
            per_request(before, database, requests),
            busy,
            share(self._server, server, seconds),
            share(before, database, seconds),
        )
        if kinds is not None and self._kinds is not None:
            costs.database_kinds = {
                kind: per_request(self._kinds.get(kind, 0.0), spent, requests)
                for kind, spent in kinds.items()
            }
        if target.counter is not None and self._stored is not None:
            costs.statements = target.counter.read()
            costs.stored = target.counter.count("events") - self._stored
            trips = round_trips(target.server)
            if trips is not None and self._round_trips is not None:
                costs.round_trips = trips - self._round_trips
                target.round_trips += costs.round_trips
            if costs.statements is not None:
                target.statements += costs.statements
                target.stored += costs.stored
        return costs, share(self._children, children_cpu(), seconds)


# --------------------------------------------------------------------------- load


async def output_of(argv: list[str]) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        raise SetupError(f"{argv[0]} failed ({process.returncode}): {stderr.decode()[-500:]}")
    return stdout.decode()


def marked(output: str, marker: str) -> dict[str, Any]:
    for line in output.splitlines():
        if line.startswith(marker + " "):
            result: dict[str, Any] = json.loads(line[len(marker) + 1 :])
            return result
    raise SetupError(f"no {marker} line in:\n{output[-1000:]}")


async def wrk(
    base: str, plan: Path, seconds: float, connections: int, cpu: int | None
) -> dict[str, Any]:
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={REQUEST_TIMEOUT:g}s",
        "-s",
        str(WRK_SCRIPT),
        base,
        "--",
        str(plan),
    ]
    result = marked(await output_of(pinned(argv, cpu)), "WRK_RESULT")
    if result["reused"]:
        raise SetupError(f"wrk ran out of planned requests ({result}); raise --max-rate")
    return result


async def saturate(
    target: Target, plans: Plans, label: str, args: argparse.Namespace, cpus: Cpus
) -> Saturation:
    assert target.server is not None
    base = target.server.base
    warm = plans.write(f"{label}w_", int(args.max_rate * (WARMUP_SECONDS + 1)))
    await wrk(base, warm, WARMUP_SECONDS, args.connections, cpus.client)
    plan = plans.write(f"{label}s_", int(args.max_rate * (args.seconds + 1)))
    meter = Meter(target)
    result = await wrk(base, plan, args.seconds, args.connections, cpus.client)
    requests = int(result["requests"])
    costs, generator = meter.stop(requests)
    errors = sum(int(result[k]) for k in ("connect", "read", "write", "status", "timeout"))
    target.acknowledged += requests - errors
    return Saturation(
        requests=requests,
        rps=requests / (float(result["duration_us"]) / 1e6),
        p50_ms=float(result["p50_us"]) / 1000,
        p99_ms=float(result["p99_us"]) / 1000,
        errors=errors,
        costs=costs,
        generator_cpu=generator,
    )


async def fixed_rate(
    target: Target, plans: Plans, label: str, args: argparse.Namespace, cpus: Cpus
) -> FixedRate:
    assert target.server is not None
    count = int(args.rate * args.seconds)
    plan = plans.write(f"{label}f_", count)
    argv = [
        sys.executable,
        str(HERE / "openloop.py"),
        target.server.base,
        str(plan),
        f"--rate={args.rate:g}",
        f"--seconds={args.seconds:g}",
    ]
    idle = await idle_shares(target)
    meter = Meter(target)
    result = marked(await output_of(pinned(argv, cpus.client)), "OPENLOOP_RESULT")
    costs, _ = meter.stop(count)
    errors: dict[str, int] = result["errors"]
    target.acknowledged += int(result["accepted"])
    return FixedRate(
        sent=count,
        p50_ms=float(result["p50_ms"] or "nan"),
        p99_ms=float(result["p99_ms"] or "nan"),
        max_ms=float(result["max_ms"] or "nan"),
        errors=errors,
        costs=costs,
        generator_cpu=float(result["cpu"]),
        lag_p99_ms=float(result["lag_p99_ms"] or "nan"),
        idle=idle,
    )


async def idle_shares(target: Target) -> tuple[float, float]:
    """The server's and PostgreSQL's CPU shares over IDLE_SECONDS with no requests: what the
    phase before left to do (stored callbacks' posts, autovacuum), still running."""
    assert target.server is not None
    server = target.server.cpu_seconds()
    kinds = target.postgres.cpu_seconds() if target.postgres else None
    started = time.monotonic()
    await asyncio.sleep(IDLE_SECONDS)
    seconds = time.monotonic() - started
    kinds_after = target.postgres.cpu_seconds() if target.postgres else None
    return (
        share(server, target.server.cpu_seconds(), seconds),
        share(
            None if kinds is None else sum(kinds.values()),
            None if kinds_after is None else sum(kinds_after.values()),
            seconds,
        ),
    )


# --------------------------------------------------------------------------- servers


def bot_env(port: int, database_url: str, log_level: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "KIE_DEFAULT_CHANNEL", "KIE_API_KEY"):
        env.pop(name, None)
    env.update(
        HOST=HOST,
        PORT=str(port),
        DATABASE_URL=database_url,
        KIE_WEBHOOK_HMAC_KEY=HMAC_KEY,
        LOG_LEVEL=log_level,
        # Nothing leaves this machine, even if a code path tried.
        SLACK_API_URL=f"http://{HOST}:9/api/",
        KIE_API_URL=f"http://{HOST}:9",
        PUBLIC_URL=f"http://{HOST}:{port}",
    )
    return env


def postgres_url(args: argparse.Namespace) -> str | None:
    if args.postgres:
        return str(args.postgres)
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql://")) else None


def open_postgres(
    args: argparse.Namespace, cpus: Cpus, stack: contextlib.ExitStack
) -> tuple[PgServer | None, str]:
    """The PostgreSQL server to measure on (None if none) and what to say about it."""
    url = postgres_url(args)
    if url is not None:
        server = PgServer(url, local_data_directory(url))
        cpu = "its CPU from /proc" if server.data else "its CPU not measured (not on this machine)"
        return server, f"the server at {safe_url(url)}, not pinned; {cpu}"
    if args.no_postgres:
        return None, "--no-postgres"
    if not args.start_postgres and pg_bin() is None:
        return None, "no --postgres URL, no PostgreSQL under /usr/lib/postgresql/*/bin"
    server = stack.enter_context(throwaway_cluster(cpus.client))
    where = "unpinned" if cpus.client is None else f"on CPU {cpus.client} with the load"
    settings = ", ".join(
        f"{name}={value.strip(chr(39))}"
        for name, value in server.settings.items()
        if name in ("synchronous_commit", "shared_preload_libraries")
    )
    return server, f"a throwaway cluster {where}, {settings}, fsync on"


async def start_targets(
    args: argparse.Namespace,
    tmp: Path,
    cpus: Cpus,
    postgres: tuple[PgServer | None, str],
    stack: contextlib.ExitStack,
) -> list[Target]:
    references = str(HERE / "references.py")

    def bot_argv(store: str) -> list[str]:
        """`python -m bot serve`, under cProfile into FILE-`store`.EXT with --profile-bot."""
        if not args.profile_bot:
            return [sys.executable, "-m", "bot", "serve"]
        path = Path(args.profile_bot).resolve()
        profile = path.with_name(f"{path.stem}-{store}{path.suffix}")
        return [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "bot", "serve"]

    targets: list[Target] = []

    def launch(name: str, argv: list[str], env: dict[str, str], port: int) -> Target:
        target = Target(name, start(name.replace(" ", "-"), argv, env, port, tmp, cpu=cpus.server))
        targets.append(target)
        return target

    port = free_port()
    launch(BARE, [sys.executable, references, "bare", str(port)], dict(os.environ), port)
    port = free_port()
    reference_db = tmp / "aiosqlite.db"
    launch(
        REFERENCE,
        [sys.executable, references, "aiosqlite", str(port), str(reference_db)],
        dict(os.environ),
        port,
    )
    port = free_port()
    sqlite_target = launch(
        SQLITE,
        bot_argv("sqlite"),
        bot_env(port, f"sqlite:///{tmp / 'bot.db'}", args.log_level),
        port,
    )
    sqlite_target.database = tmp / "bot.db"
    server, about = postgres
    url = None
    if server is None:
        targets.append(Target(POSTGRES, skipped=about))
    else:
        url = stack.enter_context(scratch_database(server.url, "kie_bench"))
        port = free_port()
        launch(
            POSTGRES, bot_argv("postgresql"), bot_env(port, url, args.log_level), port
        ).postgres = server
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        for target in targets:
            if target.server is None:
                continue
            try:
                await wait_ready(session, target.server)
            except SetupError as exc:
                if target.name != POSTGRES:
                    raise
                stop(target.server)
                target.server = None
                reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "no reason"
                target.skipped = f"the bot did not start on it: {reason[:160]}"
    on_postgres = targets[-1]
    if url is not None and on_postgres.server is not None:
        # The bot's migrations have made the events table by now.
        on_postgres.counter = StatementCounter(url)
        stack.callback(on_postgres.counter.close)
    return targets


# --------------------------------------------------------------------------- the run


async def run(args: argparse.Namespace, tmp: Path) -> None:
    cpus = choose_cpus(args)
    with contextlib.ExitStack() as stack:
        postgres = open_postgres(args, cpus, stack)
        if cpus.client is not None:
            os.sched_setaffinity(0, {cpus.client})
        print(f"ingest benchmark: {cpus.describe()}")
        print(
            f"  {args.rounds} round(s); per target: wrk {args.seconds:g} s with "
            f"{args.connections} connections, then {args.rate:g} req/s open loop for "
            f"{args.seconds:g} s"
        )
        print(
            f"  kie-slack with LOG_LEVEL={args.log_level} (--log-level; the bot's default is INFO)"
        )
        exported = [f"{name}={os.environ[name]}" for name in SHOWN_SETTINGS if name in os.environ]
        if exported:
            print(f"  kie-slack settings from this environment: {' '.join(exported)}")
        server, about = postgres
        if server is None:
            print(f"  PostgreSQL: not measured ({about})")
        else:
            print(f"  PostgreSQL: {version(server.url)}, {about}")
            print(
                "    a fresh database per run; its CPU is counted on its own (pg us/req), not in"
                " the bot's"
            )
        print(f"  load average before: {load()}")
        plans = Plans(tmp)
        targets = await start_targets(args, tmp, cpus, postgres, stack)
        try:
            await measure(targets, plans, args, cpus)
        finally:
            for target in targets:
                if target.server is not None:
                    stop(target.server)
        print(f"  load average after: {load()}")
        print_summary(targets, args, cpus)
        check_stored(targets)


async def measure(
    targets: list[Target], plans: Plans, args: argparse.Namespace, cpus: Cpus
) -> None:
    measured = [target for target in targets if target.server is not None]
    for round_ in range(1, args.rounds + 1):
        print(f"round {round_}")
        for target in measured:
            label = f"r{round_}_"
            sat = await saturate(target, plans, label, args, cpus)
            fix = await fixed_rate(target, plans, label, args, cpus)
            target.saturation.append(sat)
            target.fixed.append(fix)
            bare = measured[0].saturation[-1]
            print(
                f"  {target.name:<20} wrk {sat.rps:7.0f} req/s (x{sat.rps / bare.rps:.2f})"
                f" p50 {sat.p50_ms:5.2f} p99 {sat.p99_ms:6.2f} ms, {costs_text(sat.costs)},"
                f" errors {sat.errors} | wrk CPU {sat.generator_cpu:.0%},"
                f" {busy_text(sat.costs, cpus)}"
            )
            print(
                f"  {'':<20} {args.rate:g}/s p50 {fix.p50_ms:5.2f} p99 {fix.p99_ms:6.2f}"
                f" max {fix.max_ms:6.2f} ms, {costs_text(fix.costs)},"
                f" errors {sum(fix.errors.values())}"
                f"{' ' + str(fix.errors) if fix.errors else ''}"
                f" | generator CPU {fix.generator_cpu:.0%}, send lag p99"
                f" {fix.lag_p99_ms:.2f} ms, {busy_text(fix.costs, None)};"
                f" {idle_text(fix.idle)}"
            )


def costs_text(costs: Costs) -> str:
    text = f"server {costs.server_us:.0f} us/req"
    if costs.database_us == costs.database_us:  # not NaN
        text += f", PostgreSQL {costs.database_us:.0f} us/req"
    if costs.statements is not None:
        text += f", {costs.per_callback():.2f} statements/callback"
    if costs.round_trips is not None and costs.stored:
        text += f", {costs.round_trips / costs.stored:.3f} round trips/callback"
    return text


def busy_text(costs: Costs, cpus: Cpus | None) -> str:
    """The server's (and PostgreSQL's) CPU share, and with `cpus` how busy the CPUs were.

    /proc/stat counts busy time in clock ticks, which miss short bursts: only under wrk does it
    tell whether other work ran on these CPUs.
    """
    text = f"server CPU {costs.server_share:.0%}"
    if costs.database_share == costs.database_share:  # not NaN
        text += f", PostgreSQL {costs.database_share:.0%}"
    if cpus is not None:
        shown = cpus.pinned() or sorted(costs.busy)
        text += ", CPU busy " + " ".join(
            f"{cpu}:{costs.busy[cpu]:.0%}" for cpu in shown if cpu in costs.busy
        )
    return text


def idle_text(idle: tuple[float, float]) -> str:
    server, database = idle
    text = f"{IDLE_SECONDS:g} s idle before: server CPU {server:.0%}"
    return text if database != database else f"{text}, PostgreSQL {database:.0%}"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else NAN


# --------------------------------------------------------------------------- the summary


def ratio(mine: Sequence[P], theirs: Sequence[P], figure: Callable[[P], float]) -> float:
    """The median over the rounds of `figure` of `mine` over `theirs` in the same round."""
    return median([figure(a) / figure(b) for a, b in zip(mine, theirs, strict=True)])


def rps(phase: Saturation) -> float:
    return phase.rps


def server_us(phase: Saturation | FixedRate) -> float:
    return phase.costs.server_us


def print_summary(targets: list[Target], args: argparse.Namespace, cpus: Cpus) -> None:
    bare = targets[0]
    print()
    print(f"medians over {len(bare.saturation)} round(s); x bare = ratio to the bare handler")
    print(
        f"{'':<20} {'saturation (wrk)':^51} | {f'{args.rate:g} req/s open loop':^37}\n"
        f"{'target':<20} {'req/s':>7} {'x bare':>6} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'us/req':>6} {'x bare':>6} {'pg us':>6} | {'p50 ms':>6} {'p99 ms':>6} "
        f"{'us/req':>6} {'pg us':>6} {'errors':>7}"
    )
    for target in targets:
        if target.skipped is not None:
            print(f"{target.name:<20} not measured ({target.skipped})")
            continue
        sat, fix = target.saturation, target.fixed
        errors = sum(s.errors for s in sat) + sum(sum(f.errors.values()) for f in fix)
        print(
            f"{target.name:<20} {median([s.rps for s in sat]):>7.0f} "
            f"{ratio(target.saturation, bare.saturation, rps):>6.2f} "
            f"{median([s.p50_ms for s in sat]):>7.2f} {median([s.p99_ms for s in sat]):>7.2f} "
            f"{median([s.costs.server_us for s in sat]):>6.0f} "
            f"{ratio(target.saturation, bare.saturation, server_us):>6.2f} "
            f"{pg_figure(median([s.costs.database_us for s in sat]))} | "
            f"{median([f.p50_ms for f in fix]):>6.2f} {median([f.p99_ms for f in fix]):>6.2f} "
            f"{median([f.costs.server_us for f in fix]):>6.0f} "
            f"{pg_figure(median([f.costs.database_us for f in fix]))} {errors:>7}"
        )
    print("(us/req: the server process's CPU; pg us: PostgreSQL's, on its own, not in us/req)")
    saturation = [s for target in targets for s in target.saturation]
    fixed = [f for target in targets for f in target.fixed]
    print(
        f"load generators: wrk CPU at most {max(s.generator_cpu for s in saturation):.0%}, "
        f"open-loop generator CPU at most {max(f.generator_cpu for f in fixed):.0%}, "
        f"send lag p99 at most {max(f.lag_p99_ms for f in fixed):.2f} ms"
    )
    if cpus.client is not None and cpus.server is not None:
        client = max(s.costs.busy.get(cpus.client, NAN) for s in saturation)
        server = min(s.costs.busy.get(cpus.server, NAN) for s in saturation)
        own = any(target.postgres is not None and target.postgres.own for target in targets)
        print(
            f"under wrk: the client CPU {cpus.client} (wrk, this script"
            f"{', the throwaway PostgreSQL' if own else ''}) at most {client:.0%} busy, "
            f"the server CPU {cpus.server} at least {server:.0%}"
        )
    by_name = {target.name: target for target in targets}
    sqlite, postgres = by_name[SQLITE], by_name[POSTGRES]
    if postgres.skipped is None:
        print_postgres(postgres, sqlite, args)
    print_targets(bare, sqlite, postgres, args)


def pg_figure(value: float) -> str:
    return f"{'-':>6}" if value != value else f"{value:>6.0f}"


def print_postgres(postgres: Target, sqlite: Target, args: argparse.Namespace) -> None:
    """Where a callback's time goes on PostgreSQL, next to SQLite; the statements it runs."""
    print()
    print("a stored callback on kie-slack PostgreSQL vs SQLite (medians over the rounds):")
    for phase, mine, theirs in (
        ("wrk", postgres.saturation, sqlite.saturation),
        (f"{args.rate:g}/s", postgres.fixed, sqlite.fixed),
    ):
        bot = median([p.costs.server_us for p in mine])
        reference = median([p.costs.server_us for p in theirs])
        database = median([p.costs.database_us for p in mine])
        calls = median([p.costs.per_callback() for p in mine])
        executing = median([p.costs.exec_us_per_callback() for p in mine])
        kinds = sorted({kind for p in mine for kind in p.costs.database_kinds})
        split = ", ".join(
            f"{kind} {median([p.costs.database_kinds.get(kind, NAN) for p in mine]):.0f}"
            for kind in kinds
        )
        print(
            f"  {phase:<6} bot CPU {bot:.0f} us (SQLite {reference:.0f} us, x{bot / reference:.2f});"
            f" PostgreSQL CPU {database:.0f} us ({split or 'not split'}); {calls:.2f} statements,"
            f" executing {executing:.0f} us in PostgreSQL"
        )
    counter = postgres.counter
    if counter is None or counter.available is not None:
        why = "no counter" if counter is None else counter.available
        print(f"round trips: not counted (pg_stat_statements: {why})")
        return
    stored, statements = postgres.stored, postgres.statements
    if not stored:
        print("round trips: no callback stored while measuring")
        return
    print(
        f"round trips: {postgres.round_trips / stored:.3f} per stored callback (the bot's own"
        f" count, kie_slack_database_round_trips_total: a pipeline of statements counts once;"
        f" {postgres.round_trips} over {stored} callbacks stored in the measured phases)"
    )
    print(
        f"statements: {statements.total() / stored:.2f} per stored callback "
        f"(pg_stat_statements calls, BEGIN and COMMIT included; {statements.total()} over "
        f"{stored} callbacks stored in the measured phases)"
    )
    print(
        f"  {'calls/cb':>8} {'mean ms':>8} {'max ms':>7}  statement (top {TOP_STATEMENTS} by"
        " calls; mean and longest execution in PostgreSQL)"
    )
    for query, calls in statements.calls.most_common(TOP_STATEMENTS):
        mean = statements.exec_ms[query] / calls if calls else NAN
        longest = statements.max_ms[query]
        print(f"  {calls / stored:>8.3f} {mean:>8.3f} {longest:>7.2f}  {shorten(query, 70)}")


def print_target(text: str, value: float, unit: str, limit: float, at_most: bool) -> None:
    met = value <= limit if at_most else value >= limit
    figure = f"{value:.3f} x" if unit == "x" else f"{value:.2f} ms"
    print(f"  {text:<62} {figure:>9} -> {'met' if met else 'NOT met'}")


def print_targets(bare: Target, sqlite: Target, postgres: Target, args: argparse.Namespace) -> None:
    print()
    print("targets (issue 18):")
    rate = f"at {args.rate:g} req/s"
    if sqlite.saturation:
        times = ratio(sqlite.saturation, bare.saturation, rps)
        print_target(f"{SQLITE} >= {SQLITE_RATIO} x bare", times, "x", SQLITE_RATIO, False)
        p99 = median([f.p99_ms for f in sqlite.fixed])
        print_target(f"{SQLITE} p99 <= {SQLITE_P99_MS:g} ms {rate}", p99, "ms", SQLITE_P99_MS, True)
    if postgres.skipped is not None:
        print(f"  {POSTGRES}: not measured ({postgres.skipped})")
    elif sqlite.saturation:
        times = ratio(postgres.saturation, sqlite.saturation, rps)
        text = f"{POSTGRES} >= {POSTGRES_RATIO} x SQLite's req/s"
        print_target(text, times, "x", POSTGRES_RATIO, False)
        p99 = median([f.p99_ms for f in postgres.fixed])
        text = f"{POSTGRES} p99 <= {POSTGRES_P99_MS:g} ms {rate}"
        print_target(text, p99, "ms", POSTGRES_P99_MS, True)
        cpu = ratio(postgres.saturation, sqlite.saturation, server_us)
        text = f"{POSTGRES} bot CPU/callback <= {POSTGRES_CPU_RATIO} x SQLite's (wrk)"
        print_target(text, cpu, "x", POSTGRES_CPU_RATIO, True)
        cpu = ratio(postgres.fixed, sqlite.fixed, server_us)
        print(f"  (and {rate}: bot CPU/callback {cpu:.2f} x SQLite's)")
    if args.rate != 500:
        print("  (the issue's p99 targets are at 500 req/s; this run used --rate)")


def check_stored(targets: list[Target]) -> None:
    """Every callback acknowledged as received is in the event log (and none twice)."""
    for target in targets:
        if target.counter is not None:
            events = target.counter.count("events")
        elif target.database is not None and target.database.exists():
            with sqlite3.connect(target.database) as conn:
                events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        else:
            continue
        # Warm-up requests are stored too, and a request in flight when wrk stops may be stored
        # without being counted: more events than acknowledgements is expected, fewer is a loss.
        result = "ok" if events >= target.acknowledged else "LOST CALLBACKS"
        print(
            f"check: {target.name} stored {events} events for {target.acknowledged} "
            f"acknowledged measured callbacks -> {result}"
        )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="per target and phase")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over all targets")
    parser.add_argument("--rate", type=float, default=500.0, help="open-loop requests/s")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections")
    parser.add_argument(
        "--max-rate",
        type=float,
        default=40_000,
        help="requests/s planned for wrk (signed ahead); the run stops if wrk goes faster",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--postgres",
        metavar="URL",
        help="measure kie-slack on PostgreSQL on this server (a fresh database, dropped after)",
    )
    where.add_argument(
        "--start-postgres",
        action="store_true",
        help="start a throwaway PostgreSQL cluster (the default when Debian's binaries exist)",
    )
    where.add_argument(
        "--no-postgres", action="store_true", help="leave kie-slack on PostgreSQL out"
    )
    parser.add_argument(
        "--log-level", default="WARNING", help="the bot's LOG_LEVEL (default WARNING)"
    )
    parser.add_argument("--client-cpu", type=int, help="CPU for the load generators")
    parser.add_argument("--server-cpu", type=int, help="CPU for the servers")
    parser.add_argument(
        "--profile-bot",
        metavar="FILE",
        help="run the bots under cProfile, into FILE-sqlite and FILE-postgresql (suffix kept)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.seconds > 600:
        parser.error("--seconds must be in (0, 600]")
    if args.rate <= 0 or args.connections <= 0 or args.rounds <= 0 or args.max_rate <= 0:
        parser.error("--rate, --connections, --rounds and --max-rate must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print(WRK_MISSING, file=sys.stderr)
        return 2
    try:
        return run_in_tempdir("ingest", lambda tmp: run(args, tmp), keep=args.keep)
    except KeyboardInterrupt:
        print("ingest benchmark: interrupted (servers and PostgreSQL stopped)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
