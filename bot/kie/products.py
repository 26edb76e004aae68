"""The product registry: one entry per kie.ai product.

An entry says how to find the task id in a callback, how to read the callback and the poll answer
into one `TaskUpdate`, which endpoint polls the task, and what to call the product in Slack.
Adding a product is one entry here and its tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.kie.media import Media
from bot.kie.payload import (
    amount_of,
    as_mapping,
    code_of,
    first_text,
    json_value,
    message_of,
    prompt_of,
    text,
    url_list,
)
from bot.task import Source, State, TaskUpdate

#: kie.ai keeps generated media this long after the result.
RESULT_RETENTION_DAYS = 14
#: Longer "task ids" are refused: kie.ai's are UUIDs, 32 hex digits or short words.
MAX_TASK_ID = 256
#: Longer Market model ids are not kept: kie.ai's are short (`kling-2.6/text-to-video`).
MAX_MODEL_ID = 200


class PayloadError(ValueError):
    """A body that cannot be read as this product's callback or poll answer."""


Reader = Callable[[str, Mapping[str, Any], Mapping[str, Any]], TaskUpdate]


@dataclass(frozen=True, slots=True)
class Product:
    """One kie.ai product.

    `family` groups products that share task ids and a poll endpoint (a Veo task and its 4K
    upgrade are one task). `task_id_fields` are the keys under `data` that hold the task id, in the
    order they are tried, in callbacks and in poll answers alike. `result_days` is how long the
    result links are known to last (Market links may expire within a day).
    """

    slug: str
    label: str
    family: str
    task_id_fields: tuple[str, ...]
    poll_path: str
    read_callback: Reader
    read_poll: Reader
    result_days: int = RESULT_RETENTION_DAYS
    #: What its results are when the product alone says (None: the model, task type or URL).
    media: Media | None = None

    def callback_task_id(self, body: Any) -> str:
        """The task id a callback body names, or "" when it names none."""
        return first_text(as_mapping(as_mapping(body).get("data")), *self.task_id_fields)

    def parse_callback(self, body: Any) -> TaskUpdate:
        """Read a callback body; raise `PayloadError` when it is no callback of this product."""
        if not isinstance(body, Mapping):
            raise PayloadError("the body is not a JSON object")
        data = as_mapping(body.get("data"))
        task_id = first_text(data, *self.task_id_fields)
        if not task_id:
            fields = " or ".join(f"data.{name}" for name in self.task_id_fields)
            raise PayloadError(f"no task id: expected a non-empty {fields}")
        if len(task_id) > MAX_TASK_ID or not task_id.isprintable():
            raise PayloadError(
                f"the task id is not a kie.ai task id (over {MAX_TASK_ID} characters "
                "or control characters)"
            )
        return self.read_callback(task_id, body, data)

    def parse_poll(self, body: Any, task_id: str) -> TaskUpdate:
        """Read a successful poll answer (envelope `code` 200) for `task_id`."""
        if not isinstance(body, Mapping):
            raise PayloadError("the answer is not a JSON object")
        data = body.get("data")
        if not isinstance(data, Mapping):
            raise PayloadError("the answer has no task record")
        return self.read_poll(first_text(data, *self.task_id_fields) or task_id, body, data)


def _callback_update(
    product: str,
    task_id: str,
    body: Mapping[str, Any],
    videos: Any,
    images: Any = None,
    prompt: Any = None,
) -> TaskUpdate:
    """The common rule of every callback: `code` 200 is success, anything else a failure."""
    code = code_of(body.get("code"))
    succeeded = code == 200
    return TaskUpdate(
        product=product,
        task_id=task_id,
        state=State.SUCCEEDED if succeeded else State.FAILED,
        result_urls=url_list(videos) if succeeded else (),
        image_urls=url_list(images) if succeeded else (),
        code=code,
        message=message_of(body),
        prompt=prompt_of(prompt),
        source="callback",
        raw=body,
    )


