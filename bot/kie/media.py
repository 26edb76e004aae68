"""What a result is: a video, an image or audio.

kie.ai's bodies carry no media-type field. The kind is decided, in this order, by what the
parser knew (the product, Midjourney's task type), by the Market model id, and else by the
result URL's file extension (kie-api README §6h.4).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from typing import Literal
from urllib.parse import urlsplit

Media = Literal["video", "image", "audio"]

#: What a kind is called in Slack, singular and plural.
NOUNS: dict[Media, tuple[str, str]] = {
    "video": ("video", "videos"),
    "image": ("image", "images"),
    "audio": ("track", "tracks"),
}

_EXTENSIONS: dict[str, Media] = {
    **dict.fromkeys((".mp4", ".mov", ".webm", ".m4v", ".mkv"), "video"),
    **dict.fromkeys((".png", ".jpg", ".jpeg", ".webp", ".gif", ".jfif", ".bmp"), "image"),
    **dict.fromkeys((".mp3", ".wav", ".m4a", ".ogg", ".aac", ".flac", ".opus"), "audio"),
}

#: Market model id prefixes, longest first within a kind; the first that matches decides.
_MODEL_PREFIXES: tuple[tuple[str, Media], ...] = (
    ("elevenlabs/", "audio"),
    ("ai-music-api/", "audio"),
    ("suno", "audio"),
    ("google/nano-banana", "image"),
    ("nano-banana", "image"),
    ("bytedance/seedream", "image"),
    ("seedream", "image"),
    ("flux-2/", "image"),
    ("flux1-kontext", "image"),
    ("flux-kontext", "image"),
    ("gpt-image", "image"),
    ("4o-image", "image"),
    ("ideogram/", "image"),
    ("qwen", "image"),
    ("z-image", "image"),
    ("topaz/image", "image"),
    ("recraft/", "image"),
    ("google/imagen", "image"),
    ("imagen", "image"),
    ("midjourney", "image"),
)


def media_of_url(url: str) -> Media | None:
    """The kind a URL's path extension names, or None."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return None
    return _EXTENSIONS.get(posixpath.splitext(path)[1].lower())


def media_of_model(model: str | None) -> Media | None:
    """The kind a Market model id names, or None when the id does not say.

    Ids with "image" or "video" in their last part (`grok-imagine/text-to-image`) say it there;
    otherwise known prefixes decide. Video models are not listed: video is what is left.
    """
    if not model:
        return None
    lowered = model.lower()
    last = lowered.rsplit("/", 1)[-1]
    if "to-image" in last or last.endswith("-image") or "image-edit" in last:
        return "image"
    if "video" in last:
        return "video"
    if "speech" in last or "sound" in last or "dialogue" in last or "audio" in last:
        return "audio"
    for prefix, kind in _MODEL_PREFIXES:
        if lowered.startswith(prefix):
            return kind
    return None


def media_kind(known: str | None, model: str | None, urls: Iterable[str]) -> Media:
    """The kind of a task's results: `known` (what the parser knew) when it is one, else the
    model's, else the first URL extension that names one, else video."""
    if known in NOUNS:
        return known  # type: ignore[return-value]
    found = media_of_model(model)
    if found is not None:
        return found
    for url in urls:
        found = media_of_url(url)
        if found is not None:
            return found
    return "video"


def noun(kind: Media, count: int = 1) -> str:
    """The word for `count` results of `kind`: "video", "2 images", "track"."""
    one, many = NOUNS[kind]
    if count == 1:
        return one
    return f"{count} {many}"


def track_length(seconds: float) -> str:
    """A track's length as players show it: 3:07, 1:02:05."""
    hours, rest = divmod(round(max(seconds, 0)), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
