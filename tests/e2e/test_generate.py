"""Starting generations from Slack over real HTTP: `/kie veo|runway|image <prompt>`, the
`/kie new` form, a card's `Again` and `Extend`; the fake kie.ai starts tasks and calls back like
kie.ai."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

from tests.conftest import click, eventually, find_button, load, slash, submit_view
from tests.fakes.kie import GENERATE

CHANNEL = "C0GEN"
ASKER = "U0ASKER"
PUBLIC = "https://bot.example.com"
VEO = "/api/v1/veo/generate"
EXTEND = "/api/v1/veo/extend"
RUNWAY = "/api/v1/runway/generate"
MARKET = "/api/v1/jobs/createTask"
MJ_UPSCALE = "/api/v1/mj/generateUpscale"
MJ_VARY = "/api/v1/mj/generateVary"


def answers(fake_slack) -> list[str]:
    """What reached the person by response URL, in order."""
    return [r.get("text", "") for r in fake_slack.responses]


def stored(bot, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(bot.settings.database_path) as db:
        return db.execute(sql).fetchall()


async def deliver(bot, fake_kie, task_id: str, outcome: str = "success") -> tuple[int, Any]:
    """kie.ai's callback for a started task, to the bot's own address (the callBackUrl's path
    after `PUBLIC_URL`, which names no port here)."""
    started = fake_kie.task(task_id)
    assert started.callback_url.startswith(PUBLIC + "/callbacks/")
    path = started.callback_url[len(PUBLIC) :]
    body = started.callback_body(outcome)
    async with bot.http.post(bot.url + path, json=body) as response:
        return response.status, await response.json()


async def route_token(bot, fake_slack, channel: str = CHANNEL) -> str:
    _, answer = await slash(bot, fake_slack, "url", channel=channel)
    fake_slack.responses.clear()
    return answer["text"].split(f"{PUBLIC}/callbacks/veo/")[1].split("`")[0]


async def start_bot_for(start_bot, fake_slack, fake_kie, **settings: Any):
    return await start_bot(fake_slack, fake_kie, public_url=PUBLIC, **settings)


async def submit_form(bot, view: dict[str, Any], values: dict[str, str | None], view_id: str):
    """Submit a form the bot opened, as the person who asked, with `values` by block id."""
    return await submit_view(bot, view, values, user=ASKER, view_id=view_id)


async def veo_result(bot, fake_slack, fake_kie, prompt: str = "a paper boat in the rain"):
    """`/kie veo <prompt>` and its callback: the root (now a success) and the task id."""
    await slash(bot, fake_slack, f"veo {prompt}", channel=CHANNEL, user=ASKER)
    [started] = await eventually(lambda: fake_kie.started)
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    assert (await deliver(bot, fake_kie, started.task_id))[0] == 200
    await eventually(lambda: "video ready" in root.content)
    return root, started.task_id


# --- /kie veo and /kie runway -----------------------------------------------------------------


async def test_veo_command_shows_the_root_at_once_and_the_result_in_its_thread(
    start_bot, fake_slack, fake_kie
):
    bot = await start_bot_for(start_bot, fake_slack, fake_kie)
    token = await route_token(bot, fake_slack)
    status, ack = await slash(
        bot, fake_slack, "veo a paper boat in the rain", channel=CHANNEL, user=ASKER
    )
    assert status == 200 and ack["response_type"] == "ephemeral"
    assert ack["text"].startswith("Starting Veo 3.1 Fast, 16:9")
    [started] = await eventually(lambda: fake_kie.started)
    assert started.path == VEO
    assert started.body == {
        "prompt": "a paper boat in the rain",
        "model": "veo3_fast",
        "aspect_ratio": "16:9",
        "callBackUrl": f"{PUBLIC}/callbacks/veo/{token}",
    }
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    assert "Veo 3.1 is generating" in root.content
    assert f"<@{ASKER}>" in root.content and "a paper boat in the rain" in root.content
    assert started.task_id in root.text
    [said] = await eventually(lambda: answers(fake_slack))
    assert f"as task `{started.task_id}`" in said and "credits" in said
    assert stored(bot, "SELECT state, requested_by, source FROM tasks") == [
        ("running", ASKER, "request")
    ]
    assert (await deliver(bot, fake_kie, started.task_id)) == (200, {"status": "received"})
    [reply] = await eventually(lambda: fake_slack.replies(root))
    assert started.video_url in reply.content
    await eventually(lambda: "video ready" in root.content)
    assert f"<@{ASKER}>" in root.content and started.video_url in root.content
    find_button(root, "Again") and find_button(root, "Extend")
    request = json.loads(stored(bot, "SELECT request FROM tasks")[0][0])
    assert request == {
        "product": "veo",
        "prompt": "a paper boat in the rain",
        "model": "veo3_fast",
        "aspect_ratio": "16:9",
    }


async def test_runway_command_with_its_defaults_is_polled_when_no_callback_comes(
    start_bot, fake_slack, fake_kie
):
    bot = await start_bot_for(start_bot, fake_slack, fake_kie)
    await slash(bot, fake_slack, "runway a lighthouse &amp; a storm", channel=CHANNEL)
    [started] = await eventually(lambda: fake_kie.started)
    assert started.path == RUNWAY
    assert {k: v for k, v in started.body.items() if k != "callBackUrl"} == {
        "prompt": "a lighthouse & a storm",
        "duration": 5,
        "quality": "720p",
        "aspectRatio": "16:9",
        "waterMark": "",
    }
    assert started.body["callBackUrl"].startswith(f"{PUBLIC}/callbacks/runway/")
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    assert "Runway is generating" in root.content
    await eventually(lambda: fake_kie.polls(started.task_id) >= 1, timeout=15)
    fake_kie.script_result(started.task_id)  # the callback never comes; a poll finds the video
    [reply] = await eventually(lambda: fake_slack.replies(root), timeout=15)
    assert started.video_url in reply.content and "polling" in reply.content.lower()
    await eventually(lambda: started.video_url in root.content)


# --- /kie image -------------------------------------------------------------------------------


async def test_image_command_starts_nano_banana_and_the_card_says_image(
    start_bot, fake_slack, fake_kie
):
    bot = await start_bot_for(start_bot, fake_slack, fake_kie)
    token = await route_token(bot, fake_slack)
    status, ack = await slash(bot, fake_slack, "image a red fox", channel=CHANNEL, user=ASKER)
    assert status == 200 and ack["response_type"] == "ephemeral"
    assert ack["text"].startswith("Starting Nano Banana image")
    [started] = await eventually(lambda: fake_kie.started)
    assert started.path == MARKET
    assert started.body == {
        "model": "google/nano-banana",
        "callBackUrl": f"{PUBLIC}/callbacks/market/{token}",
        "input": {"prompt": "a red fox"},
    }
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    assert "is generating" in root.content and "Nano Banana" in root.content
    assert f"<@{ASKER}>" in root.content and "a red fox" in root.content
    assert "video" not in root.content.lower()
    assert stored(bot, "SELECT media, requested_by FROM tasks") == [("image", ASKER)]
    [said] = await eventually(lambda: answers(fake_slack))
    assert f"Started Nano Banana image as task `{started.task_id}`" in said
    assert (await deliver(bot, fake_kie, started.task_id))[0] == 200
    [image] = started.result_urls
    [reply] = await eventually(lambda: fake_slack.replies(root))
    assert image in reply.content
    await eventually(lambda: "image ready" in root.content)
    assert [b["image_url"] for b in root.blocks if b["type"] == "image"] == [image]
    assert "video" not in root.content.lower()
    find_button(root, "Fresh link") and find_button(root, "Again")
    # Again: the same image request as a new task.
    await click(bot, fake_slack, root, "Again", user=ASKER)
    [_, repeat] = await eventually(lambda: fake_kie.started[1:] and fake_kie.started)
    assert repeat.body == started.body
    await eventually(lambda: len(fake_slack.roots(CHANNEL)) == 2)


async def test_image_command_starts_the_model_of_kie_image_model(start_bot, fake_slack, fake_kie):
    model = "bytedance/seedream-v4-text-to-image"
    bot = await start_bot_for(start_bot, fake_slack, fake_kie, kie_image_model=model)
    _, ack = await slash(bot, fake_slack, "image a lighthouse", channel=CHANNEL)
    assert ack["text"].startswith("Starting Seedream 4.0 image")
    [started] = await eventually(lambda: fake_kie.started)
    assert (started.body["model"], started.body["input"]) == (model, {"prompt": "a lighthouse"})


async def test_help_lists_the_image_command(start_bot, fake_slack, fake_kie):
    bot = await start_bot_for(start_bot, fake_slack, fake_kie)
    _, answer = await slash(bot, fake_slack, "help", channel=CHANNEL)
    assert "`/kie image <prompt>`" in answer["text"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("image", "the prompt is empty"),
        ("veo", "the prompt is empty"),
        ("veo    ", "the prompt is empty"),
        ("runway " + "x" * 1801, "at most 1800"),
        ("veo bad\x07bell", "control characters"),
    ],
)
async def test_a_command_without_a_usable_prompt_says_what_to_type(
    start_bot, fake_slack, fake_kie, text, expected
):
    bot = await start_bot_for(start_bot, fake_slack, fake_kie)
    status, answer = await slash(bot, fake_slack, text, channel=CHANNEL)
    assert status == 200 and expected in answer["text"] and "Usage: `/kie" in answer["text"]
    assert fake_kie.posts == []


# --- the settings that keep spending in the team's hands -------------------------------------


async def test_kie_submit_off_turns_every_way_off(start_bot, fake_slack, fake_kie):
    bot = await start_bot_for(start_bot, fake_slack, fake_kie, kie_submit=False)
    for text in ("veo a boat", "runway a boat", "image a boat", "new"):
        _, answer = await slash(bot, fake_slack, text, channel=CHANNEL)
        assert "turned off here (KIE_SUBMIT=off)" in answer["text"]
        assert "ask whoever runs the bot" in answer["text"]
    assert fake_kie.posts == [] and fake_slack.count("views.open") == 0


async def test_kie_submit_channels_limits_it_to_those_channels(start_bot, fake_slack, fake_kie):
    bot = await start_bot_for(
        start_bot, fake_slack, fake_kie, kie_submit_channels=("C0ART", "C0FILM")
    )
    for text in ("veo a boat", "image a boat"):
        _, answer = await slash(bot, fake_slack, text, channel="C0OTHER")
        assert "only in <#C0ART>, <#C0FILM>" in answer["text"]
        assert "KIE_SUBMIT_CHANNELS" in answer["text"]
    _, form = await slash(bot, fake_slack, "new", channel="C0OTHER")
    assert "only in <#C0ART>" in form["text"] and fake_slack.count("views.open") == 0
    assert fake_kie.posts == []
    _, ok = await slash(bot, fake_slack, "veo a boat", channel="C0FILM")
    assert ok["text"].startswith("Starting")
    await eventually(lambda: fake_kie.started)


async def test_without_a_kie_key_the_answer_names_the_variable(start_bot, fake_slack):
    bot = await start_bot(fake_slack, public_url=PUBLIC)
    _, answer = await slash(bot, fake_slack, "veo a boat", channel=CHANNEL)
    assert "KIE_API_KEY" in answer["text"]


# --- kie.ai's refusals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "msg", "expected"),
    [
        (402, "Credits insufficient", ["out of credits", "top it up", "Credits insufficient"]),
        (422, "aspect_ratio is invalid", ["parameters", "aspect_ratio is invalid"]),
        (400, "prompt too long", ["parameters", "prompt too long"]),
        (429, "Rate Limited", ["try again in a minute"]),
        (455, "System maintenance", ["unavailable", "try again later"]),
        (500, "Internal Error", ["unavailable"]),
    ],
)
async def test_refusals_at_submit_are_explained_to_the_asker_only(
    start_bot, fake_slack, fake_kie, code, msg, expected
):
    fake_kie.refuse(VEO, code, msg)
    bot = await start_bot_for(start_bot, fake_slack, fake_kie)
    _, ack = await slash(bot, fake_slack, "veo a boat", channel=CHANNEL)
    assert ack["text"].startswith("Starting")
    [said] = await eventually(lambda: answers(fake_slack))
    assert said.startswith("kie.ai did not start the video:")
    assert all(part in said for part in expected), said
    assert fake_slack.responses[0]["response_type"] == "ephemeral"
    assert len(fake_kie.posted(VEO)) == 1  # asked once, never retried
    await slash(bot, fake_slack, "help", channel=CHANNEL)
    assert fake_slack.in_channel(CHANNEL) == [] and stored(bot, "SELECT * FROM tasks") == []
    assert stored(bot, "SELECT state FROM submissions") == [("refused",)]


async def test_a_refused_image_is_explained_as_an_image(start_bot, fake_slack, fake_kie):
    fake_kie.refuse(MARKET, 422, "aspect_ratio is invalid")
    bot = await start_bot_for(start_bot, fake_slack, fake_kie)
    await slash(bot, fake_slack, "image a fox", channel=CHANNEL, user=ASKER)
    [said] = await eventually(lambda: answers(fake_slack))
    assert said.startswith("kie.ai did not start the image:") and "aspect_ratio" in said
    assert fake_slack.responses[0]["response_type"] == "ephemeral"
    await slash(bot, fake_slack, "help", channel=CHANNEL)
    assert fake_slack.in_channel(CHANNEL) == []


async def test_a_refused_key_says_to_check_kie_api_key(start_bot, fake_slack, fake_kie):
    fake_kie.api_key = "the-real-key"
    bot = await start_bot_for(start_bot, fake_slack, fake_kie, kie_api_key="a-wrong-key")
    await slash(bot, fake_slack, "runway a boat", channel=CHANNEL)
    [said] = await eventually(lambda: answers(fake_slack))
    assert "refused the bot's API key (401" in said and "KIE_API_KEY" in said
    assert "a-wrong-key" not in said


# --- exactly once -----------------------------------------------------------------------------


async def test_slack_retries_of_one_command_submit_once(start_bot, fake_slack, fake_kie):
    bot = await start_bot_for(start_bot, fake_slack, fake_kie)
    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    _, first = await slash(bot, fake_slack, "veo a boat", channel=CHANNEL, trigger_id="9.9.9")
    _, again = await slash(
        bot, fake_slack, "veo a boat", channel=CHANNEL, trigger_id="9.9.9", headers=retry
    )
    assert first["text"].startswith("Starting")
    assert "nothing more is sent to kie.ai" in again["text"]
    await eventually(lambda: any("as task" in text for text in answers(fake_slack)))
    _, late = await slash(
        bot, fake_slack, "veo a boat", channel=CHANNEL, trigger_id="9.9.9", headers=retry
    )
    [started] = fake_kie.started
    assert f"Already started as task `{started.task_id}`" in late["text"]
    await eventually(lambda: fake_slack.roots(CHANNEL))
    await slash(bot, fake_slack, "help", channel=CHANNEL)
    assert len(fake_kie.posted(VEO)) == 1 and len(fake_slack.roots(CHANNEL)) == 1


async def test_the_same_prompt_typed_twice_is_two_videos(start_bot, fake_slack, fake_kie):
    bot = await start_bot_for(start_bot, fake_slack, fake_kie)
    await slash(bot, fake_slack, "veo a boat", channel=CHANNEL)
    await slash(bot, fake_slack, "veo a boat", channel=CHANNEL)
    await eventually(lambda: len(fake_slack.roots(CHANNEL)) == 2)
    assert len(fake_kie.started) == 2


# --- /kie new ---------------------------------------------------------------------------------


async def open_form(bot, fake_slack) -> dict[str, Any]:
    status, answer = await slash(bot, fake_slack, "new", channel=CHANNEL, user=ASKER)
    assert (status, answer) == (200, "")
    [call] = [params for name, params, _ in fake_slack.calls if name == "views.open"]
    view = call["view"]
    return json.loads(view) if isinstance(view, str) else view


async def test_new_opens_the_form_and_a_market_model_runs_end_to_end(
    start_bot, fake_slack, fake_kie
):
    bot = await start_bot_for(
        start_bot, fake_slack, fake_kie, kie_market_models=("bytedance/seedance-2",)
    )
    view = await open_form(bot, fake_slack)
    assert view["callback_id"] == "kie_new"
    assert json.loads(view["private_metadata"])["channel"] == CHANNEL
    offered = [
        option["value"]
        for group in view["blocks"][0]["element"]["option_groups"]
        for option in group["options"]
    ]
    assert offered[:3] == ["veo:veo3_fast", "veo:veo3", "runway"]
    assert "market:kling-2.6/text-to-video" in offered
    assert offered[-1] == "market:bytedance/seedance-2"
    values = {
        "model": "market:kling-2.6/text-to-video",
        "prompt": "A paper boat drifting down a rainy street",
        "duration": "10",
        "aspect": "9:16",
    }
    assert await submit_form(bot, view, values, "V0NEW1") == (200, "")
    [started] = await eventually(lambda: fake_kie.started)
    assert started.path == MARKET
    assert started.body["model"] == "kling-2.6/text-to-video"
    assert started.body["callBackUrl"].startswith(f"{PUBLIC}/callbacks/market/")
    assert started.body["input"] == {
        "prompt": "A paper boat drifting down a rainy street",
        "duration": "10",
        "aspect_ratio": "9:16",
        "sound": False,
    }
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    assert "Kling 2.6 text to video" in root.content and f"<@{ASKER}>" in root.content
    [said] = await eventually(lambda: answers(fake_slack))
    assert "Started Kling 2.6 text to video, 10 s, 9:16 as task" in said
    assert fake_slack.responses[0]["response_type"] == "ephemeral"
    assert (await deliver(bot, fake_kie, started.task_id))[0] == 200
    [reply] = await eventually(lambda: fake_slack.replies(root))
    assert started.video_url in reply.content and "*Credits used:* 55" in reply.content
    # Slack delivers the same submission again: nothing more is started.
    assert await submit_form(bot, view, values, "V0NEW1") == (200, "")
    await eventually(lambda: len(answers(fake_slack)) == 2)
    assert "Already started" in answers(fake_slack)[1] and len(fake_kie.started) == 1


def offered_groups(view: dict[str, Any]) -> dict[str, list[str]]:
    """The form's model list: each group's label and its options' values."""
    return {
        group["label"]["text"]: [option["value"] for option in group["options"]]
        for group in view["blocks"][0]["element"]["option_groups"]
    }


