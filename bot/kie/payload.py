"""Lenient readers for the loosely typed fields of kie.ai payloads."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


def as_mapping(value: Any) -> Mapping[str, Any]:
    """`value` if it is a JSON object, else an empty mapping (`data: null` and the like)."""
    return value if isinstance(value, Mapping) else {}


def text(value: Any) -> str:
    """A stripped string for a string or a number; empty for anything else."""
    if isinstance(value, bool):
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float):
        return str(value)
    return ""


def first_text(data: Mapping[str, Any], *keys: str) -> str:
    """The first non-empty `text` among `data[key]` for `keys`."""
    for key in keys:
        found = text(data.get(key))
        if found:
            return found
    return ""


def code_of(value: Any) -> int | None:
    """An integer status code from an int or a numeric string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def message_of(body: Mapping[str, Any]) -> str:
    """The envelope's message: `msg`, else `message` (the key is not stable across pages)."""
    return first_text(body, "msg", "message")


def url_list(value: Any) -> tuple[str, ...]:
    """URLs from a list, a JSON-encoded list, an unquoted bracketed list, or one bare URL.

    Empty strings, nulls and non-strings are dropped; order is kept, repeats removed.
    """
    items: list[Any]
    if isinstance(value, list | tuple):
        items = list(value)
    elif isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            try:
                decoded = json.loads(stripped)
            except ValueError:
                decoded = None
            if isinstance(decoded, list):
                items = decoded
            else:
                items = [part.strip().strip("\"'") for part in stripped[1:-1].split(",")]
        else:
            items = [stripped]
    else:
        items = []
    urls: list[str] = []
    for item in items:
        url = item.strip() if isinstance(item, str) else ""
        if url and url not in urls:
            urls.append(url)
    return tuple(urls)


def urls_in(value: Any, key: str) -> tuple[str, ...]:
    """URLs from a list of objects that each keep one under `key` (Midjourney's poll answer:
    `[{"resultUrl": "…"}]`); plain URL strings and the other forms of `url_list` count too."""
    if not isinstance(value, list | tuple):
        return url_list(value)
    return url_list([item.get(key) if isinstance(item, Mapping) else item for item in value])


def prompt_of(value: Any) -> str | None:
    """The `prompt` inside a `promptJson`/`paramJson` given as a JSON string or an object."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    prompt = text(as_mapping(value).get("prompt"))
    return prompt or None


def json_value(value: Any) -> Any:
    """A field that kie.ai sends as JSON text (`resultJson`, `param`) decoded; other values as
    they are; None for text that is not JSON."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return None
    return value


def readable_text(value: Any, limit: int) -> str | None:
    """A result given as text or as JSON (Market's `resultObject`) as text a person reads, at most
    `limit` characters (cut with "…"); None when there is nothing to read.

    An object with a `text` string (speech to text) is that text; any other object or list is
    indented JSON.
    """
    if isinstance(value, Mapping) and isinstance(value.get("text"), str) and value["text"].strip():
        value = value["text"]
    if isinstance(value, str):
        found = value.strip()
    elif value is None or isinstance(value, bool):
        found = ""
    else:
        try:
            found = json.dumps(value, ensure_ascii=False, indent=2)
        except (ValueError, TypeError, RecursionError):
            found = ""
    if not found:
        return None
    return found if len(found) <= limit else found[: limit - 1].rstrip() + "…"


def amount_of(value: Any) -> float | None:
    """A finite, non-negative number from a number or a numeric string; None otherwise."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):  # not a number, or an integer too large for a float
        return None
    return number if math.isfinite(number) and number >= 0 else None
