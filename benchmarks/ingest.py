"""Callback ingest benchmark: kie-slack's POST /callbacks/veo against reference servers, with wrk.

Run:  .venv/bin/python benchmarks/ingest.py [--seconds 5] [--rounds 2] [--rate 500]
Needs wrk (Debian: `apt-get install wrk`); without it the benchmark says so and reports nothing.

Targets, each a subprocess on 127.0.0.1, all measured in one run:
  bare               an aiohttp handler that parses the JSON and answers (benchmarks/references.py)
  aiohttp+aiosqlite  the same plus one INSERT and one commit per request through aiosqlite
  kie-slack SQLite   `python -m bot serve` on a fresh SQLite file (console mode, so every new task
                     also gets its follower and outbox row, as with a default channel)
  kie-slack Postgres with `--postgres URL` (or a postgresql:// DATABASE_URL); otherwise, or when
                     the bot does not start with that URL, the table says "not measured" and why.
                     The run adds rows to that database: give it a throwaway one. Its CPU per
                     request is the bot's alone (PostgreSQL's own processes are not counted,
                     nor pinned)

With two CPUs or more, the load generators and this script run on one CPU and the servers on
another (`taskset`), so neither steals the other's time. Every request is a signed Veo success
callback (tests/fixtures/callbacks/veo-success.json) with a task id never sent before; the
signatures are computed ahead into a plan file, the same requests for every target.

Each round runs every target in turn (so a change in the machine's load hits them alike):
  saturation  wrk, one thread, `--connections` keep-alive connections, closed loop, after a
              one-second warm-up: requests/s, wrk's p50/p99, server CPU per request
  fixed rate  `--rate` requests/s open loop (benchmarks/openloop.py): a request's latency runs
              from its due time to its whole answer, so a late answer delays nothing else and
              counts in full (no coordinated omission); p50/p99/max, server CPU per request, the
              generator's own CPU and send lag (it kept up if both are small)
Server CPU is user + system time of the server process (all its threads) from /proc/PID/stat.

Printed: one line per target and round, then the medians over the rounds with each server's
throughput and CPU as a ratio to the bare handler's in the same round, then the targets for
kie-slack on SQLite: >= 0.6 x the bare handler's throughput, p99 <= 5 ms at 500 req/s. Issue 10
measured kie.ai's Express receiver sample at 0.28 x bare the same way (it is not run here).
A measurement, not a test: exits 0 unless wrk is missing or a server does not start (exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
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

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "tests" / "fixtures"
VEO_SUCCESS = FIXTURES / "callbacks" / "veo-success.json"
WRK_SCRIPT = HERE / "ingest.lua"
HMAC_KEY = "bench-hmac-key-not-a-secret"
CALLBACK_PATH = "/callbacks/veo"
TASK_ID_MARKER = "__BENCH_TASK_ID__"
WARMUP_SECONDS = 1.0
#: wrk's limit for one request, and the open-loop generator's wait for the last answers.
REQUEST_TIMEOUT = 10.0
TARGET_RATIO = 0.6
TARGET_P99_MS = 5.0
#: Settings that change what the bot does per callback; shown when this environment sets them.
SHOWN_SETTINGS = ("SLACK_SAVE_VIDEOS", "SAVE_VIDEO_MAX_MB", "LOG_FORMAT", "POLL_INTERVAL")
WRK_MISSING = (
    "ingest benchmark: wrk is not installed; it drives the load. Install it with "
    "`apt-get install wrk` (Debian/Ubuntu) and run again."
)


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
class Saturation:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float
    errors: int


@dataclass
class FixedRate:
    sent: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_us: float
    errors: dict[str, int]
    generator_cpu: float
    lag_p99_ms: float


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


@dataclass(frozen=True)
class Cpus:
    """Where things run: the load generators on `client`, the servers on `server`."""

    client: int | None
    server: int | None

    def describe(self) -> str:
        if self.server is None:
            return "not pinned (one CPU, or taskset missing): load and servers share the CPUs"
        return f"load generators on CPU {self.client}, servers on CPU {self.server} (taskset)"


def choose_cpus(args: argparse.Namespace) -> Cpus:
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2 or shutil.which("taskset") is None:
        return Cpus(None, None)
    client = available[0] if args.client_cpu is None else args.client_cpu
    server = available[1] if args.server_cpu is None else args.server_cpu
    return Cpus(client, server)


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
    cpu = target.server.cpu_seconds()
    result = await wrk(base, plan, args.seconds, args.connections, cpus.client)
    cpu_after = target.server.cpu_seconds()
    requests = int(result["requests"])
    errors = sum(int(result[k]) for k in ("connect", "read", "write", "status", "timeout"))
    target.acknowledged += requests - errors
    return Saturation(
        requests=requests,
        rps=requests / (float(result["duration_us"]) / 1e6),
        p50_ms=float(result["p50_us"]) / 1000,
        p99_ms=float(result["p99_us"]) / 1000,
        cpu_us=cpu_per_request(cpu, cpu_after, requests),
        errors=errors,
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
    cpu = target.server.cpu_seconds()
    result = marked(await output_of(pinned(argv, cpus.client)), "OPENLOOP_RESULT")
    cpu_after = target.server.cpu_seconds()
    errors: dict[str, int] = result["errors"]
    target.acknowledged += int(result["accepted"])
    return FixedRate(
        sent=count,
        p50_ms=float(result["p50_ms"] or "nan"),
        p99_ms=float(result["p99_ms"] or "nan"),
        max_ms=float(result["max_ms"] or "nan"),
        cpu_us=cpu_per_request(cpu, cpu_after, count),
        errors=errors,
        generator_cpu=float(result["cpu"]),
        lag_p99_ms=float(result["lag_p99_ms"] or "nan"),
    )


def cpu_per_request(before: float | None, after: float | None, requests: int) -> float:
    if before is None or after is None or not requests:
        return float("nan")
    return (after - before) / requests * 1e6


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


async def start_targets(args: argparse.Namespace, tmp: Path, cpus: Cpus) -> list[Target]:
    references = str(HERE / "references.py")
    bot_argv = [sys.executable]
    if args.profile_bot:
        bot_argv += ["-m", "cProfile", "-o", str(Path(args.profile_bot).resolve())]
    bot_argv += ["-m", "bot", "serve"]
    targets: list[Target] = []

    def launch(name: str, argv: list[str], env: dict[str, str], port: int) -> Target:
        target = Target(name, start(name.replace(" ", "-"), argv, env, port, tmp, cpu=cpus.server))
        targets.append(target)
        return target

    port = free_port()
    launch("bare", [sys.executable, references, "bare", str(port)], dict(os.environ), port)
    port = free_port()
    reference_db = tmp / "aiosqlite.db"
    launch(
        "aiohttp+aiosqlite",
        [sys.executable, references, "aiosqlite", str(port), str(reference_db)],
        dict(os.environ),
        port,
    )
    port = free_port()
    sqlite_target = launch(
        "kie-slack SQLite",
        bot_argv,
        bot_env(port, f"sqlite:///{tmp / 'bot.db'}", args.log_level),
        port,
    )
    sqlite_target.database = tmp / "bot.db"
    postgres = postgres_url(args)
    if postgres is None:
        targets.append(
            Target(
                "kie-slack PostgreSQL", skipped="no --postgres URL or postgresql:// DATABASE_URL"
            )
        )
    else:
        port = free_port()
        launch("kie-slack PostgreSQL", bot_argv, bot_env(port, postgres, args.log_level), port)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        for target in targets:
            if target.server is None:
                continue
            try:
                await wait_ready(session, target.server)
            except SetupError as exc:
                if target.name != "kie-slack PostgreSQL":
                    raise
                stop(target.server)
                target.server = None
                reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "no reason"
                target.skipped = f"the bot did not start with that URL: {reason[:160]}"
    return targets


# --------------------------------------------------------------------------- the run


async def run(args: argparse.Namespace, tmp: Path) -> None:
    cpus = choose_cpus(args)
    if cpus.client is not None:
        os.sched_setaffinity(0, {cpus.client})
    print(f"ingest benchmark: {cpus.describe()}")
    print(
        f"  {args.rounds} round(s); per target: wrk {args.seconds:g} s with {args.connections} "
        f"connections, then {args.rate:g} req/s open loop for {args.seconds:g} s"
    )
    print(f"  kie-slack with LOG_LEVEL={args.log_level} (--log-level; the bot's default is INFO)")
    exported = [f"{name}={os.environ[name]}" for name in SHOWN_SETTINGS if name in os.environ]
    if exported:
        print(f"  kie-slack settings from this environment: {' '.join(exported)}")
    print(f"  load average before: {load()}")
    plans = Plans(tmp)
    targets = await start_targets(args, tmp, cpus)
    try:
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
                    f"  {target.name:<20} {sat.rps:7.0f} req/s (x{sat.rps / bare.rps:.2f})"
                    f" {sat.cpu_us:4.0f} us/req, errors {sat.errors}"
                    f" | {args.rate:g}/s p50 {fix.p50_ms:5.2f} p99 {fix.p99_ms:6.2f}"
                    f" max {fix.max_ms:6.2f} ms, errors {sum(fix.errors.values())}"
                    f"{' ' + str(fix.errors) if fix.errors else ''}"
                    f" | generator CPU {fix.generator_cpu:.0%}, send lag p99"
                    f" {fix.lag_p99_ms:.2f} ms"
                )
    finally:
        for target in targets:
            if target.server is not None:
                stop(target.server)
    print(f"  load average after: {load()}")
    print_summary(targets, args)
    check_stored(targets)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_summary(targets: list[Target], args: argparse.Namespace) -> None:
    bare = targets[0]
    rounds = range(len(bare.saturation))
    print()
    print(f"medians over {len(bare.saturation)} round(s); x bare = ratio to the bare handler")
    print(
        f"{'':<20} {'saturation (wrk)':^44} | {f'{args.rate:g} req/s open loop':^30}\n"
        f"{'target':<20} {'req/s':>7} {'x bare':>6} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'us/req':>6} {'x bare':>6} | {'p50 ms':>6} {'p99 ms':>6} {'us/req':>6} {'errors':>7}"
    )
    for target in targets:
        if target.skipped is not None:
            print(f"{target.name:<20} not measured ({target.skipped})")
            continue
        sat, fix = target.saturation, target.fixed
        rps_ratio = median([sat[r].rps / bare.saturation[r].rps for r in rounds])
        cpu_ratio = median([sat[r].cpu_us / bare.saturation[r].cpu_us for r in rounds])
        errors = sum(s.errors for s in sat) + sum(sum(f.errors.values()) for f in fix)
        print(
            f"{target.name:<20} {median([s.rps for s in sat]):>7.0f} {rps_ratio:>6.2f} "
            f"{median([s.p50_ms for s in sat]):>7.2f} {median([s.p99_ms for s in sat]):>7.2f} "
            f"{median([s.cpu_us for s in sat]):>6.0f} {cpu_ratio:>6.2f} | "
            f"{median([f.p50_ms for f in fix]):>6.2f} {median([f.p99_ms for f in fix]):>6.2f} "
            f"{median([f.cpu_us for f in fix]):>6.0f} {errors:>7}"
        )
    generator = [f for target in targets for f in target.fixed]
    print(
        f"open-loop generator: CPU at most {max(f.generator_cpu for f in generator):.0%}, "
        f"send lag p99 at most {max(f.lag_p99_ms for f in generator):.2f} ms"
    )
    bot = next(target for target in targets if target.name == "kie-slack SQLite")
    ratio = median([bot.saturation[r].rps / bare.saturation[r].rps for r in rounds])
    p99 = median([f.p99_ms for f in bot.fixed])
    print(
        f"target: kie-slack SQLite >= {TARGET_RATIO} x bare: {ratio:.2f} x -> "
        f"{'met' if ratio >= TARGET_RATIO else 'NOT met'}"
    )
    print(
        f"target: kie-slack SQLite p99 <= {TARGET_P99_MS:g} ms at {args.rate:g} req/s: "
        f"{p99:.2f} ms -> {'met' if p99 <= TARGET_P99_MS else 'NOT met'}"
    )


def check_stored(targets: list[Target]) -> None:
    """Every callback acknowledged as received is in the event log (and none twice)."""
    for target in targets:
        if target.database is None or not target.database.exists():
            continue
        with sqlite3.connect(target.database) as conn:
            events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        # Warm-up requests are stored too, and a request in flight when wrk stops may be stored
        # without being counted: more events than acknowledgements is expected, fewer is a loss.
        verdict = "ok" if events >= target.acknowledged else "LOST CALLBACKS"
        print(
            f"check: {target.name} stored {events} events for {target.acknowledged} "
            f"acknowledged measured callbacks -> {verdict}"
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
    parser.add_argument(
        "--postgres", metavar="URL", help="also measure kie-slack on this PostgreSQL database"
    )
    parser.add_argument(
        "--log-level", default="WARNING", help="the bot's LOG_LEVEL (default WARNING)"
    )
    parser.add_argument("--client-cpu", type=int, help="CPU for the load generators")
    parser.add_argument("--server-cpu", type=int, help="CPU for the servers")
    parser.add_argument("--profile-bot", metavar="FILE", help="run the bot under cProfile")
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
    return run_in_tempdir("ingest", lambda tmp: run(args, tmp), keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