async def test_new_offers_image_models_and_an_image_edit_runs(start_bot, fake_slack, fake_kie):
    bot = await start_bot_for(start_bot, fake_slack, fake_kie)
    view = await open_form(bot, fake_slack)
    groups = offered_groups(view)
    assert groups["Images: kie.ai Market"] == [
        "market:google/nano-banana",
        "market:bytedance/seedream-v4-text-to-image",
        "market:4o-image-api",
        "market:flux1-kontext",
    ]
    assert "market:google/nano-banana" not in groups["Videos: kie.ai Market"]
    values = {
        "model": "market:flux1-kontext",
        "prompt": "make it night",
        "image": "https://e.co/day.png",
        "aspect": "21:9",
    }
    assert await submit_form(bot, view, values, "V0FLUX") == (200, "")
    [started] = await eventually(lambda: fake_kie.started)
    assert started.body["model"] == "flux1-kontext"
    assert started.body["input"] == {
        "prompt": "make it night",
        "input_image": "https://e.co/day.png",
        "aspect_ratio": "21:9",
    }
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    assert "video" not in root.content.lower()
    [said] = await eventually(lambda: answers(fake_slack))
    assert "Started Flux Kontext image, 21:9, from an image as task" in said


async def test_a_market_task_started_from_the_form_is_polled_until_it_fails(
    start_bot, fake_slack, fake_kie
):
    bot = await start_bot_for(start_bot, fake_slack, fake_kie)
    view = await open_form(bot, fake_slack)
    values = {"model": "market:wan/2-6-text-to-video", "prompt": "rain", "quality": "1080p"}
    await submit_form(bot, view, values, "V0WAN")
    [started] = await eventually(lambda: fake_kie.started)
    assert started.body["input"] == {
        "prompt": "rain",
        "duration": "5",
        "resolution": "1080p",
    }
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    await eventually(lambda: fake_kie.polls(started.task_id) >= 1, timeout=15)  # running
    fake_kie.script_market(started.task_id, "fail")
    [reply] = await eventually(lambda: fake_slack.replies(root), timeout=15)
    assert "Content moderation" in reply.content
    await eventually(lambda: "task failed" in root.content)
    find_button(root, "Again")  # a failure started from Slack can be tried again


