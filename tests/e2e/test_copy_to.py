"""Moving up: `kie-slack copy-to` carries a SQLite store into PostgreSQL, and a bot on the copy
keeps the callback URLs, the threads and the work still to do."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3

import psycopg

from tests.conftest import eventually, load, slash
from tests.e2e.processes import BotProcess, free_port, kie_slack, outbox_counts, remote, service_env

CHANNEL = "C0MOVING"


async def test_copy_to_postgres_keeps_routes_threads_and_pending_work(
    tmp_path, fake_slack, postgres_url
):
    env = service_env(tmp_path, free_port(), "small.db", slack=fake_slack)
    env["SLACK_SAVE_VIDEOS"] = "off"
    old = BotProcess(env, tmp_path, int(env["PORT"]))
    try:
        await asyncio.to_thread(old.wait_healthy)
        async with remote(old) as bot:
            _, answer = await slash(bot, fake_slack, "url", channel=CHANNEL)
            token = re.search(r"/callbacks/veo/([\w-]+)", json.dumps(answer))[1]
            async with bot.http.post(
                f"{bot.url}/callbacks/veo/{token}", json=load("veo-success.json")
            ) as response:
                assert response.status == 200
            [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
            fake_slack.channel_errors[CHANNEL] = "not_in_channel"  # the next post fails for good
            async with bot.http.post(
                f"{bot.url}/callbacks/runway/{token}", json=load("runway-success.json")
            ) as response:
                assert response.status == 200
            await eventually(lambda: outbox_counts(tmp_path / "small.db").get("failed") == 1)
    finally:
        assert old.terminate() == 0

    with sqlite3.connect(tmp_path / "small.db") as small:  # a start from Slack in the ledger
        small.execute(
            """INSERT INTO ledger (key, user_id, channel, product, day, started_at, state,
                                   task_id, outcome, credits)
               VALUES ('slash:1', 'U0ANA', ?, 'market', '2026-12-04', 1.0, 'started', 't1',
                       'succeeded', 4.5)""",
            (CHANNEL,),
        )
    refused = await kie_slack("copy-to", "mysql://nowhere", env=env)
    assert refused.returncode == 2 and "postgresql://" in refused.stdout
    copied = await kie_slack("copy-to", postgres_url, env=env)
    assert copied.returncode == 0, copied.stdout + copied.stderr
    assert "tasks: 2 rows" in copied.stdout and "routes: 1 rows" in copied.stdout
    again = await kie_slack("copy-to", postgres_url, env=env)
    assert again.returncode == 1 and "empty database" in again.stdout

    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 2
        assert db.execute("SELECT channel FROM routes WHERE token = %s", (token,)).fetchone() == (
            CHANNEL,
        )
        assert db.execute("SELECT user_id, credits FROM ledger").fetchall() == [("U0ANA", 4.5)]
        [(status, error)] = db.execute("SELECT status, last_error FROM outbox").fetchall()
        assert (status, error) == ("failed", "not_in_channel")

    del fake_slack.channel_errors[CHANNEL]
    moved = {**env, "DATABASE_URL": postgres_url, "PORT": str(free_port())}
    new = BotProcess(moved, tmp_path, int(moved["PORT"]))
    try:
        await asyncio.to_thread(new.wait_healthy)
        assert (await kie_slack("outbox", "retry", "--failed", env=moved)).returncode == 0
        await eventually(lambda: len(fake_slack.roots(CHANNEL)) == 2, timeout=15)
        # The old callback URL still posts into the channel; news of a copied task still
        # reaches its thread.
        async with (
            remote(new) as bot,
            bot.http.post(
                f"{bot.url}/callbacks/veo-4k/{token}", json=load("veo-4k-success.json")
            ) as response,
        ):
            assert response.status == 200
        [reply] = await eventually(lambda: fake_slack.replies(root), timeout=15)
        assert "3f9c2a7b1d4e_4k.mp4" in reply.content
        assert len(fake_slack.roots(CHANNEL)) == 2
    finally:
        assert new.terminate() == 0
