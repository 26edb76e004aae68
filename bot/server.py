"""The aiohttp application: routes, and each resource started in order and closed in reverse."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TextIO

import aiohttp
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.home import HomeTab
from bot.kie.client import KieClient
from bot.metrics import Metrics
from bot.polling import Poller, start_scheduler
from bot.slack.bolt import Listeners, build_bolt, register_generate, register_home
from bot.slack.console import ConsoleGateway
from bot.slack.delivery import ChannelPacer, Delivery, VideoTransfers
from bot.slack.gateway import SlackGateway, WebApiGateway
from bot.slack.socket_mode import socket_mode
from bot.spend import SpendSettings, SpendWatch
from bot.video.download import AddressPolicy, download_session
from bot.video.settings import MEGABYTE
from handlers.actions import Actions
from handlers.callbacks import CallbackIntake
from handlers.commands import Commands
from handlers.generate import Generate
from handlers.home import HomeOpened
from handlers.ops import Ops
from handlers.responses import json_error
from handlers.slack_events import SlackEvents
from storage.backends import open_database
from storage.database import StoreUnavailable
from storage.health import StoreHealth
from storage.leases import Leases
from storage.ledger import AlertStore, UsageStore
from storage.outbox import Outbox
from storage.people import People
from storage.polls import PollSchedule
from storage.requests import RequestStore
from storage.retention import Retention
from storage.routes import RouteStore
from storage.sqlite import serving_lock
from storage.submissions import SubmissionStore
from storage.tasks import TaskStore
from storage.videos import SavedVideos
from storage.wakeups import Wakeups

log = logging.getLogger(__name__)

METRICS = web.AppKey("metrics", Metrics)
TASKS = web.AppKey("tasks", TaskStore)
OUTBOX = web.AppKey("outbox", Outbox)
ROUTES = web.AppKey("routes", RouteStore)
INTAKE = web.AppKey("intake", CallbackIntake)
SCHEDULE = web.AppKey("schedule", PollSchedule)
OPS = web.AppKey("ops", Ops)
REQUESTS = web.AppKey("requests", RequestStore)
LEASES = web.AppKey("leases", Leases)
VIDEOS = web.AppKey("videos", SavedVideos)
SUBMISSIONS = web.AppKey("submissions", SubmissionStore)
#: The Bolt app, for /slack/events and Socket Mode alike; absent with neither configured.
BOLT = web.AppKey("bolt", AsyncApp)
USAGE = web.AppKey("usage", UsageStore)
ALERTS = web.AppKey("alerts", AlertStore)
#: Each person's Home tab and choice of direct messages.
PEOPLE = web.AppKey("people", People)
#: Whether the database answers (one log line a minute while it does not; /healthz).
HEALTH = web.AppKey("health", StoreHealth)
#: Deletes old callback events and sent Slack work (KIE_RETENTION_DAYS).
RETENTION = web.AppKey("retention", Retention)
#: The guarded session result videos are downloaded through (see bot/video/download.py).
DOWNLOADS = web.AppKey("downloads", aiohttp.ClientSession)
#: On PostgreSQL: replicas wake each other for new Slack work (LISTEN/NOTIFY).
WAKEUPS = web.AppKey("wakeups", Wakeups)


@dataclass(frozen=True, slots=True)
class Clients:
    """The API clients on the shared session; None where their token or key is not set."""

    slack: AsyncWebClient | None
    kie: KieClient | None


CLIENTS = web.AppKey("clients", Clients)

#: Where callbacks go in console mode when no KIE_DEFAULT_CHANNEL is set.
CONSOLE_CHANNEL = "console"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], float] = time.time,
    pacer: ChannelPacer | None = None,
    console_out: TextIO | None = None,
) -> web.Application:
    """The whole bot as one aiohttp application; nothing starts until the app does."""
    app = web.Application(middlewares=[_json_errors])
    slack_events = SlackEvents()
    app[METRICS] = Metrics()
    fallback = settings.kie_default_channel or (CONSOLE_CHANNEL if settings.console_mode else None)

    async def storage(app: web.Application) -> AsyncIterator[None]:
        with contextlib.ExitStack() as held:
            if settings.postgres_url is None:
                held.enter_context(serving_lock(settings.database_path))
            database = await open_database(settings.database_path, settings.postgres_url)
            app[HEALTH] = database.health
            app[METRICS].count_round_trips(lambda: database.round_trips)
            app[TASKS] = TaskStore(database, clock=clock, save_videos=settings.slack_save_videos)
            if database.dialect == "postgresql" and settings.postgres_url is not None:
                # Before anything holds `outbox_ready`: queued work then wakes every replica.
                app[WAKEUPS] = await Wakeups.start(settings.postgres_url)
                app[TASKS].outbox_ready = app[WAKEUPS].ready
            app[VIDEOS] = SavedVideos(database, clock=clock)
            app[OUTBOX] = Outbox(database, clock=clock)
            app[ROUTES] = RouteStore(database, clock=clock)
            app[SCHEDULE] = PollSchedule(database, app[TASKS], clock=clock)
            app[REQUESTS] = RequestStore(database, app[TASKS], clock=clock)
            app[SUBMISSIONS] = SubmissionStore(database, app[TASKS], clock=clock)
            app[USAGE] = UsageStore(database, clock=clock)
            app[ALERTS] = AlertStore(database, clock=clock)
            app[PEOPLE] = People(database, clock=clock, on_queued=app[TASKS].outbox_ready.set)
            # Replicas on one PostgreSQL database take turns per channel; SQLite has one process.
            if database.dialect == "postgresql":
                app[LEASES] = Leases(database, clock=clock)
            app[RETENTION] = Retention(
                database, settings.kie_retention_days, clock=clock, leases=app.get(LEASES)
            )
            yield
            if (leases := app.get(LEASES)) is not None:
                with contextlib.suppress(StoreUnavailable):
                    await leases.release_all()
            if (wakeups := app.get(WAKEUPS)) is not None:
                await wakeups.close()
            await database.close()

    async def http(app: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=30, connect=10)
        policy = AddressPolicy(allow_private=settings.download_allow_private_hosts)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            download_session(policy) as downloads,
        ):
            app[DOWNLOADS] = downloads
            app[CLIENTS] = Clients(
                slack=slack_client(settings, session) if settings.slack_bot_token else None,
                kie=KieClient(session, settings.kie_api_url, settings.kie_api_key, app[METRICS])
                if settings.kie_api_key
                else None,
            )
            yield

    async def delivery(app: web.Application) -> AsyncIterator[None]:
        client = app[CLIENTS].slack
        gateway: SlackGateway
        if client is None:
            log.info("SLACK_BOT_TOKEN is not set: console mode, Slack messages go to stdout")
            gateway = ConsoleGateway(console_out)
        else:
            gateway = WebApiGateway(client, app[METRICS])
        worker = Delivery(
            app[OUTBOX],
            app[TASKS],
            gateway,
            retry_hours=settings.slack_retry_hours,
            leases=app.get(LEASES),
            pacer=pacer,
            clock=clock,
            videos=app[VIDEOS],
            health=app[HEALTH],
            home=HomeTab(
                settings,
                app[TASKS],
                app[USAGE],
                app[OUTBOX],
                app[PEOPLE],
                app[CLIENTS].kie,
                clock=clock,
            ),
            transfers=VideoTransfers(app[DOWNLOADS], settings.save_video_max_mb * MEGABYTE)
            if settings.slack_save_videos
            else None,
        )
        await worker.start()
        yield
        await worker.stop()

    async def slash_commands(app: web.Application) -> AsyncIterator[None]:
        actions = Actions(
            settings,
            app[TASKS],
            app[ROUTES],
            app[REQUESTS],
            app[CLIENTS].kie,
            clock=clock,
        )
        listeners = Listeners()
        try:
            await actions.resume()
        except StoreUnavailable as exc:
            log.error("cannot take up the 1080p waits left by the last run: %s", exc)
        if settings.slack_signing_secret is not None or settings.slack_app_token is not None:
            generate = Generate(
                settings,
                app[TASKS],
                app[ROUTES],
                app[SCHEDULE],
                app[SUBMISSIONS],
                app[CLIENTS].kie,
                slack=app[CLIENTS].slack,
            )
            commands = Commands(
                settings,
                app[TASKS],
                app[ROUTES],
                app[SCHEDULE],
                app[CLIENTS].kie,
                clock=clock,
                generate=generate,
                usage=app[USAGE],
                people=app[PEOPLE],
            )
            app[BOLT] = build_bolt(
                settings.slack_signing_secret or "",
                app[CLIENTS].slack,
                commands,
                actions,
                listeners,
            )
            register_generate(app[BOLT], generate, listeners)
            register_home(app[BOLT], HomeOpened(app[PEOPLE]), generate, listeners)
            # Socket Mode alone needs no signing secret; /slack/events then keeps answering 503.
            if settings.slack_signing_secret is not None:
                slack_events.bolt = app[BOLT]
        yield
        slack_events.bolt = None
        await listeners.close()
        await actions.close()

    async def polling(app: web.Application) -> AsyncIterator[None]:
        client = app[CLIENTS].kie
        if client is None:
            log.info("KIE_API_KEY is not set: no polling")
            yield
            return
        poller = Poller(
            app[SCHEDULE],
            app[TASKS],
            client,
            app[METRICS],
            interval=settings.poll_interval,
            clock=clock,
            health=app[HEALTH],
        )
        await app[SCHEDULE].resume()
        scheduler = start_scheduler(
            poller.tick, min(5.0, settings.poll_interval / 2), "poll-due-tasks"
        )
        yield
        scheduler.shutdown(wait=False)
        await poller.finish()

    async def spend(app: web.Application) -> AsyncIterator[None]:
        if settings.kie_alert_channel is None:
            yield
            return
        watch = SpendWatch(
            SpendSettings(
                settings.kie_alert_channel, settings.kie_low_credits, settings.kie_digest_time
            ),
            app[USAGE],
            app[ALERTS],
            app[CLIENTS].kie,
            on_queued=app[TASKS].outbox_ready.set,
            clock=clock,
            health=app[HEALTH],
        )
        scheduler = start_scheduler(watch.tick, min(5.0, settings.poll_interval / 2), "spend-watch")
        yield
        scheduler.shutdown(wait=False)

    async def keep_small(app: web.Application) -> AsyncIterator[None]:
        if settings.kie_retention_days <= 0:
            log.info("KIE_RETENTION_DAYS=0: callback events and sent Slack work are kept for ever")
            yield
            return
        retention = app[RETENTION]
        scheduler = start_scheduler(
            retention.tick, min(5.0, settings.poll_interval / 2), "delete-old-events"
        )
        yield
        scheduler.shutdown(wait=False)
        await retention.finish()

    app.cleanup_ctx.extend([storage, http, delivery, slash_commands, polling, spend, keep_small])

    async def slack_socket(app: web.Application) -> AsyncIterator[None]:
        if settings.slack_app_token is None:
            yield
            return
        async with socket_mode(
            app[BOLT],
            settings.slack_app_token,
            settings.slack_api_url,
            ping_interval=settings.socket_ping_interval,
        ):
            yield

    app.cleanup_ctx.append(slack_socket)  # after the Bolt app it serves, closed before it

    async def started(app: web.Application) -> None:
        if settings.kie_webhook_hmac_key is None:
            log.warning(
                "KIE_WEBHOOK_HMAC_KEY is not set: callbacks are accepted without a signature"
            )
        if fallback is None:
            log.warning(
                "KIE_DEFAULT_CHANNEL is not set: callbacks without a route are stored, not posted"
            )

    app.on_startup.append(started)

    async def handlers(app: web.Application) -> AsyncIterator[None]:
        app[INTAKE] = CallbackIntake(
            settings,
            app[TASKS],
            app[ROUTES],
            app[METRICS],
            fallback,
            clock=clock,
            health=app[HEALTH],
        )
        app[OPS] = Ops(app[TASKS], app[OUTBOX], app[METRICS], clock=clock, health=app[HEALTH])
        yield

    app.cleanup_ctx.append(handlers)

    async def callbacks(request: web.Request) -> web.StreamResponse:
        return await request.app[INTAKE].handle(request)

    async def healthz(request: web.Request) -> web.StreamResponse:
        return await request.app[OPS].healthz(request)

    async def metrics(request: web.Request) -> web.StreamResponse:
        return await request.app[OPS].metrics_page(request)

    app.router.add_post("/callbacks/{product}", callbacks)
    app.router.add_post("/callbacks/{product}/{route}", callbacks)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/slack/events", slack_events.handle)
    return app


def slack_client(settings: Settings, session: aiohttp.ClientSession) -> AsyncWebClient:
    """The Web API client: `SLACK_API_URL`, the shared session, no SDK retries (ours persist)."""
    return AsyncWebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        session=session,
        retry_handlers=[],
    )


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error is a JSON `{"error": ...}`; an unexpected one is logged and answered 503."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error(exc.status, exc.reason)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return json_error(503, "internal error; retry later")