def _poll_update(
    product: str,
    task_id: str,
    body: Mapping[str, Any],
    state: State,
    *,
    videos: Any = None,
    images: Any = None,
    code: Any = None,
    message: Any = None,
    prompt: Any = None,
) -> TaskUpdate:
    return TaskUpdate(
        product=product,
        task_id=task_id,
        state=state,
        result_urls=url_list(videos) if state is State.SUCCEEDED else (),
        image_urls=url_list(images) if state is State.SUCCEEDED else (),
        code=200 if state is State.SUCCEEDED else code_of(code),
        message=text(message),
        prompt=prompt if isinstance(prompt, str) and prompt else None,
        source="poll",
        raw=body,
    )


# --- Veo 3.1 and its 4K upgrade -------------------------------------------------------------


def _veo_callback(task_id: str, body: Mapping[str, Any], data: Mapping[str, Any]) -> TaskUpdate:
    info = as_mapping(data.get("info"))
    return _callback_update(
        "veo", task_id, body, info.get("resultUrls"), info.get("imageUrls"), data.get("promptJson")
    )


def _veo_4k_callback(task_id: str, body: Mapping[str, Any], data: Mapping[str, Any]) -> TaskUpdate:
    info = as_mapping(data.get("info"))
    videos = info.get("resultUrls") or data.get("result_urls") or data.get("resultUrls")
    images = info.get("imageUrls") or data.get("image_urls") or data.get("imageUrls")
    return _callback_update("veo-4k", task_id, body, videos, images)


_NUMERIC_FLAGS = {0: State.RUNNING, 1: State.SUCCEEDED, 2: State.FAILED, 3: State.FAILED}


def _flag_reader(product: str, flags: Mapping[int, State]) -> Reader:
    """A poll reader for the record-info endpoints with a numeric `successFlag`."""

    def read(task_id: str, body: Mapping[str, Any], data: Mapping[str, Any]) -> TaskUpdate:
        flag = code_of(data.get("successFlag"))
        state = flags.get(flag, State.RUNNING) if flag is not None else State.RUNNING
        response = as_mapping(data.get("response"))
        return _poll_update(
            product,
            task_id,
            body,
            state,
            videos=response.get("resultUrls"),
            images=response.get("imageUrls"),
            code=data.get("errorCode"),
            message=data.get("errorMessage"),
            prompt=prompt_of(data.get("paramJson")),
        )

    return read


# --- Runway ---------------------------------------------------------------------------------


def _runway_callback(task_id: str, body: Mapping[str, Any], data: Mapping[str, Any]) -> TaskUpdate:
    return _callback_update("runway", task_id, body, data.get("video_url"), data.get("image_url"))


_RUNWAY_STATES = {
    "wait": State.RUNNING,
    "queueing": State.RUNNING,
    "generating": State.RUNNING,
    "success": State.SUCCEEDED,
    "fail": State.FAILED,
}


def _runway_poll(task_id: str, body: Mapping[str, Any], data: Mapping[str, Any]) -> TaskUpdate:
    state = _RUNWAY_STATES.get(text(data.get("state")).lower(), State.RUNNING)
    video = as_mapping(data.get("videoInfo"))
    return _poll_update(
        "runway",
        task_id,
        body,
        state,
        videos=video.get("videoUrl"),
        images=video.get("imageUrl"),
        code=data.get("failCode"),
        message=data.get("failMsg"),
        prompt=text(as_mapping(data.get("generateParam")).get("prompt")),
    )


# --- Luma modify ----------------------------------------------------------------------------


def _luma_callback(task_id: str, body: Mapping[str, Any], data: Mapping[str, Any]) -> TaskUpdate:
    return _callback_update(
        "luma", task_id, body, data.get("resultUrls"), None, data.get("promptJson")
    )


# --- Suno music video -----------------------------------------------------------------------


def _suno_callback(task_id: str, body: Mapping[str, Any], data: Mapping[str, Any]) -> TaskUpdate:
    return _callback_update("suno-mp4", task_id, body, data.get("video_url"))


_SUNO_FLAGS = {
    "PENDING": State.RUNNING,
    "SUCCESS": State.SUCCEEDED,
    "CALLBACK_EXCEPTION": State.SUCCEEDED,  # generated; only the callback failed
    "CREATE_TASK_FAILED": State.FAILED,
    "GENERATE_MP4_FAILED": State.FAILED,
}


