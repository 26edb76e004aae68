"""Block Kit builders: task cards, update replies, notices and the console rendering."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from bot.kie.failures import explain_failure
from bot.kie.products import PRODUCTS, RESULT_RETENTION_DAYS
from bot.slack.blocks import Message
from bot.slack.console import render_console
from bot.slack.messages import build_notice, build_task_message, build_update_message
from bot.task import State, Task, TaskUpdate
from tests.conftest import CALLBACKS, FIXTURES, callback_files, product_of

FINISHED = datetime(2026, 11, 25, 14, 3, tzinfo=UTC).timestamp()
EXPIRES_TEXT = "2026-12-09 14:03 UTC"


def load(name: str) -> TaskUpdate:
    body = json.loads((CALLBACKS / name).read_text())
    return PRODUCTS[product_of(name)].parse_callback(body)


def as_task(update: TaskUpdate, finished_at: float | None = FINISHED) -> Task:
    return replace(
        Task.first(update, FINISHED),
        created_at=FINISHED - 300,
        finished_at=finished_at if update.state.is_final else None,
    )


ALL_CALLBACKS = [path.name for path in callback_files()]
SUCCESSES = [name for name in ALL_CALLBACKS if load(name).state is State.SUCCEEDED]
FAILURES = [name for name in ALL_CALLBACKS if load(name).state is State.FAILED]
#: Callbacks of a task that goes on (Suno's lyrics and first track).
RUNNING = [name for name in ALL_CALLBACKS if load(name).state is State.RUNNING]


def test_fixtures_cover_both_outcomes() -> None:
    assert len(SUCCESSES) >= 10
    assert len(FAILURES) >= 10
    assert len(SUCCESSES) + len(FAILURES) + len(RUNNING) == len(ALL_CALLBACKS)


def assert_valid(message: Message) -> None:
    """Every block parses and validates with the slack_sdk models, within Slack's limits."""
    assert isinstance(message.text, str)
    assert 0 < len(message.text) < 300
    assert "\n" not in message.text
    assert 1 <= len(message.blocks) <= 50
    for raw in message.blocks:
        block = Block.parse(raw)
        assert block is not None, raw
        block.validate_json()
        assert block.to_dict()["type"] == raw["type"]


def texts(message: Message) -> str:
    """All visible text of the blocks, joined."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("text", "url", "image_url", "alt_text") and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(message.blocks)
    return "\n".join(found)


def blocks_of(message: Message, kind: str) -> list[dict[str, Any]]:
    return [b for b in message.blocks if b["type"] == kind]


def buttons(message: Message) -> list[dict[str, Any]]:
    """The link buttons (`Open video`), not the task's action buttons."""
    return [e for b in blocks_of(message, "actions") for e in b["elements"] if "url" in e]


# --- success ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SUCCESSES)
def test_success_card_over_fixtures(name: str) -> None:
    update = load(name)
    assert update.state is State.SUCCEEDED
    message = build_task_message(as_task(update))
    assert_valid(message)
    label = PRODUCTS[update.product].label
    title = message.blocks[0]["text"]["text"]
    assert message.blocks[0]["type"] == "header"
    assert title.startswith(f"✅ {label}") and title.endswith(" ready")
    body = texts(message)
    assert f"`{update.task_id}`" in body
    assert label in body
    assert update.task_id in message.text
    assert update.result_urls
    images = blocks_of(message, "image")
    assert all(i["alt_text"] for i in images)
    shown = [i["image_url"] for i in images]
    if update.kind == "image":  # the images themselves, the first four
        assert shown == list(update.result_urls[:4])
        assert [b["url"] for b in buttons(message)] == list(update.result_urls[4:])
    else:  # a link each, and the thumbnail (a video's) or cover (a track's)
        assert [b["url"] for b in buttons(message)] == list(update.result_urls)
        assert shown == list(update.image_urls[:1])
    if update.kind != "video":
        assert "video" not in (title + message.text).lower()
        assert not any("video" in b["text"]["text"].lower() for b in buttons(message))


@pytest.mark.parametrize("name", SUCCESSES)
def test_update_message_over_fixtures(name: str) -> None:
    update = load(name)
    message = build_update_message(update, finished_at=FINISHED)
    assert_valid(message)
    assert PRODUCTS[update.product].label in message.blocks[0]["text"]["text"]
    assert update.task_id in message.text
    for url in update.result_urls:
        assert url in texts(message)
    assert EXPIRES_TEXT in texts(message)


