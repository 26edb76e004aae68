"""The buttons on a task's card, its progress line, the share modal and the click answers."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.slack.blocks import Message
from bot.slack.buttons import (
    FRESH_LINK,
    GET_1080P,
    MJ_FOLLOW_UP,
    POLL_NOW,
    SHARE,
    UPSCALE_4K,
    build_fresh_links,
    build_share_modal,
    button_value,
    read_button_value,
    read_mj_action,
    shared_note,
    upscale_note,
)
from bot.slack.messages import build_notice, build_task_message, build_update_message
from bot.task import State, Task, TaskUpdate

STARTED = 1_800_000_000.0
VEO = Task(
    "veo",
    "veo_task_abc",
    State.SUCCEEDED,
    result_urls=("https://example.com/a.mp4",),
    created_at=STARTED,
    updated_at=STARTED + 200,
    finished_at=STARTED + 200,
)


def assert_valid(message: Message) -> None:
    assert message.text.strip()
    assert len(message.blocks) <= 50
    for block in message.blocks:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.validate_json()


#: The buttons of issue 9 (other buttons may share their block).
OURS = {FRESH_LINK, GET_1080P, UPSCALE_4K, SHARE, POLL_NOW}


def task_buttons(message: Message) -> list[dict[str, Any]]:
    return [
        element
        for block in message.blocks
        if block["type"] == "actions"
        for element in block["elements"]
        if element.get("action_id") in OURS
    ]


def test_a_veo_success_has_every_result_button() -> None:
    message = build_task_message(VEO)
    assert_valid(message)
    found = task_buttons(message)
    assert [b["text"]["text"] for b in found] == [
        "Fresh link",
        "Get 1080p",
        "Upscale to 4K",
        "Share to channel",
    ]
    assert [b["action_id"] for b in found] == [FRESH_LINK, GET_1080P, UPSCALE_4K, SHARE]
    assert {b["value"] for b in found} == {button_value(VEO)}
    assert read_button_value(found[0]["value"]) == ("veo", "veo_task_abc")
    confirm = found[2]["confirm"]
    assert "credits" in confirm["text"]["text"] and "minutes" in confirm["text"]["text"]
    assert confirm["confirm"]["text"] and confirm["deny"]["text"]
    assert "confirm" not in found[0]
    # the link button stays, before the task's buttons
    kinds = [b["type"] for b in message.blocks]
    assert kinds.count("actions") == 2
    assert message.blocks[kinds.index("actions")]["elements"][0]["text"]["text"] == "Open video"


def test_other_products_have_no_veo_buttons() -> None:
    runway = replace(VEO, product="runway", task_id="rw-1")
    texts = [b["text"]["text"] for b in task_buttons(build_task_message(runway))]
    assert texts == ["Fresh link", "Share to channel"]
    four_k = replace(VEO, product="veo-4k")  # a Veo task first known by its 4K callback
    assert "Upscale to 4K" in [b["text"]["text"] for b in task_buttons(build_task_message(four_k))]


def test_a_success_without_videos_has_no_fresh_link() -> None:
    empty = replace(VEO, product="luma", result_urls=())
    assert [b["text"]["text"] for b in task_buttons(build_task_message(empty))] == [
        "Share to channel"
    ]


def test_a_failure_has_no_buttons_and_replies_have_none() -> None:
    failed = replace(VEO, state=State.FAILED, result_urls=(), code=400, message="flagged")
    assert task_buttons(build_task_message(failed)) == []
    update = TaskUpdate("veo", "veo_task_abc", State.SUCCEEDED, result_urls=VEO.result_urls)
    assert task_buttons(build_update_message(update)) == []
    running = TaskUpdate("veo", "veo_task_abc", State.RUNNING)
    assert task_buttons(build_update_message(running)) == []


def test_a_running_card_has_poll_now_and_its_progress() -> None:
    running = replace(VEO, state=State.RUNNING, result_urls=(), finished_at=None)
    waiting = build_task_message(running)
    assert_valid(waiting)
    assert [(b["text"]["text"], b["action_id"]) for b in task_buttons(waiting)] == [
        ("Poll now", POLL_NOW)
    ]
    assert f"Waiting since <!date^{int(STARTED)}^" in json.dumps(waiting.blocks)
    asked = build_task_message(replace(running, polled_at=STARTED + 7 * 60 + 5))
    assert_valid(asked)
    line = json.dumps(asked.blocks)
    assert "Running for 7 min" in line
    assert f"kie.ai last asked <!date^{int(STARTED) + 425}^{{time}}|" in line
    long = build_task_message(replace(running, polled_at=STARTED + 2 * 3600 + 5 * 60))
    assert "Running for 2 h 5 min" in json.dumps(long.blocks)
    just = build_task_message(replace(running, polled_at=STARTED + 20))
    assert "Running for under a minute" in json.dumps(just.blocks)


@pytest.mark.parametrize(
    "value",
    [None, 7, "", "not json", "[1]", '{"product": "veo"}', '{"product": 1, "task_id": "x"}'],
)
def test_unreadable_button_values(value: Any) -> None:
    assert read_button_value(value) is None


def test_an_overlong_task_id_gets_no_buttons() -> None:
    assert task_buttons(build_task_message(replace(VEO, task_id="x" * 2100))) == []


def test_notes_mention_only_real_ids_and_escape_the_comment() -> None:
    note = shared_note("U0ABC", "C0ORIGIN", "look <@U999> & <!channel>")
    assert note.startswith("Shared by <@U0ABC> from <#C0ORIGIN>: look ")
    assert "<@U999>" not in note and "<!channel>" not in note and "&lt;!channel&gt;" in note
    assert shared_note("U0ABC", "C0ORIGIN", "  ") == "Shared by <@U0ABC> from <#C0ORIGIN>"
    assert "<@" not in shared_note("<!here>", "C0X", "")
    assert upscale_note("U0ABC").startswith("<@U0ABC> asked for the 4K version")
    message = build_notice("veo_task_abc", note, mrkdwn=True)
    assert_valid(message)
    assert "<@U0ABC>" in message.blocks[0]["text"]["text"]
    plain = build_notice("veo_task_abc", "<@U0ABC> hello")
    assert "<@U0ABC>" not in plain.blocks[0]["text"]["text"]


def test_fresh_links_message() -> None:
    message = build_fresh_links(
        "veo_task_abc",
        ["https://dl.example.com/1?t=x", "https://dl.example.com/2"],
        ["Video 3 is not a file kie.ai made"],
        until=STARTED + 1200,
    )
    assert_valid(message)
    assert "valid 20 minutes" in message.text
    urls = [e["url"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
    assert urls == ["https://dl.example.com/1?t=x", "https://dl.example.com/2"]
    assert "Video 3 is not a file" in json.dumps(message.blocks)
    assert f"<!date^{int(STARTED) + 1200}^" in json.dumps(message.blocks)
    none = build_fresh_links("veo_task_abc", [], ["The video is not a file kie.ai made"], 0)
    assert_valid(none)
    assert "No fresh download link" in none.text


def test_share_modal_is_a_valid_view() -> None:
    view = build_share_modal(VEO, "C0ORIGIN")
    View(**view).validate_json()
    assert json.loads(view["private_metadata"]) == {
        "product": "veo",
        "task_id": "veo_task_abc",
        "channel": "C0ORIGIN",
    }
    picker = view["blocks"][1]["element"]
    assert picker["type"] == "conversations_select"
    assert picker["default_to_current_conversation"] is False
    assert view["blocks"][2]["optional"] is True


# --- Midjourney grids and the words of every kind ---------------------------------------------

GRID = Task(
    "mj",
    "mj_task_12345",
    State.SUCCEEDED,
    result_urls=tuple(f"https://example.com/mj_result{n}.png" for n in range(1, 5)),
    created_at=STARTED,
    media="image",
)


def all_buttons(message: Message) -> list[dict[str, Any]]:
    return [
        element
        for block in message.blocks
        if block["type"] == "actions"
        for element in block["elements"]
        if "url" not in element
    ]


def test_a_midjourney_grid_gets_a_row_of_upscales_and_a_row_of_variations() -> None:
    message = build_task_message(GRID)
    assert_valid(message)
    rows = [
        [element["text"]["text"] for element in block["elements"]]
        for block in message.blocks
        if block["type"] == "actions"
    ]
    assert rows == [
        ["Fresh link", "Share to channel"],
        ["Upscale 1", "Upscale 2", "Upscale 3", "Upscale 4"],
        ["Vary 1", "Vary 2", "Vary 3", "Vary 4"],
    ]
    ids = [button["action_id"] for button in all_buttons(message)]
    assert len(ids) == len(set(ids))
    follow_ups = {
        b["action_id"]: b for b in all_buttons(message) if MJ_FOLLOW_UP.match(b["action_id"])
    }
    assert read_mj_action("kie_mj_upscale_1") == ("upscale", 0)
    assert read_mj_action("kie_mj_vary_4") == ("vary", 3)
    assert {read_mj_action(action) for action in follow_ups} == {
        (action, index) for action in ("upscale", "vary") for index in range(4)
    }
    assert {b["value"] for b in follow_ups.values()} == {button_value(GRID)}
    assert "video" not in json.dumps(message.blocks).lower()


@pytest.mark.parametrize(
    "task",
    [
        replace(GRID, media="video", result_urls=("https://example.com/mj.mp4",)),  # mj_video
        replace(GRID, result_urls=GRID.result_urls[:1]),  # an upscale: one picture
        replace(GRID, state=State.RUNNING),
        replace(GRID, state=State.FAILED, result_urls=()),
        replace(GRID, product="4o-image", task_id="task12345"),  # four images, not Midjourney
    ],
)
def test_only_a_finished_midjourney_image_grid_gets_follow_ups(task: Task) -> None:
    ids = [button["action_id"] for button in all_buttons(build_task_message(task))]
    assert not any(MJ_FOLLOW_UP.match(action) for action in ids)


@pytest.mark.parametrize("action_id", [None, 3, "kie_mj_upscale_0", "kie_mj_vary_5", "kie_again"])
def test_unreadable_follow_up_ids(action_id: Any) -> None:
    assert read_mj_action(action_id) is None


def test_again_is_offered_on_an_image_started_from_slack() -> None:
    started = replace(GRID, product="market", model="google/nano-banana", request='{"x":1}')
    texts = [b["text"]["text"] for b in all_buttons(build_task_message(started))]
    assert texts == ["Fresh link", "Share to channel", "Again"]


@pytest.mark.parametrize(("kind", "word"), [("image", "image"), ("audio", "track")])
def test_fresh_links_and_the_share_modal_name_what_the_results_are(kind: Any, word: str) -> None:
    message = build_fresh_links("t1", ["https://dl.example.com/1"], [], 0, kind=kind)
    assert_valid(message)
    [button] = [e for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
    assert button["text"]["text"] == f"Download {word}"
    task = replace(GRID, media=kind)
    said = json.dumps(build_share_modal(task, "C0ORIGIN")["blocks"])
    assert f"its card and {word}s" in said and "video" not in said
