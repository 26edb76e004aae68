"""Replicas on one PostgreSQL database wake each other for new Slack work (LISTEN/NOTIFY).

`Wakeups` keeps a connection of its own that LISTENs on `CHANNEL`. Its `ready` event stands in
for `TaskStore.outbox_ready`: setting it (a committed write queued Slack work) wakes this
process's delivery and has the connection send one NOTIFY, after the commit and off the
writer's path; the sets of a burst make one NOTIFY, then at most one per `NOTIFY_GAP`. A NOTIFY
from another backend (another replica, `kie-slack outbox retry`) wakes this process's delivery.

The delivery's periodic look stays the fallback: while the connection is down (a database
restart) notifications are missed, so when it is back this process looks at once and tells the
others to look too. The log says once that it was lost and once that it is back: a warning when
it could not listen from the start (the stores' connections could: something is wrong with this
one), else information (the database's own outage is the store's warning to give).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg

from storage.database import Connection

log = logging.getLogger(__name__)

#: The notification channel every replica listens on (the NOTIFY carries no payload).
CHANNEL = "kie_slack_outbox"
#: How the listening connection names itself in `pg_stat_activity`.
APPLICATION_NAME = "kie-slack wakeups"
#: Seconds between two NOTIFYs of this process: a stream of callbacks makes a few per second,
#: not one per callback (a woken delivery looks at most every 0.1 s anyway).
NOTIFY_GAP = 0.05
#: Seconds before the first try to connect again; each failed try doubles it, up to the most.
FIRST_RETRY = 0.5
MOST_RETRY = 5.0
#: How long start-up waits for the first connection before going on without it (seconds).
CONNECT_TIMEOUT = 5
#: TCP keepalives: a database host that vanished without a word is noticed within about a minute.
KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


def notify(conn: Connection) -> None:
    """Wake every listening replica when the write transaction on `conn` commits."""
    conn.execute(f"NOTIFY {CHANNEL}")


class OutboxReady(asyncio.Event):
    """`TaskStore.outbox_ready` on PostgreSQL: `set()` wakes this process's delivery and calls
    `tell_others`; `set_here()` wakes only this process's delivery."""

    def __init__(self, tell_others: Callable[[], None]) -> None:
        super().__init__()
        self._tell_others = tell_others

    def set(self) -> None:
        super().set()
        self._tell_others()

    def set_here(self) -> None:
        super().set()


def wake_here(event: asyncio.Event) -> None:
    """Set `event` for this process alone: no other replica has anything new to look at."""
    if isinstance(event, OutboxReady):
        event.set_here()
    else:
        event.set()


class Wakeups:
    """The listening connection and the NOTIFYs of this process; `start`, then `close`."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._owed = asyncio.Event()  # this process queued work the others were not told of
        self.ready = OutboxReady(self._owed.set)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._tried = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lost_at: float | None = None
        self._listened = False
        self._told_at = float("-inf")

    @classmethod
    async def start(cls, url: str) -> Wakeups:
        """Listen at `url` from now on. Start-up waits for the first try to connect (so no
        work written after it goes unheard), not for a database that does not answer."""
        wakeups = cls(url)
        wakeups._task = asyncio.create_task(wakeups._run(), name="wakeups")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeups._tried.wait(), CONNECT_TIMEOUT + 1)
        return wakeups

    async def close(self) -> None:
        """Stop listening, and tell the others once more: they take over at once the channels
        this replica gave up."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(psycopg.Error, OSError, TimeoutError):
            await asyncio.wait_for(conn.execute(f"NOTIFY {CHANNEL}"), 2)
        await conn.close()

    async def _run(self) -> None:
        """Connect, listen and notify until closed; after each failure connect again, waiting
        longer each time (up to `MOST_RETRY` s)."""
        wait = FIRST_RETRY
        while True:
            try:
                self._conn = await psycopg.AsyncConnection.connect(
                    self._url,
                    autocommit=True,
                    application_name=APPLICATION_NAME,
                    connect_timeout=CONNECT_TIMEOUT,
                    **KEEPALIVES,
                )
                await self._conn.execute(f"LISTEN {CHANNEL}")
                self._back()
                wait = FIRST_RETRY
                await self._session(self._conn)
            except (psycopg.Error, OSError) as exc:
                self._lost(exc)
            except Exception as exc:  # never silently: the fallback look would hide it
                log.exception("listening for other replicas' Slack work failed")
                self._lost(exc)
            self._tried.set()
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(psycopg.Error, OSError):
                    await conn.close()
            await asyncio.sleep(wait)
            wait = min(MOST_RETRY, wait * 2)

    def _lost(self, exc: BaseException) -> None:
        if self._lost_at is None:
            self._lost_at = time.monotonic()
            log.log(
                logging.INFO if self._listened else logging.WARNING,
                "not listening for other replicas' Slack work (%s); it is found by the periodic "
                "look until the database answers again",
                " ".join(str(exc).split()) or type(exc).__name__,  # psycopg's run over lines
            )

    def _back(self) -> None:
        """Listening (again): say so once; notifications were missed meanwhile, so look now and
        have the others look too."""
        self._tried.set()
        self._listened = True
        if self._lost_at is None:
            log.debug("listening for other replicas' Slack work (LISTEN %s)", CHANNEL)
            return
        log.info(
            "listening for other replicas' Slack work again after %.0f s",
            time.monotonic() - self._lost_at,
        )
        self._lost_at = None
        self.ready.set()

    async def _session(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Until `conn` fails: wake this process when another backend notifies, and NOTIFY
        when this process queued work (the listening pauses for it: psycopg's `notifies()`
        holds the connection; a notification that comes meanwhile waits for the next one)."""
        while True:
            if self._owed.is_set():
                self._owed.clear()
                self._told_at = time.monotonic()
                await conn.execute(f"NOTIFY {CHANNEL}")
            hearing = asyncio.create_task(self._hear(conn))
            owing = asyncio.create_task(self._owing())
            try:
                await asyncio.wait((hearing, owing), return_when=asyncio.FIRST_COMPLETED)
            finally:
                hearing.cancel()
                owing.cancel()
                heard, _ = await asyncio.gather(hearing, owing, return_exceptions=True)
            if isinstance(heard, BaseException) and not isinstance(heard, asyncio.CancelledError):
                raise heard

    async def _hear(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Wake this process's delivery at each notification another backend sends."""
        me = conn.info.backend_pid
        async with contextlib.aclosing(conn.notifies()) as heard:
            async for notification in heard:
                if notification.pid != me:
                    self.ready.set_here()

    async def _owing(self) -> None:
        """Return when this process owes the others a NOTIFY, `NOTIFY_GAP` after the last."""
        await self._owed.wait()
        await asyncio.sleep(self._told_at + NOTIFY_GAP - time.monotonic())
