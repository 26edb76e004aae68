"""Run the bot as a real process, the way an operator does."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.conftest import SIGNING_SECRET
from tests.fakes.kie import FakeKie
from tests.fakes.slack import FakeSlack


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BotProcess:
    """`python -m bot serve` with exactly the environment given (plus PATH)."""

    def __init__(self, env: dict[str, str], cwd: Path, port: int) -> None:
        self.port = port
        self.log = cwd / f"bot-{port}-{time.monotonic_ns()}.log"
        full = {"PATH": os.environ.get("PATH", ""), "PYTHONUNBUFFERED": "1", **env}
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"],
            env=full,
            cwd=cwd,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"bot exited early:\n{self.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"bot not healthy within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as in a crash."""
        self.process.kill()
        self.process.wait(10)
        self._log_file.close()

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait: the exit status (its log printed when it is not 0, for the
        report of the test that fails on it)."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self._log_file.close()
        if code != 0:
            print(f"bot on port {self.port} exited with {code}:\n{self.output()[-4000:]}")
        return code


def service_env(
    tmp_path: Path,
    port: int,
    database: str,
    *,
    slack: FakeSlack | None = None,
    kie: FakeKie | None = None,
    **extra: str,
) -> dict[str, str]:
    """The environment of a bot on loopback that talks to the given fakes (and no one else)."""
    env = {
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{tmp_path / database}",
        "SLACK_API_URL": slack.api_url if slack else "http://127.0.0.1:9/api/",
        "KIE_API_URL": kie.url if kie else "http://127.0.0.1:9",
        # The fixtures' videos are example.com links that nothing serves: not saved by default.
        "SLACK_SAVE_VIDEOS": "off",
    }
    if slack is not None:
        env |= {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SIGNING_SECRET}
    if kie is not None:
        env["KIE_API_KEY"] = kie.api_key
    return env | extra


@dataclass
class Remote:
    """What `tests.conftest.slash` needs of a bot: its URL and an HTTP session."""

    url: str
    http: aiohttp.ClientSession


@asynccontextmanager
async def remote(bot: BotProcess) -> AsyncIterator[Remote]:
    async with aiohttp.ClientSession() as http:
        yield Remote(bot.url, http)


async def kie_slack(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the `kie-slack` command line in a thread, so that the fakes in this loop answer."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot", *args],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def outbox_counts(database: Path) -> dict[str, int]:
    """Outbox rows per status in a SQLite store, read straight from the file."""
    with sqlite3.connect(database) as db:
        return dict(db.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall())
