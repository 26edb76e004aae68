"""Whether the database answers: an outage is logged when it starts, once a minute while it
lasts, and when it ends, whatever the number of requests and ticks that meet it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

#: While the database does not answer, the log says so at most this often (seconds).
OUTAGE_LOG_EVERY = 60.0


class StoreHealth:
    """The database's weather, shared by everything that reads or writes it.

    Whoever meets `StoreUnavailable` calls `failed` (a callback answered 503: `refused`) instead
    of logging it; a commit calls `answered`. One line when the trouble starts, one a minute
    while it lasts, one when the database answers again, with the callbacks refused meanwhile.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._since: float | None = None
        self._logged_at = 0.0
        self._refused = 0

    @property
    def down(self) -> bool:
        """True from a failure until the next commit."""
        return self._since is not None

    def failed(self, exc: Exception) -> None:
        """A read or a write met `exc` (the database locked, full or gone)."""
        now = self._clock()
        if self._since is None:
            self._since = self._logged_at = now
            self._refused = 0
            log.error(
                "the database does not answer (%s): callbacks are answered 503 (kie.ai retries "
                "them) and Slack work waits; said again once a minute while it lasts",
                _said(exc),
            )
        elif now - self._logged_at >= OUTAGE_LOG_EVERY:
            self._logged_at = now
            log.error(
                "the database has not answered for %.0f s (%s); %d callbacks refused with 503 "
                "so far",
                now - self._since,
                _said(exc),
                self._refused,
            )

    def refused(self, exc: Exception) -> None:
        """A callback was answered 503 because of `exc`."""
        self.failed(exc)
        self._refused += 1

    def answered(self) -> None:
        """A write was committed: an outage, if there was one, is over."""
        if self._since is None:
            return
        log.warning(
            "database answering again after %.0f s; %d callbacks were refused with 503, "
            "kie.ai retries them",
            self._clock() - self._since,
            self._refused,
        )
        self._since = None


def _said(exc: Exception) -> str:
    """The error in one line (driver messages may span several)."""
    return " ".join(str(exc).split())[:300]
