"""Daily limits and the usage report over real HTTP: `/kie veo` starts against the fake kie.ai,
refusals explained only to the person, `/kie usage` and `kie-slack usage --csv` agreeing with
what was started."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
from typing import Any

from tests.conftest import click, eventually, slash

CHANNEL = "C0SPEND"
PUBLIC = "https://bot.example.com"
VEO = "/api/v1/veo/generate"


def answers(fake_slack) -> list[str]:
    return [r.get("text", "") for r in fake_slack.responses]


async def say(bot, fake_slack, text: str, user: str, channel: str = CHANNEL) -> str:
    """A `/kie` command; the answer the person got (acknowledgement or response URL)."""
    before = len(fake_slack.responses)
    _, ack = await slash(bot, fake_slack, text, channel=channel, user=user)
    if isinstance(ack, dict) and ack.get("text") and not ack["text"].startswith("Starting"):
        return str(ack["text"]) + str(ack.get("blocks", ""))
    [answer] = await eventually(lambda: fake_slack.responses[before:][-1:])
    return str(answer.get("text", "")) + str(answer.get("blocks", ""))


async def start(start_bot, fake_slack, fake_kie, **settings: Any):
    return await start_bot(fake_slack, fake_kie, public_url=PUBLIC, **settings)


async def test_a_person_reaches_the_limit_and_an_admin_does_not(start_bot, fake_slack, fake_kie):
    bot = await start(
        start_bot, fake_slack, fake_kie, kie_daily_limit_per_person=2, kie_admins=("U0BOSS",)
    )
    for n in range(2):
        assert "Started" in await say(bot, fake_slack, f"veo boat {n}", "U0ANA")
    refused = await say(bot, fake_slack, "veo boat 3", "U0ANA")
    assert "daily limit of 2 generations is reached (2 started today" in refused
    assert "resets at 00:00 UTC" in refused and "<@U0BOSS>" in refused
    assert len(fake_kie.posted(VEO)) == 2, "nothing was sent to kie.ai for the refused start"
    await eventually(lambda: len(fake_slack.roots(CHANNEL)) == 2)
    await asyncio.sleep(0.3)
    assert len(fake_slack.roots(CHANNEL)) == 2, "a refusal posts nothing in the channel"
    # Another person still may; the admin is not held at all.
    assert "Started" in await say(bot, fake_slack, "veo boat 4", "U0BEN")
    for n in range(3):
        assert "Started" in await say(bot, fake_slack, f"veo admin {n}", "U0BOSS")
    assert len(fake_kie.posted(VEO)) == 6


async def test_a_channel_limit_holds_everyone_in_it(start_bot, fake_slack, fake_kie):
    bot = await start(start_bot, fake_slack, fake_kie, kie_daily_limit_per_channel=1)
    assert "Started" in await say(bot, fake_slack, "veo one", "U0ANA")
    refused = await say(bot, fake_slack, "veo two", "U0BEN")
    assert "this channel's daily limit of 1 generations is reached" in refused
    assert "Started" in await say(bot, fake_slack, "veo elsewhere", "U0BEN", channel="C0OTHER")


async def test_kie_refusals_do_not_count(start_bot, fake_slack, fake_kie):
    bot = await start(start_bot, fake_slack, fake_kie, kie_daily_limit_per_person=1)
    fake_kie.refuse(VEO, 402, "Insufficient credits")
    assert "did not start" in await say(bot, fake_slack, "veo refused", "U0ANA")
    assert "Started" in await say(bot, fake_slack, "veo counted", "U0ANA")
    assert "daily limit of 1" in await say(bot, fake_slack, "veo over", "U0ANA")


async def test_concurrent_starts_at_the_edge_pass_once(start_bot, fake_slack, fake_kie):
    bot = await start(start_bot, fake_slack, fake_kie, kie_daily_limit_per_person=3)
    for n in range(2):
        assert "Started" in await say(bot, fake_slack, f"veo early {n}", "U0ANA")
    acks = await asyncio.gather(
        *(slash(bot, fake_slack, f"veo race {n}", channel=CHANNEL, user="U0ANA") for n in range(6))
    )

    def refusals() -> int:
        said = [str(ack.get("text", "")) for _, ack in acks if isinstance(ack, dict)]
        return sum("daily limit" in text for text in said + answers(fake_slack))

    await eventually(lambda: refusals() == 5 and len(fake_kie.posted(VEO)) == 3)
    await asyncio.sleep(0.3)
    assert len(fake_kie.posted(VEO)) == 3, "never more than the limit"


async def test_upscale_to_4k_counts_too(start_bot, fake_slack, fake_kie):
    bot = await start(start_bot, fake_slack, fake_kie, kie_daily_limit_per_person=1)
    await bot.callback("veo", _veo_success("veo_task_limits"), route=await _route(bot, fake_slack))
    [root] = await eventually(lambda: fake_slack.roots(CHANNEL))
    await eventually(lambda: "Upscale to 4K" in root.content)
    assert "Started" in await say(bot, fake_slack, "veo first", "U0ANA")
    await click(bot, fake_slack, root, "Upscale to 4K", user="U0ANA")
    await eventually(lambda: any("daily limit of 1" in text for text in answers(fake_slack)))
    assert fake_kie.posted("/api/v1/veo/get-4k-video") == []


async def test_usage_today_and_the_csv_agree_with_what_was_started(start_bot, fake_slack, fake_kie):
    bot = await start(
        start_bot, fake_slack, fake_kie, kie_daily_limit_per_person=2, kie_admins=("U0BOSS",)
    )
    for n in range(2):
        await say(bot, fake_slack, f"veo boat {n}", "U0ANA")
    await say(bot, fake_slack, "veo boat 2", "U0ANA")  # refused: not in the report
    await say(bot, fake_slack, "runway kite", "U0BEN")
    mine = await say(bot, fake_slack, "usage today", "U0ANA")
    assert "3 generations" in mine, "the totals count everyone's"
    assert "<@U0ANA>: 2 generations" in mine and "U0BEN" not in mine
    assert "2 of 2 used today" in mine and "Credits left at kie.ai:* 100" in mine
    everyone = await say(bot, fake_slack, "usage today", "U0BOSS")
    assert "<@U0ANA>: 2 generations" in everyone and "<@U0BEN>: 1 generation" in everyone
    assert "Veo 3.1: 2 generations" in everyone and "Runway: 1 generation" in everyone
    assert "usage week" in await say(bot, fake_slack, "usage yesterday", "U0ANA")

    env = {**os.environ, "DATABASE_URL": f"sqlite:///{bot.settings.database_path}"}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "usage", "--csv"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert sorted((row["user"], row["product"]) for row in rows) == [
        ("U0ANA", "veo"),
        ("U0ANA", "veo"),
        ("U0BEN", "runway"),
    ]
    assert {row["task_id"] for row in rows} == {task.task_id for task in fake_kie.started}
    assert all(row["outcome"] == "running" and row["channel"] == CHANNEL for row in rows)


async def _route(bot, fake_slack) -> str:
    _, answer = await slash(bot, fake_slack, "url", channel=CHANNEL)
    return answer["text"].split(f"{PUBLIC}/callbacks/veo/")[1].split("`")[0]


def _veo_success(task_id: str) -> dict[str, Any]:
    from tests.conftest import load

    body = load("veo-success.json")
    body["data"]["taskId"] = task_id
    return body


async def test_two_replicas_on_postgresql_at_the_edge_pass_once(
    start_bot, fake_slack, fake_kie, postgres_url
):
    settings = {"postgres_url": postgres_url, "kie_daily_limit_per_person": 2}
    replicas = [await start(start_bot, fake_slack, fake_kie, **settings) for _ in range(2)]
    assert "Started" in await say(replicas[0], fake_slack, "veo first", "U0ANA")
    acks = await asyncio.gather(
        *(
            slash(replicas[n % 2], fake_slack, f"veo race {n}", channel=CHANNEL, user="U0ANA")
            for n in range(6)
        )
    )

    def refusals() -> int:
        said = [str(ack.get("text", "")) for _, ack in acks if isinstance(ack, dict)]
        return sum("daily limit of 2" in text for text in said + answers(fake_slack))

    await eventually(lambda: refusals() == 5 and len(fake_kie.posted(VEO)) == 2)
    await asyncio.sleep(0.3)
    assert len(fake_kie.posted(VEO)) == 2, "two replicas never pass the limit together"
