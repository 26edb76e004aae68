"""The bot's Home tab opened (`app_home_opened`): its publishing is queued in the outbox, like
any other Slack work, and the delivery worker renders and publishes it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.slack.blocks import is_user_id
from storage.database import StoreUnavailable
from storage.people import People

log = logging.getLogger(__name__)


@dataclass
class HomeOpened:
    """Queues a person's Home tab when they open it (Bolt acknowledges events itself)."""

    people: People

    async def opened(self, event: Mapping[str, Any]) -> None:
        user = event.get("user")
        if event.get("tab", "home") != "home" or not is_user_id(user):
            return  # the Messages tab, or no person
        try:
            await self.people.home_opened(user)
        except StoreUnavailable as exc:
            log.error("Home tab of %s not queued: %s", user, exc)