@pytest.mark.parametrize(
    ("values", "field", "expected"),
    [
        ({"model": "veo:veo3_fast", "prompt": "   "}, "prompt", "prompt is empty"),
        ({"model": "runway", "prompt": "x" * 1801}, "prompt", "at most 1800"),
        ({"model": "veo:veo3", "prompt": "a", "image": "http://x.example/a.png"}, "image", "https"),
        ({"model": "veo:veo3", "prompt": "a", "image": "https://x y"}, "image", "spaces"),
        ({"model": "veo:veo3_fast", "prompt": "a", "duration": "5"}, "duration", "8 s"),
        ({"model": "veo:veo3_fast", "prompt": "a", "quality": "1080p"}, "quality", "no choice"),
        ({"model": "veo:veo3_fast", "prompt": "a", "aspect": "4:3"}, "aspect", "16:9"),
        (
            {"model": "runway", "prompt": "a", "duration": "10", "quality": "1080p"},
            "quality",
            "720p only",
        ),
        ({"model": "market:kling-2.6/image-to-video", "prompt": "a"}, "image", "starts from"),
        (
            {"model": "market:kling-2.6/text-to-video", "prompt": "a", "image": "https://e.co/a"},
            "image",
            "text only",
        ),
        ({"model": "market:made-up/model", "prompt": "a"}, "model", "Choose a model"),
        ({"model": "market:4o-image-api", "prompt": "a", "aspect": "16:9"}, "aspect", "3:2"),
        (
            {"model": "market:google/nano-banana", "prompt": "a", "duration": "5"},
            "duration",
            "no choice",
        ),
    ],
)
async def test_invalid_form_input_is_shown_next_to_its_field(
    start_bot, fake_slack, fake_kie, values, field, expected
):
    bot = await start_bot_for(start_bot, fake_slack, fake_kie)
    view = await open_form(bot, fake_slack)
    status, answer = await submit_form(bot, view, values, "V0BAD")
    assert status == 200 and answer["response_action"] == "errors"
    assert list(answer["errors"]) == [field] and expected in answer["errors"][field]
    assert fake_kie.posts == []