def test_four_k_update_is_labelled_four_k_with_its_thumbnail() -> None:
    update = load("veo-4k-success.json")
    message = build_update_message(update)
    assert_valid(message)
    assert message.blocks[0]["text"]["text"] == "✅ Veo 3.1 4K video ready"
    assert buttons(message)[0]["url"].endswith("_4k.mp4")
    assert blocks_of(message, "image")[0]["image_url"].endswith("_4k.jpg")
    assert "expire" not in texts(message)  # no finish time given, no expiry line


def test_without_image_has_no_image_block() -> None:
    update = load("runway-success.json")
    assert blocks_of(build_task_message(as_task(update)), "image")
    message = build_task_message(as_task(update), with_image=False)
    assert_valid(message)
    assert blocks_of(message, "image") == []
    assert blocks_of(build_update_message(update, with_image=False), "image") == []
    assert buttons(message)[0]["url"] == update.result_urls[0]


def test_expiry_is_retention_days_after_finish() -> None:
    assert RESULT_RETENTION_DAYS == 14
    message = build_task_message(as_task(load("veo-success.json")))
    context = "\n".join(b["elements"][0]["text"] for b in blocks_of(message, "context"))
    expires = int(FINISHED) + 14 * 86_400
    assert f"<!date^{expires}^" in context
    assert f"|{EXPIRES_TEXT}>" in context
    assert "expire " in context


def test_expired_links_say_so() -> None:
    task = as_task(load("veo-success.json"))
    message = build_task_message(task, now=FINISHED + 15 * 86_400)
    assert "expired on" in texts(message)
    assert "expired" not in texts(build_task_message(task, now=FINISHED + 86_400))


def test_no_expiry_without_finish_time() -> None:
    task = as_task(load("veo-success.json"), finished_at=None)
    assert "expire" not in texts(build_task_message(task))


def test_several_videos_get_numbered_buttons() -> None:
    urls = tuple(f"https://example.com/v{i}.mp4" for i in range(3))
    task = Task("veo", "veo_multi", State.SUCCEEDED, result_urls=urls, finished_at=FINISHED)
    message = build_task_message(task)
    assert_valid(message)
    found = buttons(message)
    assert [b["text"]["text"] for b in found] == ["Open video", "Open video 2", "Open video 3"]
    assert [b["action_id"] for b in found] == ["open_video_1", "open_video_2", "open_video_3"]
    assert [b["url"] for b in found] == list(urls)
    assert "3 videos" in message.text


def test_more_than_25_videos_and_overlong_urls_are_listed_as_text() -> None:
    long_url = "https://example.com/" + "a" * 3100 + ".mp4"
    urls = (*(f"https://example.com/v{i}.mp4" for i in range(30)), long_url, "ftp://x/y.mp4")
    task = Task("runway", "rw_many", State.SUCCEEDED, result_urls=urls, finished_at=FINISHED)
    message = build_task_message(task)
    assert_valid(message)
    found = buttons(message)
    assert len(found) == 25
    assert all(len(b["url"]) <= 3000 for b in found)
    body = texts(message)
    for url in urls[25:30]:
        assert url in body
    assert "ftp://x/y.mp4" in body
    assert long_url[:200] in body


def test_huge_url_lists_stay_within_fifty_blocks() -> None:
    urls = tuple(f"ftp://example.com/{i}/" + "b" * 2900 for i in range(80))
    task = Task("luma", "luma_huge", State.SUCCEEDED, result_urls=urls, finished_at=FINISHED)
    message = build_task_message(task)
    assert_valid(message)
    assert len(message.blocks) == 50


def test_bad_thumbnail_is_skipped() -> None:
    task = Task(
        "runway",
        "rw_thumb",
        State.SUCCEEDED,
        result_urls=("https://example.com/v.mp4",),
        image_urls=("javascript:alert(1)",),
    )
    message = build_task_message(task)
    assert_valid(message)
    assert blocks_of(message, "image") == []


def test_poll_source_is_noted() -> None:
    update = load("veo-success.json")
    task = replace(as_task(update), source="poll")
    assert "polling" in texts(build_task_message(task))
    assert "polling" not in texts(build_task_message(as_task(update)))


