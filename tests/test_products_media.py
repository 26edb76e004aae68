"""The products whose results are not all videos: Runway Aleph, Midjourney, GPT-4o Image, Flux
Kontext, Suno music, and Market image and audio models. Each result says what it is; Suno's
callbacks move one task through its stages."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from bot.kie.failures import explain_failure
from bot.kie.products import MAX_RESULT_TEXT, PRODUCTS, PayloadError
from bot.kie.signature import signature_problem, signed_headers
from bot.task import STAGES, State, Track, merge
from tests.conftest import CALLBACKS, load, product_of

ALEPH, MJ, GPT4O, FLUX, SUNO, MARKET = (
    PRODUCTS[slug] for slug in ("aleph", "mj", "4o-image", "flux-kontext", "suno", "market")
)
NEW_PRODUCTS = ("aleph", "mj", "4o-image", "flux-kontext", "suno")

#: Every callback fixture of the new products: (state, results, kind, stage, tracks, prompt).
CALLBACK_EXPECTED: dict[str, tuple[State, int, str, str | None, int, str | None]] = {
    "aleph-success.json": (State.SUCCEEDED, 1, "video", None, 0, None),
    "aleph-fail-400.json": (State.FAILED, 0, "video", None, 0, None),
    "mj-success.json": (State.SUCCEEDED, 4, "image", None, 0, "a beautiful landscape"),
    "mj-video-success.json": (State.SUCCEEDED, 1, "video", None, 0, "Add gentle movement"),
    "mj-fail-500.json": (State.FAILED, 0, "image", None, 0, "a beautiful landscape"),
    "4o-image-success.json": (State.SUCCEEDED, 1, "image", None, 0, None),
    "4o-image-success-msg-variant.json": (State.SUCCEEDED, 1, "image", None, 0, None),
    "4o-image-fail-400.json": (State.FAILED, 0, "image", None, 0, None),
    "4o-image-fail-400-image-size.json": (State.FAILED, 0, "image", None, 0, None),
    "4o-image-fail-400-image-format.json": (State.FAILED, 0, "image", None, 0, None),
    "4o-image-fail-451.json": (State.FAILED, 0, "image", None, 0, None),
    "4o-image-fail-500-edit.json": (State.FAILED, 0, "image", None, 0, None),
    "flux-kontext-success.json": (State.SUCCEEDED, 1, "image", None, 0, None),
    "flux-kontext-fail-400.json": (State.FAILED, 0, "image", None, 0, None),
    "flux-kontext-fail-500.json": (State.FAILED, 0, "image", None, 0, None),
    "flux-kontext-fail-501.json": (State.FAILED, 0, "image", None, 0, None),
    "suno-text.json": (State.RUNNING, 0, "audio", "text", 0, None),
    "suno-first.json": (State.RUNNING, 1, "audio", "first", 1, None),
    "suno-first-observed.json": (State.RUNNING, 1, "audio", "first", 1, None),
    # kie.ai's example lists the same song twice (one id, one URL): it is one song.
    "suno-complete.json": (State.SUCCEEDED, 1, "audio", "complete", 1, None),
    "suno-success.json": (State.SUCCEEDED, 1, "audio", "complete", 1, None),
    "suno-error.json": (State.FAILED, 0, "audio", None, 0, None),
    "suno-fail-501-data-empty.json": (State.FAILED, 0, "audio", None, 0, None),
    "suno-fail-400-copyright.json": (State.FAILED, 0, "audio", None, 0, None),
    "suno-fail-408-timeout.json": (State.FAILED, 0, "audio", None, 0, None),
    "suno-fail-413-existing-work.json": (State.FAILED, 0, "audio", None, 0, None),
    "suno-fail-531-refunded.json": (State.FAILED, 0, "audio", None, 0, None),
    "suno-stage-text.json": (State.RUNNING, 0, "audio", "text", 0, None),
    "suno-stage-first.json": (State.RUNNING, 1, "audio", "first", 1, None),
    "suno-stage-complete.json": (State.SUCCEEDED, 2, "audio", "complete", 2, None),
}


def test_every_new_callback_fixture_has_an_expectation() -> None:
    names = {
        path.name
        for path in CALLBACKS.glob("*.json")
        if not path.name.startswith("_") and product_of(path.name) in NEW_PRODUCTS
    }
    assert names == set(CALLBACK_EXPECTED)


@pytest.mark.parametrize("name", sorted(CALLBACK_EXPECTED))
def test_new_callback_fixture(name: str) -> None:
    state, results, kind, stage, tracks, prompt = CALLBACK_EXPECTED[name]
    update = PRODUCTS[product_of(name)].parse_callback(load(name))
    assert update.state is state
    assert len(update.result_urls) == results
    assert update.media == kind and update.kind == kind
    assert update.stage == stage
    assert len(update.tracks) == tracks
    assert (update.prompt or "").startswith(prompt or "") and bool(update.prompt) == bool(prompt)


#: Every poll fixture of the new products: (kind, stage, tracks).
POLL_EXPECTED: dict[str, tuple[str, str | None, int]] = {
    "aleph-record-info-generating.json": ("video", None, 0),
    "aleph-record-info-success.json": ("video", None, 0),
    "aleph-record-info-failed.json": ("video", None, 0),
    "mj-record-info-generating.json": ("image", None, 0),
    "mj-record-info-success.json": ("image", None, 0),
    "mj-record-info-video-success.json": ("video", None, 0),
    "mj-record-info-failed-3.json": ("image", None, 0),
    "4o-image-record-info-generating.json": ("image", None, 0),
    "4o-image-record-info-success.json": ("image", None, 0),
    "4o-image-record-info-success-quickstart.json": ("image", None, 0),
    "4o-image-record-info-failed.json": ("image", None, 0),
    "4o-image-record-info-generate-failed-status.json": ("image", None, 0),
    "flux-kontext-record-info-generating.json": ("image", None, 0),
    "flux-kontext-record-info-success.json": ("image", None, 0),
    "flux-kontext-record-info-failed-3.json": ("image", None, 0),
    "suno-record-info-pending.json": ("audio", None, 0),
    "suno-record-info-text-success.json": ("audio", "text", 0),
    "suno-record-info-first-success.json": ("audio", "first", 1),
    "suno-record-info-success.json": ("audio", "complete", 1),
    "suno-record-info-success-two-tracks.json": ("audio", "complete", 2),
    "suno-record-info-generate-audio-failed.json": ("audio", None, 0),
    "suno-record-info-sensitive-word.json": ("audio", None, 0),
}


@pytest.mark.parametrize("name", sorted(POLL_EXPECTED))
def test_new_poll_fixture(name: str) -> None:
    kind, stage, tracks = POLL_EXPECTED[name]
    update = PRODUCTS[product_of(name)].parse_poll(load(name), "asked")
    assert update.media == kind
    assert update.stage == stage
    assert len(update.tracks) == tracks
    assert update.prompt  # every record carries the request


@pytest.mark.parametrize(
    ("slug", "media"),
    [
        ("aleph", "video"),
        ("mj", None),
        ("4o-image", "image"),
        ("flux-kontext", "image"),
        ("suno", "audio"),
        ("market", None),
    ],
)
def test_what_the_product_alone_says(slug: str, media: str | None) -> None:
    assert PRODUCTS[slug].media == media


@pytest.mark.parametrize(
    ("slug", "label", "days"),
    [
        ("aleph", "Runway Aleph", 14),
        ("mj", "Midjourney", 14),
        ("4o-image", "GPT-4o Image", 14),
        ("flux-kontext", "Flux Kontext", 14),
        ("suno", "Suno music", 14),
    ],
)
def test_labels_and_link_lifetimes(slug: str, label: str, days: int) -> None:
    assert (PRODUCTS[slug].label, PRODUCTS[slug].result_days) == (label, days)
    assert PRODUCTS[slug].family == slug


# --- Runway Aleph ----------------------------------------------------------------------------

ALEPH_ID = "ee603959-debb-48d1-98c4-a6d1c717eba6"


def test_aleph_task_id_is_at_the_top_level() -> None:
    success = ALEPH.parse_callback(load("aleph-success.json"))
    failure = ALEPH.parse_callback(load("aleph-fail-400.json"))  # `data: null`
    assert success.task_id == failure.task_id == ALEPH_ID
    assert ALEPH.callback_task_id(load("aleph-fail-400.json")) == ALEPH_ID
    assert success.result_urls == ("https://file.com/k/xxxxxxx.mp4",)
    assert success.image_urls == ("https://file.com/m/xxxxxxxx.png",)
    assert failure.message.startswith("Your prompt was caught by our AI moderator")


def test_aleph_without_any_task_id_is_refused() -> None:
    body = load("aleph-success.json")
    del body["taskId"]
    with pytest.raises(PayloadError, match=r"taskId or data\.taskId"):
        ALEPH.parse_callback(body)
    body["data"]["taskId"] = "inside-data"  # a body shaped like the other products still works
    assert ALEPH.parse_callback(body).task_id == "inside-data"


def test_aleph_signature_is_checked_against_the_top_level_id() -> None:
    key, now = "k", 1_800_000_000
    update = ALEPH.parse_callback(load("aleph-success.json"))
    headers = signed_headers(key, ALEPH_ID, now)
    assert signature_problem(key, update.task_id, headers, now=now, tolerance=300) is None


@pytest.mark.parametrize(
    ("error_code", "error_message", "state"),
    [
        (0, "", State.RUNNING),
        (None, None, State.RUNNING),
        (200, "", State.RUNNING),
        (400, "", State.FAILED),
        (0, "Failed to fetch the image", State.FAILED),
        (None, "Upload failed due to network reasons", State.FAILED),
    ],
)
def test_aleph_flag_0_is_running_unless_an_error_says_failed(
    error_code: Any, error_message: Any, state: State
) -> None:
    body = load("aleph-record-info-generating.json")
    body["data"].update(errorCode=error_code, errorMessage=error_message)
    assert ALEPH.parse_poll(body, "x").state is state


def test_aleph_poll_matches_its_callback() -> None:
    polled = ALEPH.parse_poll(load("aleph-record-info-success.json"), "x")
    called = ALEPH.parse_callback(load("aleph-success.json"))
    assert (polled.result_urls, polled.image_urls) == (called.result_urls, called.image_urls)
    assert polled.prompt == "A majestic eagle soaring through mountain clouds at sunset"


# --- Midjourney ------------------------------------------------------------------------------


def test_mj_poll_reads_urls_from_objects() -> None:
    update = MJ.parse_poll(load("mj-record-info-success.json"), "x")
    assert update.result_urls == tuple(
        f"https://tempfile.aiquickdraw.com/v/42ea4a4250571eb18361bd2e309c8e8a_0_{n}.jpeg"
        for n in range(4)
    )
    assert update.prompt and update.prompt.startswith("Help me generate a sci-fi")


def test_mj_poll_takes_plain_strings_and_json_text_too() -> None:
    body = load("mj-record-info-success.json")
    urls = MJ.parse_poll(body, "x").result_urls
    body["data"]["resultInfoJson"] = json.dumps({"resultUrls": list(urls)})
    assert MJ.parse_poll(body, "x").result_urls == urls


@pytest.mark.parametrize(
    ("task_type", "kind"),
    [
        ("mj_video", "video"),
        ("mj_video_hd", "video"),
        ("mj_txt2img", "image"),
        ("mj_img2img", "image"),
        ("mj_omni_reference", "image"),
    ],
)
def test_mj_kind_comes_from_the_task_type(task_type: str, kind: str) -> None:
    body = load("mj-record-info-success.json")
    body["data"]["taskType"] = task_type
    assert MJ.parse_poll(body, "x").kind == kind
    callback = load("mj-success.json")
    callback["data"]["promptJson"] = json.dumps({"prompt": "p", "taskType": task_type})
    assert MJ.parse_callback(callback).kind == kind


@pytest.mark.parametrize(
    ("urls", "kind"),
    [
        (["https://example.com/a.mp4"], "video"),
        (["https://example.com/a.png"], "image"),
        (["https://example.com/a"], "image"),  # nothing says: Midjourney's default makes images
        ([], "image"),
    ],
)
def test_mj_callback_without_task_type_goes_by_the_url(urls: list[str], kind: str) -> None:
    body = load("mj-success.json")
    body["data"]["resultUrls"] = urls
    assert MJ.parse_callback(body).kind == kind


def test_mj_failure_keeps_no_results() -> None:
    update = MJ.parse_callback(load("mj-fail-500.json"))
    assert (update.code, update.message, update.result_urls) == (500, "Image generation failed", ())


# --- GPT-4o Image ----------------------------------------------------------------------------


def test_4o_poll_reads_both_spellings() -> None:
    camel = GPT4O.parse_poll(load("4o-image-record-info-success.json"), "x")
    snake = GPT4O.parse_poll(load("4o-image-record-info-success-quickstart.json"), "x")
    assert camel.result_urls == ("https://example.com/result/image1.png",)
    assert snake.result_urls == ("https://example.com/generated-image.png",)
    called = GPT4O.parse_callback(load("4o-image-success.json"))
    assert called.result_urls == camel.result_urls


def test_4o_callback_takes_camel_case_too() -> None:
    body = load("4o-image-success.json")
    body["data"]["info"] = {"resultUrls": body["data"]["info"]["result_urls"]}
    assert GPT4O.parse_callback(body).result_urls == ("https://example.com/result/image1.png",)


@pytest.mark.parametrize(
    ("status", "flag", "state"),
    [
        ("GENERATING", 0, State.RUNNING),
        ("SUCCESS", 1, State.SUCCEEDED),
        ("SUCCESS", None, State.SUCCEEDED),
        ("CREATE_TASK_FAILED", 2, State.FAILED),
        ("GENERATE_FAILED", None, State.FAILED),
        (None, 0, State.RUNNING),
        (None, 1, State.SUCCEEDED),
        (None, 2, State.FAILED),
        ("SOMETHING_NEW", 1, State.SUCCEEDED),
    ],
)
def test_4o_status_word_then_flag(status: Any, flag: Any, state: State) -> None:
    body = load("4o-image-record-info-success.json")
    body["data"].update(status=status, successFlag=flag)
    assert GPT4O.parse_poll(body, "x").state is state


def test_4o_failure_reads_code_and_message() -> None:
    update = GPT4O.parse_poll(load("4o-image-record-info-generate-failed-status.json"), "x")
    assert (update.code, update.message) == (500, "Failed to generate image")
    body = load("4o-image-record-info-failed.json")
    body["data"]["errorMessage"] = "null"  # kie.ai documents the word itself as a message
    assert GPT4O.parse_poll(body, "x").message == ""


# --- Flux Kontext ----------------------------------------------------------------------------


def test_flux_origin_image_is_not_a_result() -> None:
    for update in (
        FLUX.parse_callback(load("flux-kontext-success.json")),
        FLUX.parse_poll(load("flux-kontext-record-info-success.json"), "x"),
    ):
        assert update.result_urls == ("https://example.com/result.jpg",)
        assert update.image_urls == ()


@pytest.mark.parametrize(
    ("flag", "state"),
    [(0, State.RUNNING), (1, State.SUCCEEDED), (2, State.FAILED), (3, State.FAILED)],
)
def test_flux_poll_flags(flag: int, state: State) -> None:
    body = load("flux-kontext-record-info-success.json")
    body["data"]["successFlag"] = flag
    assert FLUX.parse_poll(body, "x").state is state


# --- Suno music ------------------------------------------------------------------------------

SUNO_TASK = "b7e2c9a41f6d4e08a3c5d7f9e1b2a4c6"
SONG_A = Track(
    id="0f3a6c2e-5b1d-4c8e-9a7f-2d4b6e8a0c11",
    url="https://musicfile.example.com/0f3a6c2e-5b1d-4c8e-9a7f-2d4b6e8a0c11.mp3",
    title="Harbour Lights",
    duration=171.32,
    cover="https://musicfile.example.com/0f3a6c2e-5b1d-4c8e-9a7f-2d4b6e8a0c11.jpeg",
)
SONG_B = Track(
    id="0f3a6c2e-5b1d-4c8e-9a7f-2d4b6e8a0c22",
    url="https://musicfile.example.com/0f3a6c2e-5b1d-4c8e-9a7f-2d4b6e8a0c22.mp3",
    title="Harbour Lights (Reprise)",
    duration=184.6,
    cover="https://musicfile.example.com/0f3a6c2e-5b1d-4c8e-9a7f-2d4b6e8a0c22.jpeg",
)


def test_suno_stages_one_by_one() -> None:
    text, first, complete = (
        SUNO.parse_callback(load(f"suno-stage-{stage}.json")) for stage in STAGES
    )
    assert {text.task_id, first.task_id, complete.task_id} == {SUNO_TASK}
    assert (text.state, text.stage, text.tracks, text.result_urls) == (
        State.RUNNING,
        "text",
        (),
        (),
    )
    # The second song is listed before its audio is ready: left out until it is.
    assert (first.state, first.stage, first.tracks) == (State.RUNNING, "first", (SONG_A,))
    assert first.result_urls == (SONG_A.url,)
    assert first.image_urls == (SONG_A.cover,)
    assert (complete.state, complete.stage) == (State.SUCCEEDED, "complete")
    assert complete.tracks == (SONG_A, SONG_B)
    assert complete.result_urls == (SONG_A.url, SONG_B.url)
    assert complete.image_urls == (SONG_A.cover, SONG_B.cover)


def test_suno_stages_make_one_task_with_each_song_once() -> None:
    task = None
    shown = []
    for now, stage in enumerate(STAGES):
        task, news = merge(task, SUNO.parse_callback(load(f"suno-stage-{stage}.json")), now)
        shown.append(news)
    assert task is not None
    assert shown == [True, True, True]
    assert (task.state, task.stage, task.media) == (State.SUCCEEDED, "complete", "audio")
    assert task.tracks == (SONG_A, SONG_B)
    assert task.result_urls == (SONG_A.url, SONG_B.url)


def test_suno_observed_first_callback_skips_the_song_without_audio() -> None:
    update = SUNO.parse_callback(load("suno-first-observed.json"))
    [song] = update.tracks
    assert song.id == "0a1b2c3d-1111-4f5c-9dcc-000000000001"
    assert (song.title, song.duration) == ("Whispering Tides", 163.88)


@pytest.mark.parametrize("songs", [None, [], "not a list"])
def test_suno_error_with_any_data(songs: Any) -> None:
    body = load("suno-error.json")
    body["data"]["data"] = songs
    update = SUNO.parse_callback(body)
    assert (update.state, update.code, update.message) == (
        State.FAILED,
        501,
        "Audio generation failed",
    )


def test_suno_failure_code_wins_over_the_callback_type() -> None:
    body = load("suno-stage-complete.json")
    body["code"] = 531
    update = SUNO.parse_callback(body)
    assert update.state is State.FAILED
    assert update.tracks == () and update.result_urls == ()


@pytest.mark.parametrize(
    ("kind", "with_songs", "state", "stage"),
    [
        (None, True, State.SUCCEEDED, "complete"),  # Suno may skip the stages before it
        ("something-new", True, State.SUCCEEDED, "complete"),
        (None, False, State.RUNNING, None),
        ("COMPLETE", True, State.SUCCEEDED, "complete"),
        ("error", True, State.FAILED, None),
    ],
)
def test_suno_callback_type_unknown_or_odd(
    kind: Any, with_songs: bool, state: State, stage: str | None
) -> None:
    body = load("suno-stage-complete.json")
    body["data"]["callbackType"] = kind
    if not with_songs:
        body["data"]["data"] = []
    update = SUNO.parse_callback(body)
    assert (update.state, update.stage) == (state, stage)


def test_suno_songs_with_odd_fields() -> None:
    body = load("suno-stage-complete.json")
    first, second = body["data"]["data"]
    first.update(title="x" * 1000, duration="n/a", id=None)
    second["audio_url"] = first["audio_url"]  # the same file twice is one song
    [song] = SUNO.parse_callback(body).tracks
    assert (len(song.title), song.duration, song.id) == (200, None, "")


@pytest.mark.parametrize(
    ("status", "songs", "state", "stage"),
    [
        ("PENDING", False, State.RUNNING, None),
        ("TEXT_SUCCESS", False, State.RUNNING, "text"),
        ("FIRST_SUCCESS", True, State.RUNNING, "first"),
        ("SUCCESS", True, State.SUCCEEDED, "complete"),
        ("SUCCESS", False, State.RUNNING, None),  # done, but no file yet
        ("CALLBACK_EXCEPTION", True, State.SUCCEEDED, "complete"),
        ("CALLBACK_EXCEPTION", False, State.FAILED, None),
        ("CREATE_TASK_FAILED", False, State.FAILED, None),
        ("GENERATE_AUDIO_FAILED", False, State.FAILED, None),
        ("SENSITIVE_WORD_ERROR", False, State.FAILED, None),
        ("SOMETHING_NEW", False, State.RUNNING, None),
    ],
)
def test_suno_poll_statuses(status: str, songs: bool, state: State, stage: str | None) -> None:
    body = load("suno-record-info-success-two-tracks.json")
    body["data"]["status"] = status
    if not songs:
        body["data"]["response"]["sunoData"] = []
    update = SUNO.parse_poll(body, "x")
    assert (update.state, update.stage) == (state, stage)
    if state is State.FAILED:
        assert status in update.message and update.tracks == ()


def test_suno_poll_and_callback_agree_on_songs() -> None:
    polled = SUNO.parse_poll(load("suno-record-info-success-two-tracks.json"), "x")
    called = SUNO.parse_callback(load("suno-stage-complete.json"))
    assert polled.tracks == called.tracks
    assert polled.prompt == "A folk song about a harbour at dusk"
    assert called.prompt is None  # the songs' `prompt` is their lyrics


def test_suno_poll_failure_message_keeps_kie_text_and_names_the_status() -> None:
    update = SUNO.parse_poll(load("suno-record-info-generate-audio-failed.json"), "x")
    assert update.message == "生成失败,请重试或联系客服 (GENERATE_AUDIO_FAILED)"
    assert update.code == 501
    sensitive = SUNO.parse_poll(load("suno-record-info-sensitive-word.json"), "x")
    assert sensitive.message == "SENSITIVE_WORD_ERROR"
    assert explain_failure("suno", sensitive.code, sensitive.message).heading == (
        "Content moderation"
    )


# --- Market image and audio ------------------------------------------------------------------


def market(name: str, **data: Any) -> Any:
    """A Market fixture body with `data` fields replaced."""
    body = copy.deepcopy(load(name))
    body["data"].update(data)
    return body


def test_market_kind_from_the_model() -> None:
    image = MARKET.parse_callback(load("callback-success-image.json"))
    audio = MARKET.parse_callback(load("callback-success-audio.json"))
    video = MARKET.parse_callback(load("callback-success.json"))
    assert (image.media, audio.media, video.media) == ("image", "audio", "video")
    assert audio.tracks == ()  # no title or length in a Market body: the file is enough


def test_market_unknown_model_leaves_the_kind_to_the_url() -> None:
    update = MARKET.parse_callback(market("callback-success-image.json", model="acme/thing"))
    assert update.media is None
    assert update.kind == "image"  # from `.png`


def test_market_double_encoded_input() -> None:
    update = MARKET.parse_callback(load("callback-success-image.json"))
    assert update.prompt and update.prompt.startswith("A surrealist-style artwork")
    param = json.loads(load("callback-success-image.json")["data"]["param"])
    param["input"] = json.loads(param["input"])  # the same request, encoded once
    once = MARKET.parse_callback(market("callback-success-image.json", param=json.dumps(param)))
    assert once.prompt == update.prompt


def test_market_text_to_speech_shows_its_text_as_the_prompt() -> None:
    update = MARKET.parse_callback(load("callback-success-audio.json"))
    assert update.prompt and update.prompt.startswith("Unlock powerful API with Kie.ai!")


def test_market_success_without_files_has_its_text() -> None:
    update = MARKET.parse_callback(load("callback-success-no-resulturls.json"))
    assert update.state is State.SUCCEEDED
    assert update.result_urls == ()
    assert update.result_text == "Hello from the sample recording."


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"resultObject": "  plain words  "}, "plain words"),
        (
            {"resultObject": {"label": "cat", "score": 0.9}},
            '{\n  "label": "cat",\n  "score": 0.9\n}',
        ),
        ({"resultObject": ["a", "b"]}, '[\n  "a",\n  "b"\n]'),
        ({"resultObject": 42}, "42"),
        ({"resultObject": None}, None),
        ({"resultObject": {"text": ""}}, '{\n  "text": ""\n}'),
        ({}, None),
        ({"resultUrls": ["https://example.com/a.mp3"], "resultObject": "also"}, None),
    ],
)
def test_market_result_object_as_readable_text(result: Any, expected: str | None) -> None:
    body = market("callback-success-no-resulturls.json", resultJson=json.dumps(result))
    assert MARKET.parse_callback(body).result_text == expected


def test_market_result_text_is_capped() -> None:
    long = {"resultObject": {"text": "word " * 20_000}}
    body = market("callback-success-no-resulturls.json", resultJson=json.dumps(long))
    text = MARKET.parse_callback(body).result_text
    assert text is not None and len(text) == MAX_RESULT_TEXT and text.endswith("…")


def test_market_failure_has_no_result_text() -> None:
    body = market(
        "callback-success-no-resulturls.json", state="fail", failCode="500", failMsg="Timeout"
    )
    update = MARKET.parse_callback(body)
    assert update.state is State.FAILED and update.result_text is None