async def test_new_in_console_mode_points_to_the_commands(start_bot, fake_slack, fake_kie):
    bot = await start_bot(None, fake_kie, public_url=PUBLIC)
    _, answer = await slash(bot, fake_slack, "new", channel=CHANNEL)
    assert "SLACK_BOT_TOKEN" in answer["text"] and "/kie veo" in answer["text"]


async def test_a_form_slack_refuses_to_open_is_explained(start_bot, fake_slack, fake_kie):
    fake_slack.fail_next("views.open", error="expired_trigger_id")
    bot = await start_bot_for(start_bot, fake_slack, fake_kie)
    _, answer = await slash(bot, fake_slack, "new", channel=CHANNEL)
    assert "expired_trigger_id" in answer["text"] and "/kie new" in answer["text"]


# --- Again and Extend -------------------------------------------------------------------------


async def test_again_sends_the_same_request_as_a_new_task_that_links_the_original(
    start_bot, fake_slack, fake_kie
):
    bot = await start_bot_for(start_bot, fake_slack, fake_kie)
    root, first = await veo_result(bot, fake_slack, fake_kie)
    assert await click(bot, fake_slack, root, "Again", user="U0OTHER") == (200, "")
    await eventually(lambda: len(fake_kie.started) == 2)
    original, repeat = fake_kie.started
    assert repeat.path == VEO and repeat.body == original.body
    newer = await eventually(lambda: fake_slack.roots(CHANNEL)[1:])
    assert newer[0].ts != root.ts and repeat.task_id in newer[0].text
    assert "<@U0OTHER>" in newer[0].content and f"*Again of:* `{first}`" in newer[0].content
    link = f"https://fake.slack.com/archives/{CHANNEL}/p{root.ts.replace('.', '')}"
    assert link in newer[0].content
    [said] = await eventually(lambda: [a for a in answers(fake_slack) if "as task" in a][1:])
    assert repeat.task_id in said
    assert fake_slack.responses[-1]["response_type"] == "ephemeral"


