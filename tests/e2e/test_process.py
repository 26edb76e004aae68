"""The bot as a process: defaults, the CLI, configuration errors, crash and restart, shutdown."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys

from tests.conftest import CALLBACKS, eventually, load, poll
from tests.e2e.processes import BotProcess, free_port, remote, service_env

VEO = str(CALLBACKS / "veo-success.json")
RUNWAY = str(CALLBACKS / "runway-success.json")
RUNWAY_TASK = "5b8e1c2d-7a41-4f0e-9c3b-2d6f8a1e4b70"


def cli(*args: str, env: dict[str, str] | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_serve_with_no_environment_then_send_twice(tmp_path):
    bot = BotProcess({}, tmp_path, 3000)
    try:
        bot.wait_healthy()
        first = cli("send", "veo", VEO, cwd=tmp_path)
        second = cli("send", "veo", VEO, cwd=tmp_path)
        assert (first.returncode, first.stdout.strip()) == (0, '{"status":"received"}')
        assert (second.returncode, second.stdout.strip()) == (0, '{"status":"duplicate"}')
        assert (tmp_path / "kie-slack.db").exists()
    finally:
        assert bot.terminate() == 0
    output = bot.output()
    assert "3f9c2a7b1d4e_0.mp4" in output  # console mode printed the card
    assert "Traceback" not in output


def test_a_second_serve_on_one_sqlite_file_is_refused(tmp_path):
    port = free_port()
    env = {"DATABASE_URL": "sqlite:///shared.db", "HOST": "127.0.0.1"}
    first = BotProcess({**env, "PORT": str(port)}, tmp_path, port)
    try:
        first.wait_healthy()
        second = cli("serve", env={**env, "PORT": str(free_port())}, cwd=tmp_path)
        assert second.returncode == 1
        assert "another kie-slack serve is already using" in second.stderr
        assert "postgresql://" in second.stderr
        first.wait_healthy()  # the first one serves on
    finally:
        assert first.terminate() == 0
    third = BotProcess({**env, "PORT": str(port)}, tmp_path, port)
    try:
        third.wait_healthy()  # the file is free again once its process has stopped
    finally:
        assert third.terminate() == 0


def test_send_signs_when_a_key_is_set(tmp_path):
    port = free_port()
    env = {"PORT": str(port), "KIE_WEBHOOK_HMAC_KEY": "k3y", "DATABASE_URL": "sqlite:///s.db"}
    bot = BotProcess(env, tmp_path, port)
    try:
        bot.wait_healthy()
        assert cli("send", "veo", VEO, env=env).stdout.strip() == '{"status":"received"}'
        unsigned = cli("send", "veo", VEO, env={"PORT": str(port)})
        assert unsigned.returncode == 1 and "X-Webhook-Signature" in unsigned.stdout
    finally:
        bot.terminate()


def test_send_reports_errors(tmp_path):
    missing = cli("send", "veo", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    down = cli("send", "veo", VEO, "--url", "http://127.0.0.1:9")
    assert down.returncode == 1 and "cannot reach" in down.stderr
    unknown = cli("send", "sora", VEO)
    assert unknown.returncode == 2 and "veo" in unknown.stderr


def test_malformed_variable_stops_start_with_one_line(tmp_path):
    for name, value in (
        ("PORT", "abc"),
        ("KIE_API_URL", "api.kie.ai"),
        ("POLL_INTERVAL", "-5"),
        ("DATABASE_URL", "mysql://x"),
        ("DATABASE_URL", "postgresql://user@host:port/db"),
        ("LOG_LEVEL", "LOUD"),
        ("KIE_SIGNATURE_TOLERANCE", "soon"),
        ("LOG_FORMAT", "xml"),
        ("SLACK_RETRY_HOURS", "0"),
        ("KIE_DAILY_LIMIT_PER_PERSON", "lots"),
        ("KIE_ADMINS", "bob"),
        ("KIE_DIGEST_TIME", "8pm"),
        ("KIE_LOW_CREDITS", "-3"),
        ("KIE_ALERT_CHANNEL", "#general"),
    ):
        result = cli("serve", env={name: value}, cwd=tmp_path)
        assert result.returncode == 2, name
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and name in lines[0], (name, result.stderr)


def test_an_unreachable_postgresql_stops_start_naming_database_url(tmp_path):
    url = "postgresql://nobody@127.0.0.1:1/kie"
    result = cli("serve", env={"DATABASE_URL": url}, cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"DATABASE_URL={url}" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_check_explains_the_configuration(tmp_path):
    ok = cli("check", env={"DATABASE_URL": "sqlite:///c.db"}, cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout
    assert "console mode" in ok.stdout and "KIE_API_KEY is not set" in ok.stdout
    assert "SLACK_RETRY_HOURS=24:" in ok.stdout and "LOG_FORMAT=text" in ok.stdout
    assert "usable" in ok.stdout.splitlines()[-1]
    secret = "xoxb-super-secret-token"
    configured = cli(
        "check",
        env={
            "DATABASE_URL": "sqlite:///c.db",
            "SLACK_BOT_TOKEN": secret,
            "KIE_WEBHOOK_HMAC_KEY": "hmac-secret",
        },
        cwd=tmp_path,
    )
    assert configured.returncode == 0
    assert secret not in configured.stdout and "hmac-secret" not in configured.stdout
    bad = cli("check", env={"PORT": "x"}, cwd=tmp_path)
    assert bad.returncode != 0 and "PORT" in bad.stdout
    assert bad.stdout.count("PORT") == 1 and "PORT" not in bad.stderr, "said once"
    unusable = cli("check", env={"DATABASE_URL": "sqlite:////nonexistent/dir/x.db"}, cwd=tmp_path)
    assert unusable.returncode == 1 and "NOT usable" in unusable.stdout


def test_version_is_the_package_version():
    from bot import __version__

    result = cli("--version")
    assert (result.returncode, result.stdout) == (0, f"kie-slack {__version__}\n")


async def test_json_log_is_one_object_per_line(tmp_path, fake_slack, fake_kie):
    from tests.conftest import slash

    polled = "veo_task_3f9c2a7b1d4e"
    generating = poll("veo-record-info-generating.json")
    fake_kie.script("/api/v1/veo/record-info", polled, generating)
    port = free_port()
    env = service_env(
        tmp_path,
        port,
        "json.db",
        slack=fake_slack,
        kie=fake_kie,
        KIE_DEFAULT_CHANNEL="CJSON",
        POLL_INTERVAL="1",
        LOG_FORMAT="json",
    )
    bot = BotProcess(env, tmp_path, port)
    await asyncio.to_thread(bot.wait_healthy)
    try:
        sent = await asyncio.to_thread(cli, "send", "runway", RUNWAY, env=env)
        assert sent.stdout.strip() == '{"status":"received"}'
        async with remote(bot) as session:
            await slash(session, fake_slack, f"poll {polled} veo", channel="CJSON")
            await eventually(lambda: fake_kie.polls(polled) >= 3)  # the scheduler ran meanwhile
    finally:
        assert bot.terminate() == 0
    # The process's stdout shares the file; its only line in this mode says where it listens.
    lines = [line for line in bot.output().splitlines() if not line.startswith("kie-slack listen")]
    entries = [json.loads(line) for line in lines]
    assert entries and all(
        isinstance(entry, dict) and {"time", "level", "logger", "message"} <= entry.keys()
        for entry in entries
    )
    stored = [entry for entry in entries if entry.get("task_id") == RUNWAY_TASK]
    assert stored and stored[0]["channel"] == "CJSON", stored
    per_run = [e for e in entries if e["logger"].startswith("apscheduler") and e["level"] == "INFO"]
    assert per_run == []


async def test_killed_after_acknowledging_delivers_after_restart_none_twice(tmp_path, fake_slack):
    port = free_port()
    # Slack is unreachable before the crash.
    env = service_env(
        tmp_path, port, "crash.db", SLACK_BOT_TOKEN="xoxb-test", KIE_DEFAULT_CHANNEL="CCRASH"
    )
    first = BotProcess(env, tmp_path, port)
    await asyncio.to_thread(first.wait_healthy)
    body = load("runway-success.json")
    for number in range(5):
        body["data"]["task_id"] = f"crash-{number}"
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "bot", "send", "runway", "-"],
            input=json.dumps(body),
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "PORT": str(port)},
        )
        assert result.stdout.strip() == '{"status":"received"}', result
    first.kill()

    second = BotProcess({**env, "SLACK_API_URL": fake_slack.api_url}, tmp_path, port)
    await asyncio.to_thread(second.wait_healthy)
    await eventually(lambda: len(fake_slack.roots("CCRASH")) == 5, timeout=20)
    database = tmp_path / "crash.db"

    def all_done() -> bool:
        with sqlite3.connect(database) as db:
            return (
                db.execute("SELECT COUNT(*) FROM outbox WHERE status != 'done'").fetchone()[0] == 0
            )

    await eventually(all_done)
    second.kill()  # after recording its deliveries: the next start sends nothing again
    third = BotProcess({**env, "SLACK_API_URL": fake_slack.api_url}, tmp_path, port)
    await asyncio.to_thread(third.wait_healthy)
    await asyncio.sleep(0.5)
    assert third.terminate() == 0
    texts = sorted(m.text for m in fake_slack.roots("CCRASH"))
    assert len(texts) == 5
    assert [sum(f"crash-{n}" in t for t in texts) for n in range(5)] == [1] * 5


async def test_polling_resumes_after_a_restart(tmp_path, fake_slack, fake_kie):

    from tests.conftest import slash

    task = "veo_task_3f9c2a7b1d4e"
    path = "/api/v1/veo/record-info"
    generating = poll("veo-record-info-generating.json")
    fake_kie.script(path, task, generating)
    port = free_port()
    env = service_env(tmp_path, port, "poll.db", slack=fake_slack, kie=fake_kie, POLL_INTERVAL="1")
    first = BotProcess(env, tmp_path, port)
    await asyncio.to_thread(first.wait_healthy)
    async with remote(first) as bot:
        status, _ = await slash(bot, fake_slack, f"poll {task} veo", channel="C0RESUME")
        assert status == 200
        [root] = await eventually(lambda: fake_slack.roots("C0RESUME"))
        await eventually(lambda: fake_kie.polls(task) >= 2)
    first.kill()
    fake_kie.scripts[(path, task)] = [poll("veo-record-info-success.json")]
    second = BotProcess(env, tmp_path, port)
    await asyncio.to_thread(second.wait_healthy)
    try:
        [reply] = await eventually(lambda: fake_slack.replies(root), timeout=20)
        assert "3f9c2a7b1d4e_0.mp4" in reply.content
    finally:
        assert second.terminate() == 0
    assert "Traceback" not in second.output()


async def test_secrets_never_reach_the_log(tmp_path, fake_slack, fake_kie):

    from tests.conftest import SIGNING_SECRET, slash

    fake_kie.script(
        "/api/v1/veo/record-info",
        "veo_task_3f9c2a7b1d4e",
        poll("veo-record-info-success.json"),
    )
    hmac_key = "hmac-key-must-not-leak"
    port = free_port()
    env = service_env(
        tmp_path,
        port,
        "secret.db",
        slack=fake_slack,
        kie=fake_kie,
        SLACK_BOT_TOKEN="xoxb-token-must-not-leak",
        KIE_WEBHOOK_HMAC_KEY=hmac_key,
        KIE_DEFAULT_CHANNEL="CSECRET",
        LOG_LEVEL="DEBUG",
    )
    process = BotProcess(env, tmp_path, port)
    await asyncio.to_thread(process.wait_healthy)
    try:
        sent = await asyncio.to_thread(
            cli, "send", "runway", str(CALLBACKS / "runway-success.json"), env=env
        )
        assert sent.stdout.strip() == '{"status":"received"}'
        async with remote(process) as bot:
            await slash(bot, fake_slack, "poll veo_task_3f9c2a7b1d4e veo", channel="CSECRET")
            await eventually(lambda: len(fake_slack.roots("CSECRET")) == 2)
            await slash(bot, fake_slack, "status abc", secret="wrong")
    finally:
        process.terminate()
    output = process.output()
    for secret in ("xoxb-token-must-not-leak", SIGNING_SECRET, fake_kie.api_key, hmac_key):
        assert secret not in output
    assert "DEBUG" in output  # the log was as verbose as it gets
