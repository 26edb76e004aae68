"""Result videos in the outbox, on every backend: queued once per thread, as its card is posted
or in the transaction of the news that brings them, on a lane apart from the posts that waits
for its thread, and recorded to the end."""

from __future__ import annotations

import copy
import logging
from dataclasses import replace

import pytest

from bot.kie.products import PRODUCTS
from bot.slack.blocks import SECTION_MAX, escape, text_pieces
from bot.slack.delivery import FileTrouble
from bot.video.saved import SaveState
from storage.outbox import Outbox, OutboxRow
from storage.tasks import TaskStore
from storage.videos import SavedVideos
from tests.conftest import Clock, load

TASK = "veo_task_3f9c2a7b1d4e"


def update(name: str, *urls: str):
    body = copy.deepcopy(load(name))
    if urls:
        body["data"]["info"]["resultUrls"] = list(urls)
    slug = "veo-4k" if name.startswith("veo-4k") else "veo"
    return PRODUCTS[slug].parse_callback(body)


async def drain_posts(
    outbox: Outbox, channel: str, saving: tuple[TaskStore, SavedVideos] | None = None
) -> list[str]:
    """Send (mark done) the channel's posts in order, as the delivery does; their kinds.

    With `saving` (the tasks and the videos' record), each card is posted with its task's
    videos queued, as the delivery does when saving is on.
    """
    kinds: list[str] = []
    while (row := await outbox.head(channel)) is not None:
        kinds.append(row.kind)
        if row.kind == "root" and saving is not None:
            tasks, videos = saving
            task = await tasks.get(row.family, row.task_id)
            assert task is not None
            await videos.queue(row.family, row.task_id, channel, task.result_urls)
        await outbox.done(row, root_ts="1.1" if row.kind == "root" else None)
    return kinds


async def test_a_video_waits_for_its_root_and_posts_never_wait_for_it(opener):
    db = await opener()
    clock = Clock()
    tasks, outbox = TaskStore(db, clock=clock, save_videos=True), Outbox(db, clock=clock)
    await tasks.apply(update("veo-success.json", "https://v.example/a.mp4"), channel="C1")
    assert await outbox.pending_channels() == ["C1"]
    assert [e.kind for e in await outbox.entries()] == ["root"], "a new task's callback: no video"
    saving = (tasks, SavedVideos(db, clock=clock))
    assert await drain_posts(outbox, "C1", saving) == ["root"], "the video row is not a post"
    assert await outbox.video_channels() == ["C1"]
    row = await outbox.video_head("C1")
    assert row is not None and (row.kind, row.text) == ("video", "https://v.example/a.mp4")
    assert await outbox.pending_channels() == []


async def test_news_queues_only_new_videos_after_their_reply(opener):
    db = await opener()
    clock = Clock()
    tasks, outbox = TaskStore(db, clock=clock, save_videos=True), Outbox(db, clock=clock)
    await tasks.apply(update("veo-success.json", "https://v.example/a.mp4"), channel="C1")
    await drain_posts(outbox, "C1", (tasks, SavedVideos(db, clock=clock)))
    first = await outbox.video_head("C1")
    assert first is not None
    await outbox.done(first)
    await tasks.apply(update("veo-4k-success.json", "https://v.example/4k.mp4"))
    assert await outbox.video_channels() == [], "the reply that announces it comes first"
    assert await drain_posts(outbox, "C1") == ["reply", "update"]
    row = await outbox.video_head("C1")
    assert row is not None and row.text == "https://v.example/4k.mp4"
    await outbox.done(row)
    # The same video again, in other words: no new row, whatever brings it.
    again = update("veo-success.json", "https://v.example/a.mp4", "https://v.example/4k.mp4")
    await tasks.apply(again)
    assert await outbox.video_head("C1") is None


async def test_saving_off_queues_no_video_and_a_follower_gets_the_known_ones(opener):
    db = await opener()
    clock = Clock()
    outbox, tasks = Outbox(db, clock=clock), TaskStore(db, clock=clock)
    await tasks.apply(update("veo-success.json"), channel="C1")
    assert await drain_posts(outbox, "C1") == ["root"]
    assert await outbox.video_channels() == []
    assert await tasks.follow("veo", TASK, "C2")
    assert await drain_posts(outbox, "C2", (tasks, SavedVideos(db, clock=clock))) == ["root"]
    row = await outbox.video_head("C2")
    assert row is not None and row.text is not None and row.text.endswith("_0.mp4")


async def saved_row(opener) -> tuple[Outbox, SavedVideos, OutboxRow, Clock]:
    db = await opener()
    clock = Clock()
    tasks, outbox = TaskStore(db, clock=clock, save_videos=True), Outbox(db, clock=clock)
    await tasks.apply(update("veo-success.json", "https://v.example/a.mp4"), channel="C1")
    videos = SavedVideos(db, clock=clock)
    await drain_posts(outbox, "C1", (tasks, videos))
    row = await outbox.video_head("C1")
    assert row is not None
    return outbox, videos, row, clock


