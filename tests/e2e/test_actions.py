"""The buttons on a task's card and the share modal, over real HTTP: each click is a signed
`block_actions` payload built from the blocks the bot posted to the fake Slack."""

from __future__ import annotations

import json
import sqlite3
from urllib.parse import urlsplit

import pytest

from bot.server import TASKS
from bot.task import State, TaskUpdate
from tests.conftest import (
    Clock,
    click,
    eventually,
    load,
    poll,
    post_interaction,
    slash,
    submit_view,
)
from tests.fakes.kie import DOWNLOAD_URL, FOUR_K, GET_1080P

CARD = "C0CARD"
OTHER = "C0OTHER"
TASK = "veo_task_3f9c2a7b1d4e"
VIDEO = "https://example.com/kie/veo/3f9c2a7b1d4e_0.mp4"
VEO_RECORD = "/api/v1/veo/record-info"


async def veo_card(start_bot, fake_slack, fake_kie=None, **settings):
    """A bot, and the root card of a Veo success in `CARD`."""
    bot = await start_bot(fake_slack, fake_kie, kie_default_channel=CARD, **settings)
    assert await bot.callback("veo", load("veo-success.json")) == (200, {"status": "received"})
    [root] = await eventually(lambda: fake_slack.roots(CARD))
    return bot, root


async def answer(fake_slack, n: int = 1) -> dict:
    """The `n`-th answer by response URL (waiting for it), checked to be for the clicker only."""
    await eventually(lambda: len(fake_slack.responses) >= n)
    found = fake_slack.responses[n - 1]
    assert found["response_type"] == "ephemeral"
    assert found["replace_original"] is False
    return found


def content(found: dict) -> str:
    return found["text"] + json.dumps(found.get("blocks", []))


# --- Fresh link -------------------------------------------------------------------------------