def test_success_with_later_upgrade_failure_shows_it() -> None:
    update = load("veo-success.json")
    four_k = load("veo-4k-fail-500.json")
    task = Task(
        "veo",
        update.task_id,
        State.SUCCEEDED,
        result_urls=update.result_urls,
        code=four_k.code,
        message=four_k.message,
        finished_at=FINISHED,
    )
    message = build_task_message(task)
    assert_valid(message)
    body = texts(message)
    assert "4K unavailable" in body
    assert four_k.message in body
    assert buttons(message)[0]["url"] == update.result_urls[0]
    assert "4K unavailable" not in texts(build_task_message(as_task(update)))


def test_success_without_urls_says_so() -> None:
    message = build_task_message(Task("suno-mp4", "mp4_none", State.SUCCEEDED))
    assert_valid(message)
    assert "nothing to attach" in texts(message)
    assert message.blocks[0]["text"]["text"] == "✅ Suno music video task done"


# --- failure ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FAILURES)
def test_failure_card_over_fixtures(name: str) -> None:
    update = load(name)
    assert update.state is State.FAILED
    explanation = explain_failure(update.product, update.code, update.message)
    for message in (build_task_message(as_task(update)), build_update_message(update)):
        assert_valid(message)
        label = PRODUCTS[update.product].label
        assert message.blocks[0]["text"]["text"] == f"❌ {label} task failed"
        body = texts(message)
        assert f"*{explanation.heading}*" in body
        assert f"> {update.message}" in body  # the provider's message, verbatim
        assert f"*Next step:* {explanation.next_step}" in body
        assert f"`{update.task_id}`" in body
        assert update.task_id in message.text
        assert explanation.heading in message.text
        assert buttons(message) == []


def test_failure_without_message_still_explains() -> None:
    message = build_task_message(Task("veo", "veo_silent", State.FAILED, code=501))
    assert_valid(message)
    body = texts(message)
    assert "Provider error" in body
    assert "no message" in body
    assert "Next step" in body


def test_multiline_provider_message_is_quoted_line_by_line() -> None:
    task = Task("runway", "rw_ml", State.FAILED, code=400, message="first line\nsecond line")
    body = texts(build_task_message(task))
    assert "> first line\n> second line" in body


# --- running ----------------------------------------------------------------------------------


def test_running_card() -> None:
    task = Task("luma", "luma_run", State.RUNNING, prompt="Make it rain")
    message = build_task_message(task)
    assert_valid(message)
    assert "Luma Modify is generating" in message.blocks[0]["text"]["text"]
    assert "Make it rain" in texts(message)
    assert "luma_run" in message.text
    running = TaskUpdate("runway", "rw_run", State.RUNNING, source="poll")
    update = build_update_message(running)
    assert_valid(update)
    assert "Runway is generating" in update.blocks[0]["text"]["text"]


@pytest.mark.parametrize("name", RUNNING)
def test_running_card_over_fixtures(name: str) -> None:
    update = load(name)
    label = PRODUCTS[update.product].label
    for message in (build_task_message(as_task(update)), build_update_message(update)):
        assert_valid(message)
        assert message.blocks[0]["text"]["text"].startswith(f"⏳ {label}")
        assert update.task_id in message.text
        for url in update.result_urls:
            assert url in texts(message)


# --- escaping and limits ----------------------------------------------------------------------


def test_provider_text_cannot_inject_mentions_or_links() -> None:
    evil = "<!channel> see <https://evil.example|your bank> & <@U123>"
    task = Task(
        "runway",
        "rw_<!here>",
        State.FAILED,
        code=400,
        message=evil,
        prompt="<!everyone> prompt & more",
    )
    message = build_task_message(task)
    assert_valid(message)
    everything = texts(message) + "\n" + message.text
    for raw in ("<!channel>", "<!here>", "<!everyone>", "<https://evil", "<@U123>"):
        assert raw not in everything
    assert "&lt;!channel&gt; see &lt;https://evil.example|your bank&gt; &amp; &lt;@U123&gt;" in (
        everything
    )
    assert "&lt;!everyone&gt; prompt &amp; more" in everything
    assert "rw_&lt;!here&gt;" in message.text