async def test_a_saved_video_finishes_its_row_and_updates_the_card(opener):
    outbox, videos, row, _ = await saved_row(opener)
    [pending] = (await videos.outcomes("veo", TASK, "C1")).values()
    assert pending.state is SaveState.PENDING
    await videos.completing(row, "F1", "Veo 3.1 · fox", 1234)
    record = await videos.get(row)
    assert record is not None and (record.state, record.file_id) == (SaveState.COMPLETING, "F1")
    await videos.saved(row, "F1", "Veo 3.1 · fox", 1234)
    assert await outbox.video_head("C1") is None
    update_row = await outbox.head("C1")
    assert update_row is not None and update_row.kind == "update"
    [record] = (await videos.outcomes("veo", TASK, "C1")).values()
    assert (record.saved, record.file_id, record.size) == (True, "F1", 1234)


async def test_a_refusal_an_operator_fixes_updates_the_card_each_time(opener):
    outbox, videos, row, clock = await saved_row(opener)
    await videos.not_saved(row, "missing_scope", "The app lacks files:write.", operator=True)
    [entry] = [e for e in await outbox.entries() if e.kind == "video"]
    assert (entry.status, entry.last_error) == ("failed", "missing_scope")
    [record] = (await videos.outcomes("veo", TASK, "C1")).values()
    assert record.refused and record.explanation == "The app lacks files:write."
    assert await drain_posts(outbox, "C1") == ["update"]
    clock.now += 60
    assert await outbox.resend(failed=True) == [row.id]
    again = await outbox.video_head("C1")
    assert again is not None and again.id == row.id
    await videos.saved(again, "F2", "t", 10)
    assert await drain_posts(outbox, "C1") == ["update"], "the card is updated once more"


async def test_a_file_retried_later_holds_up_only_its_own_thread(opener):
    db = await opener()
    clock = Clock()
    tasks, outbox = TaskStore(db, clock=clock, save_videos=True), Outbox(db, clock=clock)
    videos = SavedVideos(db, clock=clock)
    stuck = update("veo-success.json", "https://v.example/a1.mp4", "https://v.example/a2.mp4")
    await tasks.apply(stuck, channel="C1")
    other = copy.deepcopy(load("veo-success.json"))
    other["data"]["taskId"] = "veo_task_other"
    other["data"]["info"]["resultUrls"] = ["https://v.example/b.mp4"]
    await tasks.apply(PRODUCTS["veo"].parse_callback(other), channel="C1")
    await drain_posts(outbox, "C1", (tasks, videos))
    first = await outbox.video_head("C1")
    assert first is not None and first.text == "https://v.example/a1.mp4"
    await outbox.retry(first, "http_503: HTTP 503", 3600)  # its host is in trouble
    head = await outbox.video_head("C1")
    assert head is not None and head.text == "https://v.example/b.mp4", "a2 waits for a1"
    await outbox.done(head)
    head = await outbox.video_head("C1")
    assert head is not None and head.id == first.id and head.due_at > clock()
    clock.now += 3600
    await outbox.done(head)
    head = await outbox.video_head("C1")
    assert head is not None and head.text == "https://v.example/a2.mp4"


def test_a_file_that_keeps_failing_is_logged_once_a_minute(caplog: pytest.LogCaptureFixture):
    clock = Clock()
    trouble = FileTrouble(clock)
    row = OutboxRow(7, "k", "video", "C1", "veo", TASK, None, "https://v.example/a.mp4", 0, 0.0)
    other = replace(row, id=8, task_id="veo_task_other")
    caplog.set_level(logging.WARNING, logger="bot.slack.delivery")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    trouble.failed(row, "video 1", "http_503: HTTP 503", 24)
    assert lines() == [
        f"video 1 of task {TASK} not saved in C1 yet: http_503: HTTP 503; 1 tries so far, "
        "retried for up to 24 hours"
    ]
    for _ in range(5):
        clock.now += 10
        trouble.failed(replace(row, attempts=row.attempts + 1), "video 1", "network: reset", 24)
    trouble.failed(other, "video 1", "http_502: HTTP 502", 24)
    assert len(lines()) == 2 and TASK not in lines()[1], "one line per file and minute"
    clock.now += 10
    trouble.failed(replace(row, attempts=6), "video 1", "network: reset", 24)
    assert len(lines()) == 3 and "network: reset; 7 tries so far" in lines()[2]
    trouble.ended(row)
    trouble.failed(row, "video 1", "http_503: HTTP 503", 24)
    assert len(lines()) == 4, "a new run of trouble is said at once"


def test_a_long_text_is_cut_into_pieces_that_each_fit_a_section():
    text = "Q&A <notes>\n" + "word & more " * 900
    pieces = text_pieces(text)
    assert len(pieces) > 2
    assert all(len(escape(piece)) <= SECTION_MAX for piece in pieces)
    assert " ".join(pieces).split() == text.split(), "every word, in order, none cut"
    assert text_pieces("  short  ") == ["short"] and text_pieces(" ") == []
