"""The product registry: one entry per kie.ai product.

An entry says how to find the task id in a callback, how to read the callback and the poll answer
into one `TaskUpdate`, which endpoint polls the task, and what to call the product in Slack.
Adding a product is one entry here and its tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from bot.kie.media import Media, media_of_model, media_of_url
from bot.kie.payload import (
    amount_of,
    as_mapping,
    code_of,
    first_text,
    json_value,
    message_of,
    prompt_of,
    readable_text,
    text,
    url_list,
    urls_in,
)
from bot.task import Source, State, TaskUpdate, Track

#: kie.ai keeps generated media this long after the result.
RESULT_RETENTION_DAYS = 14
#: Longer "task ids" are refused: kie.ai's are UUIDs, 32 hex digits or short words.
MAX_TASK_ID = 256
#: Longer Market model ids are not kept: kie.ai's are short (`kling-2.6/text-to-video`).
MAX_MODEL_ID = 200
#: A result given as text (Market's `resultObject`) is kept up to this many characters.
MAX_RESULT_TEXT = 40_000
#: Longer song titles are cut: Suno's are a few words.
MAX_TITLE = 200


class PayloadError(ValueError):
    """A body that cannot be read as this product's callback or poll answer."""


Reader = Callable[[str, Mapping[str, Any], Mapping[str, Any]], TaskUpdate]


@dataclass(frozen=True, slots=True)
class Product:
    """One kie.ai product.

    `family` groups products that share task ids and a poll endpoint (a Veo task and its 4K
    upgrade are one task). `task_id_fields` are the keys under `data` that hold the task id, in the
    order they are tried, in callbacks and in poll answers alike; `top_task_id_fields` are keys at
    the top level of a callback body, tried first (Runway Aleph keeps its `taskId` there).
    `result_days` is how long the result links are known to last (Market links may expire within
    a day).
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
    top_task_id_fields: tuple[str, ...] = ()

    def callback_task_id(self, body: Any) -> str:
        """The task id a callback body names, or "" when it names none."""
        body = as_mapping(body)
        return first_text(body, *self.top_task_id_fields) or first_text(
            as_mapping(body.get("data")), *self.task_id_fields
        )

    def parse_callback(self, body: Any) -> TaskUpdate:
        """Read a callback body; raise `PayloadError` when it is no callback of this product."""
        if not isinstance(body, Mapping):
            raise PayloadError("the body is not a JSON object")
        task_id = self.callback_task_id(body)
        if not task_id:
            fields = " or ".join(
                [*self.top_task_id_fields, *(f"data.{name}" for name in self.task_id_fields)]
            )
            raise PayloadError(f"no task id: expected a non-empty {fields}")
        if len(task_id) > MAX_TASK_ID or not task_id.isprintable():
            raise PayloadError(
                f"the task id is not a kie.ai task id (over {MAX_TASK_ID} characters "
                "or control characters)"
            )
        return self._known_media(self.read_callback(task_id, body, as_mapping(body.get("data"))))

    def parse_poll(self, body: Any, task_id: str) -> TaskUpdate:
        """Read a successful poll answer (envelope `code` 200) for `task_id`."""
        if not isinstance(body, Mapping):
            raise PayloadError("the answer is not a JSON object")
        data = body.get("data")
        if not isinstance(data, Mapping):
            raise PayloadError("the answer has no task record")
        task_id = first_text(data, *self.task_id_fields) or task_id
        return self._known_media(self.read_poll(task_id, body, data))

    def _known_media(self, update: TaskUpdate) -> TaskUpdate:
        """`update` with the product's media kind when the reader did not say one."""
        if update.media is None and self.media is not None:
            return replace(update, media=self.media)
        return update


def _callback_update(
    product: str,
    task_id: str,
    body: Mapping[str, Any],
    videos: Any,
    images: Any = None,
    prompt: Any = None,
    media: Media | None = None,
) -> TaskUpdate:
    """The common rule of every callback: `code` 200 is success, anything else a failure.

    `videos` are the result files whatever their kind (`media`, when the reader knows it).
    """
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
        media=media,
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
    media: Media | None = None,
) -> TaskUpdate:
    """A poll answer in `state`: results only on success, the code and message otherwise."""
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
        media=media,
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


