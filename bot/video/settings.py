"""Reading the video settings: SLACK_SAVE_VIDEOS, SAVE_VIDEO_MAX_MB, DOWNLOAD_ALLOW_PRIVATE_HOSTS.

Each function takes the variable's stripped value (None when unset or empty) and returns the
setting, or raises `ConfigError` naming the variable.
"""

from __future__ import annotations

from bot.config import ConfigError

#: One megabyte as SAVE_VIDEO_MAX_MB counts it (decimal, as Slack's "1 GB" limit is).
MEGABYTE = 1_000_000
_ON = frozenset({"on", "true", "yes", "1"})
_OFF = frozenset({"off", "false", "no", "0"})


def parse_switch(value: str | None, name: str, default: bool) -> bool:
    """`on`/`off` (also true/false, yes/no, 1/0, any case); `default` when unset."""
    if value is None:
        return default
    word = value.strip().lower()
    if word in _ON:
        return True
    if word in _OFF:
        return False
    raise ConfigError(f"{name}={value!r} is not on or off")


def parse_save_videos(value: str | None) -> bool:
    """SLACK_SAVE_VIDEOS: upload result videos into their thread (default on)."""
    return parse_switch(value, "SLACK_SAVE_VIDEOS", True)


def parse_save_video_max_mb(value: str | None) -> int:
    """SAVE_VIDEO_MAX_MB: the largest video uploaded, in megabytes (default 1000)."""
    if value is None:
        return 1000
    try:
        number = int(value.strip())
    except ValueError:
        raise ConfigError(f"SAVE_VIDEO_MAX_MB={value!r} is not a whole number") from None
    if not 1 <= number <= 100_000:
        raise ConfigError(f"SAVE_VIDEO_MAX_MB={number} is out of range (1..100000)")
    return number


def parse_allow_private_hosts(value: str | None) -> bool:
    """DOWNLOAD_ALLOW_PRIVATE_HOSTS: downloads may reach private addresses and http (default off)."""
    return parse_switch(value, "DOWNLOAD_ALLOW_PRIVATE_HOSTS", False)
