"""Settings: the environment, read once into one typed object."""

from __future__ import annotations

import json
import logging
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, cast
from urllib.parse import urlsplit


class ConfigError(ValueError):
    """A present but malformed variable; the message names it."""


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

LogFormat = Literal["text", "json"]
_LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
#: The Market image model `/kie image <prompt>` starts when KIE_IMAGE_MODEL is not set.
DEFAULT_IMAGE_MODEL = "google/nano-banana"


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of kie-slack; see the README's configuration table."""

    host: str = "0.0.0.0"
    port: int = 3000
    database_path: Path = Path("kie-slack.db")
    #: Set when DATABASE_URL is a PostgreSQL URL; `database_path` is then unused.
    postgres_url: str | None = field(default=None, repr=False)
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    #: The app-level token (`xapp-…`): set = Slack's requests arrive over Socket Mode.
    slack_app_token: str | None = field(default=None, repr=False)
    #: Seconds between Socket Mode's pings; a dropped socket is noticed within about two.
    socket_ping_interval: float = 10.0
    slack_api_url: str = "https://slack.com/api/"
    kie_api_key: str | None = field(default=None, repr=False)
    kie_api_url: str = "https://api.kie.ai"
    kie_webhook_hmac_key: str | None = field(default=None, repr=False)
    kie_signature_tolerance: int = 300
    kie_default_channel: str | None = None
    public_url: str = "http://localhost:3000"
    poll_interval: int = 30
    log_level: str = "INFO"
    log_format: LogFormat = "text"
    slack_retry_hours: float = 24.0
    slack_save_videos: bool = True
    save_video_max_mb: int = 1000
    download_allow_private_hosts: bool = False
    #: Starting generations from Slack: off entirely, or only in these channels (empty = all).
    kie_submit: bool = True
    kie_submit_channels: tuple[str, ...] = ()
    #: Market model ids the `/kie new` form offers besides its built-in ones.
    kie_market_models: tuple[str, ...] = ()
    #: The Market image model that `/kie image <prompt>` starts.
    kie_image_model: str = DEFAULT_IMAGE_MODEL
    #: Spend in hand: daily limits (None: no limit), the admins they do not hold, the
    #: low-credits alert level, where alerts and the digest go, and the digest's time (minutes
    #: after midnight UTC).
    kie_daily_limit_per_person: int | None = None
    kie_daily_limit_per_channel: int | None = None
    kie_admins: tuple[str, ...] = ()
    kie_low_credits: float | None = None
    kie_alert_channel: str | None = None
    kie_digest_time: int | None = None
    #: Callback events and finished Slack work older than this many days are deleted (0: kept).
    kie_retention_days: float = 90.0

    @property
    def console_mode(self) -> bool:
        """True when Slack posts are printed to stdout instead of sent."""
        return self.slack_bot_token is None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read the settings; raise `ConfigError` naming the first malformed variable."""

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        # bot.video.settings imports this module for ConfigError: import it once both exist.
        from bot.video.settings import (
            parse_allow_private_hosts,
            parse_save_video_max_mb,
            parse_save_videos,
            parse_switch,
        )

        port = _integer(get("PORT"), "PORT", 3000, low=0, high=65535)
        return cls(
            host=get("HOST") or "0.0.0.0",
            port=port,
            database_path=_database_path(get("DATABASE_URL")),
            postgres_url=_postgres_url(get("DATABASE_URL")),
            slack_bot_token=get("SLACK_BOT_TOKEN"),
            slack_signing_secret=get("SLACK_SIGNING_SECRET"),
            slack_app_token=_app_token(get("SLACK_APP_TOKEN")),
            slack_api_url=_url(get("SLACK_API_URL"), "SLACK_API_URL", "https://slack.com/api/"),
            kie_api_key=get("KIE_API_KEY"),
            kie_api_url=_url(get("KIE_API_URL"), "KIE_API_URL", "https://api.kie.ai").rstrip("/"),
            kie_webhook_hmac_key=get("KIE_WEBHOOK_HMAC_KEY"),
            kie_signature_tolerance=_integer(
                get("KIE_SIGNATURE_TOLERANCE"), "KIE_SIGNATURE_TOLERANCE", 300, low=1
            ),
            kie_default_channel=_channel(get("KIE_DEFAULT_CHANNEL")),
            public_url=_url(get("PUBLIC_URL"), "PUBLIC_URL", f"http://localhost:{port}").rstrip(
                "/"
            ),
            poll_interval=_integer(get("POLL_INTERVAL"), "POLL_INTERVAL", 30, low=1, high=86400),
            log_level=_log_level(get("LOG_LEVEL")),
            log_format=_log_format(get("LOG_FORMAT")),
            slack_retry_hours=_positive_number(get("SLACK_RETRY_HOURS"), "SLACK_RETRY_HOURS", 24.0),
            slack_save_videos=parse_save_videos(get("SLACK_SAVE_VIDEOS")),
            save_video_max_mb=parse_save_video_max_mb(get("SAVE_VIDEO_MAX_MB")),
            download_allow_private_hosts=parse_allow_private_hosts(
                get("DOWNLOAD_ALLOW_PRIVATE_HOSTS")
            ),
            kie_submit=parse_switch(get("KIE_SUBMIT"), "KIE_SUBMIT", True),
            kie_submit_channels=_channel_list(get("KIE_SUBMIT_CHANNELS"), "KIE_SUBMIT_CHANNELS"),
            kie_market_models=_market_models(get("KIE_MARKET_MODELS")),
            kie_image_model=_image_model(get("KIE_IMAGE_MODEL")),
            kie_daily_limit_per_person=_limit(get("KIE_DAILY_LIMIT_PER_PERSON"), "PERSON"),
            kie_daily_limit_per_channel=_limit(get("KIE_DAILY_LIMIT_PER_CHANNEL"), "CHANNEL"),
            kie_admins=_user_list(get("KIE_ADMINS"), "KIE_ADMINS"),
            kie_low_credits=_low_credits(get("KIE_LOW_CREDITS")),
            kie_alert_channel=_one_channel(get("KIE_ALERT_CHANNEL"), "KIE_ALERT_CHANNEL"),
            kie_digest_time=_time_of_day(get("KIE_DIGEST_TIME"), "KIE_DIGEST_TIME"),
            kie_retention_days=_retention_days(get("KIE_RETENTION_DAYS")),
        )


def _integer(value: str | None, name: str, default: int, *, low: int, high: int = 10**9) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a whole number") from None
    if not low <= number <= high:
        raise ConfigError(f"{name}={number} is out of range ({low}..{high})")
    return number


def _positive_number(value: str | None, name: str, default: float) -> float:
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number") from None
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{name}={value!r} is not a positive number")
    return number


def _url(value: str | None, name: str, default: str) -> str:
    if value is None:
        return default
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name}={value!r} is not an http(s) URL with a host")
    return value


def _app_token(value: str | None) -> str | None:
    """SLACK_APP_TOKEN: an app-level token; the message never repeats the value (a secret)."""
    if value is None or value.startswith("xapp-"):
        return value
    hint = "; this one is a bot token, for SLACK_BOT_TOKEN" if value.startswith("xoxb-") else ""
    raise ConfigError(
        "SLACK_APP_TOKEN must be an app-level token, xapp-…, from the app's Basic Information → "
        f"App-Level Tokens (scope connections:write){hint}"
    )


_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def _database_path(value: str | None) -> Path:
    if value is None or value.startswith(_POSTGRES_SCHEMES):
        return Path("kie-slack.db")
    prefix = "sqlite:///"
    if not value.startswith(prefix) or len(value) == len(prefix):
        raise ConfigError(
            "DATABASE_URL is neither sqlite:///PATH (sqlite:////abs/path for an absolute one) "
            "nor postgresql://user:password@host:port/db"
        )
    return Path(value[len(prefix) :])


def _postgres_url(value: str | None) -> str | None:
    """The PostgreSQL URL in DATABASE_URL, or None for SQLite."""
    if value is None or not value.startswith(_POSTGRES_SCHEMES):
        return None
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ConfigError("DATABASE_URL has a malformed port") from None
    if not parts.hostname and "host=" not in parts.query:
        raise ConfigError("DATABASE_URL=postgresql://… needs a host: postgresql://user@host/db")
    return value


def _channel(value: str | None) -> str | None:
    if value is None:
        return None
    channel = value.lstrip("#")
    if not channel or any(c.isspace() for c in channel) or len(channel) > 80:
        raise ConfigError(f"KIE_DEFAULT_CHANNEL={value!r} is not a Slack channel ID like C0123456")
    return channel


#: What a Slack channel id looks like (C… public, G… private, D… a direct message).
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,30}")
#: What a kie.ai Market model id looks like: `kling-2.6/text-to-video`, `bytedance/seedance-2`.
_MARKET_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,139}")
#: The `/kie new` form lists at most 100 models; a few are built in.
MAX_MARKET_MODELS = 90


def _channel_list(value: str | None, name: str) -> tuple[str, ...]:
    """Channel IDs separated by commas (or spaces); `#` before one is allowed."""
    return _id_list(
        value,
        name,
        "#",
        _CHANNEL_ID,
        "is not a Slack channel ID like C0123456 (in Slack: the channel's details, at the bottom)",
    )


_USER_ID = re.compile(r"[UW][A-Z0-9]{2,30}")


def _user_list(value: str | None, name: str) -> tuple[str, ...]:
    """Slack user IDs separated by commas (or spaces); `@` before one is allowed."""
    return _id_list(
        value,
        name,
        "@",
        _USER_ID,
        "is not a Slack user ID like U0123456 (in Slack: the person's profile, ⋮ → Copy member ID)",
    )


def _id_list(
    value: str | None, name: str, sign: str, pattern: re.Pattern[str], wrong: str
) -> tuple[str, ...]:
    """Slack IDs matching `pattern`, separated by commas or spaces, each once; `sign` before one
    is allowed; `wrong` says what a part that does not match is not."""
    if value is None:
        return ()
    found: list[str] = []
    for part in re.split(r"[,\s]+", value):
        item = part.lstrip(sign)
        if not item:
            continue
        if not pattern.fullmatch(item):
            raise ConfigError(f"{name}: {part[:40]!r} {wrong}")
        if item not in found:
            found.append(item)
    return tuple(found)


def _one_channel(value: str | None, name: str) -> str | None:
    """One Slack channel ID, or None when unset."""
    channels = _channel_list(value, name)
    if len(channels) > 1:
        raise ConfigError(f"{name} takes one channel ID, not {len(channels)}")
    return channels[0] if channels else None


def _limit(value: str | None, scope: str) -> int | None:
    """KIE_DAILY_LIMIT_PER_<scope>: generations per UTC day, None when unset."""
    name = f"KIE_DAILY_LIMIT_PER_{scope}"
    return None if value is None else _integer(value, name, 0, low=0, high=1_000_000)


def _low_credits(value: str | None) -> float | None:
    """KIE_LOW_CREDITS: the alert level, a positive number of credits."""
    if value is None:
        return None
    return _positive_number(value, "KIE_LOW_CREDITS", 0.0)


def _retention_days(value: str | None) -> float:
    """KIE_RETENTION_DAYS: a number of days, 0 or more (0 keeps everything)."""
    if value is None:
        return 90.0
    try:
        days = float(value)
    except ValueError:
        raise ConfigError(
            f"KIE_RETENTION_DAYS={value[:20]!r} is not a number of days (0 keeps everything)"
        ) from None
    if not math.isfinite(days) or days < 0:
        raise ConfigError(
            f"KIE_RETENTION_DAYS={value[:20]!r} is not a number of days, 0 or more "
            "(0 keeps everything)"
        )
    return days


def _time_of_day(value: str | None, name: str) -> int | None:
    """`HH:MM` (UTC) as minutes after midnight."""
    if value is None:
        return None
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value)
    if match is None:
        raise ConfigError(f"{name}={value[:20]!r} is not a time of day like 08:30 (HH:MM, UTC)")
    return int(match[1]) * 60 + int(match[2])


def _market_models(value: str | None) -> tuple[str, ...]:
    """KIE_MARKET_MODELS: kie.ai Market model ids separated by commas."""
    if value is None:
        return ()
    models: list[str] = []
    for part in value.split(","):
        model = part.strip()
        if not model:
            continue
        _check_market_model(model, "KIE_MARKET_MODELS", "kling-2.6/text-to-video")
        if model not in models:
            models.append(model)
    if len(models) > MAX_MARKET_MODELS:
        raise ConfigError(
            f"KIE_MARKET_MODELS names {len(models)} models; at most {MAX_MARKET_MODELS}"
        )
    return tuple(models)


def _image_model(value: str | None) -> str:
    """KIE_IMAGE_MODEL: one kie.ai Market model id (default `google/nano-banana`)."""
    if value is None:
        return DEFAULT_IMAGE_MODEL
    _check_market_model(value, "KIE_IMAGE_MODEL", DEFAULT_IMAGE_MODEL)
    return value


def _check_market_model(model: str, name: str, example: str) -> None:
    """Raise `ConfigError` naming `name` when `model` is not a kie.ai Market model id."""
    if not _MARKET_MODEL.fullmatch(model):
        raise ConfigError(
            f"{name}: {model[:60]!r} is not a kie.ai Market model id like {example} "
            "(letters, digits, . _ / -; at most 140)"
        )


def _log_level(value: str | None) -> str:
    if value is None:
        return "INFO"
    level = value.upper()
    if level not in _LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL={value!r} is not one of {', '.join(_LOG_LEVELS)}")
    return level


def _log_format(value: str | None) -> LogFormat:
    if value is None:
        return "text"
    fmt = value.lower()
    if fmt not in _LOG_FORMATS:
        raise ConfigError(f"LOG_FORMAT={value!r} is not one of {', '.join(_LOG_FORMATS)}")
    return cast(LogFormat, fmt)


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON: time, level, logger, message; task_id, channel, exc_info."""

    #: Attributes that log calls may pass with `extra=`.
    FIELDS = ("task_id", "channel")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in self.FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = str(value)
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry)


def configure_logging(level: str, fmt: LogFormat = "text") -> None:
    """Log to stderr as text or as JSON lines; per-tick and per-request lines only at DEBUG."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    number = logging.getLevelNamesMapping()[level]
    # APScheduler logs every run of a job at INFO, aiohttp every request (health checks
    # included): those lines show only at DEBUG.
    quiet = number if number <= logging.DEBUG else max(number, logging.WARNING)
    logging.getLogger("apscheduler").setLevel(quiet)
    logging.getLogger("aiohttp.access").setLevel(quiet)