def test_injection_in_success_card_and_notice() -> None:
    task = Task(
        "veo",
        "veo_<!channel>",
        State.SUCCEEDED,
        result_urls=("https://example.com/v.mp4",),
        prompt="<!here|here> hi",
    )
    notice = build_notice("t<!channel>", "Stopped <!here> polling")
    for message in (build_task_message(task), notice):
        assert_valid(message)
        everything = texts(message) + message.text
        assert "<!channel>" not in everything
        assert "<!here" not in everything


def test_long_prompt_is_truncated_with_ellipsis() -> None:
    prompt = "word " * 2000
    task = Task("veo", "veo_long", State.RUNNING, prompt=prompt)
    message = build_task_message(task)
    assert_valid(message)
    line = next(line for line in texts(message).splitlines() if line.startswith("*Prompt:* "))
    excerpt = line.removeprefix("*Prompt:* ")
    assert len(excerpt) <= 200
    assert excerpt.endswith("…")
    assert excerpt.startswith("word word")


def test_prompt_newlines_are_collapsed() -> None:
    task = Task("veo", "veo_nl", State.RUNNING, prompt="a fox\n\nin snow")
    assert "*Prompt:* a fox in snow" in texts(build_task_message(task))


@pytest.mark.parametrize("provider_message", ["<&>" * 5000, "<&>\n" * 3000])
def test_huge_provider_message_and_ids_stay_within_limits(provider_message: str) -> None:
    task = Task(
        "x" * 400,  # unknown product: the slug is the label
        "id" * 2000,
        State.FAILED,
        code=400,
        message=provider_message,
        prompt="p" * 10_000,
    )
    message = build_task_message(task)
    assert_valid(message)
    header = message.blocks[0]["text"]["text"]
    assert len(header) <= 150
    for block in blocks_of(message, "section"):
        section = block["text"]["text"]
        assert len(section) <= 3000
        assert not re.search(r"&(a|am|l|g|lt|gt)?…", section)  # no entity cut in half
    assert "*Next step:*" in texts(message)  # the quote is cut, not the advice after it


def test_text_is_one_line_with_the_task_id_for_every_state() -> None:
    for state in State:
        task = Task("suno-mp4", "mp4_state", state, result_urls=("https://e.com/v.mp4",))
        message = build_task_message(task)
        assert "mp4_state" in message.text
        assert "\n" not in message.text
        assert len(message.text) < 300


# --- notice and console -----------------------------------------------------------------------


def test_notice() -> None:
    message = build_notice("veo_task_1", "Stopped polling after a day: kie.ai never answered.")
    assert_valid(message)
    assert "veo_task_1" in message.text
    assert "Stopped polling after a day" in message.text
    assert "Stopped polling after a day" in texts(message)


def test_render_console_success() -> None:
    update = load("runway-success.json")
    message = build_task_message(as_task(update))
    out = render_console("C123", message)
    lines = out.splitlines()
    assert lines[0] == "── #C123 (new message)"
    assert "✅ Runway video ready" in out
    assert f"[Open video] {update.result_urls[0]}" in out
    assert f"[image: Runway thumbnail for task {update.task_id}] {update.image_urls[0]}" in out
    assert EXPIRES_TEXT in out
    assert "<!date" not in out
    assert update.task_id in out


def test_render_console_failure_and_targets() -> None:
    update = load("veo-fail-400-content-policy.json")
    message = build_update_message(update)
    reply = render_console("C123", message, thread_ts="1234.5")
    assert reply.splitlines()[0] == "── #C123 (reply in thread 1234.5)"
    assert "Content moderation" in reply
    assert update.message in reply
    assert "Next step:" in reply
    edit = render_console("C123", message, thread_ts="1234.5", update_ts="1234.5")
    assert edit.splitlines()[0] == "── #C123 (update of 1234.5)"


def test_render_console_unescapes_provider_text() -> None:
    task = Task("runway", "rw_amp", State.FAILED, code=400, message="a < b & c > d")
    out = render_console("C1", build_task_message(task))
    assert "a < b & c > d" in out
    assert "&amp;" not in out


def test_render_console_lists_every_video_url() -> None:
    urls = ("https://example.com/1.mp4", "https://example.com/2.mp4", "ftp://example.com/3.mp4")
    task = Task("veo", "veo_c", State.SUCCEEDED, result_urls=urls)
    out = render_console("C1", build_task_message(task))
    assert "[Open video] https://example.com/1.mp4" in out
    assert "[Open video 2] https://example.com/2.mp4" in out
    assert "ftp://example.com/3.mp4" in out


