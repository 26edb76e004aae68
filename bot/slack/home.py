"""A person's Home tab of the bot, and the direct message that tells them a generation of
theirs ended. Pure builders, no I/O: `bot/home.py` gathers what they show."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.kie.failures import explain_failure
from bot.operations import summary
from bot.slack.blocks import (
    PROMPT_EXCERPT,
    Message,
    capped,
    channel_link,
    context,
    escape,
    fallback,
    header,
    one_line,
    section,
    sections,
    slack_date,
    truncate,
)
from bot.slack.messages import duration, task_name
from bot.task import State, Task
from storage.outbox import OutboxStats

#: A link to a message: (channel, ts) -> its permalink, or None when Slack gives none.
Link = Callable[[str, str], Awaitable[str | None]]
#: How much of a prompt a line of the Home tab quotes.
HOME_PROMPT = 80
#: A permalink Slack gave, fit to be a mrkdwn link target.
_SAFE_LINK = frozenset("<>| \n")


@dataclass(frozen=True, slots=True)
class Listed:
    """A task on the Home tab, with the link to its thread (None while its message is not
    posted, or Slack gave none)."""

    task: Task
    link: str | None = None


@dataclass(frozen=True, slots=True)
class ForAdmins:
    """What only an admin sees: the account's credits (None: unknown, `credits_note` says
    why), the outbox, and the bot's version."""

    credits: float | None
    credits_note: str
    outbox: OutboxStats
    version: str


@dataclass(frozen=True, slots=True)
class HomeFacts:
    """Everything one person's Home tab shows, as of `now`.

    `used_today` counts their generations today (UTC) against `limit` (None: no daily limit);
    `admin` is set for an admin, who has no limit. `dm` is whether they get direct messages.
    """

    now: float
    running: tuple[Listed, ...]
    recent: tuple[Listed, ...]
    used_today: int
    limit: int | None
    dm: bool
    admin: ForAdmins | None = None


def build_home(facts: HomeFacts) -> dict[str, Any]:
    """The Home tab view: running generations, recent results, usage today, and for an admin
    the credits, the outbox and the version."""
    blocks = [
        header("Your kie.ai generations"),
        section(f"*Running now* ({len(facts.running)})"),
        *sections([_running_line(item, facts.now) for item in facts.running] or [_NONE_RUNNING]),
        {"type": "divider"},
        section("*Your recent results*"),
        *sections([_result_line(item) for item in facts.recent] or [_NO_RESULTS]),
        {"type": "divider"},
        section(_usage_line(facts)),
        context(_DM_ON if facts.dm else _DM_OFF),
    ]
    if facts.admin is not None:
        blocks.extend([{"type": "divider"}, *_admin_blocks(facts.admin, facts.now)])
    return {"type": "home", "blocks": capped(blocks)}


def build_done_message(task: Task, channel: str, link: str | None) -> Message:
    """The direct message to the person who started `task`: it succeeded or failed, what it
    is, and the link to its thread (or where it is, when there is no link)."""
    what = task_name(task)
    if task.state is State.SUCCEEDED:
        title = f"✅ Your {what} is ready"
    else:
        heading = explain_failure(task.product, task.code, task.message).heading
        title = f"❌ Your {what} failed: {heading}"
    lines = [f"*{escape(title)}*"]
    if task.prompt and task.prompt.strip():
        lines.append(f"*Prompt:* {_prompt(task.prompt, PROMPT_EXCERPT)}")
    where = _link(link, "Open its thread") if link else f"Its thread is in {channel_link(channel)}."
    lines.append(f"{where} · Task `{escape(one_line(task.task_id))[:120]}`")
    blocks = [section("\n".join(lines)), context(_DM_ON)]
    return Message(fallback(title), blocks)


_NONE_RUNNING = (
    "_Nothing of yours is running._ Start one with `/kie new`, or from a message: "
    "⋯ → *Make a video from this*."
)
_NO_RESULTS = "_No results yet: what you start from Slack is listed here._"
_DM_ON = (
    "You get a direct message when a generation of yours is done; `/kie notify off` stops them."
)
_DM_OFF = "Direct messages are off for you; `/kie notify on` sends them again."


def _running_line(item: Listed, now: float) -> str:
    task = item.task
    since = duration(now - task.created_at) if task.created_at > 0 else "a moment"
    parts = [f"⏳ *{escape(task_name(task))}*", f"running for {since}"]
    return " · ".join([*parts, *_prompt_part(task), _thread(item)])


def _result_line(item: Listed) -> str:
    task = item.task
    if task.state is State.SUCCEEDED:
        state = "✅ ready"
    else:
        state = (
            f"❌ failed: {escape(explain_failure(task.product, task.code, task.message).heading)}"
        )
    ended = slack_date(task.finished_at or task.updated_at)
    parts = [f"*{escape(task_name(task))}*", state, ended]
    return " · ".join([*parts, *_prompt_part(task), _thread(item)])


def _prompt_part(task: Task) -> list[str]:
    return [_prompt(task.prompt, HOME_PROMPT)] if task.prompt and task.prompt.strip() else []


def _prompt(prompt: str, limit: int) -> str:
    return f"“{escape(truncate(one_line(prompt), limit))}”"


def _thread(item: Listed) -> str:
    return _link(item.link, "thread") if item.link else "_its message is on its way_"


def _link(url: str | None, label: str) -> str:
    """A mrkdwn link to a Slack permalink; the label alone when the URL cannot be one."""
    if not url or not url.startswith("https://") or any(ch in _SAFE_LINK for ch in url):
        return label
    return f"<{url}|{label}>"


def _usage_line(facts: HomeFacts) -> str:
    if facts.admin is not None:
        return "*Your usage today:* not limited (you are an admin)"
    if facts.limit is None:
        return f"*Your usage today (UTC):* {facts.used_today} started; no daily limit here"
    line = f"*Your usage today (UTC):* {facts.used_today} of {facts.limit}"
    if facts.used_today >= facts.limit:
        line += " — the limit is reached; it resets at midnight UTC"
    return line


def _admin_blocks(admin: ForAdmins, now: float) -> list[dict[str, Any]]:
    if admin.credits is None:
        credits = f"unknown ({escape(admin.credits_note)})"
    else:
        credits = f"{admin.credits:,.2f}".rstrip("0").rstrip(".")
    lines = [
        "*For admins*",
        f"*kie.ai credits:* {credits}",
        f"*Outbox:* {summary(admin.outbox, now)}",
        f"*Version:* kie-slack {escape(admin.version)}",
    ]
    return [section("\n".join(lines))]