def _flag_state(data: Mapping[str, Any], flags: Mapping[int, State]) -> State:
    """The state a numeric `successFlag` names; running when it names none."""
    flag = code_of(data.get("successFlag"))
    return flags.get(flag, State.RUNNING) if flag is not None else State.RUNNING


def _record_update(
    product: str,
    task_id: str,
    body: Mapping[str, Any],
    data: Mapping[str, Any],
    state: State,
    *,
    videos: Any,
    images: Any = None,
    media: Media | None = None,
) -> TaskUpdate:
    """A record-info answer: `errorCode` and `errorMessage` say a failure, `paramJson` the
    request (its prompt)."""
    return _poll_update(
        product,
        task_id,
        body,
        state,
        videos=videos,
        images=images,
        code=data.get("errorCode"),
        message=data.get("errorMessage"),
        prompt=prompt_of(data.get("paramJson")),
        media=media,
    )


def _flag_reader(
    product: str,
    flags: Mapping[int, State],
    results: tuple[str, ...] = ("resultUrls",),
    images: tuple[str, ...] = ("imageUrls",),
) -> Reader:
    """A poll reader for the record-info endpoints with a numeric `successFlag`; the result and
    image URLs are the first of the `results` and `images` keys under `response` that has any."""

    def read(task_id: str, body: Mapping[str, Any], data: Mapping[str, Any]) -> TaskUpdate:
        response = as_mapping(data.get("response"))
        return _record_update(
            product,
            task_id,
            body,
            data,
            _flag_state(data, flags),
            videos=_first_urls(response, results),
            images=_first_urls(response, images),
        )

    return read


