"""Logging set-up (LOG_LEVEL, LOG_FORMAT) and the settings LOG_FORMAT and SLACK_RETRY_HOURS."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import ConfigError, JsonFormatter, Settings, configure_logging


def record(
    message: str, *args: object, level: int = logging.INFO, **extra: object
) -> logging.LogRecord:
    logger = logging.getLogger("bot.test")
    return logger.makeRecord(logger.name, level, __file__, 1, message, args, None, extra=extra)


def test_json_line_has_time_level_logger_message_and_the_task():
    line = JsonFormatter().format(
        record("stored %s callback for %r", "veo", "t-1", task_id="t-1", channel="C0A")
    )
    entry = json.loads(line)
    assert entry.pop("message") == "stored veo callback for 't-1'"
    assert entry.pop("level") == "INFO"
    assert entry.pop("logger") == "bot.test"
    moment = datetime.fromisoformat(entry.pop("time"))
    assert moment.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - moment) < timedelta(minutes=5)
    assert entry == {"task_id": "t-1", "channel": "C0A"}


def test_json_line_leaves_out_what_the_record_does_not_carry():
    entry = json.loads(JsonFormatter().format(record("plain", level=logging.WARNING)))
    assert set(entry) == {"time", "level", "logger", "message"}
    assert entry["level"] == "WARNING"


def test_json_keeps_a_multi_line_message_and_its_exception_on_one_line():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        failed = record("two\nlines", level=logging.ERROR, task_id="t-2")
        failed.exc_info = sys.exc_info()
    line = JsonFormatter().format(failed)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "two\nlines"
    assert entry["task_id"] == "t-2" and "channel" not in entry
    assert "Traceback" in entry["exc_info"] and "RuntimeError: boom" in entry["exc_info"]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    scheduler = logging.getLogger("apscheduler")
    saved = root.handlers[:], root.level, scheduler.level
    yield
    for handler in root.handlers:
        if handler not in saved[0]:
            root.removeHandler(handler)
            handler.close()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    scheduler.setLevel(saved[2])


def emit_samples() -> None:
    logging.getLogger("apscheduler.executors.default").info('Running job "tick"')
    logging.getLogger("apscheduler.scheduler").warning("scheduler warning")
    logging.getLogger("bot.polling").info("bot info", extra={"task_id": "t-3"})
    logging.getLogger("bot.polling").debug("bot debug")


def test_json_format_writes_one_object_per_line_to_stderr(capsys, restore_logging):
    configure_logging("INFO", "json")
    emit_samples()
    captured = capsys.readouterr()
    assert captured.out == ""
    entries = [json.loads(line) for line in captured.err.splitlines()]
    assert [(e["logger"], e["message"]) for e in entries] == [
        ("apscheduler.scheduler", "scheduler warning"),
        ("bot.polling", "bot info"),
    ]
    assert entries[1]["task_id"] == "t-3"


def test_text_format_at_info_hides_each_scheduler_run(capsys, restore_logging):
    configure_logging("INFO", "text")
    emit_samples()
    err = capsys.readouterr().err
    assert "Running job" not in err and "bot debug" not in err
    assert "WARNING apscheduler.scheduler: scheduler warning" in err
    assert "INFO bot.polling: bot info" in err


def test_debug_shows_each_scheduler_run(capsys, restore_logging):
    configure_logging("DEBUG", "text")
    emit_samples()
    err = capsys.readouterr().err
    assert 'Running job "tick"' in err and "bot debug" in err


def test_error_level_hides_scheduler_warnings_too(capsys, restore_logging):
    configure_logging("ERROR", "json")
    emit_samples()
    logging.getLogger("apscheduler.scheduler").error("scheduler error")
    [line] = capsys.readouterr().err.splitlines()
    assert json.loads(line)["message"] == "scheduler error"


def test_log_format_setting():
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"LOG_FORMAT": ""}).log_format == "text"
    assert Settings.from_env({"LOG_FORMAT": "json"}).log_format == "json"
    assert Settings.from_env({"LOG_FORMAT": " JSON "}).log_format == "json"


@pytest.mark.parametrize("value", ["xml", "jsonl", "1"])
def test_malformed_log_format_is_named(value):
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        Settings.from_env({"LOG_FORMAT": value})


@pytest.mark.parametrize(
    ("value", "hours"), [(None, 24.0), ("", 24.0), ("0.5", 0.5), ("48", 48.0), ("1e-2", 0.01)]
)
def test_slack_retry_hours_setting(value, hours):
    env = {} if value is None else {"SLACK_RETRY_HOURS": value}
    assert Settings.from_env(env).slack_retry_hours == hours


@pytest.mark.parametrize("value", ["abc", "0", "-1", "-0.5", "nan", "inf", "1e400", "24h", "1,5"])
def test_malformed_slack_retry_hours_is_named(value):
    with pytest.raises(ConfigError, match="SLACK_RETRY_HOURS"):
        Settings.from_env({"SLACK_RETRY_HOURS": value})
