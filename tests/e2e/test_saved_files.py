"""Result files saved into their threads, over real HTTP: the bot on loopback downloads from the
fake kie.ai and uploads into the fake Slack. Each thread keeps its own order, and a file whose
host is in trouble holds up no other task's file.
"""

from __future__ import annotations

import logging

import pytest

from tests.conftest import eventually
from tests.e2e.test_saved_videos import CHANNEL, SAVED, outbox, saving, veo
from tests.fakes.kie import FakeFile

__all__ = ["saving"]  # the fixture, used by name

SAVING = "Saving the video into the thread"


async def test_a_file_that_keeps_failing_holds_up_no_other_tasks_file(
    saving, fake_slack, fake_kie, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING, logger="bot.slack.delivery")
    bot = await saving()
    stuck = fake_kie.serve_file("stuck.mp4", FakeFile(status=503))
    await bot.callback("veo", veo("veo_task_stuck", stuck))
    await eventually(lambda: fake_kie.file_requests.count("stuck.mp4") >= 1)

    fine = fake_kie.serve_file("fine.mp4", FakeFile(2000))
    await bot.callback("veo", veo("veo_task_fine", fine))
    await eventually(lambda: len(fake_slack.roots(CHANNEL)) == 2)
    first, second = fake_slack.roots(CHANNEL)
    await eventually(lambda: SAVED in second.content)

    assert [f.received for f in fake_slack.shared(CHANNEL, second.ts)] == [2000]
    assert fake_slack.shared(CHANNEL, first.ts) == [], "the stuck file is still retried"
    assert SAVING in first.content and "Not saved" not in first.content
    assert ("video", "pending", "http_503: HTTP 503") in outbox(bot)
    warned = [r.getMessage() for r in caplog.records if "veo_task_stuck" in r.getMessage()]
    assert warned and "http_503" in warned[0], "the log says which file fails and why"