def _first_urls(data: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[str, ...]:
    """The URLs under the first of `keys` in `data` that holds any."""
    for key in keys:
        urls = url_list(data.get(key))
        if urls:
            return urls
    return ()


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


# --- Runway Aleph ---------------------------------------------------------------------------


def _aleph_callback(task_id: str, body: Mapping[str, Any], data: Mapping[str, Any]) -> TaskUpdate:
    """Aleph's callback: the task id at the top level, snake_case results, `data: null` on error."""
    return _callback_update(
        "aleph",
        task_id,
        body,
        data.get("result_video_url") or data.get("resultVideoUrl"),
        data.get("result_image_url") or data.get("resultImageUrl"),
    )


def _aleph_poll(task_id: str, body: Mapping[str, Any], data: Mapping[str, Any]) -> TaskUpdate:
    """Aleph's record: `successFlag` 0 is both "generating" and "failed"; an error says which."""
    state = _flag_state(data, _NUMERIC_FLAGS)
    if state is State.RUNNING and _says_error(data):
        state = State.FAILED
    response = as_mapping(data.get("response"))
    return _record_update(
        "aleph",
        task_id,
        body,
        data,
        state,
        videos=response.get("resultVideoUrl") or response.get("result_video_url"),
        images=response.get("resultImageUrl") or response.get("result_image_url"),
    )


def _says_error(data: Mapping[str, Any]) -> bool:
    """Whether a record carries an error: a message, or a code other than 0 or 200."""
    return bool(text(data.get("errorMessage"))) or code_of(data.get("errorCode")) not in (
        None,
        0,
        200,
    )


# --- Midjourney -----------------------------------------------------------------------------

#: Midjourney task types whose results are videos; every other type makes images.
_MJ_VIDEO_TYPES = frozenset({"mj_video", "mj_video_hd"})


def _mj_media(task_type: str, urls: tuple[str, ...]) -> Media:
    """What a Midjourney task made: its task type says; else the first URL extension that names
    a kind; else images (Midjourney's default task, `mj_txt2img`)."""
    if task_type:
        return "video" if task_type.lower() in _MJ_VIDEO_TYPES else "image"
    for url in urls:
        found = media_of_url(url)
        if found is not None:
            return found
    return "image"


def _mj_callback(task_id: str, body: Mapping[str, Any], data: Mapping[str, Any]) -> TaskUpdate:
    """Midjourney's callback: URL strings (`[]` on failure); the task type, when it is sent at
    all, inside `promptJson`."""
    request = as_mapping(json_value(data.get("promptJson")))
    task_type = first_text(data, "taskType") or first_text(request, "taskType")
    urls = url_list(data.get("resultUrls"))
    return _callback_update(
        "mj", task_id, body, urls, None, data.get("promptJson"), _mj_media(task_type, urls)
    )


def _mj_poll(task_id: str, body: Mapping[str, Any], data: Mapping[str, Any]) -> TaskUpdate:
    """Midjourney's record: `resultInfoJson.resultUrls` is a list of `{resultUrl}` objects."""
    results = as_mapping(json_value(data.get("resultInfoJson")))
    urls = urls_in(results.get("resultUrls"), "resultUrl")
    request = as_mapping(json_value(data.get("paramJson")))
    task_type = first_text(data, "taskType") or first_text(request, "taskType")
    return _record_update(
        "mj",
        task_id,
        body,
        data,
        _flag_state(data, _NUMERIC_FLAGS),
        videos=urls,
        media=_mj_media(task_type, urls),
    )


# --- GPT-4o Image ---------------------------------------------------------------------------


def _4o_callback(task_id: str, body: Mapping[str, Any], data: Mapping[str, Any]) -> TaskUpdate:
    """4o Image's callback: `data.info.result_urls`, snake_case; `info: null` on failure."""
    info = as_mapping(data.get("info"))
    return _callback_update(
        "4o-image", task_id, body, info.get("result_urls") or info.get("resultUrls")
    )


_4O_STATUSES = {
    "GENERATING": State.RUNNING,
    "SUCCESS": State.SUCCEEDED,
    "CREATE_TASK_FAILED": State.FAILED,
    "GENERATE_FAILED": State.FAILED,
}


def _4o_poll(task_id: str, body: Mapping[str, Any], data: Mapping[str, Any]) -> TaskUpdate:
    """4o Image's record: a `status` word when there is one, else `successFlag` 0/1/2; the
    results camelCase or snake_case under `response`."""
    state = _4O_STATUSES.get(text(data.get("status")).upper()) or _flag_state(data, _NUMERIC_FLAGS)
    response = as_mapping(data.get("response"))
    update = _record_update(
        "4o-image",
        task_id,
        body,
        data,
        state,
        videos=_first_urls(response, ("resultUrls", "result_urls")),
    )
    if update.message.lower() == "null":  # a documented errorMessage, literally
        return replace(update, message="")
    return update


# --- Flux Kontext ---------------------------------------------------------------------------


def _flux_callback(task_id: str, body: Mapping[str, Any], data: Mapping[str, Any]) -> TaskUpdate:
    """Flux Kontext's callback: the result is `info.resultImageUrl`; `originImageUrl` is the
    input image, kept 10 minutes, not a result. Failures keep `info` with empty strings."""
    info = as_mapping(data.get("info"))
    return _callback_update(
        "flux-kontext", task_id, body, info.get("resultImageUrl") or info.get("result_image_url")
    )


# --- Suno music -----------------------------------------------------------------------------

#: How far a Suno task has come, from its callback's `callbackType`: (state, stage).
_SUNO_CALLBACKS: dict[str, tuple[State, str | None]] = {
    "text": (State.RUNNING, "text"),
    "first": (State.RUNNING, "first"),
    "complete": (State.SUCCEEDED, "complete"),
    "error": (State.FAILED, None),
}
#: The same from the poll's `status`.
_SUNO_STATUSES: dict[str, tuple[State, str | None]] = {
    "PENDING": (State.RUNNING, None),
    "TEXT_SUCCESS": (State.RUNNING, "text"),
    "FIRST_SUCCESS": (State.RUNNING, "first"),
    "SUCCESS": (State.SUCCEEDED, "complete"),
    # An error while calling back: the songs the record has were made.
    "CALLBACK_EXCEPTION": (State.SUCCEEDED, "complete"),
    "CREATE_TASK_FAILED": (State.FAILED, None),
    "GENERATE_AUDIO_FAILED": (State.FAILED, None),
    "SENSITIVE_WORD_ERROR": (State.FAILED, None),
}


def _songs(items: Any) -> tuple[Track, ...]:
    """Suno's songs (snake_case in callbacks, camelCase in polls) that have their file: a song
    whose audio is not ready yet (empty `audio_url`) is left out, and so is a repeated one."""
    songs: list[Track] = []
    for item in items if isinstance(items, list) else ():
        song = as_mapping(item)
        url = first_text(song, "audio_url", "audioUrl")
        song_id = first_text(song, "id")
        if not url or any(t.url == url or (song_id and t.id == song_id) for t in songs):
            continue
        songs.append(
            Track(
                id=song_id,
                url=url,
                title=first_text(song, "title")[:MAX_TITLE],
                duration=amount_of(song.get("duration")),
                cover=first_text(song, "image_url", "imageUrl"),
            )
        )
    return tuple(songs)


def _suno_music_update(
    task_id: str,
    body: Mapping[str, Any],
    state: State,
    stage: str | None,
    songs: tuple[Track, ...],
    *,
    code: int | None,
    message: str,
    prompt: str | None,
    source: Source,
) -> TaskUpdate:
    """A Suno music task at `stage`: its ready songs are the results, their covers the images."""
    if state is State.FAILED:
        songs = ()
    return TaskUpdate(
        product="suno",
        task_id=task_id,
        state=state,
        result_urls=tuple(song.url for song in songs),
        image_urls=url_list([song.cover for song in songs]),
        code=code,
        message=message,
        prompt=prompt,
        source=source,
        raw=body,
        media="audio",
        stage=stage,
        tracks=songs,
    )


def _suno_music_callback(
    task_id: str, body: Mapping[str, Any], data: Mapping[str, Any]
) -> TaskUpdate:
    """One of the callbacks of a Suno task (`callbackType` text, first, complete or error).

    A code other than 200 is a failure whatever the type; an unknown type with songs is taken
    as complete (Suno may skip the earlier stages), without songs as still running.
    """
    code = code_of(body.get("code"))
    songs = _songs(data.get("data"))
    kind = text(data.get("callbackType")).lower()
    if code != 200:
        state, stage = State.FAILED, None
    elif kind in _SUNO_CALLBACKS:
        state, stage = _SUNO_CALLBACKS[kind]
    else:
        state, stage = (State.SUCCEEDED, "complete") if songs else (State.RUNNING, None)
    return _suno_music_update(
        task_id,
        body,
        state,
        stage,
        songs,
        code=code,
        message=message_of(body),
        prompt=None,  # the songs' `prompt` is their lyrics, not what was asked
        source="callback",
    )


def _suno_music_poll(task_id: str, body: Mapping[str, Any], data: Mapping[str, Any]) -> TaskUpdate:
    """Suno's record: `status` says the stage, `response.sunoData` the songs (camelCase).

    A success without any song file is not done for the user yet (after a callback failure, it
    is a failure). A failure's message names the status when kie.ai's text does not.
    """
    status = text(data.get("status")).upper()
    response = as_mapping(data.get("response"))
    songs = _songs(response.get("sunoData"))
    state, stage = _SUNO_STATUSES.get(status, (State.RUNNING, None))
    if state is State.SUCCEEDED and not songs:
        # Not done for the user yet; but after an error in the callback nothing more comes.
        state = State.FAILED if status == "CALLBACK_EXCEPTION" else State.RUNNING
        stage = None
    message = first_text(data, "errorMessage") or first_text(response, "errorMessage")
    if state is State.FAILED and status and status not in message:
        message = f"{message} ({status})" if message else status
    return _suno_music_update(
        task_id,
        body,
        state,
        stage,
        songs,
        code=200 if state is State.SUCCEEDED else code_of(data.get("errorCode")),
        message=message if state is State.FAILED else "",
        prompt=prompt_of(data.get("param")),
        source="poll",
    )


# --- Market models through the jobs API: video, image and audio (Kling, Nano Banana, …) ------

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

    Results are `resultJson.resultUrls` (`resultJson` is JSON text); a success with no files but
    a `resultObject` (speech to text) has that as its text. A failure is `failCode` and `failMsg`,
    else the callback envelope's `code` and `msg`. The prompt is the request's `input.prompt` (or
    the `text` to speak) inside `param`, which is JSON text, and whose `input` may be JSON text
    again. The model id says the media kind when it can.
    """
    param = as_mapping(json_value(data.get("param")))
    request = as_mapping(json_value(param.get("input")))
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
    result = as_mapping(json_value(data.get("resultJson")))
    urls = url_list(result.get("resultUrls")) if state is State.SUCCEEDED else ()
    result_text = None
    if state is State.SUCCEEDED and not urls:
        result_text = readable_text(result.get("resultObject"), MAX_RESULT_TEXT)
    prompt = first_text(request, "prompt", "text") or text(param.get("prompt"))
    model = _model_id(first_text(data, "model") or text(param.get("model")))
    return TaskUpdate(
        product="market",
        task_id=task_id,
        state=state,
        result_urls=urls,
        code=code,
        message=message,
        prompt=prompt or None,
        source=source,
        raw=body,
        model=model,
        credits=credits,
        media=media_of_model(model),
        result_text=result_text,
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
    "nano": "Nano",
    "banana": "Banana",
    "imagen4": "Imagen 4",
    "elevenlabs": "ElevenLabs",
    "flux": "Flux",
    "flux1": "Flux.1",
    "kontext": "Kontext",
    "gpt": "GPT",
    "4o": "GPT-4o",
    "ideogram": "Ideogram",
    "recraft": "Recraft",
    "qwen": "Qwen",
    "suno": "Suno",
    "aleph": "Aleph",
    "gen4": "Gen-4",
    "api": "API",
    "ai": "AI",
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
_VENDORS = {"bytedance": ("seedance", "seedream"), "google": ("nano", "imagen4")}
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
            slug="aleph",
            label="Runway Aleph",
            family="aleph",
            task_id_fields=("taskId", "task_id"),
            top_task_id_fields=("taskId",),
            poll_path="/api/v1/aleph/record-info",
            read_callback=_aleph_callback,
            read_poll=_aleph_poll,
            media="video",
        ),
        Product(
            slug="mj",
            label="Midjourney",
            family="mj",
            task_id_fields=("taskId",),
            poll_path="/api/v1/mj/record-info",
            read_callback=_mj_callback,
            read_poll=_mj_poll,
        ),
        Product(
            slug="4o-image",
            label="GPT-4o Image",
            family="4o-image",
            task_id_fields=("taskId",),
            poll_path="/api/v1/gpt4o-image/record-info",
            read_callback=_4o_callback,
            read_poll=_4o_poll,
            media="image",
        ),
        Product(
            slug="flux-kontext",
            label="Flux Kontext",
            family="flux-kontext",
            task_id_fields=("taskId",),
            poll_path="/api/v1/flux/kontext/record-info",
            read_callback=_flux_callback,
            read_poll=_flag_reader(
                "flux-kontext", _NUMERIC_FLAGS, results=("resultImageUrl",), images=()
            ),
            media="image",
        ),
        Product(
            slug="suno",
            label="Suno music",
            family="suno",
            task_id_fields=("task_id", "taskId"),
            poll_path="/api/v1/generate/record-info",
            read_callback=_suno_music_callback,
            read_poll=_suno_music_poll,
            media="audio",
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
