"""Explain a failed kie.ai task: the provider's code and message to a heading and a next step.

The headings are the public contract in DESIGN.md ("Slack messages"). Messages are matched as
lower-cased text by ordered rules, most specific first; the code is the fallback when no rule
matches. Every wording documented in kie-api/README.md has a rule here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CONTENT_MODERATION = "Content moderation"
PLAN_OR_QUOTA = "Plan or quota limit"
CONCURRENCY = "Concurrency limit"
INPUT_REJECTED = "Input rejected"
SOURCE_DOWNLOAD = "Source download failed"
PROVIDER_ERROR = "Provider error"
FOUR_K_UNAVAILABLE = "4K unavailable"
OUT_OF_CREDITS = "Out of credits"
UNKNOWN = "Unknown failure"

#: Every heading a failure can get, in the order DESIGN.md lists them.
HEADINGS: tuple[str, ...] = (
    CONTENT_MODERATION,
    PLAN_OR_QUOTA,
    CONCURRENCY,
    INPUT_REJECTED,
    SOURCE_DOWNLOAD,
    PROVIDER_ERROR,
    FOUR_K_UNAVAILABLE,
    OUT_OF_CREDITS,
    UNKNOWN,
)


@dataclass(frozen=True, slots=True)
class Explanation:
    """What a failure means for the user (`heading`) and what to do about it (`next_step`)."""

    heading: str
    next_step: str


_MODERATION = Explanation(
    CONTENT_MODERATION,
    "Rephrase the prompt or replace the image or video, then submit a new task.",
)
_COPYRIGHT = Explanation(
    CONTENT_MODERATION,
    "Use lyrics or audio of your own (kie.ai refuses copyrighted work), then submit a new task.",
)
_CREDITS = Explanation(OUT_OF_CREDITS, "Top up credits at https://kie.ai/billing and submit again.")
_KEY_LIMIT = Explanation(
    PLAN_OR_QUOTA,
    "The API key has reached its usage cap: raise it at https://kie.ai/api-key, or wait until it "
    "resets.",
)
_MEMBERSHIP = Explanation(
    PLAN_OR_QUOTA,
    "Upgrade the membership or subscription that this model needs, or try again later.",
)
_HD_TRIAL = Explanation(
    PLAN_OR_QUOTA,
    "Submit again in 720p, or subscribe to a plan that includes high-resolution generation.",
)
_CONCURRENCY = Explanation(
    CONCURRENCY,
    "Wait for a running generation to finish, or ask kie.ai support for a higher limit, "
    "then retry.",
)
_RATE_LIMIT = Explanation(
    CONCURRENCY,
    "Wait a minute and retry: kie.ai accepts about 20 new generations per 10 seconds per account.",
)
_FOUR_K = Explanation(
    FOUR_K_UNAVAILABLE,
    "Keep the original (1080p) video, or request 4K for a different video.",
)
_SOURCE = Explanation(
    SOURCE_DOWNLOAD,
    "Make sure the source URL is public and reachable (no login, IP allow-list or expired link), "
    "then submit a new task.",
)
_SOURCE_AUDIO = Explanation(
    SOURCE_DOWNLOAD,
    "Check that the Suno track still exists and its audio is downloadable, then submit again.",
)
_IMAGE_FORMAT = Explanation(
    INPUT_REJECTED, "Convert the image to JPEG or PNG, then submit a new task."
)
_IMAGE_SIZE = Explanation(
    INPUT_REJECTED,
    "Resize or crop the image to a common size and aspect ratio (such as 1280x720), "
    "then submit again.",
)
_IMAGE_TOO_LARGE = Explanation(
    INPUT_REJECTED, "Use a smaller image (under 25 MB), then submit a new task."
)
_IMAGE_INFO = Explanation(
    INPUT_REJECTED,
    "The image could not be read: check that its URL opens a valid JPEG or PNG, then submit again.",
)
_PROMPT_LENGTH = Explanation(
    INPUT_REJECTED,
    "Shorten the prompt (and negative prompt) to under 2048 characters, then submit again.",
)
_ENGLISH = Explanation(INPUT_REJECTED, "Write the prompt in English, then submit again.")
_PARAMETERS = Explanation(
    INPUT_REJECTED,
    "Check the request parameters against the kie.ai API docs, fix them, and submit again.",
)
_UPLOAD = Explanation(
    INPUT_REJECTED,
    "The upload did not go through: upload the file again and submit a new task.",
)
_AUDIO_FORMAT = Explanation(
    INPUT_REJECTED, "Use a track in a supported audio format, then submit again."
)
_PROVIDER = Explanation(
    PROVIDER_ERROR,
    "Submit the task again in a few minutes; if it keeps failing, contact kie.ai support "
    "with the task id.",
)
_REFUNDED = Explanation(
    PROVIDER_ERROR,
    "Submit the task again (kie.ai has refunded its credits); if it keeps failing, contact "
    "kie.ai support with the task id.",
)
_QUEUE_FULL = Explanation(
    PROVIDER_ERROR,
    "Submit the task again in a few minutes: kie.ai's queue for this model is full.",
)
_MAINTENANCE = Explanation(
    PROVIDER_ERROR,
    "Wait until kie.ai finishes its maintenance, then submit the task again.",
)
_UNKNOWN = Explanation(
    UNKNOWN,
    "Read the provider's message above; submit again, or contact kie.ai support with the task id "
    "if it keeps happening.",
)

#: Ordered (needles, explanation): the first rule with any needle in the lower-cased message wins.
_RULES: tuple[tuple[tuple[str, ...], Explanation], ...] = (
    (("4k version", "4k video is unavailable"), _FOUR_K),
    (
        (
            "content polic",
            "violating",
            "flagged",
            "content moderation",
            "ai moderator",
            "inappropriate content",
            "nsfw",
            "unsafe image",
            "minor upload",
            "prominent people",
            "sensitive word",
            "sensitive_word",
        ),
        _MODERATION,
    ),
    (("copyright", "existing work", "matches existing"), _COPYRIGHT),
    (("insufficient credits", "not enough credits", "credits insufficient"), _CREDITS),
    (("sub-key", "key usage"), _KEY_LIMIT),
    (("free trial", "hd quality"), _HD_TRIAL),
    (("membership", "subscribe", "subscription"), _MEMBERSHIP),
    (("concurrent",), _CONCURRENCY),
    (("rate limit", "request limit"), _RATE_LIMIT),
    (("download source audio", "source audio"), _SOURCE_AUDIO),
    (
        ("failed to fetch the image", "failed to fetch the video", "failed to fetch", "download"),
        _SOURCE,
    ),
    (("image format", "invalid_image_format"), _IMAGE_FORMAT),
    (("image size exceeds", "image too large", "image is too large"), _IMAGE_TOO_LARGE),
    (
        (
            "get image info",
            "image info failed",
            "process the provided image",
            "unprocessable image",
        ),
        _IMAGE_INFO,
    ),
    (("width or height",), _IMAGE_SIZE),
    (("cannot exceed", "too long"), _PROMPT_LENGTH),
    (("only english", "english prompts"), _ENGLISH),
    (
        (
            "parameters are incorrect",
            "request parameters",
            "invalid parameter",
            "out of range",
            "not within the range of allowed",
        ),
        _PARAMETERS,
    ),
    (("upload failed",), _UPLOAD),
    (("audio format",), _AUDIO_FORMAT),
    (("maintenance", "service unavailable"), _MAINTENANCE),
    (("refunded",), _REFUNDED),
    (("full queue", "queue is full", "queue full"), _QUEUE_FULL),
    (
        (
            "internal error",
            "timeout",
            "generation failed",
            "server error",
            "task failed",
            "failed to generate",
            "failed to edit",
            "user token",
            "try again later",
            "生成失败",  # "generation failed" in kie.ai's Chinese copies
        ),
        _PROVIDER,
    ),
)

_CODES: dict[int, Explanation] = {
    402: _CREDITS,
    408: _PROVIDER,  # Market and Suno music: upstream returned nothing for over 10 minutes
    433: _KEY_LIMIT,  # Market: the sub-key's usage exceeded its limit
    451: _SOURCE,
    455: _MAINTENANCE,
    500: _PROVIDER,
    501: _PROVIDER,
    531: _REFUNDED,  # Suno music: generation failed, credits refunded
    550: _QUEUE_FULL,  # 4o Image: rejected, the queue is full
}

#: Envelope messages that only say "it failed" (the Market jobs API's failure callback): the code
#: decides, as for an empty message.
_SAYS_NOTHING = frozenset({"playground task failed", "playground task failed."})

#: Veo's 422 fallback message wraps the original rejection: "rejected by Flow(<message>)".
_FLOW = re.compile(r"rejected by flow\((?P<inner>.*)\)", re.IGNORECASE | re.DOTALL)


def _by_message(message: str) -> Explanation | None:
    """The first rule whose needle occurs in `message`, or None."""
    lowered = " ".join(message.lower().split())
    if not lowered or lowered in _SAYS_NOTHING:
        return None
    flow = _FLOW.search(lowered)
    if flow:
        # Judge by the original rejection only: the wrapper's own words mean nothing.
        return _by_message(flow.group("inner"))
    for needles, explanation in _RULES:
        if any(needle in lowered for needle in needles):
            return explanation
    return None


def explain_failure(product: str, code: int | None, message: str) -> Explanation:
    """Explain a failure of `product` from the provider's `code` and `message`.

    The message decides first; then a Veo 4K upgrade failing with 500 is "4K unavailable" (the
    only failure kie.ai documents for it); then the code; anything else is "Unknown failure".
    """
    found = _by_message(message or "")
    if found is not None:
        return found
    if product == "veo-4k" and code == 500:
        return _FOUR_K
    if code is not None and code in _CODES:
        return _CODES[code]
    return _UNKNOWN
