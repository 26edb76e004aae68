"""Leases: which process does a piece of shared work (a channel's deliveries) until when.

Several replicas on one PostgreSQL database take turns this way: a replica claims a lease before
the work and renews it while it works; a lease that is not renewed (its replica was killed)
runs out, and another replica claims it. One process on SQLite claims every lease at once.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable

from storage.database import Database

#: How long a claim holds without renewal: a killed replica's work is taken over after this.
LEASE_SECONDS = 45.0


def process_name() -> str:
    """A name for this process that no other replica shares: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Leases:
    """Claim, renew and release named leases for one owner (this process)."""

    def __init__(
        self,
        db: Database,
        owner: str | None = None,
        *,
        seconds: float = LEASE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self.owner = owner or process_name()
        self._seconds = seconds
        self._clock = clock

    async def claim(self, name: str) -> bool:
        """Take or renew the lease `name`; False while another owner holds it."""
        now = self._clock()
        params = (name, self.owner, now + self._seconds, now)
        return await self._db.write(
            lambda conn: (
                conn.execute(
                    """INSERT INTO leases (name, owner, until) VALUES (?, ?, ?)
                       ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,
                           until = excluded.until
                       WHERE leases.owner = excluded.owner OR leases.until < ?""",
                    params,
                ).rowcount
                > 0
            )
        )

    async def renew_all(self) -> None:
        """Extend every lease this owner holds (a heartbeat: long work keeps its claims)."""
        params = (self._clock() + self._seconds, self.owner)
        await self._db.write(
            lambda conn: conn.execute("UPDATE leases SET until = ? WHERE owner = ?", params)
        )

    async def release(self, name: str) -> None:
        """Give the lease `name` up, if this owner holds it."""
        await self._db.write(
            lambda conn: conn.execute(
                "DELETE FROM leases WHERE name = ? AND owner = ?", (name, self.owner)
            )
        )

    async def release_all(self) -> None:
        """Give up every lease this owner holds (at shutdown)."""
        await self._db.write(
            lambda conn: conn.execute("DELETE FROM leases WHERE owner = ?", (self.owner,))
        )
