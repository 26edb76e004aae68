"""What a card says about videos, images and tracks saved into its thread (the builders are pure: outcomes in)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from slack_sdk.models.blocks import Block

from bot.slack.blocks import Message
from bot.slack.console import file_size, render_console, render_file
from bot.slack.messages import SAVED_IN_THREAD, SAVED_NOTES, build_task_message
from bot.task import State, Task
from bot.video.saved import SavedVideo, SaveState

FINISHED = datetime(2026, 11, 25, 14, 3, tzinfo=UTC).timestamp()
ONE = "https://tempfile.example/veo/one.mp4"
TWO = "https://tempfile.example/veo/two.mp4"


def task(*urls: str) -> Task:
    return Task(
        "veo",
        "veo_task_card",
        State.SUCCEEDED,
        result_urls=urls,
        prompt="A red fox in the snow",
        created_at=FINISHED - 60,
        updated_at=FINISHED,
        finished_at=FINISHED,
    )


def text(message: Message) -> str:
    return render_console("C1", message)


def valid(message: Message) -> None:
    for block in message.blocks:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.validate_json()


def saved(url: str) -> SavedVideo:
    return SavedVideo(url, SaveState.SAVED, file_id="F1", title="Veo 3.1 · fox", size=5)


def refused(url: str, explanation: str) -> SavedVideo:
    return SavedVideo(url, SaveState.NOT_SAVED, reason="gone", explanation=explanation)


def test_without_records_the_card_is_as_before() -> None:
    plain = build_task_message(task(ONE))
    assert build_task_message(task(ONE), saved={}) == plain
    assert "Links expire" in text(plain)


def test_a_saved_video_replaces_the_expiry_line() -> None:
    message = build_task_message(task(ONE), saved={ONE: saved(ONE)})
    valid(message)
    shown = text(message)
    assert SAVED_IN_THREAD in shown
    assert "expire" not in shown
    assert f"[Open video] {ONE}" in shown, "the link stays"


def test_a_video_on_its_way_says_so_and_keeps_the_expiry_line() -> None:
    for state in (SaveState.PENDING, SaveState.COMPLETING):
        shown = text(build_task_message(task(ONE), saved={ONE: SavedVideo(ONE, state)}))
        assert "📥 Saving the video into the thread…" in shown
        assert "Links expire" in shown


def test_a_video_not_saved_says_why_and_keeps_its_link() -> None:
    why = "The video link has expired or the file is gone from kie.ai."
    message = build_task_message(task(ONE), saved={ONE: refused(ONE, why)})
    valid(message)
    shown = text(message)
    assert f"⚠️ Not saved in Slack: {why} The link stays." in shown
    assert "Links expire" in shown
    assert f"[Open video] {ONE}" in shown


def test_several_videos_are_named_one_by_one() -> None:
    outcomes = {ONE: saved(ONE), TWO: refused(TWO, "The workspace's file storage is full.")}
    shown = text(build_task_message(task(ONE, TWO), saved=outcomes))
    assert "🎬 Video 1 is saved in the thread" in shown
    assert "⚠️ Not saved in Slack (video 2): The workspace's file storage is full." in shown
    assert "Links expire" in shown
    both = text(build_task_message(task(ONE, TWO), saved={ONE: saved(ONE), TWO: saved(TWO)}))
    assert "All 2 videos are saved in the thread" in both and "expire" not in both


def test_records_of_other_urls_are_ignored() -> None:
    shown = text(build_task_message(task(ONE), saved={TWO: saved(TWO)}))
    assert "Saved" not in shown and "Links expire" in shown


@pytest.mark.parametrize(
    ("hostile", "shown"),
    [
        ("<!channel> <https://evil.example|click>", "&lt;!channel&gt; &lt;https://evil"),
        ("a & b > c", "a &amp; b &gt; c"),
    ],
)
def test_an_explanation_cannot_mention_or_link(hostile: str, shown: str) -> None:
    message = build_task_message(task(ONE), saved={ONE: refused(ONE, hostile)})
    blob = json.dumps(message.blocks)
    assert "<!channel>" not in blob and "<https://evil" not in blob
    assert shown in blob


def test_the_console_shows_a_file_as_slack_does() -> None:
    shown = render_file("C1", "1700000000.000100", "Veo 3.1 · A fox", "kie-t-1.mp4", 12_345_678)
    assert shown.splitlines() == [
        "── #C1 (file in thread 1700000000.000100)",
        "   📎 Veo 3.1 · A fox (12.3 MB)",
        "   kie-t-1.mp4 · a video that plays in Slack",
    ]
    assert [file_size(n) for n in (999, 1_000_000, 2_500_000_000)] == ["1 kB", "1.0 MB", "2.5 GB"]


# --- images and tracks ------------------------------------------------------------------------

PNG = "https://tempfile.example/mj/one.png"
PNG2 = "https://tempfile.example/mj/two.png"
MP3 = "https://musicfile.example/one.mp3"


def media_task(product: str, *urls: str) -> Task:
    return replace(task(*urls), product=product, task_id=f"{product}_card")


def test_saved_images_are_called_images() -> None:
    one = text(build_task_message(media_task("mj", PNG), saved={PNG: saved(PNG)}))
    assert SAVED_NOTES["image"] in one and one.count("🖼 Saved in the thread") == 1
    both = build_task_message(
        media_task("mj", PNG, PNG2), saved={PNG: saved(PNG), PNG2: saved(PNG2)}
    )
    valid(both)
    assert "🖼 All 2 images are saved in the thread: they stay after kie.ai" in text(both)
    mixed = {PNG: saved(PNG), PNG2: SavedVideo(PNG2, SaveState.PENDING)}
    shown = text(build_task_message(media_task("mj", PNG, PNG2), saved=mixed))
    assert "🖼 Image 1 is saved in the thread: it stays." in shown
    assert "📥 Saving image 2 into the thread…" in shown
    assert "download the images before then" in shown
    for message in (one, text(both), shown):
        assert "video" not in message.lower()


def test_a_saved_track_plays_in_slack() -> None:
    shown = text(build_task_message(media_task("suno", MP3), saved={MP3: saved(MP3)}))
    assert "🎵 Saved in the thread: plays in Slack and stays" in shown
    refused_one = build_task_message(
        media_task("suno", MP3), saved={MP3: refused(MP3, "Too big to save.")}
    )
    assert "⚠️ Not saved in Slack: Too big to save. The link stays." in text(refused_one)
    assert "video" not in (shown + text(refused_one)).lower()
