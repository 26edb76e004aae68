"""The `kie-slack` command: serve (the default), send, check."""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bot import __version__
from bot.config import ConfigError, Settings, configure_logging
from bot.kie.media import NOUNS, media_of_model
from bot.kie.products import PRODUCTS
from bot.kie.signature import signed_headers

if TYPE_CHECKING:
    from storage.database import Database
    from storage.retention import StoreSize


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        if args.command == "check":  # said once, where the other check lines go
            print(f"✗ {exc}\nconfiguration is NOT usable")
        else:
            print(f"kie-slack: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "send":
        return send(settings, args.product, Path(args.file), args.url)
    if args.command == "check":
        return check(settings, os.environ)
    if args.command == "outbox":
        return _outbox(settings, args, parser)
    if args.command == "copy-to":
        return _copy_to(settings, args.target)
    if args.command == "usage":
        return _usage(settings, args.since, args.csv)
    return serve(settings)


def _usage(settings: Settings, since: str | None, as_csv: bool) -> int:
    from bot.operations import usage_report
    from bot.usage import period_start

    start = period_start("month", time.time())
    if since is not None:
        try:
            start = datetime.strptime(since, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
        except ValueError:
            print(f"kie-slack usage: --since {since[:20]!r} is not a date like 2026-12-01")
            return 2
    return asyncio.run(usage_report(settings, start, as_csv))


def _copy_to(settings: Settings, target: str) -> int:
    from storage.copy import copy_sqlite_to_postgres
    from storage.database import StoreUnavailable
    from storage.postgres import safe_url

    if settings.postgres_url is not None:
        print("kie-slack copy-to: DATABASE_URL must name the SQLite store to copy from")
        return 2
    if not target.startswith(("postgresql://", "postgres://")):
        print("kie-slack copy-to: the target must be a postgresql://user:password@host:port/db URL")
        return 2
    print(f"Copying {settings.database_path} into {safe_url(target)} …")
    try:
        copied = asyncio.run(
            copy_sqlite_to_postgres(settings.database_path, target, progress=print)
        )
    except StoreUnavailable as exc:
        print(f"kie-slack copy-to: {exc}; nothing was copied")
        return 1
    print(
        f"Done: {sum(copied.rows.values())} rows. Stop the SQLite bot, set "
        "DATABASE_URL to the PostgreSQL URL, and start the replicas: callback URLs and threads "
        "carry over, and pending Slack work is sent."
    )
    return 0


def _outbox(settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from bot.operations import list_outbox, retry_outbox

    if args.outbox_command != "retry":
        return asyncio.run(list_outbox(settings))
    if not args.rows and not args.failed:
        parser.error("outbox retry: give ROW numbers or --failed")
    return asyncio.run(retry_outbox(settings, args.rows, args.failed))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kie-slack",
        description="Slack app and HTTP server behind kie.ai video-generation callbacks.",
    )
    parser.add_argument("--version", action="version", version=f"kie-slack {__version__}")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the server until SIGINT/SIGTERM (the default)")
    send_parser = commands.add_parser(
        "send", help="POST a callback body from FILE to a running bot"
    )
    send_parser.add_argument(
        "product",
        choices=sorted(PRODUCTS),
        metavar="PRODUCT",
        help=f"one of: {', '.join(PRODUCTS)}",
    )
    send_parser.add_argument("file", metavar="FILE", help="a JSON callback body (- for stdin)")
    send_parser.add_argument("--url", help="the bot's base URL (default http://127.0.0.1:$PORT)")
    commands.add_parser("check", help="validate the configuration and explain it")
    outbox = commands.add_parser("outbox", help="list pending and failed Slack work")
    outbox_commands = outbox.add_subparsers(dest="outbox_command")
    retry = outbox_commands.add_parser(
        "retry", help="make rows due again; the running bot sends them within seconds"
    )
    retry.add_argument("rows", nargs="*", type=int, metavar="ROW", help="row numbers to send")
    retry.add_argument("--failed", action="store_true", help="every failed row")
    copy_to = commands.add_parser(
        "copy-to", help="copy this SQLite store (DATABASE_URL) into an empty PostgreSQL database"
    )
    copy_to.add_argument("target", metavar="URL", help="postgresql://user:password@host:port/db")
    usage = commands.add_parser(
        "usage", help="generations started from Slack and their credits (the usage ledger)"
    )
    usage.add_argument(
        "--since", metavar="DATE", help="from this UTC day (YYYY-MM-DD; default: the 1st)"
    )
    usage.add_argument("--csv", action="store_true", help="one CSV line per start")
    return parser


async def _freeze_startup_objects(app: object) -> None:
    """Keep what start-up made (modules, clients, the app) out of every later garbage
    collection: a full collection walks every tracked object, and once the app has started,
    those are tens of thousands that live as long as the process. Measured with the ingest
    benchmark, such collections held the event loop for tens of milliseconds."""
    gc.collect()
    gc.freeze()


def serve(settings: Settings) -> int:
    """Run the server until SIGINT/SIGTERM; resources close in reverse order on the way out."""
    from aiohttp import web

    from bot.server import create_app
    from storage.database import StoreUnavailable

    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    app.on_startup.append(_freeze_startup_objects)
    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            print=lambda _: print(
                f"kie-slack listening on http://{settings.host}:{settings.port}", flush=True
            ),
            shutdown_timeout=15,
        )
    except StoreUnavailable as exc:
        print(f"kie-slack: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"kie-slack: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr
        )
        return 1
    logging.getLogger("bot").info("kie-slack stopped")
    return 0


def send(settings: Settings, slug: str, file: Path, base_url: str | None) -> int:
    """POST FILE as a `slug` callback, signed when a key is set; print the answer."""
    try:
        body = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    except OSError as exc:
        print(f"kie-slack send: cannot read {file}: {exc.strerror}", file=sys.stderr)
        return 2
    headers = {"Content-Type": "application/json"}
    if settings.kie_webhook_hmac_key is not None:
        try:
            task_id = PRODUCTS[slug].callback_task_id(json.loads(body))
        except ValueError:
            task_id = ""
        headers |= signed_headers(settings.kie_webhook_hmac_key, task_id, int(time.time()))
    base = (base_url or f"http://127.0.0.1:{settings.port}").rstrip("/")
    request = urllib.request.Request(
        f"{base}/callbacks/{slug}", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            print(response.read().decode("utf-8", "replace"))
            return 0
    except urllib.error.HTTPError as exc:
        print(exc.read().decode("utf-8", "replace"))
        print(f"kie-slack send: HTTP {exc.code}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"kie-slack send: cannot reach {base}: {reason}", file=sys.stderr)
        return 1


def check(settings: Settings, env: Mapping[str, str]) -> int:
    """Explain the configuration line by line; non-zero when the bot could not run."""
    lines = _explain(settings, env)
    usable = asyncio.run(_database_usable(settings, lines))
    for line in lines:
        print(line)
    print("configuration is usable" if usable else "configuration is NOT usable")
    return 0 if usable else 1


def _explain(settings: Settings, env: Mapping[str, str]) -> list[str]:
    def given(name: str) -> bool:
        return bool(env.get(name, "").strip())

    ok, info, warn = "✓", "·", "!"
    lines = [
        f"{ok} listening on {settings.host}:{settings.port}"
        + ("" if given("PORT") or given("HOST") else " (defaults)"),
        f"{ok} PUBLIC_URL {settings.public_url}: callback URLs are built on it",
    ]
    if not is_public(settings.public_url):
        lines.append(_polling_line(settings))
    if settings.slack_bot_token:
        lines.append(
            f"{ok} SLACK_BOT_TOKEN is set: messages go to Slack at {settings.slack_api_url}"
        )
    else:
        lines.append(f"{info} SLACK_BOT_TOKEN is not set: console mode, messages are printed")
    lines.extend(_slack_mode_lines(settings))
    if given("SLACK_CLIENT_ID") and given("SLACK_CLIENT_SECRET"):
        lines.append(
            f"{warn} SLACK_CLIENT_ID/SECRET are set: unset them, this is a single-workspace app"
        )
    if settings.kie_api_key:
        lines.append(f"{ok} KIE_API_KEY is set: polling, /kie status|poll|credits work")
    else:
        lines.append(f"{warn} KIE_API_KEY is not set: no polling; /kie poll and credits say so")
    if settings.kie_webhook_hmac_key:
        lines.append(
            f"{ok} KIE_WEBHOOK_HMAC_KEY is set: callbacks must be signed "
            f"(±{settings.kie_signature_tolerance} s)"
        )
    else:
        lines.append(f"{warn} KIE_WEBHOOK_HMAC_KEY is not set: unsigned callbacks are accepted")
    if settings.kie_default_channel:
        lines.append(
            f"{ok} KIE_DEFAULT_CHANNEL={settings.kie_default_channel}: unrouted callbacks go there"
        )
    elif settings.console_mode:
        lines.append(f"{info} KIE_DEFAULT_CHANNEL is not set: unrouted callbacks print as #console")
    else:
        lines.append(
            f"{warn} KIE_DEFAULT_CHANNEL is not set: unrouted callbacks are stored, not posted"
        )
    lines.append(f"{ok} POLL_INTERVAL={settings.poll_interval} s")
    lines.append(
        f"{ok} SLACK_RETRY_HOURS={settings.slack_retry_hours:g}: a Slack post that fails for a "
        "passing reason is retried that long"
    )
    lines.append(f"{ok} LOG_LEVEL={settings.log_level}, LOG_FORMAT={settings.log_format}")
    lines.extend(_video_lines(settings))
    lines.extend(_submit_lines(settings))
    lines.extend(_spend_lines(settings))
    lines.append(_retention_line(settings.kie_retention_days))
    return lines


def _retention_line(days: float) -> str:
    """What KIE_RETENTION_DAYS deletes."""
    if days <= 0:
        return "· KIE_RETENTION_DAYS=0: callback events and sent Slack work are kept for ever"
    return (
        f"✓ KIE_RETENTION_DAYS={days:g}: each day, callback events and sent Slack work older "
        "than that are deleted (tasks, threads, routes and the usage ledger stay)"
    )


def _spend_lines(settings: Settings) -> list[str]:
    """What the limits, the low-credits alert and the digest are set to."""
    ok, info, warn = "✓", "·", "!"
    limits = [
        f"{n} per {scope} per UTC day"
        for n, scope in (
            (settings.kie_daily_limit_per_person, "person"),
            (settings.kie_daily_limit_per_channel, "channel"),
        )
        if n is not None
    ]
    if limits:
        admins = ", ".join(settings.kie_admins) or "none (KIE_ADMINS)"
        lines = [f"{ok} daily limits: {' and '.join(limits)}; admins, not held by them: {admins}"]
    else:
        lines = [f"{info} no daily limits (KIE_DAILY_LIMIT_PER_PERSON, …_PER_CHANNEL)"]
    channel = settings.kie_alert_channel
    if settings.kie_low_credits is not None:
        if channel is None:
            lines.append(f"{warn} KIE_LOW_CREDITS is set but KIE_ALERT_CHANNEL is not: no alert")
        elif not settings.kie_api_key:
            lines.append(f"{warn} KIE_LOW_CREDITS needs KIE_API_KEY to ask kie.ai: no alert")
        else:
            lines.append(
                f"{ok} KIE_LOW_CREDITS={settings.kie_low_credits:g}: {channel} is told once "
                "when the credits fall below it (asked every 10 minutes)"
            )
    if settings.kie_digest_time is not None:
        hours, minutes = divmod(settings.kie_digest_time, 60)
        if channel is None:
            lines.append(f"{warn} KIE_DIGEST_TIME is set but KIE_ALERT_CHANNEL is not: no digest")
        else:
            lines.append(f"{ok} daily digest at {hours:02d}:{minutes:02d} UTC into {channel}")
    return lines


def is_public(url: str) -> bool:
    """Whether kie.ai (or Slack) could reach `url`: not localhost, loopback or a private
    network, and not a bare name that only a local network resolves."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal", ".lan")):
        return False
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        return "." in host


def _polling_line(settings: Settings) -> str:
    """What a PUBLIC_URL kie.ai cannot reach means for the results."""
    if not settings.kie_api_key:
        return (
            "! PUBLIC_URL is not a public address and KIE_API_KEY is not set: kie.ai cannot "
            "call back and nothing polls, so results arrive only by `kie-slack send`"
        )
    return (
        "! PUBLIC_URL is not a public address: kie.ai cannot call back, so results arrive by "
        f"polling every {settings.poll_interval} s (tasks started from Slack, and /kie poll)"
    )


def _slack_mode_lines(settings: Settings) -> list[str]:
    """How Slack's commands, clicks and events reach the bot: Socket Mode or HTTP."""
    if settings.slack_app_token:
        mode = (
            "✓ SLACK_APP_TOKEN is set: Socket Mode, Slack's commands, clicks and events arrive "
            "over a WebSocket the bot opens; /slack/events is not needed"
        )
    else:
        mode = (
            "· SLACK_APP_TOKEN is not set: HTTP mode, Slack sends commands, clicks and events to "
            f"{settings.public_url}/slack/events"
        )
    if settings.slack_signing_secret:
        secret = "✓ SLACK_SIGNING_SECRET is set: /slack/events verifies Slack's requests"
    elif settings.slack_app_token:
        secret = (
            "· SLACK_SIGNING_SECRET is not set: /slack/events answers 503 (Socket Mode needs none)"
        )
    else:
        secret = "! SLACK_SIGNING_SECRET is not set: /slack/events answers 503, no /kie"
    lines = [mode, secret]
    if (
        settings.slack_signing_secret
        and not settings.slack_app_token
        and not is_public(settings.public_url)
    ):
        lines.append(
            "! Slack cannot reach a PUBLIC_URL that is not public: set SLACK_APP_TOKEN for "
            "Socket Mode (README: Try it in your workspace without a public address)"
        )
    return lines


def _submit_lines(settings: Settings) -> list[str]:
    """What KIE_SUBMIT, KIE_SUBMIT_CHANNELS, KIE_MARKET_MODELS and KIE_IMAGE_MODEL mean
    together."""
    if not settings.kie_submit:
        return ["· KIE_SUBMIT=off: nothing can be started from Slack (/kie veo, image, new, Again)"]
    if not settings.kie_api_key:
        return [
            "! KIE_SUBMIT=on but KIE_API_KEY is not set: starting generations from Slack says so"
        ]
    where = (
        "only in " + ", ".join(settings.kie_submit_channels) + " (KIE_SUBMIT_CHANNELS)"
        if settings.kie_submit_channels
        else "in every channel (KIE_SUBMIT_CHANNELS limits it)"
    )
    lines = [
        f"✓ KIE_SUBMIT=on: anyone may start generations {where}; each costs kie.ai credits",
    ]
    if settings.kie_market_models:
        lines.append(
            f"✓ KIE_MARKET_MODELS: /kie new also offers {', '.join(settings.kie_market_models)}"
        )
    return [*lines, _image_model_line(settings.kie_image_model)]


def _image_model_line(model: str) -> str:
    """What `/kie image <prompt>` starts (KIE_IMAGE_MODEL), and a warning when the model's id
    says it makes something else."""
    made = media_of_model(model)
    if made is not None and made != "image":
        return (
            f"! KIE_IMAGE_MODEL={model}: /kie image starts it, but its id says it makes "
            f"{NOUNS[made][1]}, not images"
        )
    return f"✓ KIE_IMAGE_MODEL={model}: /kie image <prompt> starts it (/kie new offers it too)"


def _video_lines(settings: Settings) -> list[str]:
    """What SLACK_SAVE_VIDEOS, SAVE_VIDEO_MAX_MB and DOWNLOAD_ALLOW_PRIVATE_HOSTS mean together."""
    if not settings.slack_save_videos:
        return ["· SLACK_SAVE_VIDEOS=off: result videos stay links; kie.ai deletes them later"]
    lines = [
        f"✓ SLACK_SAVE_VIDEOS=on: each result video up to {settings.save_video_max_mb} MB "
        "(SAVE_VIDEO_MAX_MB) is uploaded into its thread; the app needs the scopes files:write "
        "and channels:join"
    ]
    if settings.download_allow_private_hosts:
        lines.append(
            "! DOWNLOAD_ALLOW_PRIVATE_HOSTS=on: video downloads may reach loopback and private "
            "addresses, over plain http too (tests, private deployments)"
        )
    else:
        lines.append("✓ video downloads reach public https addresses only")
    return lines


async def _database_usable(settings: Settings, lines: list[str]) -> bool:
    from storage.backends import open_database
    from storage.postgres import safe_url

    if settings.postgres_url is not None:
        where = f"PostgreSQL {safe_url(settings.postgres_url)} (replicas may share it)"
    else:
        where = f"SQLite {settings.database_path.resolve()} (one kie-slack serve process)"
    try:
        database = await open_database(settings.database_path, settings.postgres_url)
    except Exception as exc:  # whatever stops it opening makes the configuration unusable
        lines.append(f"✗ database {where}: {exc}")
        return False
    lines.append(f"✓ database {where} opens and is migrated")
    try:
        lines.extend(await _store_lines(database))
    finally:
        await database.close()
    return True


async def _store_lines(database: Database) -> list[str]:
    """The outbox in one line, and the store's size and oldest callback event."""
    from bot.operations import summary
    from storage.database import StoreUnavailable
    from storage.outbox import Outbox
    from storage.retention import store_size

    lines = []
    try:
        stats = await Outbox(database).stats()
    except StoreUnavailable as exc:
        lines.append(f"! outbox unreadable: {exc}")
    else:
        mark = "!" if stats.counts.get("failed") else "✓"
        lines.append(f"{mark} Slack outbox: {summary(stats, time.time())}")
        if stats.counts.get("failed"):
            lines.append("! see them with `kie-slack outbox`; resend with `kie-slack outbox retry`")
    try:
        size = await store_size(database)
    except StoreUnavailable as exc:
        lines.append(f"! store size unreadable: {exc}")
    else:
        lines.append(_size_line(size, database.dialect, time.time()))
    return lines


def _size_line(size: StoreSize, dialect: str, now: float) -> str:
    """`✓ store: 12.3 MB (…); oldest callback event 41 d old`."""
    from bot.operations import age

    what = "the SQLite file and its -wal" if dialect == "sqlite" else "pg_database_size"
    oldest = (
        "no callback event yet"
        if size.oldest_event_at is None
        else f"oldest callback event {age(now - size.oldest_event_at)} old"
    )
    return f"✓ store: {size.size / 1e6:.1f} MB ({what}); {oldest}"
