"""Watching the spend: the low-credits alert and the daily digest, posted to KIE_ALERT_CHANNEL
through the outbox.

`SpendWatch.tick` runs every few seconds (APScheduler) and decides by its clock what is due:
the credits are asked every ten minutes, the digest once a day after KIE_DIGEST_TIME (UTC). The
alert's state is stored and the digest's outbox key names its day, so each is posted once
whatever the replicas and restarts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.kie.client import KieClient, KieError
from bot.kie.products import PRODUCTS
from bot.slack.blocks import channel_link, code, mention, slack_date
from bot.usage import amount, model_words, period_start, summarize, usage_lines
from storage.database import Connection, StoreUnavailable
from storage.health import StoreHealth
from storage.ledger import AlertStore, UsageStore, utc_day
from storage.outbox import enqueue_message

log = logging.getLogger(__name__)

#: How often the remaining credits are asked while KIE_LOW_CREDITS is set (seconds).
CREDITS_EVERY = 600.0
#: The digest lists results whose links expire within this many seconds.
EXPIRING_WITHIN = 2 * 86400.0
LOW_CREDITS = "low-credits"


@dataclass(frozen=True, slots=True)
class SpendSettings:
    """KIE_ALERT_CHANNEL, KIE_LOW_CREDITS and KIE_DIGEST_TIME (minutes after midnight UTC)."""

    channel: str
    low_credits: float | None = None
    digest_minute: int | None = None


class SpendWatch:
    """The low-credits alert and the daily digest."""

    def __init__(
        self,
        settings: SpendSettings,
        usage: UsageStore,
        alerts: AlertStore,
        kie: KieClient | None,
        *,
        on_queued: Callable[[], None],
        clock: Callable[[], float] = time.time,
        health: StoreHealth | None = None,
    ) -> None:
        self._settings = settings
        self._usage = usage
        self._alerts = alerts
        self._kie = kie
        self._on_queued = on_queued
        self._clock = clock
        self._asked_at = float("-inf")
        self._digest_done: str | None = None
        self._health = health or StoreHealth()

    async def tick(self) -> None:
        """Do what is due now: ask the credits, post the digest."""
        try:
            now = self._clock()
            if (
                self._settings.low_credits is not None
                and self._kie is not None
                and now - self._asked_at >= CREDITS_EVERY
            ):
                self._asked_at = now
                await self.check_credits()
            if self._settings.digest_minute is not None:
                await self.digest_if_due(now)
        except StoreUnavailable as exc:  # tried again at the next tick; said once a minute
            self._health.failed(exc)

    async def _credits(self) -> float | None:
        if self._kie is None:
            return None
        try:
            return await self._kie.credits()
        except KieError as exc:
            log.warning("could not ask kie.ai for the remaining credits: %s", exc)
            return None

    async def check_credits(self) -> None:
        """Tell the alert channel once when the credits fall below KIE_LOW_CREDITS; re-arm when
        they rose above it again."""
        threshold = self._settings.low_credits
        left = await self._credits()
        if threshold is None or left is None:
            return
        if left >= threshold:
            if await self._alerts.turn(LOW_CREDITS, "ok", lambda conn, now: None):
                log.info("kie.ai credits are above %s again (%s left)", threshold, left)
            return
        today = summarize(await self._usage.since(period_start("today", self._clock())))
        spent = f"{today.total.generations} generations started from Slack today" + (
            f", {amount(today.total.credits)} credits reported" if today.total.priced else ""
        )
        text = (
            f":warning: *kie.ai credits are low:* {amount(left)} left, below the alert level of"
            f" {amount(threshold)}. So far today: {spent}. Top up at https://kie.ai before"
            " generations start failing with “Out of credits”."
        )
        channel = self._settings.channel

        def queue(conn: Connection, now: float) -> None:
            enqueue_message(conn, channel, f"alert:{LOW_CREDITS}:{now:.3f}", text, now)

        if await self._alerts.turn(LOW_CREDITS, "low", queue):
            log.warning("kie.ai credits are low (%s left); told %s", left, channel)
            self._on_queued()

    async def digest_if_due(self, now: float) -> None:
        """Queue yesterday's digest once today's digest time has come (once per day: the
        outbox key names the day)."""
        minute = self._settings.digest_minute
        assert minute is not None
        midnight = period_start("today", now)
        day = utc_day(midnight - 86400)
        if self._digest_done == day or now < midnight + minute * 60:
            return
        text = await self.digest_text(midnight)
        channel = self._settings.channel
        queued = await self._usage.queue_message(channel, f"digest:{day}", text)
        self._digest_done = day
        if queued:
            log.info("daily digest for %s queued for %s", day, channel)
            self._on_queued()

    async def digest_text(self, day_end: float) -> str:
        """The digest of the UTC day that ends at `day_end`."""
        start = day_end - 86400
        summary = summarize(await self._usage.since(start, day_end))
        label = datetime.fromtimestamp(start, UTC).strftime("%A %d %B %Y (UTC)")
        lines = usage_lines(
            summary,
            label=f"digest for {label}",
            credits_left=await self._credits(),
            person=mention,
            channel=channel_link,
            model=model_words,
        )
        if not summary.total.generations:
            lines.insert(1, "_No generations were started from Slack that day._")
        days = {slug: product.result_days for slug, product in PRODUCTS.items()}
        expiring = await self._alerts.expiring(self._clock(), EXPIRING_WITHIN, days)
        if expiring:
            lines.append("*Links that expire within two days, not saved into Slack*")
            for item in expiring[:20]:
                where = f" in {channel_link(item.channel)}" if item.channel else ""
                lines.append(
                    f"• {PRODUCTS[item.product].label} {code(item.task_id)}{where}:"
                    f" expires {slack_date(item.expires_at)}"
                )
            if len(expiring) > 20:
                lines.append(f"…and {len(expiring) - 20} more")
        return "\n".join(lines)
