"""The message shortcut "Make a video from this" (`kie_from_message`): what it was used on, the
`/kie new` form it opens (the message's text as the prompt, its image offered as the start
image), and what the submitted form says of that image. Pure: no I/O.

The form is `/kie new`'s own (`build_new_form`), so its submission takes the same path; its
`private_metadata` also carries the message whose thread the task goes into (`under`) and the
image offered (`image`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.kie.submit import PROMPT_MAX, Catalog, RequestError
from bot.slack.blocks import truncate
from bot.slack.forms import IMAGE, METADATA_MAX, OPTION_TEXT_MAX, PROMPT, build_new_form

#: The shortcut's callback id (manifest.yml).
FROM_MESSAGE = "kie_from_message"
#: The form's tick box that takes the message's image as the start image (block and action id).
MESSAGE_IMAGE = "message_image"
#: Checks a request whose start image is the message's, before it is handed to kie.ai: any
#: https URL passes the form's check, and the uploaded file's URL takes its place.
STAND_IN = "https://files.slack.com/start-image"

_TS = re.compile(r"\d{6,12}\.\d{1,8}")
_LABELLED = re.compile(r"<([^<>|]+)\|([^<>]*)>")
_BARE = re.compile(r"<([^<>|]+)>")


@dataclass(frozen=True, slots=True)
class SlackImage:
    """An image file of a Slack message: its private URL (the bot token fetches it), its name
    and its type."""

    url: str
    name: str
    mimetype: str

    def as_json(self) -> dict[str, str]:
        return {"url": self.url, "name": self.name, "mimetype": self.mimetype}

    @classmethod
    def from_json(cls, value: Any) -> SlackImage | None:
        if not isinstance(value, Mapping):
            return None
        url, name, mimetype = (value.get(key) for key in ("url", "name", "mimetype"))
        if not (isinstance(url, str) and url.startswith(("https://", "http://"))):
            return None
        if not (isinstance(mimetype, str) and mimetype.startswith("image/")):
            return None
        return cls(url, name if isinstance(name, str) and name else "image", mimetype)


@dataclass(frozen=True, slots=True)
class UsedOn:
    """The message the shortcut was used on: its channel, its text as a prompt, the ts whose
    thread the task goes into (the message's own, or its thread's when it is a reply), and its
    first image file."""

    channel: str
    text: str
    under: str | None
    image: SlackImage | None


def read_shortcut(body: Mapping[str, Any]) -> UsedOn:
    """What a `message_action` payload says of its message, read leniently."""
    channel = _mapping(body.get("channel")).get("id")
    message = _mapping(body.get("message"))
    ts = message.get("thread_ts") or message.get("ts") or body.get("message_ts")
    text = message.get("text")
    return UsedOn(
        channel=channel if isinstance(channel, str) else "",
        text=prompt_of(text) if isinstance(text, str) else "",
        under=ts if isinstance(ts, str) and _TS.fullmatch(ts) else None,
        image=_first_image(message.get("files")),
    )


def prompt_of(text: str) -> str:
    """A message's text as a prompt: Slack's links and mentions as their labels, its entities
    unescaped, cut to the longest prompt a model takes."""
    plain = _LABELLED.sub(r"\2", text)
    plain = _BARE.sub(r"\1", plain)
    plain = plain.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return plain.strip()[:PROMPT_MAX]


def _first_image(files: Any) -> SlackImage | None:
    for file in files if isinstance(files, list) else []:
        file = _mapping(file)
        url = file.get("url_private_download") or file.get("url_private")
        image = SlackImage.from_json(
            {"url": url, "name": file.get("name"), "mimetype": file.get("mimetype")}
        )
        if image is not None:
            return image
    return None


def build_from_message_form(
    catalog: Catalog, used_on: UsedOn, response_url: str | None
) -> dict[str, Any]:
    """The `/kie new` form with the message's text as the prompt and its image offered (ticked)
    as the start image; the result goes into the message's thread."""
    view = build_new_form(catalog, used_on.channel, response_url)
    metadata = json.loads(view["private_metadata"])
    metadata["under"] = used_on.under or ""
    image = used_on.image
    if image is not None:
        with_image = {**metadata, "image": image.as_json()}
        if len(json.dumps(with_image, separators=(",", ":"))) <= METADATA_MAX:
            metadata = with_image
        else:
            image = None  # a URL too long to carry: the form offers no image
    view["private_metadata"] = json.dumps(metadata, separators=(",", ":"))
    blocks: list[dict[str, Any]] = []
    for block in view["blocks"]:
        if block.get("block_id") == PROMPT and used_on.text:
            block = {**block, "element": {**block["element"], "initial_value": used_on.text}}
        if block.get("type") == "context":
            block = _context(_WHERE)
        blocks.append(block)
        if block.get("block_id") == IMAGE and image is not None:
            blocks.append(_image_choice(image))
    view["blocks"] = blocks
    return view


_WHERE = (
    "Each generation costs kie.ai credits (`/kie credits` shows what is left). Its card and "
    "result come into the thread of the message you started it from."
)


def _context(mrkdwn: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn}]}


def _image_choice(image: SlackImage) -> dict[str, Any]:
    option = {
        "text": {"type": "plain_text", "text": truncate(f"🖼 {image.name}", OPTION_TEXT_MAX)},
        "value": "use",
    }
    return {
        "type": "input",
        "block_id": MESSAGE_IMAGE,
        "optional": True,
        "label": {"type": "plain_text", "text": "Start image from the message"},
        "hint": {
            "type": "plain_text",
            "text": "Handed to kie.ai when you start. Untick it to start from the prompt alone.",
        },
        "element": {
            "type": "checkboxes",
            "action_id": MESSAGE_IMAGE,
            "options": [option],
            "initial_options": [option],
        },
    }


def chosen_image(view: Any) -> SlackImage | None:
    """The message's image, when the submitted form offered it and it is still ticked."""
    view = _mapping(view)
    try:
        metadata = json.loads(view.get("private_metadata") or "{}")
    except (ValueError, RecursionError):
        return None
    image = SlackImage.from_json(_mapping(metadata).get("image"))
    state = _mapping(_mapping(view.get("state")).get("values"))
    element = _mapping(_mapping(state.get(MESSAGE_IMAGE)).get(MESSAGE_IMAGE))
    ticked = element.get("selected_options")
    return image if isinstance(ticked, list) and ticked else None


def under_of(metadata: Mapping[str, Any]) -> str | None:
    """The ts of the message whose thread a form's task goes into (the shortcut's), if any."""
    under = metadata.get("under")
    return under if isinstance(under, str) and _TS.fullmatch(under) else None


def image_to_check(typed: str | None, image: SlackImage | None) -> str | None:
    """The image URL a form's request is checked with: the one typed, or `STAND_IN` for the
    message's image. Raises `RequestError` when both are given."""
    if image is None:
        return typed
    if typed:
        raise RequestError(
            MESSAGE_IMAGE, "Use the message's image or an image URL, not both: untick one."
        )
    return STAND_IN


def image_problem(exc: RequestError, image: SlackImage | None) -> tuple[str, str]:
    """The form field and text of a request's problem: one about the image URL concerns the
    message's image when that is the one chosen."""
    if image is None or exc.field != IMAGE:
        return exc.field, str(exc)
    return MESSAGE_IMAGE, f"{str(exc).split(';')[0]}; untick the message's image."


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
