"""Process management shared by the benchmarks: start a server subprocess, wait until it answers
GET /healthz, stop it; plus the percentile the reports use.

A plain module, not a package: the benchmarks are run as scripts
(`/work/venv/bin/python benchmarks/ingest.py`), so their own folder is first on sys.path and
`from processes import ...` finds this file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class SetupError(RuntimeError):
    """A benchmarked process (a server, the bot, a fake) could not be started."""


@dataclass
class Server:
    """A server subprocess on HOST; `name` is also the stem of its log files."""

    name: str
    process: subprocess.Popen[bytes]
    base: str
    stderr_path: Path

    def cpu_seconds(self) -> float | None:
        """User + system CPU of the server process (all threads), from /proc; None elsewhere."""
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def pinned(argv: Sequence[str], cpu: int | None) -> list[str]:
    """`argv` run on CPU `cpu` only (through `taskset`); unchanged when `cpu` is None."""
    return list(argv) if cpu is None else ["taskset", "-c", str(cpu), *argv]


def start(
    name: str,
    argv: Sequence[str],
    env: dict[str, str],
    port: int,
    logs: Path,
    *,
    cpu: int | None = None,
) -> Server:
    """Start `argv` in the repository root, its output in `logs`/<name>.stdout and .stderr.

    With `cpu`, the process runs on that CPU only (`taskset` execs it, so the pid is its own).
    """
    stdout_path, stderr_path = logs / f"{name}.stdout", logs / f"{name}.stderr"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            pinned(argv, cpu),
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    return Server(name, process, f"http://{HOST}:{port}", stderr_path)


def stop(server: Server, timeout: float = STOP_TIMEOUT) -> int | None:
    """Terminate the server, kill it if it has not exited after `timeout` s; its exit code."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout)
    return server.process.returncode


def tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


async def wait_ready(
    session: aiohttp.ClientSession, server: Server, *, label: str | None = None
) -> None:
    """Poll GET /healthz until it answers 200; SetupError if the server exits or times out.

    `label` names the server in the error (default: its name).
    """
    who = server.name if label is None else label
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SetupError(
                f"{who} exited with {server.process.returncode}:\n{tail(server.stderr_path)}"
            )
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(f"{server.base}/healthz") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise SetupError(f"{who} did not answer GET /healthz with 200 in {READY_TIMEOUT} s")


def percentile(values: Sequence[float], q: float) -> float:
    """The `q` quantile (0..1) of `values` by nearest rank; NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_in_tempdir(
    name: str, run: Callable[[Path], Coroutine[Any, Any, None]], *, keep: bool
) -> int:
    """Run `run(tmp)` in a fresh temporary folder; 2 if setup failed, else 0."""
    tmp = Path(tempfile.mkdtemp(prefix=f"kie-slack-{name}-"))
    try:
        asyncio.run(run(tmp))
    except SetupError as exc:
        print(f"{name} benchmark: setup failed: {exc}", file=sys.stderr)
        return 2
    finally:
        if keep:
            print(f"(files kept in {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0