async def test_a_double_click_on_again_starts_one_task(start_bot, fake_slack, fake_kie):
    bot = await start_bot_for(start_bot, fake_slack, fake_kie)
    root, _ = await veo_result(bot, fake_slack, fake_kie)
    await click(bot, fake_slack, root, "Again", user=ASKER)
    await click(bot, fake_slack, root, "Again", user=ASKER)
    await eventually(lambda: any("nothing more is sent" in a for a in answers(fake_slack)))
    await eventually(lambda: len(fake_slack.roots(CHANNEL)) == 2)
    assert len(fake_kie.started) == 2  # the original and one repeat
    # Slack sends one click twice (the same action_ts): still one.
    action_ts = "1700000000.000001"
    await click(bot, fake_slack, root, "Again", user="U0THIRD", action_ts=action_ts)
    await click(bot, fake_slack, root, "Again", user="U0THIRD", action_ts=action_ts)
    await eventually(lambda: len(fake_slack.roots(CHANNEL)) == 3)
    assert len(fake_kie.started) == 3


async def test_again_is_offered_only_for_tasks_started_from_slack(start_bot, fake_slack, fake_kie):
    bot = await start_bot_for(start_bot, fake_slack, fake_kie, kie_default_channel=CHANNEL)
    await bot.callback("veo", load("veo-success.json"))
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    assert "Again" not in [b.get("text", {}).get("text") for b in _buttons(root)]
    find_button(root, "Extend")