def test_render_console_without_blocks_uses_text() -> None:
    out = render_console("C9", Message(text="just text", blocks=[]))
    assert out.splitlines() == ["── #C9 (new message)", "   just text"]


# --- Market (jobs API) ------------------------------------------------------------------------


def market(name: str) -> TaskUpdate:
    body = json.loads((FIXTURES / "market" / name).read_text())
    return PRODUCTS["market"].parse_callback(body)


def market_task(update: TaskUpdate) -> Task:
    return replace(as_task(update), model=update.model, credits=update.credits)


def test_market_success_card_names_the_model_and_the_credits() -> None:
    update = market("callback-success.json")
    for message in (
        build_task_message(market_task(update)),
        build_update_message(update, finished_at=FINISHED),
    ):
        assert_valid(message)
        assert message.blocks[0]["text"]["text"] == "✅ kie.ai Market video ready"
        body = texts(message)
        assert "*Model:* Kling 2.6 text to video" in body
        assert "kling-2.6/" not in body
        assert "*Credits used:* 55" in body
        assert "*Prompt:* A paper boat drifting" in body
        assert [b["url"] for b in buttons(message)] == list(update.result_urls)
        assert "Kling 2.6 text to video" in message.text and update.task_id in message.text


def test_market_links_are_not_promised_for_14_days() -> None:
    message = build_task_message(market_task(market("callback-success.json")))
    context = "\n".join(b["elements"][0]["text"] for b in blocks_of(message, "context"))
    assert "14 days" not in context and EXPIRES_TEXT not in context
    assert "may expire within a day" in context
    assert "download or save the videos soon" in context
    assert f"<!date^{int(FINISHED) + 86_400}^" in context
    later = build_task_message(market_task(market("callback-success.json")), now=FINISHED + 90_000)
    assert "may have expired" in texts(later)
    assert "14 days" not in texts(later)
    # Other products keep their 14 days.
    assert "14 days" in texts(build_task_message(as_task(load("veo-success.json"))))


def test_market_failure_card_explains_with_model_and_credits() -> None:
    update = market("callback-fail.json")
    for message in (build_task_message(market_task(update)), build_update_message(update)):
        assert_valid(message)
        assert message.blocks[0]["text"]["text"] == "❌ kie.ai Market task failed"
        body = texts(message)
        assert "*Model:* Wan 2.6 text to video" in body
        assert "*Credits used:* 0" in body
        assert "*Content moderation*" in body
        assert "kie.ai said (code 500):" in body
        assert f"> {update.message}" in body
        assert message.text.endswith("failed: Content moderation")
        assert "Wan 2.6 text to video" in message.text


def test_market_running_card_names_the_model_without_credits() -> None:
    task = Task(
        "market", "mk_run", State.RUNNING, prompt="A boat", model="grok-imagine/text-to-video"
    )
    message = build_task_message(task)
    assert_valid(message)
    assert "kie.ai Market is generating" in message.blocks[0]["text"]["text"]
    assert "*Model:* Grok Imagine text to video" in texts(message)
    assert "Credits" not in texts(message)
    assert "Grok Imagine text to video" in message.text


def test_cards_without_model_or_credits_have_no_such_lines() -> None:
    message = build_task_message(as_task(load("veo-success.json")))
    assert "*Model:*" not in texts(message) and "*Credits used:*" not in texts(message)


@pytest.mark.parametrize(("credits", "shown"), [(0.5, "0.5"), (1200.0, "1,200"), (12.345, "12.35")])
def test_credits_are_written_as_people_write_them(credits: float, shown: str) -> None:
    task = replace(market_task(market("callback-success.json")), credits=credits)
    assert f"*Credits used:* {shown}\n" in texts(build_task_message(task)) + "\n"


def test_market_model_from_outside_cannot_inject_and_stays_short() -> None:
    task = replace(
        market_task(market("callback-success.json")), model="<!channel>/" + "very-long-" * 100
    )
    message = build_task_message(task)
    assert_valid(message)
    everything = texts(message) + message.text
    assert "<!channel>" not in everything
    line = next(line for line in texts(message).splitlines() if line.startswith("*Model:* "))
    assert line.startswith("*Model:* &lt;!channel&gt;") and len(line) < 200
