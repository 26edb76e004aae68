"""Cards of images, music and text results: each says what its result is, never "video"."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from bot.kie.products import PRODUCTS
from bot.slack.blocks import TEXT_ON_CARD, Message
from bot.slack.console import render_console, render_file
from bot.slack.messages import build_task_message, build_update_message
from bot.task import State, Task, TaskUpdate, Track, merge
from tests.test_messages import FINISHED, assert_valid, blocks_of, buttons, texts

BANANA = "https://tempfile.aiquickdraw.com/as/b31f0a77_1786428633913.png"
GRID = tuple(f"https://cdn.example/mj/grid_{n}.png" for n in range(1, 5))
SONGS = (
    Track(
        "s1",
        "https://music.example/s1.mp3",
        "Harbour Lights",
        171.32,
        "https://music.example/s1.jpeg",
    ),
    Track("s2", "https://music.example/s2.mp3", "Harbour Lights (Reprise)", 184.6, ""),
)
SUNO_ID = "b7e2c9a41f6d4e08a3c5d7f9e1b2a4c6"


def dump(message: Message) -> str:
    """Everything the message carries, as Slack receives it."""
    return json.dumps([message.text, message.blocks]).lower()


def banana() -> Task:
    return Task(
        "market",
        "task_google_1765178608584",
        State.SUCCEEDED,
        result_urls=(BANANA,),
        prompt="A banana floating in space",
        model="google/nano-banana",
        credits=3,
        created_at=FINISHED - 30,
        finished_at=FINISHED,
    )


def image_urls(message: Message) -> list[str]:
    return [block["image_url"] for block in blocks_of(message, "image")]


# --- images -----------------------------------------------------------------------------------


def test_a_nano_banana_card_shows_the_image_and_never_says_video() -> None:
    message = build_task_message(banana())
    assert_valid(message)
    assert message.blocks[0]["text"]["text"] == "✅ kie.ai Market image ready"
    assert "*Model:* Nano Banana" in texts(message)
    assert image_urls(message) == [BANANA]
    alt = blocks_of(message, "image")[0]["alt_text"]
    assert "kie.ai Market" in alt and "Nano Banana" in alt and "task_google_1765178608584" in alt
    assert "download or save the images soon" in texts(message)
    assert "Nano Banana" in message.text and "(1 image)" in message.text
    assert "video" not in dump(message)
    reply = TaskUpdate(
        "market", "t1", State.SUCCEEDED, result_urls=(BANANA,), model="google/nano-banana"
    )
    assert "video" not in dump(build_update_message(reply, finished_at=FINISHED))


def test_without_images_the_image_is_a_link() -> None:
    message = build_task_message(banana(), with_image=False)
    assert_valid(message)
    assert image_urls(message) == []
    assert [(b["text"]["text"], b["url"]) for b in buttons(message)] == [("Open image", BANANA)]
    assert "video" not in dump(message)


def test_a_midjourney_grid_shows_its_four_pictures_numbered() -> None:
    grid = Task("mj", "mj_task_12345", State.SUCCEEDED, result_urls=GRID, finished_at=FINISHED)
    message = build_task_message(grid)
    assert_valid(message)
    assert message.blocks[0]["text"]["text"] == "✅ Midjourney images ready"
    assert image_urls(message) == list(GRID)
    titles = [block["title"]["text"] for block in blocks_of(message, "image")]
    assert titles == ["Image 1", "Image 2", "Image 3", "Image 4"]
    assert buttons(message) == []
    assert "(4 images)" in message.text
    assert "video" not in dump(message)


def test_more_than_four_images_are_links_after_the_fourth() -> None:
    urls = (*GRID, "https://cdn.example/5.png", "https://cdn.example/6.png", "ftp://cdn/7.png")
    message = build_task_message(Task("4o-image", "4o_many", State.SUCCEEDED, result_urls=urls))
    assert_valid(message)
    assert image_urls(message) == list(GRID)
    assert [(b["text"]["text"], b["url"]) for b in buttons(message)] == [
        ("Open image 5", urls[4]),
        ("Open image 6", urls[5]),
    ]
    assert "*More image links:*" in texts(message) and "ftp://cdn/7.png" in texts(message)


def test_a_video_card_keeps_its_link_and_thumbnail() -> None:
    video = Task(
        "mj",
        "mj_video_1",
        State.SUCCEEDED,
        result_urls=("https://cdn.example/clip.mp4",),
        image_urls=("https://cdn.example/clip.jpg",),
    )
    message = build_task_message(video)
    assert message.blocks[0]["text"]["text"] == "✅ Midjourney video ready"
    assert [b["text"]["text"] for b in buttons(message)] == ["Open video"]
    assert image_urls(message) == ["https://cdn.example/clip.jpg"]


# --- music ------------------------------------------------------------------------------------


def suno(state: State, stage: str | None, tracks: tuple[Track, ...]) -> TaskUpdate:
    return TaskUpdate(
        "suno",
        SUNO_ID,
        state,
        result_urls=tuple(track.url for track in tracks),
        image_urls=tuple(track.cover for track in tracks if track.cover),
        media="audio",
        stage=stage,
        tracks=tracks,
        code=200,
    )


def test_a_suno_task_reads_right_at_each_stage() -> None:
    task, _ = merge(None, suno(State.RUNNING, "text", ()), FINISHED - 120)
    lyrics = build_task_message(task)
    assert_valid(lyrics)
    assert lyrics.blocks[0]["text"]["text"] == "⏳ Suno music: lyrics ready"
    assert "lyrics ready" in lyrics.text and SUNO_ID in lyrics.text
    assert "the tracks come next" in texts(lyrics)
    assert buttons(lyrics) == []

    task, news = merge(task, suno(State.RUNNING, "first", SONGS[:1]), FINISHED - 60)
    assert news
    first = build_task_message(task)
    assert_valid(first)
    assert first.blocks[0]["text"]["text"] == "⏳ Suno music: first track ready"
    assert "*First track ready:*\n🎵 *Harbour Lights* · 2:51" in texts(first)
    assert [(b["text"]["text"], b["url"]) for b in buttons(first)] == [("Play track", SONGS[0].url)]
    assert image_urls(first) == [SONGS[0].cover]
    assert "Poll now" in texts(first)

    task, news = merge(task, suno(State.SUCCEEDED, "complete", SONGS), FINISHED)
    assert news
    done = build_task_message(task)
    assert_valid(done)
    assert done.blocks[0]["text"]["text"] == "✅ Suno music ready"
    assert (
        "*2 tracks ready:*\n🎵 *Harbour Lights* · 2:51\n🎵 *Harbour Lights (Reprise)* · 3:05"
        in (texts(done))
    )
    assert [b["text"]["text"] for b in buttons(done)] == ["Play track", "Play track 2"]
    assert image_urls(done) == [SONGS[0].cover]
    assert "(2 tracks)" in done.text
    for message in (lyrics, first, done):
        assert "video" not in dump(message)


def test_a_track_without_cover_url_uses_its_own_cover() -> None:
    update = replace(suno(State.SUCCEEDED, "complete", SONGS), image_urls=())
    message = build_update_message(update)
    assert image_urls(message) == [SONGS[0].cover]
    assert "cover" in blocks_of(message, "image")[0]["alt_text"]
    assert image_urls(build_update_message(update, with_image=False)) == []


def test_market_audio_says_audio_and_names_its_track() -> None:
    speech = Task(
        "market",
        "mk_tts",
        State.SUCCEEDED,
        result_urls=("https://tempfile.example/tts.mp3",),
        model="elevenlabs/text-to-speech-multilingual-v2",
        finished_at=FINISHED,
    )
    message = build_task_message(speech)
    assert_valid(message)
    assert message.blocks[0]["text"]["text"] == "✅ kie.ai Market audio ready"
    assert "🎵 Track 1" in texts(message)
    assert [b["text"]["text"] for b in buttons(message)] == ["Play track"]
    assert "video" not in dump(message)


@pytest.mark.parametrize(("seconds", "shown"), [(59.6, "1:00"), (3725, "1:02:05"), (7, "0:07")])
def test_track_lengths_read_as_players_show_them(seconds: float, shown: str) -> None:
    song = Track("x", "https://music.example/x.mp3", "X", seconds)
    assert f"*X* · {shown}" in texts(
        build_update_message(suno(State.SUCCEEDED, "complete", (song,)))
    )


# --- text results and empty successes --------------------------------------------------------


def spoken(text: str) -> Task:
    return Task(
        "market",
        "mk_stt",
        State.SUCCEEDED,
        model="elevenlabs/speech-to-text",
        result_text=text,
        finished_at=FINISHED,
    )


def test_a_text_result_is_shown_on_the_card() -> None:
    message = build_task_message(spoken("Hello from the sample recording."))
    assert_valid(message)
    assert message.blocks[0]["text"]["text"] == "✅ kie.ai Market text ready"
    assert "Hello from the sample recording." in texts(message)
    assert "whole text" not in texts(message) and "expire" not in texts(message)
    assert "failed" not in dump(message)


@pytest.mark.parametrize("text", ["word " * 1000, "<&>" * 2000])
def test_a_long_text_is_cut_and_found_in_the_thread(text: str) -> None:
    message = build_task_message(spoken(text))
    assert_valid(message)
    shown = texts(message)
    assert "The whole text is in the thread." in shown
    assert "<&>" not in shown  # still escaped
    sections = [b["text"]["text"] for b in blocks_of(message, "section")[1:]]
    plain = "".join(sections).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert plain.endswith("…") and len(plain) == TEXT_ON_CARD
    assert text.startswith(plain[:-1])


def test_a_text_of_exactly_the_limit_is_whole() -> None:
    message = build_task_message(spoken("&" * TEXT_ON_CARD))
    assert_valid(message)
    assert "whole text" not in texts(message)
    assert texts(message).count("&amp;") == TEXT_ON_CARD


def test_a_success_with_nothing_to_attach_is_no_failure() -> None:
    message = build_task_message(Task("market", "mk_empty", State.SUCCEEDED, finished_at=FINISHED))
    assert_valid(message)
    assert message.blocks[0]["text"]["text"] == "✅ kie.ai Market task done"
    assert "nothing to attach" in texts(message) and "nothing to attach" in message.text
    assert "failed" not in dump(message) and "expire" not in texts(message)


# --- failures and the console -----------------------------------------------------------------


@pytest.mark.parametrize("product", sorted(PRODUCTS))
def test_every_product_has_a_failure_card(product: str) -> None:
    failed = Task(product, "t_fail", State.FAILED, code=500, message="Internal error")
    for message in (
        build_task_message(failed),
        build_update_message(TaskUpdate(product, "t", State.FAILED)),
    ):
        assert_valid(message)
        assert message.blocks[0]["text"]["text"] == f"❌ {PRODUCTS[product].label} task failed"


def test_the_console_shows_images_and_tracks_readably() -> None:
    grid = render_console(
        "C1", build_task_message(Task("mj", "mj_1", State.SUCCEEDED, result_urls=GRID))
    )
    assert f"[image: Midjourney image 1 of 4, task mj_1] {GRID[0]}" in grid
    assert f"[image: Midjourney image 4 of 4, task mj_1] {GRID[3]}" in grid
    music = render_console("C1", build_update_message(suno(State.SUCCEEDED, "complete", SONGS)))
    assert "   🎵 Harbour Lights · 2:51" in music.splitlines()
    assert f"[Play track 2] {SONGS[1].url}" in music


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("kie-t-1.png", "an image Slack shows"),
        ("kie-t-1.mp3", "a track that plays in Slack"),
        ("kie-t-1.mp4", "a video that plays in Slack"),
        ("F123", "a file"),
    ],
)
def test_the_console_names_a_saved_file_by_its_kind(name: str, said: str) -> None:
    assert render_file("C1", "1.2", "A title", name).splitlines()[-1] == f"   {name} · {said}"