def _buttons(message) -> list[dict[str, Any]]:
    return [e for b in message.blocks if b.get("type") == "actions" for e in b["elements"]]


async def test_again_when_starting_is_turned_off_is_explained(start_bot, fake_slack, fake_kie):
    bot = await start_bot_for(start_bot, fake_slack, fake_kie, kie_submit_channels=(CHANNEL,))
    root, _ = await veo_result(bot, fake_slack, fake_kie)
    bot2 = await start_bot_for(start_bot, fake_slack, fake_kie, kie_submit=False)
    await click(bot2, fake_slack, root, "Again", user=ASKER)
    await eventually(lambda: any("KIE_SUBMIT=off" in a for a in answers(fake_slack)))
    assert len(fake_kie.started) == 1


async def test_extend_asks_how_it_goes_on_and_the_extension_comes_to_the_same_thread(
    start_bot, fake_slack, fake_kie
):
    bot = await start_bot_for(start_bot, fake_slack, fake_kie)
    root, first = await veo_result(bot, fake_slack, fake_kie)
    before = len(fake_slack.replies(root))
    assert await click(bot, fake_slack, root, "Extend", user=ASKER) == (200, "")
    [call] = await eventually(
        lambda: [params for name, params, _ in fake_slack.calls if name == "views.open"]
    )
    view = call["view"] if isinstance(call["view"], dict) else json.loads(call["view"])
    assert view["callback_id"] == "kie_extend_form" and first in json.dumps(view)
    prompt = {"prompt": "the boat sails out to sea"}
    assert await submit_form(bot, view, prompt, "V0EXT") == (200, "")
    [_, extension] = await eventually(lambda: fake_kie.started[1:] and fake_kie.started)
    assert extension.path == EXTEND
    assert extension.body == {
        "taskId": first,
        "prompt": "the boat sails out to sea",
        "model": "fast",
        "callBackUrl": fake_kie.task(first).body["callBackUrl"],
    }
    [note] = await eventually(lambda: fake_slack.replies(root)[before:])
    assert f"<@{ASKER}> asked to extend this video" in note.content
    assert extension.task_id in note.content
    [said] = await eventually(lambda: [a for a in answers(fake_slack) if "as task" in a][1:])
    assert "into the thread of the video it extends" in said
    assert (await deliver(bot, fake_kie, extension.task_id))[0] == 200
    [result] = await eventually(lambda: fake_slack.replies(root)[before + 1 :])
    assert extension.video_url in result.content
    await slash(bot, fake_slack, "help", channel=CHANNEL)
    assert len(fake_slack.roots(CHANNEL)) == 1  # no root of its own
    assert extension.video_url not in root.content  # the root still shows the first video
    assert stored(bot, "SELECT task_id, thread_of FROM task_channels ORDER BY followed_at") == [
        (first, None),
        (extension.task_id, first),
    ]


