"""Starting generations: what a person asked for (`GenerationRequest`), the models Slack offers
(`Catalog`), checking a request against its model, and kie.ai's request body for it.

Everything here is pure: no I/O. `KieClient.submit` sends the body.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from bot.kie.media import NOUNS, Media, media_of_model
from bot.kie.products import model_name

SubmitProduct = Literal["veo", "runway", "market", "mj"]
ImageUse = Literal["none", "optional", "required"]
#: Midjourney's follow-ups on a grid: a picture upscaled, or varied.
MjAction = Literal["upscale", "vary"]
MJ_ACTIONS: tuple[MjAction, ...] = ("upscale", "vary")
#: A Midjourney grid has four pictures; kie.ai numbers them 0 to 3 (`imageIndex`).
MJ_PICTURES = 4

#: Every option the `/kie new` form offers; each model takes some of them.
DURATIONS: tuple[int, ...] = (5, 8, 10, 15)
ASPECT_RATIOS: tuple[str, ...] = ("16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3", "21:9", "Auto")
QUALITIES: tuple[str, ...] = ("720p", "1080p")
#: The longest prompt any model takes here (Slack's text inputs stop at 3000 too).
PROMPT_MAX = 3000
IMAGE_URL_MAX = 2000
#: Longer Market model ids cannot be offered: a Slack option value holds 150 characters.
MARKET_MODEL_MAX = 140


class RequestError(ValueError):
    """A request that cannot be sent as it is; `field` is the form field to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model Slack can start: which kie.ai product and model, and the options it takes.

    `key` is the value of its option in the `/kie new` form. Empty option tuples mean the model
    takes no such option. `image_field` is where a Market model takes its image URL
    (`image_urls` is a list), `aspect_field` its aspect ratio. `extra` is added to a Market
    model's `input` as it is.
    """

    key: str
    product: SubmitProduct
    model: str | None
    label: str
    durations: tuple[int, ...] = ()
    aspect_ratios: tuple[str, ...] = ()
    qualities: tuple[str, ...] = ()
    image: ImageUse = "optional"
    image_field: str = "image_urls"
    aspect_field: str = "aspect_ratio"
    prompt_max: int = PROMPT_MAX
    default_duration: int | None = None
    default_aspect_ratio: str | None = None
    default_quality: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def media(self) -> Media | None:
        """What the model makes: Veo and Runway videos; a Market model as its id says (None
        when the id does not say)."""
        return "video" if self.product in ("veo", "runway") else media_of_model(self.model)


VEO_FAST = ModelSpec(
    key="veo:veo3_fast",
    product="veo",
    model="veo3_fast",
    label="Veo 3.1 Fast",
    durations=(8,),
    aspect_ratios=("16:9", "9:16", "Auto"),
    default_aspect_ratio="16:9",
)
VEO_QUALITY = replace(VEO_FAST, key="veo:veo3", model="veo3", label="Veo 3.1 Quality")
RUNWAY = ModelSpec(
    key="runway",
    product="runway",
    model=None,
    label="Runway",
    durations=(5, 10),
    aspect_ratios=("16:9", "4:3", "1:1", "3:4", "9:16"),
    qualities=("720p", "1080p"),
    prompt_max=1800,
    default_duration=5,
    default_aspect_ratio="16:9",
    default_quality="720p",
)
#: Market models offered without configuration (KIE_MARKET_MODELS adds more).
BUILT_IN_MARKET: tuple[ModelSpec, ...] = (
    ModelSpec(
        key="market:kling-2.6/text-to-video",
        product="market",
        model="kling-2.6/text-to-video",
        label="Kling 2.6 text to video",
        durations=(5, 10),
        aspect_ratios=("16:9", "9:16", "1:1"),
        image="none",
        prompt_max=2500,
        default_duration=5,
        default_aspect_ratio="16:9",
        extra={"sound": False},
    ),
    ModelSpec(
        key="market:kling-2.6/image-to-video",
        product="market",
        model="kling-2.6/image-to-video",
        label="Kling 2.6 image to video",
        durations=(5, 10),
        image="required",
        prompt_max=2500,
        default_duration=5,
        extra={"sound": False},
    ),
    ModelSpec(
        key="market:wan/2-6-text-to-video",
        product="market",
        model="wan/2-6-text-to-video",
        label="Wan 2.6 text to video",
        durations=(5, 10, 15),
        qualities=("720p", "1080p"),
        image="none",
        default_duration=5,
        default_quality="720p",
    ),
    # Images (kie-api README §6h, §6e, §6f): each takes a prompt; kie.ai's default where no
    # option is chosen.
    ModelSpec(
        key="market:google/nano-banana",
        product="market",
        model="google/nano-banana",
        label="Nano Banana",
        aspect_ratios=("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "21:9"),
        image="none",
        prompt_max=PROMPT_MAX,
    ),
    ModelSpec(
        key="market:bytedance/seedream-v4-text-to-image",
        product="market",
        model="bytedance/seedream-v4-text-to-image",
        label="Seedream 4.0",
        image="none",
    ),
    ModelSpec(
        key="market:4o-image-api",
        product="market",
        model="4o-image-api",
        label="GPT-4o Image",
        aspect_ratios=("1:1", "3:2", "2:3"),
        aspect_field="size",
        image="none",
        default_aspect_ratio="1:1",
    ),
    ModelSpec(
        key="market:flux1-kontext",
        product="market",
        model="flux1-kontext",
        label="Flux Kontext",
        aspect_ratios=("21:9", "16:9", "4:3", "1:1", "3:4", "9:16"),
        image_field="input_image",
    ),
)


def market_spec(model_id: str) -> ModelSpec:
    """A Market model the bot knows nothing about: every option is passed as chosen, under the
    names most Market models use (`duration`, `aspect_ratio`, `resolution`, `image_urls`)."""
    return ModelSpec(
        key=f"market:{model_id}",
        product="market",
        model=model_id,
        label=model_name(model_id),
        durations=DURATIONS,
        aspect_ratios=ASPECT_RATIOS,
        qualities=QUALITIES,
    )


@dataclass(frozen=True, slots=True)
class Catalog:
    """The models Slack offers, in the order the form lists them."""

    models: tuple[ModelSpec, ...]

    @classmethod
    def build(cls, extra_market_models: Iterable[str] = ()) -> Catalog:
        """Veo, Runway, the built-in Market models, then the configured ones not yet listed."""
        models = [VEO_FAST, VEO_QUALITY, RUNWAY, *BUILT_IN_MARKET]
        known = {spec.key for spec in models}
        for model_id in extra_market_models:
            spec = market_spec(model_id)
            if spec.key not in known:
                known.add(spec.key)
                models.append(spec)
        return cls(tuple(models))

    def get(self, key: str) -> ModelSpec | None:
        return next((spec for spec in self.models if spec.key == key), None)

    def for_request(self, request: GenerationRequest) -> ModelSpec:
        """The spec a stored request was made with (a generic one for a model no longer listed)."""
        if request.product == "runway":
            return RUNWAY
        if request.product == "veo":
            return VEO_QUALITY if request.model == "veo3" else VEO_FAST
        return self.get(f"market:{request.model}") or market_spec(request.model or "")


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """What a person asked kie.ai to make, as stored with the task (for `Again`).

    `model` is Veo's model (`veo3_fast`, `veo3`) or the Market model id; Runway has none.
    `extends` is the task whose result this request works on: the Veo video it continues
    (kie.ai's extend), or the Midjourney grid whose picture `index` (0 to 3) `action` upscales or
    varies; the prompt of such a follow-up is the grid's, and may be empty.
    """

    product: SubmitProduct
    prompt: str
    model: str | None = None
    image_url: str | None = None
    duration: int | None = None
    aspect_ratio: str | None = None
    quality: str | None = None
    extends: str | None = None
    action: MjAction | None = None
    index: int | None = None

    def to_json(self) -> str:
        return json.dumps(
            {key: value for key, value in asdict(self).items() if value is not None},
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str | None) -> GenerationRequest | None:
        """The request stored as `text`, or None when it is missing or cannot be read."""
        if not text:
            return None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            return None
        if not isinstance(data, dict) or data.get("product") not in _PRODUCTS:
            return None
        prompt = data.get("prompt")
        follow_up = data["product"] == "mj"
        if not isinstance(prompt, str) or not (prompt.strip() or follow_up):
            return None
        texts = {key: data.get(key) for key in _TEXT_FIELDS}
        if any(value is not None and not isinstance(value, str) for value in texts.values()):
            return None
        numbers = {key: data.get(key) for key in ("duration", "index")}
        if any(value is not None and _not_int(value) for value in numbers.values()):
            return None
        action = _mj_action(texts["action"])
        if follow_up:
            if not _mj_follow_up(texts["extends"], action, numbers["index"]):
                return None
        elif texts["action"] is not None or numbers["index"] is not None:
            return None
        return cls(
            product=data["product"],
            prompt=prompt,
            model=texts["model"],
            image_url=texts["image_url"],
            duration=numbers["duration"],
            aspect_ratio=texts["aspect_ratio"],
            quality=texts["quality"],
            extends=texts["extends"],
            action=action,
            index=numbers["index"],
        )

    @property
    def label(self) -> str:
        """The model in words: "Veo 3.1 Fast", "Runway", "Nano Banana", "Midjourney"."""
        if self.product == "veo":
            return "Veo 3.1 Quality" if self.model == "veo3" else "Veo 3.1 Fast"
        if self.product == "runway":
            return "Runway"
        if self.product == "mj":
            return "Midjourney"
        built_in = next((spec for spec in BUILT_IN_MARKET if spec.model == self.model), None)
        return built_in.label if built_in else model_name(self.model or "")

    @property
    def media(self) -> Media | None:
        """What the request makes: Veo and Runway videos, Midjourney's follow-ups images, a
        Market model what its id says (None when the id does not say)."""
        if self.product == "mj":
            return "image"
        return "video" if self.product in ("veo", "runway") else media_of_model(self.model)

    @property
    def noun(self) -> str:
        """What the request makes, in one word: "video", "image", "track" or "generation"."""
        return NOUNS[self.media][0] if self.media else "generation"

    def summary(self) -> str:
        """The model and its options in one short line: "Runway, 5 s, 720p, 16:9"."""
        if self.action is not None:
            what = "upscale" if self.action == "upscale" else "variations"
            return f"{self.label} {what} of picture {(self.index or 0) + 1} of {self.extends}"
        if self.extends:
            return f"{self.label} extension of {self.extends}"
        label = self.label
        if self.media in ("image", "audio") and self.noun not in label.lower():
            label = f"{label} {self.noun}"
        parts = [label]
        if self.duration:
            parts.append(f"{self.duration} s")
        if self.quality:
            parts.append(self.quality)
        if self.aspect_ratio:
            parts.append(self.aspect_ratio)
        if self.image_url:
            parts.append("from an image")
        return ", ".join(parts)


_PRODUCTS: tuple[SubmitProduct, ...] = ("veo", "runway", "market", "mj")
_TEXT_FIELDS = ("model", "image_url", "aspect_ratio", "quality", "extends", "action")


def _not_int(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)


def _mj_action(value: Any) -> MjAction | None:
    return next((action for action in MJ_ACTIONS if action == value), None)


def _mj_follow_up(grid: str | None, action: MjAction | None, index: int | None) -> bool:
    """Whether a stored Midjourney request names its grid, an action and a picture (0 to 3)."""
    return bool(grid) and action is not None and index is not None and 0 <= index < MJ_PICTURES


def mj_request(grid: str, prompt: str | None, action: MjAction, index: int) -> GenerationRequest:
    """A request to upscale or vary picture `index` (0 to 3, as kie.ai's schema numbers them) of the
    Midjourney grid task `grid`."""
    if action not in MJ_ACTIONS or not 0 <= index < MJ_PICTURES:
        raise RequestError("index", f"A Midjourney grid has pictures 1 to {MJ_PICTURES}.")
    return GenerationRequest(
        product="mj", prompt=prompt or "", extends=grid, action=action, index=index
    )


def clean_prompt(prompt: str, limit: int = PROMPT_MAX) -> str:
    """The prompt stripped; raise `RequestError` when it is empty or longer than `limit`."""
    cleaned = prompt.strip()
    if not cleaned:
        raise RequestError("prompt", "Describe what to make: the prompt is empty.")
    if len(cleaned) > limit:
        raise RequestError(
            "prompt", f"The prompt is {len(cleaned)} characters; this model takes at most {limit}."
        )
    if any(not ch.isprintable() and ch not in "\n\t" for ch in cleaned):
        raise RequestError("prompt", "The prompt has control characters; type it again as text.")
    return cleaned


def clean_image_url(value: str | None) -> str | None:
    """An image URL kie.ai can fetch (https, a host, no spaces), None when empty."""
    if value is None or not value.strip():
        return None
    url = value.strip()
    if url.startswith("<") and url.endswith(">"):  # Slack's link markup: <https://…|label>
        url = url[1:-1].split("|", 1)[0]
    problem = None
    if len(url) > IMAGE_URL_MAX:
        problem = f"The image URL is longer than {IMAGE_URL_MAX} characters."
    elif any(ch.isspace() or not ch.isprintable() for ch in url):
        problem = "The image URL has spaces in it; paste the address alone."
    else:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            problem = "The image URL must start with https:// and name a host kie.ai can reach."
    if problem:
        raise RequestError("image", problem)
    return url


def build_request(
    spec: ModelSpec,
    prompt: str,
    *,
    image_url: str | None = None,
    duration: int | None = None,
    aspect_ratio: str | None = None,
    quality: str | None = None,
) -> GenerationRequest:
    """A request for `spec` with the chosen options (the model's defaults for those not chosen).

    Raises `RequestError` naming the field of the first problem: an empty or too long prompt, an
    image URL that is not https, or an option the model does not take.
    """
    text = clean_prompt(prompt, spec.prompt_max)
    image = clean_image_url(image_url)
    if image and spec.image == "none":
        raise RequestError("image", f"{spec.label} starts from text only; leave it empty.")
    if not image and spec.image == "required":
        raise RequestError("image", f"{spec.label} starts from an image: give its https URL.")
    if duration is not None and duration not in spec.durations:
        raise RequestError(
            "duration", _takes(spec, "durations", [f"{d} s" for d in spec.durations])
        )
    if aspect_ratio is not None and aspect_ratio not in spec.aspect_ratios:
        raise RequestError("aspect", _takes(spec, "aspect ratios", list(spec.aspect_ratios)))
    if quality is not None and quality not in spec.qualities:
        raise RequestError("quality", _takes(spec, "qualities", list(spec.qualities)))
    duration = duration if duration is not None else spec.default_duration
    quality = quality if quality is not None else spec.default_quality
    if aspect_ratio is None and not (image and spec.product == "runway"):
        aspect_ratio = spec.default_aspect_ratio
    if spec.product == "veo":
        duration = None  # Veo's clips are 8 s; kie.ai has no duration field
    if spec.product == "runway" and duration == 10 and quality == "1080p":
        raise RequestError("quality", "Runway makes 10-second videos in 720p only.")
    return GenerationRequest(
        product=spec.product,
        prompt=text,
        model=spec.model,
        image_url=image,
        duration=duration,
        aspect_ratio=aspect_ratio,
        quality=quality,
    )


def _takes(spec: ModelSpec, what: str, values: list[str]) -> str:
    if not values:
        return f"{spec.label} has no choice of {what}; leave it empty."
    return f"{spec.label} takes these {what}: {', '.join(values)}."


def extend_request(
    task_id: str, prompt: str, original: GenerationRequest | None
) -> GenerationRequest:
    """A request to continue the video of Veo task `task_id` as `prompt` says (kie.ai's extend).

    The extension uses the original's model when it is known (Quality stays Quality).
    """
    model = original.model if original is not None and original.product == "veo" else None
    return GenerationRequest(
        product="veo",
        prompt=clean_prompt(prompt),
        model=model or "veo3_fast",
        extends=task_id,
    )


def request_body(request: GenerationRequest, callback_url: str) -> tuple[str, dict[str, Any]]:
    """kie.ai's endpoint and JSON body for `request`, with `callback_url` as its `callBackUrl`."""
    if request.product == "mj":  # kie-api README §6d.2: imageIndex 0 to 3, for Vary too
        path = "generateUpscale" if request.action == "upscale" else "generateVary"
        return f"/api/v1/mj/{path}", {
            "taskId": request.extends,
            "imageIndex": request.index,
            "callBackUrl": callback_url,
        }
    if request.extends:
        return "/api/v1/veo/extend", {
            "taskId": request.extends,
            "prompt": request.prompt,
            "model": "quality" if request.model == "veo3" else "fast",
            "callBackUrl": callback_url,
        }
    if request.product == "veo":
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "model": request.model or "veo3_fast",
            "aspect_ratio": request.aspect_ratio or "16:9",
            "callBackUrl": callback_url,
        }
        if request.image_url:
            body["imageUrls"] = [request.image_url]
        return "/api/v1/veo/generate", body
    if request.product == "runway":
        body = {
            "prompt": request.prompt,
            "duration": request.duration or 5,
            "quality": request.quality or "720p",
            "waterMark": "",
            "callBackUrl": callback_url,
        }
        if request.image_url:
            body["imageUrl"] = request.image_url
        else:
            body["aspectRatio"] = request.aspect_ratio or "16:9"
        return "/api/v1/runway/generate", body
    return "/api/v1/jobs/createTask", {
        "model": request.model,
        "callBackUrl": callback_url,
        "input": market_input(request),
    }


def market_input(request: GenerationRequest) -> dict[str, Any]:
    """The `input` of a Market `createTask`: the prompt and the options the model takes."""
    spec = Catalog.build().for_request(request)
    data: dict[str, Any] = {"prompt": request.prompt}
    if request.image_url:
        field_name = spec.image_field
        data[field_name] = [request.image_url] if field_name.endswith("s") else request.image_url
    if request.duration is not None:
        data["duration"] = str(request.duration)
    if request.aspect_ratio is not None:
        data[spec.aspect_field] = request.aspect_ratio
    if request.quality is not None:
        data["resolution"] = request.quality
    data.update(spec.extra)
    return data
