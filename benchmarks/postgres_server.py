"""PostgreSQL for the benchmarks: a throwaway cluster of Debian's binaries, a fresh database on
a server, the server's own CPU from /proc, and the statements it ran (pg_stat_statements).

    with throwaway_cluster(cpu=0, logs=tmp) as server:          # initdb, start, … stop, remove
        with scratch_database(server.url, "kie_bench") as url:  # CREATE DATABASE, … DROP
            ...

A plain module, like processes.py: the benchmarks import it by name from their own folder.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from processes import HOST, SetupError, free_port, pinned

from storage.postgres import safe_url

#: Settings of the throwaway cluster: commits do not wait for the WAL flush, as SQLite's WAL
#: with synchronous=NORMAL; fsync stays on (the default).
CLUSTER_SETTINGS = {
    "listen_addresses": f"'{HOST}'",
    "synchronous_commit": "off",
    "max_connections": "200",
}
#: Added when the pg_stat_statements extension is installed: every statement counted, BEGIN and
#: COMMIT included (track_utility is on by default).
STATEMENT_SETTINGS = {
    "shared_preload_libraries": "'pg_stat_statements'",
    "pg_stat_statements.track": "all",
    "pg_stat_statements.track_utility": "on",
}
STOP_TIMEOUT = 30


def pg_bin() -> Path | None:
    """The newest of Debian's PostgreSQL bin folders (/usr/lib/postgresql/N/bin), if any."""
    found = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()]
    return max(found, key=lambda p: int(p.parent.name)) if found else None


def has_pg_stat_statements(bin_dir: Path) -> bool:
    share = Path("/usr/share/postgresql") / bin_dir.parent.name / "extension"
    return (share / "pg_stat_statements.control").exists()


@dataclass
class PgServer:
    """A PostgreSQL server: its URL, and its data folder when it is on this machine."""

    url: str
    data: Path | None = None
    cpu: int | None = None
    own: bool = False
    settings: dict[str, str] = field(default_factory=dict)

    def postmaster_pid(self) -> int | None:
        if self.data is None:
            return None
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def cpu_seconds(self) -> dict[str, float] | None:
        """User + system CPU of the postmaster and all its children, from /proc, by kind:
        "connections" (the backends serving clients), "autovacuum" (its running workers),
        "exited" (children that have exited, counted in the postmaster's: mostly autovacuum
        workers), "background" (the postmaster, checkpointer, writers, launchers). The sum only
        grows. None when the server is not on this machine or not readable."""
        postmaster = self.postmaster_pid()
        if postmaster is None:
            return None
        ticks: Counter[str] = Counter()
        found = False
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                pid, ppid = int(stat.parent.name), int(fields[1])
                if pid == postmaster:
                    found = True
                    ticks["background"] += int(fields[11]) + int(fields[12])
                    ticks["exited"] += int(fields[13]) + int(fields[14])
                elif ppid == postmaster:
                    title = (stat.parent / "cmdline").read_bytes().decode(errors="replace")
                    ticks[process_kind(title)] += int(fields[11]) + int(fields[12])
        if not found:
            return None
        return {kind: count / os.sysconf("SC_CLK_TCK") for kind, count in ticks.items()}


def process_kind(title: str) -> str:
    """What a PostgreSQL child process does, from its title ("postgres: walwriter", …)."""
    if "autovacuum worker" in title:
        return "autovacuum"
    if re.search(r"\(\d+\)|\[local\]", title):  # "user db 127.0.0.1(5555) idle"
        return "connections"
    return "background"


def local_data_directory(url: str) -> Path | None:
    """The data folder of the server at `url` if this user may ask and it is on this machine."""
    with contextlib.suppress(psycopg.Error), psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
        data = Path(row[0]) if row else None
        if data is not None and (data / "postmaster.pid").exists():
            return data
    return None


