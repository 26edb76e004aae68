"""The buttons of a task's card, what they carry, and the messages they lead to."""

from __future__ import annotations

import json
from typing import Any

from bot.kie.products import PRODUCTS
from bot.slack.blocks import (
    ACTIONS_MAX,
    SECTION_MAX,
    Message,
    action_button,
    capped,
    channel_link,
    code,
    context,
    escape,
    escaped,
    fallback,
    is_web_url,
    link_button,
    mention,
    plain,
    product_label,
    section,
    sections,
    short_id,
    slack_time,
)
from bot.task import State, Task

# --- buttons and progress ---------------------------------------------------------------------

VALUE_MAX = 2000
METADATA_MAX = 3000
COMMENT_MAX = 1000

#: The action ids of the buttons on a task's card (stable: Bolt routes clicks by them), and
#: the callback id of the share modal.
FRESH_LINK = "kie_fresh_link"
GET_1080P = "kie_get_1080p"
UPSCALE_4K = "kie_upscale_4k"
SHARE = "kie_share"
POLL_NOW = "kie_poll_now"
#: Starting generations from a card: the same request again, and (Veo) the video continued.
AGAIN = "kie_again"
EXTEND = "kie_extend"
SHARE_VIEW = "kie_share"
#: The share modal's inputs: the block id and the action id of each.
SHARE_CHANNEL = "channel"
SHARE_COMMENT = "comment"

_UPSCALE_CONFIRM = {
    "title": plain("Upscale to 4K?"),
    "text": {
        "type": "mrkdwn",
        "text": "The 4K version costs extra kie.ai credits (about twice a Veo Fast generation) "
        "and takes 5 to 10 minutes to make. It will arrive in this thread.",
    },
    "confirm": plain("Upscale"),
    "deny": plain("Cancel"),
}


def button_value(task: Task) -> str:
    """What a card's button carries: the task's product and id, as JSON."""
    return json.dumps({"product": task.product, "task_id": task.task_id})


def read_button_value(value: Any) -> tuple[str, str] | None:
    """The product and task id that a button's value names, or None when it names none."""
    if not isinstance(value, str) or len(value) > VALUE_MAX:
        return None
    try:
        found = json.loads(value)
    except (ValueError, RecursionError):
        return None
    if not isinstance(found, dict):
        return None
    product, task_id = found.get("product"), found.get("task_id")
    if not isinstance(product, str) or not isinstance(task_id, str) or not task_id:
        return None
    return product, task_id


def task_actions(task: Task) -> list[dict[str, Any]]:
    """The actions block of a task's card, or none: on a success `Fresh link`, on Veo
    `Get 1080p` and `Upscale to 4K` (behind a confirm dialog), and `Share to channel`; on a
    running task `Poll now`; on a task started from Slack that ended `Again`; on a Veo success
    `Extend`."""
    value = button_value(task)
    product = PRODUCTS.get(task.product)
    if product is None or len(value) > VALUE_MAX:
        return []
    elements: list[dict[str, Any]] = []
    if task.state is State.SUCCEEDED:
        if task.result_urls:
            elements.append(action_button("Fresh link", FRESH_LINK, value))
        if product.family == "veo":
            elements.append(action_button("Get 1080p", GET_1080P, value))
            upscale = action_button("Upscale to 4K", UPSCALE_4K, value)
            elements.append({**upscale, "confirm": _UPSCALE_CONFIRM})
        elements.append(action_button("Share to channel", SHARE, value))
    elif task.state is State.RUNNING:
        elements.append(action_button("Poll now", POLL_NOW, value))
    if task.state.is_final and task.request:  # started from Slack: the same request again
        elements.append(action_button("Again", AGAIN, value))
    if task.state is State.SUCCEEDED and product.family == "veo":
        elements.append(action_button("Extend", EXTEND, value))
    if not elements:
        return []
    return [{"type": "actions", "elements": elements[:ACTIONS_MAX]}]


def upscale_note(user_id: str) -> str:
    """The thread's note that someone asked for the 4K version (mrkdwn for `build_notice`)."""
    return (
        f"{mention(user_id)} asked for the 4K version (it costs extra credits and takes "
        "5 to 10 minutes); it will arrive in this thread."
    )


def shared_note(user_id: str, origin: str, comment: str) -> str:
    """The note in the thread of a channel a task was shared to (mrkdwn for `build_notice`)."""
    note = f"Shared by {mention(user_id)} from {channel_link(origin)}"
    said = escaped(comment.strip(), COMMENT_MAX)
    return f"{note}: {said}" if said else note


def build_fresh_links(task_id: str, links: list[str], problems: list[str], until: float) -> Message:
    """The answer to `Fresh link`: a download button per link kie.ai gave (valid until
    `until`, Unix seconds), and a line for each video it gave none for."""
    buttons: list[dict[str, Any]] = []
    as_text: list[str] = []
    for n, link in enumerate(links, start=1):
        name = "Download video" if len(links) == 1 else f"Download video {n}"
        if is_web_url(link) and len(buttons) < ACTIONS_MAX:
            buttons.append(link_button(name, link, f"open_video_{len(buttons) + 1}"))
        else:
            as_text.append(f"• {name}: {escaped(link, SECTION_MAX - 100)}")
    blocks: list[dict[str, Any]] = []
    if links:
        blocks.append(
            section(
                f"*Fresh download links* for {code(task_id)}: valid 20 minutes, until "
                f"{slack_time(until)}."
            )
        )
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    blocks.extend(sections(as_text))
    blocks.extend(sections([f"• {escaped(p, SECTION_MAX - 100)}" for p in problems]))
    if links:
        text = f"Fresh download links for task {short_id(task_id)} (valid 20 minutes)"
    else:
        text = f"No fresh download link for task {short_id(task_id)}"
    return Message(fallback(text), capped(blocks))


def build_share_modal(task: Task, origin: str) -> dict[str, Any]:
    """The `Share to channel` modal: a channel picker and an optional comment.

    Its `private_metadata` carries the task and the channel it is shared from.
    """
    metadata = json.dumps({"product": task.product, "task_id": task.task_id, "channel": origin})
    return {
        "type": "modal",
        "callback_id": SHARE_VIEW,
        "title": plain("Share to channel"),
        "submit": plain("Share"),
        "close": plain("Cancel"),
        "private_metadata": metadata[:METADATA_MAX],
        "blocks": [
            section(
                f"Share the {escape(product_label(task.product))} task {code(task.task_id)}: the "
                "channel gets its card and video, and follows it from now on."
            ),
            {
                "type": "input",
                "block_id": SHARE_CHANNEL,
                "label": plain("Channel"),
                "element": {
                    "type": "conversations_select",
                    "action_id": SHARE_CHANNEL,
                    "default_to_current_conversation": False,
                    "filter": {"include": ["public", "private"], "exclude_bot_users": True},
                    "placeholder": plain("Choose a channel"),
                },
            },
            {
                "type": "input",
                "block_id": SHARE_COMMENT,
                "optional": True,
                "label": plain("Comment"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": SHARE_COMMENT,
                    "multiline": True,
                    "max_length": COMMENT_MAX,
                },
            },
            context("For a private channel, invite the bot there first (`/invite @kie`)."),
        ],
    }
