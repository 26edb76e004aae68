"""Callback ingest benchmark: the bot's POST /callbacks/veo against a bare aiohttp server.

Run:  /work/venv/bin/python benchmarks/ingest.py [--seconds 5] [--rate 500] [--clients 50]

Both servers run in their own subprocess on 127.0.0.1; this process is the load generator.

Phase 1 (saturation): `--clients` concurrent clients on one session send signed Veo callbacks,
each with a new task id, for `--seconds` to the bare server, then to the bot; requests/s of each.
Phase 2 (fixed rate): `--rate` requests/s open-loop for `--seconds` to each; a request's latency
runs from its scheduled send time to its complete answer, so a late send counts against the
server (no coordinated omission).

Targets: bot throughput >= 0.5 x bare; p99 < 20 ms at 500 req/s. This is a measurement, not a
test: it exits 0 unless the servers could not be started (exit 2).

`--profile-bot FILE` runs the bot under cProfile and writes its stats to FILE on shutdown
(the profile slows the bot; use it to see where time goes, not for the figures).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from processes import (
    HOST,
    Server,
    free_port,
    percentile,
    run_in_tempdir,
    start,
    stop,
    wait_ready,
)

from bot.kie.signature import signed_headers

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
VEO_SUCCESS = FIXTURES / "callbacks" / "veo-success.json"
HMAC_KEY = "bench-hmac-key-not-a-secret"
TASK_ID_MARKER = "__BENCH_TASK_ID__"
#: Warm-up requests per target before each phase (connections open, code paths warm).
WARMUP_REQUESTS = 200
#: A request that takes longer than this is an error.
REQUEST_TIMEOUT = 10.0
#: After the last scheduled send of phase 2, wait at most this long for answers.
DRAIN_TIMEOUT = 30.0

Request = tuple[bytes, dict[str, str]]


# --------------------------------------------------------------------------- bare server


def run_bare_server(port: int) -> None:
    """The reference: parse the JSON body and answer, nothing else."""

    async def receive(request: web.Request) -> web.Response:
        await request.json()
        return web.json_response({"status": "received"})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/{tail:.*}", receive)
    web.run_app(app, host=HOST, port=port, print=None)


# --------------------------------------------------------------------------- requests


class Callbacks:
    """Signed Veo success callbacks, each with a task id never used before in this run."""

    def __init__(self, key: str) -> None:
        body = json.loads(VEO_SUCCESS.read_text(encoding="utf-8"))
        body["data"]["taskId"] = TASK_ID_MARKER
        self._template = json.dumps(body, separators=(",", ":"))
        self._key = key
        self._ids = itertools.count()

    def next(self) -> Request:
        task_id = f"bench_{next(self._ids):07d}"
        headers = signed_headers(self._key, task_id, int(time.time()))
        headers["Content-Type"] = "application/json"
        return self._template.replace(TASK_ID_MARKER, task_id).encode(), headers


def accepted(status: int, payload: bytes) -> bool:
    return status == 200 and b'"received"' in payload


@dataclass
class Outcome:
    """What one phase against one target gave."""

    target: str
    sent: int = 0
    ok: int = 0
    elapsed: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    send_lag_ms: list[float] = field(default_factory=list)
    server_cpu: float | None = None
    client_cpu: float = 0.0

    def record(self, status: int, payload: bytes) -> None:
        if accepted(status, payload):
            self.ok += 1
        elif status == 200:
            self.statuses[f"200 {payload[:40].decode(errors='replace')}"] += 1
        else:
            self.statuses[str(status)] += 1

    @property
    def errors(self) -> int:
        return sum(self.statuses.values())

    def errors_text(self) -> str:
        return f"{self.errors} {dict(self.statuses)}" if self.errors else "0"

    @property
    def rps(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    def cpu_us_per_request(self) -> str:
        if self.server_cpu is None or not self.sent:
            return "n/a"
        return f"{self.server_cpu / self.sent * 1e6:.0f}"

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


async def post(session: aiohttp.ClientSession, url: str, request: Request, out: Outcome) -> None:
    body, headers = request
    try:
        async with session.post(url, data=body, headers=headers) as response:
            out.record(response.status, await response.read())
    except (aiohttp.ClientError, TimeoutError) as exc:
        out.statuses[type(exc).__name__] += 1


# --------------------------------------------------------------------------- phases


async def saturate(
    session: aiohttp.ClientSession,
    url: str,
    callbacks: Callbacks,
    out: Outcome,
    *,
    clients: int,
    seconds: float,
    max_requests: int,
) -> Outcome:
    """`clients` closed-loop clients for `seconds` (or `max_requests` in all)."""
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        while out.sent < max_requests and time.perf_counter() < deadline:
            out.sent += 1
            await post(session, url, callbacks.next(), out)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client() for _ in range(clients)))
    out.elapsed = time.perf_counter() - started
    out.client_cpu = time.process_time() - cpu
    return out


async def fixed_rate(
    session: aiohttp.ClientSession,
    url: str,
    callbacks: Callbacks,
    out: Outcome,
    *,
    rate: float,
    seconds: float,
) -> Outcome:
    """Open loop: request i is due at t0 + i/rate and sent as its own task."""
    count = max(1, int(rate * seconds))
    pending: set[asyncio.Task[None]] = set()

    async def timed(due: float, request: Request) -> None:
        await post(session, url, request, out)
        out.latencies_ms.append((time.perf_counter() - due) * 1000)

    cpu = time.process_time()
    t0 = time.perf_counter() + 0.05
    for i in range(count):
        request = callbacks.next()
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        out.send_lag_ms.append(max(0.0, time.perf_counter() - due) * 1000)
        task = asyncio.create_task(timed(due, request))
        pending.add(task)
        task.add_done_callback(pending.discard)
        out.sent += 1
    if pending:
        _, late = await asyncio.wait(set(pending), timeout=DRAIN_TIMEOUT)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        if late:
            out.statuses["unanswered"] += len(late)
    out.elapsed = time.perf_counter() - t0
    out.client_cpu = time.process_time() - cpu
    return out


async def warm_up(session: aiohttp.ClientSession, url: str, callbacks: Callbacks) -> None:
    scratch = Outcome("warm-up")
    batch = 50
    for _ in range(WARMUP_REQUESTS // batch):
        await asyncio.gather(*(post(session, url, callbacks.next(), scratch) for _ in range(batch)))
    if scratch.errors:
        print(f"  warning: warm-up of {url} had errors: {dict(scratch.statuses)}")


def bot_env(port: int, tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "KIE_DEFAULT_CHANNEL", "KIE_API_KEY"):
        env.pop(name, None)
    env.update(
        HOST=HOST,
        PORT=str(port),
        DATABASE_URL=f"sqlite:///{tmp / 'bench.db'}",
        KIE_WEBHOOK_HMAC_KEY=HMAC_KEY,
        LOG_LEVEL="WARNING",
        # Nothing leaves this machine, even if a code path tried.
        SLACK_API_URL=f"http://{HOST}:9/api/",
        KIE_API_URL=f"http://{HOST}:9",
        PUBLIC_URL=f"http://{HOST}:{port}",
    )
    return env


# --------------------------------------------------------------------------- the run


async def measure(
    phase: Callable[[aiohttp.ClientSession, str, Outcome], Awaitable[Outcome]],
    session: aiohttp.ClientSession,
    server: Server,
    url: str,
    callbacks: Callbacks,
) -> Outcome:
    await warm_up(session, url, callbacks)
    out = Outcome(server.name)
    cpu = server.cpu_seconds()
    await phase(session, url, out)
    after = server.cpu_seconds()
    out.server_cpu = None if cpu is None or after is None else after - cpu
    return out


def print_saturation(out: Outcome) -> None:
    print(
        f"  {out.target:<5} {out.sent:>7} requests in {out.elapsed:5.2f} s = {out.rps:8.0f} req/s"
        f"  | non-200/unexpected: {out.errors_text()}"
        f" | server CPU {out.cpu_us_per_request()} us/req, client CPU "
        f"{out.client_cpu / out.elapsed:.0%}"
    )


def print_fixed(out: Outcome) -> None:
    lag_p99 = percentile(out.send_lag_ms, 0.99)
    print(
        f"  {out.target:<5} {out.sent:>6} requests: p50 {out.percentile(0.50):6.2f} ms  "
        f"p99 {out.percentile(0.99):7.2f} ms  max {max(out.latencies_ms, default=float('nan')):7.2f} ms"
        f"  | errors: {out.errors_text()}"
        f" | send lag p99 {lag_p99:.2f} ms, server CPU {out.cpu_us_per_request()} us/req"
    )


async def run(args: argparse.Namespace, tmp: Path) -> None:
    bot_port, bare_port = free_port(), free_port()
    callbacks = Callbacks(HMAC_KEY)
    bot_argv = [sys.executable]
    if args.profile_bot:
        bot_argv += ["-m", "cProfile", "-o", str(Path(args.profile_bot).resolve())]
    bot_argv += ["-m", "bot", "serve"]
    servers: list[Server] = []
    try:
        servers.append(
            start(
                "bare",
                [sys.executable, str(Path(__file__).resolve()), "--bare-server", str(bare_port)],
                dict(os.environ),
                bare_port,
                tmp,
            )
        )
        servers.append(start("bot", bot_argv, bot_env(bot_port, tmp), bot_port, tmp))
        bare, bot = servers
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for server in servers:
                await wait_ready(session, server)
        targets = [(bare, f"{bare.base}/callbacks/veo"), (bot, f"{bot.base}/callbacks/veo")]

        print(
            f"Phase 1: saturation, {args.clients} clients, {args.seconds:g} s per target "
            f"(at most {args.max_requests} requests)"
        )

        async def closed_loop(s: aiohttp.ClientSession, u: str, o: Outcome) -> Outcome:
            return await saturate(
                s,
                u,
                callbacks,
                o,
                clients=args.clients,
                seconds=args.seconds,
                max_requests=args.max_requests,
            )

        saturation: list[Outcome] = []
        connector = aiohttp.TCPConnector(limit=args.clients)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            for server, url in targets:
                out = await measure(closed_loop, session, server, url, callbacks)
                print_saturation(out)
                saturation.append(out)
        ratio = saturation[1].rps / saturation[0].rps if saturation[0].rps else float("nan")
        print(f"  ratio bot/bare: {ratio:.2f}")

        print(f"Phase 2: fixed rate, {args.rate:g} req/s open loop, {args.seconds:g} s per target")

        async def open_loop(s: aiohttp.ClientSession, u: str, o: Outcome) -> Outcome:
            return await fixed_rate(s, u, callbacks, o, rate=args.rate, seconds=args.seconds)

        fixed: list[Outcome] = []
        connector = aiohttp.TCPConnector(limit=args.max_connections)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            for server, url in targets:
                out = await measure(open_loop, session, server, url, callbacks)
                print_fixed(out)
                fixed.append(out)

        print_summary(saturation, fixed, ratio, args.rate)
    finally:
        for server in servers:
            stop(server)


def print_summary(
    saturation: list[Outcome], fixed: list[Outcome], ratio: float, rate: float
) -> None:
    print()
    print(
        f"{'target':<6} {'sat req/s':>10} {'sat errors':>10} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'rate errors':>11}"
    )
    for sat, fix in zip(saturation, fixed, strict=True):
        print(
            f"{sat.target:<6} {sat.rps:>10.0f} {sat.errors:>10} {fix.percentile(0.5):>8.2f} "
            f"{fix.percentile(0.99):>8.2f} {max(fix.latencies_ms, default=float('nan')):>8.2f} "
            f"{fix.errors:>11}"
        )
    bot_fixed = fixed[1]
    p99 = bot_fixed.percentile(0.99)
    median = statistics.median(bot_fixed.latencies_ms) if bot_fixed.latencies_ms else float("nan")
    print()
    print(
        f"target: bot throughput >= 0.5 x bare: {ratio:.2f} x -> "
        f"{'met' if ratio >= 0.5 else 'NOT met'}"
    )
    print(
        f"target: bot p99 < 20 ms at {rate:g} req/s: {p99:.2f} ms (p50 {median:.2f} ms) -> "
        f"{'met' if p99 < 20 and not bot_fixed.errors else 'NOT met'}"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="per target and phase")
    parser.add_argument("--rate", type=float, default=500.0, help="phase 2 requests/s")
    parser.add_argument("--clients", type=int, default=50, help="phase 1 concurrent clients")
    parser.add_argument(
        "--max-requests", type=int, default=100_000, help="phase 1 cap per target (a safety bound)"
    )
    parser.add_argument(
        "--max-connections", type=int, default=200, help="phase 2 connection pool size"
    )
    parser.add_argument("--profile-bot", metavar="FILE", help="run the bot under cProfile")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.seconds > 600:
        parser.error("--seconds must be in (0, 600]")
    if args.rate <= 0 or args.clients <= 0 or args.max_requests <= 0:
        parser.error("--rate, --clients and --max-requests must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.bare_server is not None:
        run_bare_server(args.bare_server)
        return 0
    return run_in_tempdir("ingest", lambda tmp: run(args, tmp), keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
