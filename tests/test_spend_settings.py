"""The spend settings as read from the environment: limits, admins, alert and digest."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, Settings


def test_spend_settings_are_read():
    settings = Settings.from_env(
        {
            "KIE_DAILY_LIMIT_PER_PERSON": "2",
            "KIE_DAILY_LIMIT_PER_CHANNEL": "10",
            "KIE_ADMINS": "U0ANA, @W0BEN,U0ANA",
            "KIE_LOW_CREDITS": "150.5",
            "KIE_ALERT_CHANNEL": "#C0ALERTS",
            "KIE_DIGEST_TIME": "8:05",
            "KIE_SUBMIT_CHANNELS": "C0ONE #C0TWO",
        }
    )
    assert (settings.kie_daily_limit_per_person, settings.kie_daily_limit_per_channel) == (2, 10)
    assert settings.kie_admins == ("U0ANA", "W0BEN")
    assert settings.kie_low_credits == 150.5 and settings.kie_alert_channel == "C0ALERTS"
    assert settings.kie_digest_time == 8 * 60 + 5
    assert settings.kie_submit_channels == ("C0ONE", "C0TWO")


def test_unset_means_no_limit_no_alert_no_digest():
    settings = Settings.from_env({})
    assert settings.kie_daily_limit_per_person is None and settings.kie_admins == ()
    assert settings.kie_low_credits is None and settings.kie_digest_time is None


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("KIE_DAILY_LIMIT_PER_PERSON", "two", "KIE_DAILY_LIMIT_PER_PERSON='two'"),
        ("KIE_DAILY_LIMIT_PER_CHANNEL", "-1", "KIE_DAILY_LIMIT_PER_CHANNEL=-1 is out of range"),
        ("KIE_ADMINS", "U0ANA,bob", "KIE_ADMINS: 'bob' is not a Slack user ID"),
        ("KIE_LOW_CREDITS", "0", "KIE_LOW_CREDITS='0' is not a positive number"),
        ("KIE_ALERT_CHANNEL", "C0ONE,C0TWO", "KIE_ALERT_CHANNEL takes one channel ID"),
        ("KIE_DIGEST_TIME", "24:00", "KIE_DIGEST_TIME='24:00' is not a time of day"),
    ],
)
def test_a_malformed_value_is_named(name: str, value: str, said: str):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({name: value})
    assert said in str(error.value)