def _suno_poll(task_id: str, body: Mapping[str, Any], data: Mapping[str, Any]) -> TaskUpdate:
    state = _SUNO_FLAGS.get(text(data.get("successFlag")).upper(), State.RUNNING)
    video = as_mapping(data.get("response")).get("videoUrl")
    if state is State.SUCCEEDED and not url_list(video):
        state = State.RUNNING  # a success without its video is not done for the user yet
    return _poll_update(
        "suno-mp4",
        task_id,
        body,
        state,
        videos=video,
        code=data.get("errorCode"),
        message=data.get("errorMessage"),
    )


# --- Market models through the jobs API (Kling, Wan, Hailuo, Seedance, Sora 2, …) ------------

_MARKET_STATES = {
    "waiting": State.RUNNING,
    "queuing": State.RUNNING,
    "queueing": State.RUNNING,
    "generating": State.RUNNING,
    "success": State.SUCCEEDED,
    "fail": State.FAILED,
    "failed": State.FAILED,
}


def _market_callback(task_id: str, body: Mapping[str, Any], data: Mapping[str, Any]) -> TaskUpdate:
    state = _MARKET_STATES.get(text(data.get("state")).lower())
    if state is None:  # no state said: the envelope's code decides, as for the other products
        state = State.SUCCEEDED if code_of(body.get("code")) == 200 else State.FAILED
    return _market_update(task_id, body, data, state, "callback")


def _market_poll(task_id: str, body: Mapping[str, Any], data: Mapping[str, Any]) -> TaskUpdate:
    state = _MARKET_STATES.get(text(data.get("state")).lower(), State.RUNNING)
    return _market_update(task_id, body, data, state, "poll")


def _market_update(
    task_id: str,
    body: Mapping[str, Any],
    data: Mapping[str, Any],
    state: State,
    source: Source,
) -> TaskUpdate:
    """A jobs-API record (callback `data` or recordInfo `data`) as a `TaskUpdate`.

    Results are `resultJson.resultUrls` (`resultJson` is JSON text); a failure is `failCode` and
    `failMsg`, else the callback envelope's `code` and `msg`. The prompt is the request's
    `input.prompt` inside `param` (JSON text too).
    """
    param = as_mapping(json_value(data.get("param")))
    code: int | None = None
    message = ""
    if state is State.SUCCEEDED:
        code = 200
        message = message_of(body) if source == "callback" else ""
    elif state is State.FAILED:
        code = code_of(data.get("failCode"))
        message = text(data.get("failMsg"))
        if source == "callback":
            code = code if code is not None else code_of(body.get("code"))
            message = message or message_of(body)
    credits = amount_of(data.get("creditsConsumed"))
    if credits is None:
        credits = amount_of(data.get("consumeCredits"))
    results = as_mapping(json_value(data.get("resultJson"))).get("resultUrls")
    prompt = first_text(as_mapping(param.get("input")), "prompt") or text(param.get("prompt"))
    return TaskUpdate(
        product="market",
        task_id=task_id,
        state=state,
        result_urls=url_list(results) if state is State.SUCCEEDED else (),
        code=code,
        message=message,
        prompt=prompt or None,
        source=source,
        raw=body,
        model=_model_id(first_text(data, "model") or text(param.get("model"))),
        credits=credits,
    )


def _model_id(value: str) -> str | None:
    """A Market model id fit to keep and show: printable and short; None otherwise."""
    if not value or len(value) > MAX_MODEL_ID or not value.isprintable():
        return None
    return value


#: How brands and words in Market model ids are spelled for people; others stay as written.
_MODEL_WORDS = {
    "kling": "Kling",
    "wan": "Wan",
    "hailuo": "Hailuo",
    "seedance": "Seedance",
    "seedream": "Seedream",
    "bytedance": "ByteDance",
    "sora": "Sora",
    "grok": "Grok",
    "imagine": "Imagine",
    "veo": "Veo",
    "veo3": "Veo 3",
    "runway": "Runway",
    "luma": "Luma",
    "minimax": "MiniMax",
    "hunyuan": "Hunyuan",
    "openai": "OpenAI",
    "google": "Google",
    "midjourney": "Midjourney",
    "topaz": "Topaz",
    "pro": "Pro",
    "turbo": "Turbo",
    "lite": "Lite",
    "standard": "Standard",
    "master": "Master",
    "prime": "Prime",
    "fast": "Fast",
    "t2v": "text to video",
    "i2v": "image to video",
    "v2v": "video to video",
}
#: Vendor names left out before a model that has its own name (`bytedance/seedance-2`).
_VENDORS = {"bytedance": ("seedance", "seedream")}
_VERSION_START = re.compile(r"v?\d{1,2}(?:\.\d{1,2})*", re.IGNORECASE)
_VERSION_PART = re.compile(r"\d{1,2}")


