"""The buttons of a task's card, what they carry, and the messages they lead to."""

from __future__ import annotations

import json
import re
from typing import Any

from bot.kie.media import NOUNS, Media
from bot.kie.products import PRODUCTS, Product
from bot.kie.submit import MJ_ACTIONS, MJ_PICTURES, MjAction
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
#: Midjourney's follow-ups on a grid: `kie_mj_upscale_1`…`_4` and `kie_mj_vary_1`…`_4`.
MJ_FOLLOW_UP = re.compile(r"^kie_mj_(upscale|vary)_([1-4])$")
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


def mj_action_id(action: MjAction, picture: int) -> str:
    """The action id of the button that upscales or varies `picture` (1 to 4) of a grid."""
    return f"kie_mj_{action}_{picture}"


def read_mj_action(action_id: Any) -> tuple[MjAction, int] | None:
    """The follow-up a Midjourney button asks for: the action and kie.ai's `imageIndex` of the
    picture (0 to 3 for pictures 1 to 4, as kie.ai's schema says, for Vary too)."""
    found = MJ_FOLLOW_UP.fullmatch(action_id) if isinstance(action_id, str) else None
    if found is None:
        return None
    action = next(action for action in MJ_ACTIONS if action == found[1])
    return action, int(found[2]) - 1


def is_mj_grid(task: Task) -> bool:
    """A Midjourney image grid that is ready: four images, each of which kie.ai can upscale or
    vary (a Midjourney video, or an upscale's single image, is no grid)."""
    product = PRODUCTS.get(task.product)
    return (
        product is not None
        and product.family == "mj"
        and task.state is State.SUCCEEDED
        and task.kind == "image"
        and len(task.result_urls) == MJ_PICTURES
    )


def _mj_rows(task: Task, value: str) -> list[dict[str, Any]]:
    """Midjourney's two rows under a grid: `Upscale 1`…`Upscale 4`, `Vary 1`…`Vary 4`."""
    if not is_mj_grid(task):
        return []
    return [
        {
            "type": "actions",
            "elements": [
                action_button(f"{action.capitalize()} {n}", mj_action_id(action, n), value)
                for n in range(1, MJ_PICTURES + 1)
            ],
        }
        for action in MJ_ACTIONS
    ]


def task_actions(task: Task) -> list[dict[str, Any]]:
    """The actions blocks of a task's card, or none: on a success `Fresh link`, on Veo
    `Get 1080p` and `Upscale to 4K` (behind a confirm dialog), and `Share to channel`; on a
    running task `Poll now`; on a task started from Slack that ended `Again`; on a Veo success
    `Extend`; under a Midjourney grid a row of `Upscale n` and a row of `Vary n`."""
    value = button_value(task)
    product = PRODUCTS.get(task.product)
    if product is None or len(value) > VALUE_MAX:
        return []
    elements = _card_buttons(task, product, value)
    rows = [{"type": "actions", "elements": elements[:ACTIONS_MAX]}] if elements else []
    return rows + _mj_rows(task, value)


def _card_buttons(task: Task, product: Product, value: str) -> list[dict[str, Any]]:
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
    return elements


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


def build_fresh_links(
    task_id: str, links: list[str], problems: list[str], until: float, kind: Media = "video"
) -> Message:
    """The answer to `Fresh link`: a download button per link kie.ai gave (valid until
    `until`, Unix seconds), named for what the results are (`kind`), and a line for each result
    it gave none for."""
    buttons: list[dict[str, Any]] = []
    as_text: list[str] = []
    word = NOUNS[kind][0]
    for n, link in enumerate(links, start=1):
        name = f"Download {word}" if len(links) == 1 else f"Download {word} {n}"
        if is_web_url(link) and len(buttons) < ACTIONS_MAX:
            buttons.append(link_button(name, link, f"open_{kind}_{len(buttons) + 1}"))
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
    results = NOUNS[task.kind][1 if len(task.result_urls) > 1 else 0]
    gets = f"its card and {results}" if task.result_urls else "its card"
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
                f"channel gets {gets}, and follows it from now on."
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
