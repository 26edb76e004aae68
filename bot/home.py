"""What a person's Home tab shows, read from the store when it is published (`HomeTab.view`,
called by the delivery worker: rendering reads the state at send time)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from bot import __version__
from bot.config import Settings
from bot.kie.client import KieClient, KieError
from bot.slack.home import ForAdmins, HomeFacts, Link, Listed, build_home
from storage.ledger import UsageStore
from storage.outbox import Outbox
from storage.people import People
from storage.tasks import Placed, TaskStore

#: The running generations a Home tab lists at most (the oldest first), and the results.
RUNNING_SHOWN = 20
RESULTS_SHOWN = 10
#: How long the Home tab waits for kie.ai's credit balance before saying it is unknown.
CREDITS_WAIT = 5.0


class HomeTab:
    """Builds each person's Home tab from the tasks they started, their usage today and, for
    an admin (KIE_ADMINS), the credits, the outbox and the version."""

    def __init__(
        self,
        settings: Settings,
        tasks: TaskStore,
        usage: UsageStore,
        outbox: Outbox,
        people: People,
        kie: KieClient | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._tasks = tasks
        self._usage = usage
        self._outbox = outbox
        self._people = people
        self._kie = kie
        self._clock = clock

    async def view(self, user: str, link: Link) -> dict[str, Any]:
        """`user`'s Home tab as it is now; `link` gives each task's thread link."""
        running = await self._tasks.of_person(user, running=True, limit=RUNNING_SHOWN)
        recent = await self._tasks.of_person(user, running=False, limit=RESULTS_SHOWN)
        admin = user in self._settings.kie_admins
        facts = HomeFacts(
            now=self._clock(),
            running=await _listed(running, link),
            recent=await _listed(recent, link),
            used_today=0 if admin else await self._usage.count_today(user),
            limit=self._settings.kie_daily_limit_per_person,
            dm=await self._people.wants_dm(user),
            admin=await self._for_admins() if admin else None,
        )
        return build_home(facts)

    async def _for_admins(self) -> ForAdmins:
        credits, note = None, "KIE_API_KEY is not set"
        if self._kie is not None:
            try:
                async with asyncio.timeout(CREDITS_WAIT):
                    credits = await self._kie.credits()
            except KieError as exc:
                note = str(exc)
            except TimeoutError:
                note = "kie.ai did not answer in time"
        return ForAdmins(credits, note, await self._outbox.stats(), __version__)


async def _listed(placed: list[Placed], link: Link) -> tuple[Listed, ...]:
    return tuple(
        [
            Listed(p.task, await link(p.channel, p.root_ts) if p.channel and p.root_ts else None)
            for p in placed
        ]
    )