def model_name(model_id: str) -> str:
    """A Market model id in words a person reads: `kling-2.6/text-to-video` is "Kling 2.6 text
    to video", `hailuo/2-3-image-to-video-pro` is "Hailuo 2.3 image to video Pro".

    `/`, `-` and `_` become spaces, split version numbers are joined again (`2-6` is 2.6), known
    brands get their spelling, and an unknown first word is capitalised. Any id gives some text.
    """
    cleaned = "".join(ch if ch.isprintable() else " " for ch in model_id)
    words = [word for word in re.split(r"[/\-_\s]+", cleaned) if word]
    if len(words) > 1 and words[1].lower() in _VENDORS.get(words[0].lower(), ()):
        words = words[1:]
    joined: list[str] = []
    for word in words:
        if joined and _VERSION_PART.fullmatch(word) and _VERSION_START.fullmatch(joined[-1]):
            joined[-1] += "." + word
        else:
            joined.append(word)
    spelled = [_MODEL_WORDS.get(word.lower(), word) for word in joined]
    if spelled and spelled[0][:1].islower():
        spelled[0] = spelled[0][:1].upper() + spelled[0][1:]
    return " ".join(spelled) or cleaned.strip()


_VEO_RECORD = "/api/v1/veo/record-info"

PRODUCTS: dict[str, Product] = {
    product.slug: product
    for product in (
        Product(
            slug="veo",
            label="Veo 3.1",
            family="veo",
            task_id_fields=("taskId",),
            poll_path=_VEO_RECORD,
            read_callback=_veo_callback,
            read_poll=_flag_reader("veo", _NUMERIC_FLAGS),
        ),
        Product(
            slug="veo-4k",
            label="Veo 3.1 4K",
            family="veo",
            task_id_fields=("taskId", "task_id"),
            poll_path=_VEO_RECORD,
            read_callback=_veo_4k_callback,
            read_poll=_flag_reader("veo-4k", _NUMERIC_FLAGS),
        ),
        Product(
            slug="runway",
            label="Runway",
            family="runway",
            task_id_fields=("task_id", "taskId", "id"),
            poll_path="/api/v1/runway/record-detail",
            read_callback=_runway_callback,
            read_poll=_runway_poll,
        ),
        Product(
            slug="luma",
            label="Luma Modify",
            family="luma",
            task_id_fields=("taskId",),
            poll_path="/api/v1/modify/record-info",
            read_callback=_luma_callback,
            read_poll=_flag_reader("luma", {**_NUMERIC_FLAGS, 4: State.SUCCEEDED}),
        ),
        Product(
            slug="suno-mp4",
            label="Suno music video",
            family="suno-mp4",
            task_id_fields=("task_id", "taskId"),
            poll_path="/api/v1/mp4/record-info",
            read_callback=_suno_callback,
            read_poll=_suno_poll,
        ),
        Product(
            slug="market",
            label="kie.ai Market",
            family="market",
            task_id_fields=("taskId",),
            poll_path="/api/v1/jobs/recordInfo",
            read_callback=_market_callback,
            read_poll=_market_poll,
            result_days=1,
        ),
    )
}

#: One product per poll endpoint, for looking up a task whose product is not known.
POLL_PRODUCTS: tuple[Product, ...] = tuple(
    {product.family: product for product in reversed(PRODUCTS.values())}.values()
)[::-1]


#: Every task family.
FAMILIES: tuple[str, ...] = tuple(product.family for product in POLL_PRODUCTS)


def product_names() -> str:
    """The product slugs, for messages that list them."""
    return ", ".join(PRODUCTS)


def family_products(family: str) -> tuple[str, ...]:
    """The slugs of the products in `family` (a Veo task comes back as `veo` or `veo-4k`)."""
    return tuple(slug for slug, product in PRODUCTS.items() if product.family == family) or (
        family,
    )
