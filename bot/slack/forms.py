"""The modals that start generations: `/kie new` and a card's `Extend`. Pure builders and
readers, no I/O.

A form's `private_metadata` carries where it was opened (the channel) and the response URL of
the command or click that opened it, for answering the person after the form closes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.kie.media import NOUNS, Media
from bot.kie.submit import (
    ASPECT_RATIOS,
    DURATIONS,
    PROMPT_MAX,
    QUALITIES,
    Catalog,
    ModelSpec,
)
from bot.slack.blocks import escape

#: The callback ids of the two forms (Bolt routes their submissions by them).
NEW_VIEW = "kie_new"
EXTEND_VIEW = "kie_extend_form"
#: The forms' inputs: each is the block id and the action id of its element, and the field a
#: `response_action: errors` answer names.
MODEL = "model"
PROMPT = "prompt"
IMAGE = "image"
DURATION = "duration"
ASPECT = "aspect"
QUALITY = "quality"

METADATA_MAX = 3000
OPTION_TEXT_MAX = 75
#: What a Slack response URL looks like: https on a host, a path, nothing else.
_RESPONSE_URL = re.compile(r"https?://[A-Za-z0-9.:-]+/[\x21-\x7e]{1,1000}")


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:OPTION_TEXT_MAX]}


def _option(text: str, value: str, description: str | None = None) -> dict[str, Any]:
    option: dict[str, Any] = {"text": _plain(text), "value": value}
    if description:
        option["description"] = _plain(description)
    return option


def _select(block_id: str, label: str, options: list[dict[str, Any]], hint: str) -> dict[str, Any]:
    return {
        "type": "input",
        "block_id": block_id,
        "optional": True,
        "label": _plain(label),
        "hint": _plain(hint),
        "element": {
            "type": "static_select",
            "action_id": block_id,
            "placeholder": _plain("The model's default"),
            "options": options,
        },
    }


def _describe(spec: ModelSpec) -> str:
    """What a model makes (when it is not a video) and the options it takes, in a few words,
    for the model list."""
    parts: list[str] = [NOUNS[spec.media][0]] if spec.media in ("image", "audio") else []
    if spec.durations and spec.durations != DURATIONS:
        parts.append("/".join(str(d) for d in spec.durations) + " s")
    if spec.qualities and spec.qualities != QUALITIES:
        parts.append("/".join(spec.qualities))
    if spec.image == "required":
        parts.append("needs an image")
    elif spec.image == "none":
        parts.append("text only")
    elif spec.media == "image":
        parts.append("text, or an image to edit")
    return ", ".join(parts) or "options passed as chosen"


#: The form's groups of Market models, by what they make (None: the id does not say).
_MARKET_GROUPS: tuple[tuple[Media | None, str], ...] = (
    ("video", "Videos: kie.ai Market"),
    ("image", "Images: kie.ai Market"),
    ("audio", "Audio: kie.ai Market"),
    (None, "Other kie.ai Market models"),
)


def _model_groups(catalog: Catalog) -> list[dict[str, Any]]:
    """The model list's groups, each labelled with what its models make; empty ones left out."""
    builtin = [spec for spec in catalog.models if spec.product != "market"]
    groups = [{"label": _plain("Videos: Veo and Runway"), "options": _model_options(builtin)}]
    market = [spec for spec in catalog.models if spec.product == "market"]
    for media, label in _MARKET_GROUPS:
        specs = [spec for spec in market if spec.media == media]
        groups.append({"label": _plain(label), "options": _model_options(specs)})
    return [group for group in groups if group["options"]]


def _metadata(data: Mapping[str, str]) -> str:
    text = json.dumps(dict(data), separators=(",", ":"))
    return text if len(text) <= METADATA_MAX else json.dumps({"channel": data.get("channel", "")})


