"""A bot process killed while a video is on its way into Slack saves it once after a restart."""

from __future__ import annotations

import asyncio
import copy
import sqlite3

import aiohttp

from tests.conftest import eventually, load
from tests.e2e.processes import BotProcess, free_port, service_env
from tests.fakes.kie import FakeFile, pattern_sha256

CHANNEL = "C0CRASH"
TASK = "veo_task_crash"
SAVED = "Saved in the thread: plays in Slack and stays after kie.ai deletes the link."
MB = 1_000_000


async def test_killed_between_download_and_upload_uploads_once_after_restart(
    tmp_path, fake_slack, fake_kie
):
    size = 3 * MB
    gate = asyncio.Event()
    slow = FakeFile(size, gate=gate)
    url = fake_kie.serve_file("fox.mp4", slow)
    body = copy.deepcopy(load("veo-success.json"))
    body["data"]["taskId"] = TASK
    body["data"]["info"]["resultUrls"] = [url]
    port = free_port()
    env = service_env(
        tmp_path,
        port,
        "crash.db",
        slack=fake_slack,
        KIE_DEFAULT_CHANNEL=CHANNEL,
        SLACK_SAVE_VIDEOS="on",
        DOWNLOAD_ALLOW_PRIVATE_HOSTS="on",
    )
    first = BotProcess(env, tmp_path, port)
    await asyncio.to_thread(first.wait_healthy)
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{first.url}/callbacks/veo", json=body) as answer,
    ):
        assert answer.status == 200
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    # The download is open and has sent its first bytes; Slack has announced a file and is
    # receiving them: the process dies before the upload is done.
    await eventually(slow.paused.is_set)
    await eventually(lambda: fake_slack.count("upload") == 1)
    first.kill()
    gate.set()

    second = BotProcess(env, tmp_path, port)
    await asyncio.to_thread(second.wait_healthy)
    await eventually(lambda: SAVED in root.content, timeout=20)
    [file] = fake_slack.shared(CHANNEL, root.ts)
    assert (file.received, file.sha256) == (size, pattern_sha256(size))
    assert fake_slack.count("files.getUploadURLExternal") == 2, "the first file was never shared"
    assert fake_kie.file_requests == ["fox.mp4", "fox.mp4"]
    assert len(fake_slack.roots(CHANNEL)) == 1

    # A third start finds nothing left to do.
    assert second.terminate() == 0
    with sqlite3.connect(tmp_path / "crash.db") as db:
        assert db.execute("SELECT COUNT(*) FROM outbox WHERE status != 'done'").fetchone() == (0,)
    third = BotProcess(env, tmp_path, port)
    await asyncio.to_thread(third.wait_healthy)
    await asyncio.sleep(0.5)
    assert third.terminate() == 0
    assert len(fake_slack.shared(CHANNEL)) == 1
    assert "Traceback" not in first.output() + second.output() + third.output()
