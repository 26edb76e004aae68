"""Result videos saved into their threads, over real HTTP: the bot on loopback downloads from the
fake kie.ai and uploads into the fake Slack (DOWNLOAD_ALLOW_PRIVATE_HOSTS=on lets it reach
loopback). What each test checks is what a person in the channel would see: the file in the
thread, and the card saying it is saved or why it is not.
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
import sqlite3

import aiohttp
import pytest

from bot.config import Settings
from bot.server import OUTBOX, TASKS, create_app
from tests.conftest import eventually, load, saving_settings
from tests.fakes.kie import FakeFile, pattern_sha256
from tests.fakes.server import LocalServer

CHANNEL = "C0SAVE"
TASK = "veo_task_save"
PROMPT = "A red fox running through fresh snow at sunrise"
TITLE = f"Veo 3.1 · {PROMPT}"
MB = 1_000_000
#: What the card says once its video is in the thread (json.dumps escapes the emoji before it).
SAVED = "Saved in the thread: plays in Slack and stays after kie.ai deletes the link."


def veo(task_id: str, *urls: str) -> dict:
    body = copy.deepcopy(load("veo-success.json"))
    body["data"]["taskId"] = task_id
    body["data"]["info"]["resultUrls"] = list(urls)
    return body


def veo_4k(task_id: str, url: str) -> dict:
    body = copy.deepcopy(load("veo-4k-success.json"))
    body["data"]["taskId"] = task_id
    body["data"]["info"]["resultUrls"] = [url]
    return body


@pytest.fixture
def saving(start_bot, fake_slack):
    """Start a bot that saves videos (and may download from loopback) into CHANNEL."""

    async def start(**overrides):
        return await start_bot(fake_slack, **(saving_settings(CHANNEL) | overrides))

    return start


def outbox(bot) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(bot.settings.database_path) as db:
        return db.execute("SELECT kind, status, last_error FROM outbox ORDER BY id").fetchall()


def settled(bot) -> bool:
    return all(status != "pending" for _, status, _ in outbox(bot))


def link_buttons(root) -> list[str]:
    return [
        element.get("url")
        for block in root.blocks
        if block["type"] == "actions"
        for element in block["elements"]
        if element.get("url")
    ]


def json_text(message: dict) -> str:
    return message["text"] + json.dumps(message["blocks"])


async def root_of(fake_slack, channel: str = CHANNEL):
    [root] = await eventually(lambda: fake_slack.roots(channel))
    return root


# --- saved -------------------------------------------------------------------------------------


async def test_a_video_is_saved_into_its_thread_and_the_card_says_so(saving, fake_slack, fake_kie):
    bot = await saving()
    size = 3 * MB + 17
    url = fake_kie.serve_file("fox.mp4", FakeFile(size))
    assert (await bot.callback("veo", veo(TASK, url)))[1] == {"status": "received"}
    root = await root_of(fake_slack)
    await eventually(lambda: SAVED in root.content)

    [file] = fake_slack.shared(CHANNEL, root.ts)
    assert file.title == TITLE
    assert file.filename == f"kie-{TASK}-1.mp4"
    assert (file.received, file.sha256) == (size, pattern_sha256(size))
    assert "Saving the video into the thread" in json_text(root.updates[0])
    assert "expire" not in root.content, "a saved video outlives the link"
    assert link_buttons(root) == [url], "the link stays"
    assert fake_kie.file_requests == ["fox.mp4"]
    await eventually(lambda: settled(bot))
    assert ("video", "done", None) in outbox(bot)


async def test_saving_off_keeps_links_only(saving, fake_slack, fake_kie):
    bot = await saving(slack_save_videos=False)
    url = fake_kie.serve_file("fox.mp4", FakeFile(1000))
    await bot.callback("veo", veo(TASK, url))
    root = await root_of(fake_slack)
    await eventually(lambda: settled(bot))
    await asyncio.sleep(0.3)
    assert fake_slack.count("files.getUploadURLExternal") == 0
    assert fake_kie.file_requests == []
    assert "Links expire" in root.content and "Saved" not in root.content
    assert [kind for kind, _, _ in outbox(bot)] == ["root"]


async def test_every_video_of_a_task_and_a_later_4k_follow_their_replies(
    saving, fake_slack, fake_kie
):
    bot = await saving()
    first = fake_kie.serve_file("a.mp4", FakeFile(2000))
    second = fake_kie.serve_file("b.mp4", FakeFile(3000))
    await bot.callback("veo", veo(TASK, first, second))
    root = await root_of(fake_slack)
    await eventually(lambda: "All 2 videos are saved in the thread" in root.content)
    assert [f.filename for f in fake_slack.shared(CHANNEL, root.ts)] == [
        f"kie-{TASK}-1.mp4",
        f"kie-{TASK}-2.mp4",
    ]

    four_k = fake_kie.serve_file("4k.mp4", FakeFile(5000))
    await bot.callback("veo-4k", veo_4k(TASK, four_k))
    await eventually(lambda: "All 3 videos are saved in the thread" in root.content)
    files = fake_slack.shared(CHANNEL, root.ts)
    assert [f.received for f in files] == [2000, 3000, 5000]
    # The 4K file comes after the reply that announces it, in the same thread.
    order = [
        name
        for name, params, _ in fake_slack.calls
        if (name == "chat.postMessage" and params.get("thread_ts") == root.ts)
        or (name == "files.completeUploadExternal" and params.get("thread_ts") == root.ts)
    ]
    assert order[-2:] == ["chat.postMessage", "files.completeUploadExternal"]
    assert len(fake_slack.roots(CHANNEL)) == 1


async def test_a_channel_that_starts_following_gets_the_video_in_its_own_thread(
    saving, fake_slack, fake_kie
):
    bot = await saving()
    url = fake_kie.serve_file("fox.mp4", FakeFile(4000))
    await bot.callback("veo", veo(TASK, url))
    first = await root_of(fake_slack)
    await eventually(lambda: SAVED in first.content)
    assert await bot.app[TASKS].follow("veo", TASK, "C0OTHER")
    other = await root_of(fake_slack, "C0OTHER")
    await eventually(lambda: SAVED in other.content)
    assert len(fake_slack.shared("C0OTHER", other.ts)) == 1
    assert len(fake_slack.shared(CHANNEL, first.ts)) == 1


async def test_a_long_transfer_holds_back_no_post_of_its_channel(saving, fake_slack, fake_kie):
    bot = await saving()
    gate = asyncio.Event()
    slow = FakeFile(2 * MB, gate=gate)
    url = fake_kie.serve_file("slow.mp4", slow)
    await bot.callback("veo", veo(TASK, url))
    await eventually(slow.paused.is_set)
    await bot.callback("runway", load("runway-success.json"))
    await eventually(lambda: len(fake_slack.roots(CHANNEL)) == 2)
    assert fake_slack.shared(CHANNEL) == [], "the first video is still on its way"
    gate.set()
    root = next(r for r in fake_slack.roots(CHANNEL) if TASK in r.text)
    await eventually(lambda: SAVED in root.content)
    assert [f.received for f in fake_slack.shared(CHANNEL, root.ts)] == [2 * MB]


# --- never twice -------------------------------------------------------------------------------


async def test_a_repeated_callback_uploads_nothing_more(saving, fake_slack, fake_kie):
    bot = await saving()
    url = fake_kie.serve_file("fox.mp4", FakeFile(1000))
    body = veo(TASK, url)
    await bot.callback("veo", body)
    root = await root_of(fake_slack)
    await eventually(lambda: SAVED in root.content)
    assert (await bot.callback("veo", body))[1] == {"status": "duplicate"}
    reworded = copy.deepcopy(body)
    reworded["msg"] = "Veo3.1 video generated successfully (again)."
    assert (await bot.callback("veo", reworded))[1] == {"status": "received"}
    await eventually(lambda: settled(bot))
    await asyncio.sleep(0.3)
    assert fake_slack.count("files.getUploadURLExternal") == 1
    assert len(fake_slack.shared(CHANNEL)) == 1
    assert fake_kie.file_requests == ["fox.mp4"]


@pytest.mark.parametrize(
    ("method", "fault"),
    [
        ("upload", {"status": 503}),
        ("upload", {"drop": True}),
        ("files.getUploadURLExternal", {"status": 503}),
        ("files.getUploadURLExternal", {"drop": True}),
        ("files.getUploadURLExternal", {"status": 429, "retry_after": 1}),
        ("files.completeUploadExternal", {"status": 503}),
        ("files.completeUploadExternal", {"error": "internal_error"}),
    ],
    ids=lambda value: value if isinstance(value, str) else ",".join(map(str, value.values())),
)
async def test_slack_trouble_is_retried_and_the_video_uploaded_once(
    saving, fake_slack, fake_kie, method, fault
):
    bot = await saving()
    fake_slack.fail_next(method, **fault)
    url = fake_kie.serve_file("fox.mp4", FakeFile(MB))
    await bot.callback("veo", veo(TASK, url))
    root = await root_of(fake_slack)
    await eventually(lambda: SAVED in root.content)
    assert len(fake_slack.shared(CHANNEL, root.ts)) == 1
    assert fake_slack.count(method) == 2


async def test_a_share_whose_answer_was_lost_is_not_uploaded_again(saving, fake_slack, fake_kie):
    # Slack shares the file, then the connection drops before the answer: the bot asks again
    # for the same file (Slack: file_not_found, it is shared) and uploads nothing more.
    bot = await saving()
    fake_slack.fail_next("files.completeUploadExternal", drop=True, after=True)
    url = fake_kie.serve_file("fox.mp4", FakeFile(MB))
    await bot.callback("veo", veo(TASK, url))
    root = await root_of(fake_slack)
    await eventually(lambda: SAVED in root.content)
    assert len(fake_slack.shared(CHANNEL, root.ts)) == 1
    assert fake_slack.count("files.getUploadURLExternal") == 1
    assert fake_slack.count("files.completeUploadExternal") == 2
    assert fake_kie.file_requests == ["fox.mp4"]


async def test_kie_trouble_is_retried(saving, fake_slack, fake_kie):
    bot = await saving()
    fake_kie.serve_file("fox.mp4", FakeFile(status=503))
    url = f"{fake_kie.url}/files/fox.mp4"
    await bot.callback("veo", veo(TASK, url))
    root = await root_of(fake_slack)
    await eventually(lambda: len(fake_kie.file_requests) >= 2)
    fake_kie.serve_file("fox.mp4", FakeFile(MB))
    await eventually(lambda: SAVED in root.content)
    assert len(fake_slack.shared(CHANNEL, root.ts)) == 1


# --- not saved, and why ------------------------------------------------------------------------


async def not_saved(bot, fake_slack, url: str, *, status: str = "done") -> str:
    """The card once saving `url` ended without a file; it must keep the link."""
    await bot.callback("veo", veo(TASK, url))
    root = await root_of(fake_slack)
    await eventually(lambda: "Not saved in Slack" in root.content)
    assert link_buttons(root) == [url], "the link stays"
    assert "Links expire" in root.content, "the link is all there is"
    await eventually(lambda: settled(bot))
    assert [s for kind, s, _ in outbox(bot) if kind == "video"] == [status]
    assert fake_slack.shared(CHANNEL) == []
    return root.content


async def test_too_large(saving, fake_slack, fake_kie):
    bot = await saving(save_video_max_mb=1)
    card = await not_saved(bot, fake_slack, fake_kie.serve_file("big.mp4", FakeFile(MB + 1)))
    assert "larger than the 1 MB this bot saves into Slack" in card
    assert fake_slack.count("files.getUploadURLExternal") == 0


@pytest.mark.parametrize("status", [404, 410])
async def test_a_link_that_is_gone(saving, fake_slack, fake_kie, status):
    bot = await saving()
    card = await not_saved(bot, fake_slack, fake_kie.serve_file("old.mp4", FakeFile(status=status)))
    assert "The link has expired or the file is gone" in card


async def test_an_expired_signed_link(saving, fake_slack, fake_kie):
    bot = await saving()
    expired = FakeFile(status=403, body="<Error><Message>Request has expired</Message></Error>")
    card = await not_saved(bot, fake_slack, fake_kie.serve_file("signed.mp4", expired))
    assert "expired or the file is gone" in card


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://{kie}/files/fox.mp4", "is not an https link"),
        ("https://127.0.0.1:{port}/files/fox.mp4", "private or local address"),
        ("https://10.0.0.8/fox.mp4", "private or local address"),
        ("https://169.254.169.254/latest/meta-data/", "private or local address"),
        ("https://[::1]:{port}/fox.mp4", "private or local address"),
        ("https://localhost:{port}/files/fox.mp4", "private or local address"),
    ],
)
async def test_refused_addresses_are_explained_and_never_reached(
    saving, fake_slack, fake_kie, url, says
):
    bot = await saving(download_allow_private_hosts=False)
    fake_kie.serve_file("fox.mp4", FakeFile(1000))
    target = url.format(kie=f"127.0.0.1:{fake_kie.port}", port=fake_kie.port)
    card = await not_saved(bot, fake_slack, target)
    assert says in card
    assert fake_kie.file_requests == []


async def test_a_redirect_to_a_private_address_is_refused(saving, fake_slack, fake_kie):
    # Private hosts allowed would let this through; the cloud metadata address never is.
    bot = await saving()
    away = fake_kie.redirect("away.mp4", "http://169.254.169.254/latest/meta-data/")
    card = await not_saved(bot, fake_slack, away)
    assert "private or local address" in card


async def test_missing_files_write_is_named_then_fixed_by_an_operator_retry(
    saving, fake_slack, fake_kie
):
    bot = await saving()
    fake_slack.fail_next(
        "files.getUploadURLExternal", error="missing_scope", extra={"needed": "files:write"}
    )
    url = fake_kie.serve_file("fox.mp4", FakeFile(1000))
    card = await not_saved(bot, fake_slack, url, status="failed")
    assert "files:write" in card and "reinstall" in card
    # The scope is added and the app reinstalled; `kie-slack outbox retry --failed`:
    assert await bot.app[OUTBOX].resend(failed=True)
    root = await root_of(fake_slack)
    await eventually(lambda: SAVED in root.content)
    assert len(fake_slack.shared(CHANNEL, root.ts)) == 1


@pytest.mark.parametrize(
    ("error", "says"),
    [
        ("storage_limit_reached", "file storage is full"),
        ("file_uploads_disabled", "File uploads are turned off in this workspace"),
        ("file_upload_size_restricted", "admins limit the size of uploads"),
    ],
)
async def test_the_workspace_refuses_the_upload(saving, fake_slack, fake_kie, error, says):
    bot = await saving()
    fake_slack.fail_next("files.completeUploadExternal", error=error)
    card = await not_saved(
        bot, fake_slack, fake_kie.serve_file("fox.mp4", FakeFile(1000)), status="failed"
    )
    assert says in card


async def test_a_private_channel_asks_for_an_invitation(saving, fake_slack, fake_kie):
    bot = await saving()
    fake_slack.not_joined[CHANNEL] = "private"
    url = fake_kie.serve_file("fox.mp4", FakeFile(1000))
    card = await not_saved(bot, fake_slack, url, status="failed")
    assert "invite it (`/invite @kie`)" in card
    # Someone invites the bot, then `kie-slack outbox retry --failed`:
    del fake_slack.not_joined[CHANNEL]
    assert await bot.app[OUTBOX].resend(failed=True)
    root = await root_of(fake_slack)
    await eventually(lambda: SAVED in root.content)
    assert len(fake_slack.shared(CHANNEL, root.ts)) == 1


async def test_a_public_channel_is_joined_and_the_video_saved(saving, fake_slack, fake_kie):
    bot = await saving()
    fake_slack.not_joined[CHANNEL] = "public"
    await bot.callback("veo", veo(TASK, fake_kie.serve_file("fox.mp4", FakeFile(1000))))
    root = await root_of(fake_slack)
    await eventually(lambda: SAVED in root.content)
    assert fake_slack.joins == [CHANNEL]
    assert len(fake_slack.shared(CHANNEL, root.ts)) == 1


# --- console mode ------------------------------------------------------------------------------


async def test_console_mode_shows_the_saved_file_as_a_person_sees_it(tmp_path, fake_kie):
    out = io.StringIO()
    settings = Settings(
        host="127.0.0.1",
        port=0,
        database_path=tmp_path / "console.db",
        download_allow_private_hosts=True,
    )
    server = await LocalServer(create_app(settings, console_out=out)).start()
    url = fake_kie.serve_file("fox.mp4", FakeFile(12_345_678))
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{server.url}/callbacks/veo", json=veo(TASK, url)) as answer,
        ):
            assert answer.status == 200
        printed = await eventually(
            lambda: "Saved in the thread" in out.getvalue() and out.getvalue()
        )
    finally:
        await server.stop()
    assert f"📎 {TITLE} (12.3 MB)" in printed
    assert f"kie-{TASK}-1.mp4 · a video that plays in Slack" in printed
    assert (
        "🎬 Saved in the thread: plays in Slack and stays after kie.ai deletes the link." in printed
    )
