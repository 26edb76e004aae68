"""Open-loop load at a fixed rate, for benchmarks/ingest.py (run pinned to the load generator's CPU).

    python benchmarks/openloop.py URL PLAN_FILE --rate 500 --seconds 5

Request i is due at t0 + i/rate and is sent then, whatever earlier requests are doing; its
latency runs from its due time to the moment its whole answer has been read, so a slow server and
a late send both count (no coordinated omission). The requests come from a plan file in the
format of benchmarks/ingest.lua (path, timestamp, task id prefix, body around the task id, one
signature per request), all built before the clock starts.

The main thread sleeps until each due time (`time.sleep`, well under a millisecond late), takes
an idle keep-alive connection (opening one when none is idle) and writes the request; a second
thread waits on every connection with epoll and stamps each answer as it is read. Prints one line,
"OPENLOOP_RESULT " and a JSON object; the CPU it used shows whether it kept up.
"""

from __future__ import annotations

import argparse
import collections
import json
import selectors
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

#: After the last due time, wait at most this long for the answers still out.
DRAIN_TIMEOUT = 30.0
#: Delay before the first due time (connections are open by then).
START_DELAY = 0.1


@dataclass
class Plan:
    """What the plan file says: the path and one request per signature line."""

    path: str
    stamp: str
    prefix: str
    head: str
    tail: str
    signatures: list[str]

    @classmethod
    def read(cls, path: Path) -> Plan:
        lines = path.read_text(encoding="utf-8").split("\n")
        return cls(*lines[:5], signatures=[line for line in lines[5:] if line])

    def request(self, n: int, host: str) -> bytes:
        """Request n (1-based, as in ingest.lua), ready to write."""
        body = f"{self.head}{self.prefix}{n}{self.tail}".encode()
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nX-Webhook-Timestamp: {self.stamp}\r\n"
            f"X-Webhook-Signature: {self.signatures[n - 1]}\r\n\r\n"
        )
        return head.encode() + body


@dataclass(eq=False)
class Connection:
    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)
    index: int = -1  # the request in flight, -1 when idle


@dataclass
class Results:
    count: int
    done_at: list[float]
    accepted: int = 0
    answered: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    all_answered: threading.Event = field(default_factory=threading.Event)

    def settle(self, index: int, at: float, error: str | None) -> None:
        self.done_at[index] = at
        self.answered += 1
        if error is None:
            self.accepted += 1
        else:
            self.errors[error] += 1
        if self.answered >= self.count:
            self.all_answered.set()


def receive(
    selector: selectors.BaseSelector,
    idle: collections.deque[Connection],
    results: Results,
    stop: threading.Event,
) -> None:
    """Read answers until `stop`; each answer's time is taken as soon as its last byte is read."""
    while not stop.is_set():
        for key, _ in selector.select(0.05):
            conn: Connection = key.data
            try:
                data = conn.sock.recv(65536)
            except OSError:
                data = b""
            now = time.perf_counter()
            if not data:
                selector.unregister(conn.sock)
                conn.sock.close()
                if conn.index >= 0:
                    results.settle(conn.index, now, "connection closed")
                continue
            conn.buffer += data
            while (end := conn.buffer.find(b"\r\n\r\n")) >= 0:
                header = bytes(conn.buffer[:end]).lower()
                start = header.find(b"content-length:")
                length = int(header[start + 15 : header.find(b"\r\n", start)]) if start >= 0 else 0
                total = end + 4 + length
                if len(conn.buffer) < total:
                    break
                status = header[9:12].decode()
                body = bytes(conn.buffer[end + 4 : total])
                del conn.buffer[:total]
                ok = status == "200" and b'"received"' in body
                index, conn.index = conn.index, -1
                idle.append(conn)
                results.settle(index, now, None if ok else f"{status} {body[:40].decode()}")


def connect(address: tuple[str, int], selector: selectors.BaseSelector) -> Connection:
    sock = socket.create_connection(address)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = Connection(sock)
    selector.register(sock, selectors.EVENT_READ, conn)
    return conn


def run(
    url: str, plan: Plan, *, rate: float, seconds: float, connections: int
) -> dict[str, object]:
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    count = max(1, int(rate * seconds))
    if count > len(plan.signatures):
        raise SystemExit(f"openloop: the plan has {len(plan.signatures)} requests, {count} needed")
    requests = [plan.request(n, parts.netloc) for n in range(1, count + 1)]
    selector = selectors.DefaultSelector()
    idle = collections.deque(connect(address, selector) for _ in range(connections))
    results = Results(count, [float("nan")] * count)
    stop = threading.Event()
    receiver = threading.Thread(target=receive, args=(selector, idle, results, stop), daemon=True)
    receiver.start()
    lags: list[float] = []
    opened = 0
    cpu = time.process_time()
    t0 = time.perf_counter() + START_DELAY
    for i, request in enumerate(requests):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        lags.append(time.perf_counter() - due)
        try:
            conn = idle.popleft()
        except IndexError:
            conn = connect(address, selector)
            opened += 1
        conn.index = i
        try:
            conn.sock.sendall(request)
        except OSError:
            results.settle(i, time.perf_counter(), "send failed")
    last_due = t0 + (count - 1) / rate
    results.all_answered.wait(DRAIN_TIMEOUT)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu
    stop.set()
    receiver.join()
    latencies = sorted(
        (done - (t0 + i / rate)) * 1000
        for i, done in enumerate(results.done_at)
        if done == done  # answered (not NaN)
    )
    unanswered = count - len(latencies)
    if unanswered:
        results.errors["unanswered"] += unanswered
    lags.sort()
    return {
        "sent": count,
        "accepted": results.accepted,
        "errors": dict(results.errors),
        "p50_ms": quantile(latencies, 0.50),
        "p99_ms": quantile(latencies, 0.99),
        "max_ms": latencies[-1] if latencies else None,
        "lag_p99_ms": quantile([lag * 1000 for lag in lags], 0.99),
        "cpu": cpu / elapsed,
        "opened": opened,
        "seconds": last_due - t0,
    }


def quantile(ordered: Sequence[float], q: float) -> float | None:
    """The `q` quantile of sorted `ordered` by nearest rank; None when empty."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("url", help="the server's base URL, http://HOST:PORT")
    parser.add_argument("plan", type=Path, help="a plan file written by ingest.py")
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16, help="opened before the start")
    args = parser.parse_args(argv)
    result = run(
        args.url,
        Plan.read(args.plan),
        rate=args.rate,
        seconds=args.seconds,
        connections=args.connections,
    )
    print("OPENLOOP_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