async def test_extend_refused_by_kie_is_explained_to_the_asker_only(
    start_bot, fake_slack, fake_kie
):
    bot = await start_bot_for(start_bot, fake_slack, fake_kie)
    root, _ = await veo_result(bot, fake_slack, fake_kie)
    before = len(fake_slack.replies(root))
    fake_kie.refuse(EXTEND, 422, "Videos upgraded to 1080p cannot be extended")
    await click(bot, fake_slack, root, "Extend", user=ASKER)
    [call] = await eventually(
        lambda: [params for name, params, _ in fake_slack.calls if name == "views.open"]
    )
    view = call["view"] if isinstance(call["view"], dict) else json.loads(call["view"])
    await submit_form(bot, view, {"prompt": "onwards"}, "V0EXT2")
    said = await eventually(lambda: [a for a in answers(fake_slack) if "did not start" in a])
    assert "cannot be extended" in said[0]
    await slash(bot, fake_slack, "help", channel=CHANNEL)
    assert fake_slack.replies(root)[before:] == []


async def test_clicks_that_name_no_known_task_are_answered(start_bot, fake_slack, fake_kie):
    bot = await start_bot_for(start_bot, fake_slack, fake_kie)
    root, _ = await veo_result(bot, fake_slack, fake_kie)
    forged = json.loads(json.dumps(root.blocks))
    for block in forged:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            element["value"] = "not json"
    root.blocks = forged
    await click(bot, fake_slack, root, "Again", user=ASKER)
    await click(bot, fake_slack, root, "Extend", user=ASKER)
    await eventually(lambda: any("do not know that task" in a for a in answers(fake_slack)))
    await eventually(lambda: any("Only a Veo video" in a for a in answers(fake_slack)))
    assert len(fake_kie.started) == 1


def test_every_generate_endpoint_is_faked() -> None:
    assert set(GENERATE) == {VEO, EXTEND, RUNWAY, MARKET, MJ_UPSCALE, MJ_VARY}