async def test_fresh_link_gives_kie_download_links_to_the_clicker(start_bot, fake_slack, fake_kie):
    bot, root = await veo_card(start_bot, fake_slack, fake_kie)
    status, body = await click(bot, fake_slack, root, "Fresh link")
    assert (status, body) == (200, "")  # acknowledged at once, the answer follows
    found = await answer(fake_slack)
    assert "valid 20 minutes" in found["text"]
    links = [e["url"] for b in found["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert links == ["https://download.example.com/3f9c2a7b1d4e_0.mp4?token=fresh-1"]
    assert fake_kie.posted(DOWNLOAD_URL) == [{"url": VIDEO}]
    assert fake_slack.in_channel(CARD) == [root]  # nothing for the channel


async def test_fresh_link_of_a_file_kie_did_not_make(start_bot, fake_slack, fake_kie):
    fake_kie.script(DOWNLOAD_URL, VIDEO, (200, load("download-url-422-external.json")))
    bot, root = await veo_card(start_bot, fake_slack, fake_kie)
    await click(bot, fake_slack, root, "Fresh link")
    found = await answer(fake_slack)
    assert "not a file kie.ai made" in content(found) and VIDEO in content(found)


async def test_a_kie_failure_gets_one_clear_line(start_bot, fake_slack, fake_kie):
    fake_kie.script(DOWNLOAD_URL, VIDEO, (200, load("error-402.json")))
    bot, root = await veo_card(start_bot, fake_slack, fake_kie)
    await click(bot, fake_slack, root, "Fresh link")
    found = await answer(fake_slack)
    assert "out of credits (402" in found["text"]
    assert "blocks" not in found


@pytest.mark.parametrize(
    ("product", "name", "kind"),
    [("mj", "mj-success.json", "image"), ("suno", "suno-complete.json", "track")],
)
async def test_fresh_link_names_images_and_tracks_as_what_they_are(
    start_bot, fake_slack, fake_kie, product, name, kind
):
    bot = await start_bot(fake_slack, fake_kie, kie_default_channel=CARD)
    assert (await bot.callback(product, load(name)))[0] == 200
    [root] = await eventually(lambda: fake_slack.roots(CARD))
    await click(bot, fake_slack, root, "Fresh link")
    found = await answer(fake_slack)
    buttons = [e for b in found["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons and all(e["text"]["text"].startswith(f"Download {kind}") for e in buttons)
    assert len(fake_kie.posted(DOWNLOAD_URL)) == len(buttons)
    assert "video" not in content(found).lower()


async def test_an_image_kie_did_not_make_is_called_an_image(start_bot, fake_slack, fake_kie):
    image = "https://example.com/mj_result1.png"
    fake_kie.script(DOWNLOAD_URL, image, (200, load("download-url-422-external.json")))
    bot = await start_bot(fake_slack, fake_kie, kie_default_channel=CARD)
    await bot.callback("mj", load("mj-success.json"))
    [root] = await eventually(lambda: fake_slack.roots(CARD))
    await click(bot, fake_slack, root, "Fresh link")
    found = await answer(fake_slack)
    assert "Image 1 is not a file kie.ai made" in content(found)
    assert "Download image 2" in content(found) and "video" not in content(found).lower()


# --- Get 1080p --------------------------------------------------------------------------------


async def test_get_1080p_asks_until_ready_and_posts_it_into_the_thread(
    start_bot, fake_slack, fake_kie
):
    fake_kie.script(
        GET_1080P,
        TASK,
        poll("veo-get-1080p-processing.json"),
        poll("veo-get-1080p-processing.json"),
        poll("veo-get-1080p-success.json"),
    )
    bot, root = await veo_card(start_bot, fake_slack, fake_kie)
    await click(bot, fake_slack, root, "Get 1080p")
    first = await answer(fake_slack)
    assert "Asking kie.ai for the 1080p version" in first["text"]
    assert "thread" in first["text"]
    [reply] = await eventually(lambda: fake_slack.replies(root), timeout=15)
    assert "3f9c2a7b1d4e_1080p.mp4" in reply.content
    await eventually(lambda: "3f9c2a7b1d4e_1080p.mp4" in root.content)
    second = await answer(fake_slack, 2)
    assert "in the thread" in second["text"] and "_1080p.mp4" in second["text"]
    asked = [query for path, query in fake_kie.requests if path == GET_1080P]
    assert asked == [{"taskId": TASK, "index": "0"}] * 3
    with sqlite3.connect(bot.settings.database_path) as db:
        [(urls,)] = db.execute("SELECT result_urls FROM tasks").fetchall()
    assert json.loads(urls)[1].endswith("_1080p.mp4")  # saved like any result
    assert "polling" not in reply.content.lower()  # a request's answer, not a late callback


async def test_a_restart_takes_up_the_wait_for_1080p(start_bot, fake_slack, fake_kie):
    fake_kie.script(GET_1080P, TASK, poll("veo-get-1080p-processing.json"))
    bot, root = await veo_card(start_bot, fake_slack, fake_kie)
    await click(bot, fake_slack, root, "Get 1080p")
    assert "Asking kie.ai for the 1080p version" in (await answer(fake_slack))["text"]
    await eventually(lambda: fake_kie.polls(TASK) >= 1)
    await bot.server.stop()  # the wait is cut off; the request stays open
    asked = fake_kie.polls(TASK)
    fake_kie.scripts[(GET_1080P, TASK)] = [poll("veo-get-1080p-success.json")]
    await start_bot(
        fake_slack, fake_kie, kie_default_channel=CARD, database_path=bot.settings.database_path
    )
    [reply] = await eventually(lambda: fake_slack.replies(root), timeout=15)
    assert "3f9c2a7b1d4e_1080p.mp4" in reply.content
    await eventually(lambda: "3f9c2a7b1d4e_1080p.mp4" in root.content)
    assert fake_kie.polls(TASK) == asked + 1, "taken up once, asked until ready"
    assert len(fake_slack.responses) == 1, "the clicker's answer went with the first process"


async def test_a_second_1080p_click_while_asking_asks_nothing_new(start_bot, fake_slack, fake_kie):
    fake_kie.script(GET_1080P, TASK, poll("veo-get-1080p-processing.json"))
    bot, root = await veo_card(start_bot, fake_slack, fake_kie)
    await click(bot, fake_slack, root, "Get 1080p")
    await answer(fake_slack)
    await click(bot, fake_slack, root, "Get 1080p", user="U0SECOND", response_url="2")
    second = await answer(fake_slack, 2)
    assert "already asking kie.ai for the 1080p version" in second["text"]
    assert "<@U0USER>" in second["text"]


# --- Upscale to 4K ----------------------------------------------------------------------------


async def test_upscale_to_4k_end_to_end(start_bot, fake_slack, fake_kie):
    bot, root = await veo_card(start_bot, fake_slack, fake_kie, public_url="https://bot.test")
    await click(bot, fake_slack, root, "Upscale to 4K")
    first = await answer(fake_slack)
    assert "Asked kie.ai for the 4K version" in first["text"] and "credits" in first["text"]
    [request] = fake_kie.posted(FOUR_K)
    assert request["taskId"] == TASK and request["index"] == 0
    callback = urlsplit(request["callBackUrl"])
    assert callback.netloc == "bot.test"
    route = callback.path.removeprefix("/callbacks/veo-4k/")
    with sqlite3.connect(bot.settings.database_path) as db:  # this channel's own route
        assert db.execute("SELECT channel FROM routes WHERE token = ?", (route,)).fetchall() == [
            (CARD,)
        ]
    [note] = await eventually(lambda: fake_slack.replies(root))
    assert "<@U0USER> asked for the 4K version" in note.content

    # a second click while it is being made says so and requests nothing
    await click(bot, fake_slack, root, "Upscale to 4K", user="U0SECOND", response_url="2")
    second = await answer(fake_slack, 2)
    assert "already being made" in second["text"] and "<@U0USER>" in second["text"]
    assert len(fake_kie.posted(FOUR_K)) == 1

    # kie.ai calls back like it would: the 4K result arrives in the same thread
    assert await bot.callback("veo-4k", load("veo-4k-success.json"), route=route) == (
        200,
        {"status": "received"},
    )
    replies = await eventually(
        lambda: len(fake_slack.replies(root)) == 2 and fake_slack.replies(root)
    )
    assert "3f9c2a7b1d4e_4k.mp4" in replies[1].content
    await eventually(lambda: "3f9c2a7b1d4e_4k.mp4" in root.content)
    assert fake_slack.roots(CARD) == [root]

    # once it is made, a click asks again; kie.ai answers that it is already made
    fake_kie.script(FOUR_K, TASK, poll("veo-get-4k-already-generated-422.json"))
    await click(bot, fake_slack, root, "Upscale to 4K", response_url="3")
    third = await answer(fake_slack, 3)
    assert "already made the 4K version" in third["text"] and "_4k.mp4" in third["text"]


async def test_a_refused_4k_request_can_be_made_again(start_bot, fake_slack, fake_kie):
    fake_kie.script(FOUR_K, TASK, (200, load("error-402.json")), poll("veo-get-4k-submitted.json"))
    bot, root = await veo_card(start_bot, fake_slack, fake_kie)
    await click(bot, fake_slack, root, "Upscale to 4K")
    assert "out of credits" in (await answer(fake_slack))["text"]
    await click(bot, fake_slack, root, "Upscale to 4K", response_url="2")
    assert "Asked kie.ai for the 4K version" in (await answer(fake_slack, 2))["text"]
    assert len(fake_kie.posted(FOUR_K)) == 2


async def test_4k_already_being_made_elsewhere(start_bot, fake_slack, fake_kie):
    fake_kie.script(FOUR_K, TASK, poll("veo-get-4k-processing-422.json"))
    bot, root = await veo_card(start_bot, fake_slack, fake_kie)
    await click(bot, fake_slack, root, "Upscale to 4K")
    assert "already making the 4K version" in (await answer(fake_slack))["text"]


# --- Share to channel -------------------------------------------------------------------------


async def test_share_to_channel_end_to_end(start_bot, fake_slack, fake_kie):
    bot, root = await veo_card(start_bot, fake_slack, fake_kie)
    assert await click(bot, fake_slack, root, "Share to channel") == (200, "")
    [view] = await eventually(lambda: fake_slack.views)
    [(_, opened, _)] = [call for call in fake_slack.calls if call[0] == "views.open"]
    assert opened["trigger_id"].startswith("1337.42.")

    status, errors = await submit_view(bot, view, {"channel": None})
    assert status == 200 and errors["response_action"] == "errors"
    assert "Choose the channel" in errors["errors"]["channel"]
    _, errors = await submit_view(bot, view, {"channel": CARD})
    assert "already in this channel" in errors["errors"]["channel"]

    comment = "For review <!channel> & friends"
    assert await submit_view(bot, view, {"channel": OTHER, "comment": comment}) == (200, "")
    [shared] = await eventually(lambda: fake_slack.roots(OTHER))
    assert VIDEO in shared.content and TASK in shared.content  # the task's own card
    [note] = await eventually(lambda: fake_slack.replies(shared))
    assert "Shared by <@U0USER> from <#C0CARD>: For review &lt;!channel&gt; &amp; friends" in (
        note.content
    )
    assert fake_slack.responses == []  # the modal closed; nothing else to say

    _, errors = await submit_view(bot, view, {"channel": OTHER})
    assert "already has this task" in errors["errors"]["channel"]

    # the other channel follows the task from now on: news reaches both threads
    await bot.callback("veo-4k", load("veo-4k-success.json"))
    await eventually(lambda: any("_4k.mp4" in r.content for r in fake_slack.replies(root)))
    await eventually(lambda: any("_4k.mp4" in r.content for r in fake_slack.replies(shared)))
    await eventually(lambda: "_4k.mp4" in shared.content and "_4k.mp4" in root.content)


async def test_a_share_dialog_slack_would_not_open(start_bot, fake_slack):
    bot, root = await veo_card(start_bot, fake_slack)  # no KIE_API_KEY: sharing needs none
    fake_slack.fail_next("views.open", error="expired_trigger_id")
    await click(bot, fake_slack, root, "Share to channel")
    found = await answer(fake_slack)
    assert "expired_trigger_id" in found["text"] and "again" in found["text"]


async def test_a_broken_share_submission_is_answered_in_the_modal(start_bot, fake_slack):
    bot, root = await veo_card(start_bot, fake_slack)
    await click(bot, fake_slack, root, "Share to channel")
    [view] = await eventually(lambda: fake_slack.views)
    forged = {**view, "private_metadata": "{not json"}
    _, errors = await submit_view(bot, forged, {"channel": OTHER})
    assert "names no task" in errors["errors"]["channel"]
    assert fake_slack.roots(OTHER) == []


# --- Poll now and progress --------------------------------------------------------------------


async def test_poll_now_on_a_running_card(start_bot, fake_slack, fake_kie):
    clock = Clock(
        1_900_000_000.0
    )  # standing still: no scheduled poll comes due, only the clicks ask
    fake_kie.script(
        VEO_RECORD,
        TASK,
        poll("veo-record-info-generating.json"),
        poll("veo-record-info-generating.json"),
        poll("veo-record-info-success.json"),
    )
    bot = await start_bot(fake_slack, fake_kie, clock=clock)
    await slash(bot, fake_slack, f"poll {TASK} veo", channel=CARD)
    [root] = await eventually(lambda: fake_slack.roots(CARD))
    await eventually(lambda: len(fake_slack.responses) == 1)
    assert fake_kie.polls(TASK) == 1
    await click(bot, fake_slack, root, "Poll now", response_url="2")
    found = await answer(fake_slack, 2)
    assert found["text"] == f"kie.ai says task `{TASK}` is still generating; the card shows " + (
        "how long it has been running."
    )
    assert fake_kie.polls(TASK) == 2
    await click(bot, fake_slack, root, "Poll now", response_url="3")
    assert "is ready" in (await answer(fake_slack, 3))["text"]
    await eventually(lambda: VIDEO in root.content)
    assert [r for r in fake_slack.replies(root) if VIDEO in r.content]


async def test_progress_is_shown_and_updated_at_most_once_a_minute(start_bot, fake_slack, fake_kie):
    clock = Clock(1_900_000_000.0)
    start = int(clock.now)
    fake_kie.script(VEO_RECORD, TASK, poll("veo-record-info-generating.json"))
    bot = await start_bot(fake_slack, fake_kie, clock=clock)
    await slash(bot, fake_slack, f"poll {TASK} veo", channel=CARD)
    [root] = await eventually(lambda: fake_slack.roots(CARD))
    assert "Running for under a minute" in root.content
    assert f"kie.ai last asked <!date^{start}^{{time}}|" in root.content

    def next_poll_at() -> float | None:
        with sqlite3.connect(bot.settings.database_path) as db:
            return db.execute("SELECT next_poll_at FROM tasks").fetchone()[0]

    clock.now += 30  # the scheduled poll comes due: asked, but too soon to update the root
    await eventually(lambda: fake_kie.polls(TASK) == 2)
    # The clock moves only once the poller has scheduled the next poll (by the clock it read).
    await eventually(lambda: next_poll_at() == clock.now + 1)
    clock.now += 31  # a minute after the root: the next poll updates it
    await eventually(lambda: fake_kie.polls(TASK) == 3)
    await eventually(lambda: root.updates)
    assert "Running for 1 min" in root.content
    assert f"kie.ai last asked <!date^{start + 61}^" in root.content

    for n in (2, 3):  # more asks within that minute update nothing
        await click(bot, fake_slack, root, "Poll now", response_url=str(n))
        await answer(fake_slack, n)
    with sqlite3.connect(bot.settings.database_path) as db:
        keys = db.execute("SELECT key FROM outbox WHERE key LIKE 'update:progress:%'").fetchall()
        [(polled,)] = db.execute("SELECT polled_at FROM tasks").fetchall()
    assert len(keys) == 1
    assert polled == clock.now
    assert len(root.updates) == 1

    clock.now += 60  # a minute later the next ask updates it again
    await click(bot, fake_slack, root, "Poll now", response_url="4")
    await answer(fake_slack, 4)
    await eventually(lambda: len(root.updates) == 2)
    assert "Running for 2 min" in root.content


# --- no key, unknown task, forged clicks ------------------------------------------------------


@pytest.mark.parametrize("button", ["Fresh link", "Get 1080p", "Upscale to 4K"])
async def test_buttons_that_need_kie_name_the_variable(start_bot, fake_slack, button):
    bot, root = await veo_card(start_bot, fake_slack)
    await click(bot, fake_slack, root, button)
    found = await answer(fake_slack)
    assert found["text"] == f"{button} needs a kie.ai API key: set KIE_API_KEY and restart the bot."


async def test_poll_now_without_a_key(start_bot, fake_slack):
    bot = await start_bot(fake_slack)
    running = TaskUpdate("veo", TASK, State.RUNNING, source="poll", raw={"running": True})
    await bot.app[TASKS].apply(running, channel=CARD)
    [root] = await eventually(lambda: fake_slack.roots(CARD))
    await click(bot, fake_slack, root, "Poll now")
    assert "KIE_API_KEY" in (await answer(fake_slack))["text"]


async def test_a_button_of_a_task_the_bot_no_longer_knows(start_bot, fake_slack, fake_kie):
    bot, root = await veo_card(start_bot, fake_slack, fake_kie)
    with sqlite3.connect(bot.settings.database_path) as db:
        db.execute("DELETE FROM tasks")
    for n, button in enumerate(["Fresh link", "Get 1080p", "Share to channel"], start=1):
        await click(bot, fake_slack, root, button, response_url=str(n))
        found = await answer(fake_slack, n)
        assert found["text"].startswith(f"I no longer know task `{TASK}`")
    assert fake_kie.posts == [] and fake_slack.views == []


async def test_a_forged_click_gets_one_line(start_bot, fake_slack, fake_kie):
    bot, _ = await veo_card(start_bot, fake_slack, fake_kie)
    for n, value in enumerate(["not json", '{"product": "sora", "task_id": "x"}', None], 1):
        payload = {
            "type": "block_actions",
            "team": {"id": "T000FAKE"},
            "user": {"id": "U0USER"},
            "api_app_id": "A0APP",
            "token": "x",
            "container": {"type": "message", "channel_id": CARD},
            "trigger_id": "1.2",
            "channel": {"id": CARD},
            "response_url": fake_slack.response_url(str(n)),
            "actions": [
                {
                    "action_id": "kie_fresh_link",
                    "block_id": "b",
                    "type": "button",
                    "value": value,
                    "action_ts": "1",
                }
            ],
        }
        assert await post_interaction(bot, payload) == (200, "")
        assert "names no task I can read" in (await answer(fake_slack, n))["text"]
    assert fake_kie.posts == []
