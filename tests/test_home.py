"""The Home tab's and the direct message's builders, the shortcut's reading of a message, and
which hosts are sent the bot token for a message's image."""

from __future__ import annotations

from bot.slack.files import slack_file_origins
from bot.slack.from_message import prompt_of, read_shortcut
from bot.slack.home import HomeFacts, Listed, build_done_message, build_home
from bot.task import State, Task


def task(state: State, **fields: object) -> Task:
    return Task(product="market", task_id="t1", state=state, created_at=1000.0, **fields)  # type: ignore[arg-type]


def test_a_failed_image_is_told_as_an_image_with_its_reason_and_link():
    failed = task(State.FAILED, model="google/nano-banana", media="image", code=400, prompt="a fox")
    message = build_done_message(failed, "C1", "https://x.slack.com/archives/C1/p1")
    assert message.text.startswith("❌ Your kie.ai Market (Nano Banana) image failed")
    assert "<https://x.slack.com/archives/C1/p1|Open its thread>" in str(message.blocks)
    assert "video" not in (message.text + str(message.blocks)).lower()


def test_a_link_slack_did_not_give_is_not_made_a_link():
    done = task(State.SUCCEEDED, model="kling-2.6/text-to-video")
    message = build_done_message(done, "C1", "javascript:alert(1)|x>")
    assert "javascript" not in str(message.blocks) and "Open its thread" in str(message.blocks)


def test_the_home_tab_keeps_within_slacks_limits_however_much_runs():
    running = tuple(Listed(task(State.RUNNING, prompt="p" * 3000)) for _ in range(20))
    view = build_home(HomeFacts(2000.0, running, (), 3, None, dm=False))
    assert view["type"] == "home" and len(view["blocks"]) <= 50
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in view["blocks"])
    text = str(view["blocks"])
    assert "3 started; no daily limit here" in text and "`/kie notify on`" in text


def test_a_message_becomes_a_prompt_and_its_thread():
    body = {
        "channel": {"id": "C1"},
        "message": {
            "ts": "1700000000.000200",
            "thread_ts": "1700000000.000100",
            "text": "see <https://e.co|this> &lt;3 <@U1>",
            "files": [
                {
                    "name": "a.pdf",
                    "mimetype": "application/pdf",
                    "url_private": "https://files.slack.com/a",
                }
            ],
        },
    }
    used_on = read_shortcut(body)
    assert (used_on.text, used_on.under, used_on.image) == (
        "see this <3 @U1",
        "1700000000.000100",
        None,
    )
    assert prompt_of("  a &amp; b  ") == "a & b"


def test_only_slacks_file_host_gets_the_token_and_a_stand_in_for_slack_its_own():
    assert slack_file_origins("https://slack.com/api/") == {("https", "files.slack.com", 443)}
    assert ("http", "127.0.0.1", 8123) in slack_file_origins("http://127.0.0.1:8123/api/")
