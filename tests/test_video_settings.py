"""The video settings as the bot reads them from the environment, and what `check` says."""

from __future__ import annotations

import pytest

from bot.cli import _explain
from bot.config import ConfigError, Settings


def test_defaults_save_videos_up_to_1000_mb_from_public_https_only() -> None:
    settings = Settings.from_env({})
    assert settings.slack_save_videos is True
    assert settings.save_video_max_mb == 1000
    assert settings.download_allow_private_hosts is False
    lines = "\n".join(_explain(settings, {}))
    assert "SLACK_SAVE_VIDEOS=on" in lines and "up to 1000 MB" in lines
    assert "files:write" in lines and "channels:join" in lines
    assert "public https addresses only" in lines


def test_each_setting_is_read() -> None:
    env = {
        "SLACK_SAVE_VIDEOS": "off",
        "SAVE_VIDEO_MAX_MB": "250",
        "DOWNLOAD_ALLOW_PRIVATE_HOSTS": "on",
    }
    settings = Settings.from_env(env)
    assert (settings.slack_save_videos, settings.save_video_max_mb) == (False, 250)
    assert settings.download_allow_private_hosts is True
    assert "SLACK_SAVE_VIDEOS=off" in "\n".join(_explain(settings, env))
    private = Settings.from_env({"DOWNLOAD_ALLOW_PRIVATE_HOSTS": "yes"})
    assert "DOWNLOAD_ALLOW_PRIVATE_HOSTS=on" in "\n".join(_explain(private, {}))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SLACK_SAVE_VIDEOS", "maybe"),
        ("SAVE_VIDEO_MAX_MB", "lots"),
        ("SAVE_VIDEO_MAX_MB", "0"),
        ("DOWNLOAD_ALLOW_PRIVATE_HOSTS", "sometimes"),
    ],
)
def test_a_malformed_value_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})