def build_new_form(catalog: Catalog, channel: str, response_url: str | None) -> dict[str, Any]:
    """The `/kie new` modal: model (videos, images and other Market models in groups), prompt,
    an optional image URL and the main options."""
    groups = _model_groups(catalog)
    return {
        "type": "modal",
        "callback_id": NEW_VIEW,
        "title": _plain("New generation"),
        "submit": _plain("Start"),
        "close": _plain("Cancel"),
        "private_metadata": _metadata({"channel": channel, "response_url": response_url or ""}),
        "blocks": [
            {
                "type": "input",
                "block_id": MODEL,
                "label": _plain("Model"),
                "element": {
                    "type": "static_select",
                    "action_id": MODEL,
                    "initial_option": groups[0]["options"][0],
                    "option_groups": groups,
                },
            },
            {
                "type": "input",
                "block_id": PROMPT,
                "label": _plain("Prompt"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": PROMPT,
                    "multiline": True,
                    "max_length": PROMPT_MAX,
                    "placeholder": _plain("What the video or the image shows"),
                },
            },
            {
                "type": "input",
                "block_id": IMAGE,
                "optional": True,
                "label": _plain("Image URL"),
                "hint": _plain("An https link to a picture to start from, or to edit."),
                "element": {
                    "type": "plain_text_input",
                    "action_id": IMAGE,
                    "placeholder": _plain("https://…"),
                },
            },
            _select(
                DURATION,
                "Duration",
                [_option(f"{d} s", str(d)) for d in DURATIONS],
                "Videos only. Veo: 8 s. Runway: 5 or 10 s (default 5).",
            ),
            _select(
                ASPECT,
                "Aspect ratio",
                [_option(a, a) for a in ASPECT_RATIOS],
                "Videos: 16:9 unless chosen. Images: the model's own default.",
            ),
            _select(
                QUALITY,
                "Quality",
                [_option(q, q) for q in QUALITIES],
                "Videos only. Runway: 720p (default) or 1080p, 1080p only at 5 s.",
            ),
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": "Each generation costs kie.ai credits (`/kie credits` shows what "
                        "is left). The result comes to this channel, in the thread of its "
                        "message.",
                    }
                ],
            },
        ],
    }


def _model_options(specs: list[ModelSpec]) -> list[dict[str, Any]]:
    return [_option(spec.label, spec.key, _describe(spec)) for spec in specs[:100]]


def build_extend_form(
    product: str, task_id: str, prompt: str | None, channel: str, response_url: str | None
) -> dict[str, Any]:
    """The `Extend` modal: how the Veo video goes on."""
    said = f"\n*It was:* {escape(' '.join(prompt.split())[:300])}" if prompt else ""
    return {
        "type": "modal",
        "callback_id": EXTEND_VIEW,
        "title": _plain("Extend the video"),
        "submit": _plain("Extend"),
        "close": _plain("Cancel"),
        "private_metadata": _metadata(
            {
                "channel": channel,
                "product": product,
                "task_id": task_id,
                "response_url": response_url or "",
            }
        ),
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"kie.ai continues the video of task `{escape(task_id)[:120]}`; the "
                    f"extension comes into its thread and costs kie.ai credits.{said}",
                },
            },
            {
                "type": "input",
                "block_id": PROMPT,
                "label": _plain("How does it go on?"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": PROMPT,
                    "multiline": True,
                    "max_length": PROMPT_MAX,
                },
            },
        ],
    }


@dataclass(frozen=True, slots=True)
class FormValues:
    """What a submitted form says: its metadata and each input's value (None when empty)."""

    channel: str
    response_url: str | None
    metadata: Mapping[str, Any]
    values: Mapping[str, str | None]


def read_form(view: Any) -> FormValues:
    """The values of a submitted view, read leniently: anything missing or malformed is None."""
    view = view if isinstance(view, Mapping) else {}
    try:
        metadata = json.loads(view.get("private_metadata") or "{}")
    except (ValueError, RecursionError):
        metadata = {}
    if not isinstance(metadata, dict):
        metadata = {}
    state = view.get("state")
    blocks = state.get("values") if isinstance(state, Mapping) else None
    values: dict[str, str | None] = {}
    if isinstance(blocks, Mapping):
        for block_id, actions in blocks.items():
            element = actions.get(block_id) if isinstance(actions, Mapping) else None
            values[str(block_id)] = _element_value(element)
    url = metadata.get("response_url")
    return FormValues(
        channel=str(metadata.get("channel") or ""),
        response_url=url if isinstance(url, str) and _RESPONSE_URL.fullmatch(url) else None,
        metadata=metadata,
        values=values,
    )


def _element_value(element: Any) -> str | None:
    if not isinstance(element, Mapping):
        return None
    selected = element.get("selected_option")
    if isinstance(selected, Mapping):
        value = selected.get("value")
        return value if isinstance(value, str) and value else None
    value = element.get("value")
    return value if isinstance(value, str) and value.strip() else None