def _as_postgres(argv: list[str]) -> list[str]:
    """`argv` run as the `postgres` user when this is root (PostgreSQL refuses to run as root)."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _run(argv: list[str], what: str, timeout: float = 60) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SetupError(f"{what} failed: {exc}") from exc
    if result.returncode != 0:
        raise SetupError(f"{what} failed ({result.returncode}): {result.stderr[-800:]}")


@contextlib.contextmanager
def throwaway_cluster(cpu: int | None = None) -> Iterator[PgServer]:
    """A PostgreSQL cluster in a temporary folder, on 127.0.0.1 and a free port, pinned to
    `cpu` (taskset; its backends inherit it), with CLUSTER_SETTINGS (and STATEMENT_SETTINGS when
    pg_stat_statements is installed). Stopped and removed afterwards, also on error."""
    bin_dir = pg_bin()
    if bin_dir is None:
        raise SetupError("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
    folder = Path(tempfile.mkdtemp(prefix="kie-slack-bench-pg-"))
    try:
        if os.geteuid() == 0:
            postgres = pwd.getpwnam("postgres")
            os.chown(folder, postgres.pw_uid, postgres.pw_gid)
        data, port = folder / "data", free_port()
        initdb = [str(bin_dir / "initdb"), "--no-sync", "-D", str(data), "-U", "postgres"]
        _run(_as_postgres([*initdb, "--auth=trust", "-E", "UTF8"]), "initdb")
        settings = dict(CLUSTER_SETTINGS, port=str(port))
        settings["unix_socket_directories"] = f"'{folder}'"
        if has_pg_stat_statements(bin_dir):
            settings.update(STATEMENT_SETTINGS)
        with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# benchmarks/postgres_server.py\n")
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
        start = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log")]
        _run(pinned(_as_postgres([*start, "-w", "start"]), cpu), "pg_ctl start")
        try:
            url = f"postgresql://postgres@{HOST}:{port}/postgres"
            yield PgServer(url, data, cpu, own=True, settings=settings)
        finally:
            stop = [str(bin_dir / "pg_ctl"), "-D", str(data), "-w"]
            try:
                _run(_as_postgres([*stop, "-m", "fast", "stop"]), "pg_ctl stop", STOP_TIMEOUT)
            except SetupError:
                _run(_as_postgres([*stop, "-m", "immediate", "stop"]), "pg_ctl stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def scratch_database(url: str, prefix: str) -> Iterator[str]:
    """A fresh database `prefix`_<random> on the server at `url` (its URL), dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        raise SetupError(f"cannot create database {name} on {safe_url(url)}: {exc}") from exc
    try:
        yield urlsplit(url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def version(url: str) -> str:
    with psycopg.connect(url, connect_timeout=10) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return f"PostgreSQL {row[0] if row else '?'}"


# --------------------------------------------------------------------------- statements


def shorten(query: str, width: int = 76) -> str:
    """A statement on one line, cut to `width` characters."""
    text = re.sub(r"\s+", " ", query).strip()
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass
class Statements:
    """Calls, total and longest execution time per statement in one database, from
    pg_stat_statements."""

    calls: Counter[str] = field(default_factory=Counter)
    exec_ms: dict[str, float] = field(default_factory=dict)
    max_ms: dict[str, float] = field(default_factory=dict)

    def add(self, query: str, calls: int, exec_ms: float, max_ms: float) -> None:
        self.calls[query] += calls
        self.exec_ms[query] = self.exec_ms.get(query, 0.0) + exec_ms
        self.max_ms[query] = max(self.max_ms.get(query, 0.0), max_ms)

    def __iadd__(self, other: Statements) -> Statements:
        for query, calls in other.calls.items():
            self.add(query, calls, other.exec_ms[query], other.max_ms[query])
        return self

    def total(self) -> int:
        return sum(self.calls.values())


class StatementCounter:
    """Counts the statements the server runs in the database at `url`, and its events rows.

    `available` is None when pg_stat_statements works there, else why it does not.
    """

    def __init__(self, url: str) -> None:
        self._conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        self.available: str | None = None
        try:
            self._conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            self._conn.execute("SELECT pg_stat_statements_reset()")
        except psycopg.Error as exc:
            self.available = shorten(str(exc), 120)

    def close(self) -> None:
        self._conn.close()

    def count(self, table: str) -> int:
        row = self._conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else 0

    def reset(self) -> None:
        if self.available is None:
            self._conn.execute("SELECT pg_stat_statements_reset()")

    def read(self) -> Statements | None:
        """The statements run in this database since the last reset (not this counter's own)."""
        if self.available is not None:
            return None
        rows = self._conn.execute(
            "SELECT query, calls, total_exec_time, max_exec_time FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND query NOT LIKE '%pg_stat_statements%'"
        ).fetchall()
        found = Statements()
        for query, calls, exec_ms, max_ms in rows:
            found.add(query, int(calls), float(exec_ms), float(max_ms))
        return found
