"""What storing one callback costs on SQLite, layer by layer, in CPU time per callback.

Run:  .venv/bin/python benchmarks/store.py [--callbacks 5000] [--rounds 3]

The ingest benchmark (benchmarks/ingest.py) measures the whole server. This one takes the store
apart, on one CPU (the last one this process may use), with the same signed Veo success
callback as ingest.py and a fresh task id each, on a database that already holds `--preload`
tasks (random task ids spread the index pages, as in a store that has run for a while):

  sqlite3 only        `storage.tasks._apply` (the SQL of a new task's first callback: its event,
                      task, follower and root post) on a plain sqlite3 connection, in
                      transactions of 1 and of 50 callbacks, checkpointing every 125 callbacks
                      as the bot's background checkpoints do at 500 callbacks/s: the floor that
                      SQLite itself sets, with no thread and no event loop
  aiosqlite hop       an empty function run on the writing connection's thread (one hand-off
                      and back), and an empty write transaction
  TaskStore.apply     the bot's store as the callback route uses it: one at a time (as at a low
                      rate, every callback its own transaction) and 50 at once (as under load,
                      grouped into one transaction)

Printed: microseconds of CPU per callback (user + system, every thread of this process), the
median over the rounds. A measurement, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bot.kie.products import PRODUCTS  # noqa: E402
from bot.task import TaskUpdate  # noqa: E402
from storage.database import Connection  # noqa: E402
from storage.sqlite import SqliteDatabase, _prepare  # noqa: E402
from storage.tasks import TaskStore, _apply, canonical_json  # noqa: E402

VEO_SUCCESS = HERE.parent / "tests" / "fixtures" / "callbacks" / "veo-success.json"
CHANNEL = "C0BENCH"
#: Callbacks between two checkpoints: the bot checkpoints every 0.25 s, 125 callbacks at 500/s.
CHECKPOINT_EVERY = 125


def updates(prefix: str, count: int) -> list[TaskUpdate]:
    """`count` Veo success callbacks, parsed, with task ids that sort at random."""
    body = json.loads(VEO_SUCCESS.read_text(encoding="utf-8"))
    parsed = []
    for n in range(count):
        one = copy.deepcopy(body)
        one["data"]["taskId"] = f"{os.urandom(6).hex()}{prefix}{n}"
        parsed.append(PRODUCTS["veo"].parse_callback(one))
    return parsed


def cpu() -> float:
    times = os.times()
    return times.user + times.system


def per_callback(seconds: float, count: int) -> float:
    return seconds / count * 1e6


# --------------------------------------------------------------------------- sqlite3 only


def plain_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    _prepare(conn)
    conn.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints are counted where the bot has them
    return conn


def plain_apply(conn: sqlite3.Connection, batch: Sequence[TaskUpdate]) -> None:
    connection: Connection = conn
    conn.execute("BEGIN IMMEDIATE")
    for update in batch:
        _apply(update, canonical_json(update.raw), CHANNEL, time.time(), connection)
    conn.execute("COMMIT")


def sqlite3_only(path: Path, work: list[TaskUpdate], size: int) -> float:
    conn = plain_connection(path)
    try:
        started = cpu()
        written = 0
        for start in range(0, len(work), size):
            plain_apply(conn, work[start : start + size])
            written += size
            if written >= CHECKPOINT_EVERY:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                written = 0
        return per_callback(cpu() - started, len(work))
    finally:
        conn.close()


# --------------------------------------------------------------------------- through the bot


async def timed(count: int, step: Callable[[], Awaitable[object]]) -> float:
    started = cpu()
    for _ in range(count):
        await step()
    return per_callback(cpu() - started, count)


async def hops(path: Path, count: int) -> tuple[float, float]:
    db = await SqliteDatabase.open_file(path)
    try:
        hop = await timed(count, lambda: db.run(lambda conn: None))
        empty = await timed(count, lambda: db.write(lambda conn: None))
        return hop, empty
    finally:
        await db.close()


async def store(path: Path, work: list[TaskUpdate], together: int) -> float:
    db = await SqliteDatabase.open_file(path)
    tasks = TaskStore(db, save_videos=True)
    try:
        started = cpu()
        for start in range(0, len(work), together):
            group = work[start : start + together]
            await asyncio.gather(*(tasks.apply(update, channel=CHANNEL) for update in group))
        return per_callback(cpu() - started, len(work))
    finally:
        await db.close()


# --------------------------------------------------------------------------- the run


def preload(path: Path, count: int) -> None:
    conn = plain_connection(path)
    work = updates("pre", count)
    for start in range(0, count, 500):
        plain_apply(conn, work[start : start + 500])
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    conn.close()


def run(args: argparse.Namespace) -> None:
    available = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {available[-1]})
    print(f"store benchmark: CPU {available[-1]} only; {args.callbacks} callbacks per figure,")
    print(f"  a database preloaded with {args.preload} tasks; median of {args.rounds} rounds")
    figures: dict[str, list[float]] = {}

    def record(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)

    with tempfile.TemporaryDirectory(prefix="kie-slack-store-") as tmp:
        path = Path(tmp) / "store.db"
        preload(path, args.preload)
        for round_ in range(args.rounds):
            label = f"r{round_}"
            for size in (1, 50):
                work = updates(f"{label}p{size}_", args.callbacks)
                record(f"sqlite3 only, {size} per transaction", sqlite3_only(path, work, size))
            hop, empty = asyncio.run(hops(path, args.callbacks))
            record("aiosqlite hop (an empty function)", hop)
            record("aiosqlite empty write transaction", empty)
            for together in (1, 50):
                work = updates(f"{label}s{together}_", args.callbacks)
                record(
                    f"TaskStore.apply, {together} at once", asyncio.run(store(path, work, together))
                )
    print()
    print(f"{'':<40} {'us CPU per callback':>20}")
    for name, values in figures.items():
        print(f"{name:<40} {statistics.median(values):>20.0f}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--callbacks", type=int, default=5000, help="callbacks per figure")
    parser.add_argument("--preload", type=int, default=50_000, help="tasks stored beforehand")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (the median is printed)")
    args = parser.parse_args(argv)
    if args.callbacks < 50 or args.rounds < 1 or args.preload < 0:
        parser.error("--callbacks must be at least 50, --rounds at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
