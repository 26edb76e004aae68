"""The product registry: every documented callback and poll shape becomes one TaskUpdate."""

from __future__ import annotations

import json

import pytest

from bot.kie.payload import amount_of, json_value, prompt_of, url_list
from bot.kie.products import (
    FAMILIES,
    POLL_PRODUCTS,
    PRODUCTS,
    PayloadError,
    model_name,
    product_names,
)
from bot.task import State
from tests.conftest import CALLBACKS, FIXTURES, POLLS, load, product_of

VIDEO = "https://example.com/v.mp4"


CALLBACK_FILES = sorted(
    [p for p in CALLBACKS.glob("*.json") if not p.name.startswith("_")],
    key=lambda p: p.name,
)


#: Callback fixtures of a stage on the way (Suno's lyrics, its first track): not final yet.
RUNNING_STAGES = ("text", "first")


@pytest.mark.parametrize("path", CALLBACK_FILES, ids=lambda p: p.name)
def test_every_callback_fixture_parses(path):
    body = json.loads(path.read_text())
    slug = product_of(path.name)
    if not PRODUCTS[slug].callback_task_id(body):  # `data: null` and no task id elsewhere
        with pytest.raises(PayloadError):
            PRODUCTS[slug].parse_callback(body)
        return
    update = PRODUCTS[slug].parse_callback(body)
    assert update.product == slug
    assert update.task_id
    assert update.raw == body
    assert update.source == "callback"
    stage = (body.get("data") or {}).get("callbackType")
    if str(body["code"]) != "200":
        assert update.state is State.FAILED
        assert update.result_urls == () and update.image_urls == () and update.tracks == ()
        assert update.message
    elif stage in RUNNING_STAGES:
        assert update.state is State.RUNNING
        assert update.stage == stage
    else:
        assert update.state is State.SUCCEEDED
        assert update.result_urls and all(u.startswith("https://") for u in update.result_urls)


def test_veo_success_reads_urls_and_prompt():
    update = PRODUCTS["veo"].parse_callback(load("veo-success.json"))
    assert update.task_id == "veo_task_3f9c2a7b1d4e"
    assert update.result_urls == ("https://example.com/kie/veo/3f9c2a7b1d4e_0.mp4",)
    assert update.prompt == "A red fox running through fresh snow at sunrise"
    assert update.code == 200


@pytest.mark.parametrize(
    ("name", "urls"),
    [
        ("veo-success-resulturls-string.json", ("https://example.com/kie/veo/3f9c2a7b1d4e_0.mp4",)),
        (
            "veo-success-resulturls-json-string.json",
            (
                "https://example.com/kie/veo/7d8e9f0a1b2c_0.mp4",
                "https://example.com/kie/veo/7d8e9f0a1b2c_1.mp4",
            ),
        ),
    ],
)
def test_veo_result_urls_as_strings(name, urls):
    assert PRODUCTS["veo"].parse_callback(load(name)).result_urls == urls


def test_prompt_json_object_and_string_agree():
    as_object = PRODUCTS["veo"].parse_callback(load("veo-success-promptjson-object.json"))
    as_string = PRODUCTS["veo"].parse_callback(load("veo-success.json"))
    assert as_object.prompt == as_string.prompt


def test_veo_4k_camel_and_snake_case():
    camel = PRODUCTS["veo-4k"].parse_callback(load("veo-4k-success.json"))
    snake = PRODUCTS["veo-4k"].parse_callback(load("veo-4k-success-snake-case.json"))
    assert camel.image_urls == ("https://example.com/kie/veo/3f9c2a7b1d4e_4k.jpg",)
    assert snake.task_id == "veo_task_5a1b2c3d4e5f"
    assert snake.result_urls == ("https://example.com/kie/veo/5a1b2c3d4e5f_4k.mp4",)
    assert snake.image_urls == ("https://example.com/kie/veo/5a1b2c3d4e5f_4k.jpg",)


def test_runway_failure_with_nulls_and_string_code():
    update = PRODUCTS["runway"].parse_callback(load("runway-fail-nulls.json"))
    assert update.state is State.FAILED
    assert update.code == 400
    assert update.message.startswith("Your prompt has triggered")


def test_empty_urls_are_dropped():
    body = {"code": 200, "msg": "ok", "data": {"task_id": "t", "video_url": "", "image_url": None}}
    update = PRODUCTS["runway"].parse_callback(body)
    assert update.result_urls == () and update.image_urls == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([VIDEO], (VIDEO,)),
        (f'["{VIDEO}"]', (VIDEO,)),
        (f"[{VIDEO}]", (VIDEO,)),
        (f"[{VIDEO}, https://example.com/w.mp4]", (VIDEO, "https://example.com/w.mp4")),
        (VIDEO, (VIDEO,)),
        ("", ()),
        ("[]", ()),
        (None, ()),
        ([None, "", VIDEO, VIDEO, 7], (VIDEO,)),
        ({"url": VIDEO}, ()),
    ],
)
def test_url_list(value, expected):
    assert url_list(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('{"prompt": "a fox"}', "a fox"),
        ({"prompt": "a fox"}, "a fox"),
        ("not json", None),
        ('["a list"]', None),
        (None, None),
        ({"prompt": ""}, None),
    ],
)
def test_prompt_of(value, expected):
    assert prompt_of(value) == expected


@pytest.mark.parametrize(
    ("product", "name", "state", "videos"),
    [
        ("veo", "veo-record-info-generating.json", State.RUNNING, 0),
        ("veo", "veo-record-info-success.json", State.SUCCEEDED, 1),
        ("veo", "veo-record-info-failed-2.json", State.FAILED, 0),
        ("veo-4k", "veo-record-info-4k-success.json", State.SUCCEEDED, 1),
        ("runway", "runway-record-detail-wait.json", State.RUNNING, 0),
        ("runway", "runway-record-detail-queueing.json", State.RUNNING, 0),
        ("runway", "runway-record-detail-generating.json", State.RUNNING, 0),
        ("runway", "runway-record-detail-success.json", State.SUCCEEDED, 1),
        ("runway", "runway-record-detail-expired.json", State.SUCCEEDED, 1),
        ("runway", "runway-record-detail-fail.json", State.FAILED, 0),
        ("luma", "luma-record-info-generating.json", State.RUNNING, 0),
        ("luma", "luma-record-info-success.json", State.SUCCEEDED, 1),
        ("luma", "luma-record-info-create-failed-2.json", State.FAILED, 0),
        ("luma", "luma-record-info-generate-failed-3.json", State.FAILED, 0),
        ("suno-mp4", "suno-mp4-record-info-pending.json", State.RUNNING, 0),
        ("suno-mp4", "suno-mp4-record-info-success.json", State.SUCCEEDED, 1),
        ("suno-mp4", "suno-mp4-record-info-create-failed.json", State.FAILED, 0),
        ("suno-mp4", "suno-mp4-record-info-generate-failed.json", State.FAILED, 0),
        ("aleph", "aleph-record-info-generating.json", State.RUNNING, 0),
        ("aleph", "aleph-record-info-success.json", State.SUCCEEDED, 1),
        ("aleph", "aleph-record-info-failed.json", State.FAILED, 0),
        ("mj", "mj-record-info-generating.json", State.RUNNING, 0),
        ("mj", "mj-record-info-success.json", State.SUCCEEDED, 4),
        ("mj", "mj-record-info-video-success.json", State.SUCCEEDED, 1),
        ("mj", "mj-record-info-failed-3.json", State.FAILED, 0),
        ("4o-image", "4o-image-record-info-generating.json", State.RUNNING, 0),
        ("4o-image", "4o-image-record-info-success.json", State.SUCCEEDED, 1),
        ("4o-image", "4o-image-record-info-success-quickstart.json", State.SUCCEEDED, 1),
        ("4o-image", "4o-image-record-info-failed.json", State.FAILED, 0),
        ("4o-image", "4o-image-record-info-generate-failed-status.json", State.FAILED, 0),
        ("flux-kontext", "flux-kontext-record-info-generating.json", State.RUNNING, 0),
        ("flux-kontext", "flux-kontext-record-info-success.json", State.SUCCEEDED, 1),
        ("flux-kontext", "flux-kontext-record-info-failed-3.json", State.FAILED, 0),
        ("suno", "suno-record-info-pending.json", State.RUNNING, 0),
        ("suno", "suno-record-info-text-success.json", State.RUNNING, 0),
        ("suno", "suno-record-info-first-success.json", State.RUNNING, 1),
        ("suno", "suno-record-info-success.json", State.SUCCEEDED, 1),
        ("suno", "suno-record-info-success-two-tracks.json", State.SUCCEEDED, 2),
        ("suno", "suno-record-info-generate-audio-failed.json", State.FAILED, 0),
        ("suno", "suno-record-info-sensitive-word.json", State.FAILED, 0),
    ],
)
def test_poll_answers(product, name, state, videos):
    body = json.loads((POLLS / name).read_text())
    update = PRODUCTS[product].parse_poll(body, "asked-id")
    assert update.state is state
    assert len(update.result_urls) == videos
    assert update.source == "poll"
    assert update.task_id == body["data"]["taskId"]
    if state is State.FAILED:
        assert update.message and update.code


def test_poll_and_callback_agree_on_results():
    polled = PRODUCTS["veo"].parse_poll(
        json.loads((POLLS / "veo-record-info-success.json").read_text()), "x"
    )
    called = PRODUCTS["veo"].parse_callback(load("veo-success.json"))
    assert (polled.task_id, polled.state, polled.result_urls, polled.prompt) == (
        called.task_id,
        called.state,
        called.result_urls,
        called.prompt,
    )


def test_luma_callback_failed_flag_4_is_success():
    body = json.loads((POLLS / "luma-record-info-success.json").read_text())
    body["data"]["successFlag"] = 4
    update = PRODUCTS["luma"].parse_poll(body, "x")
    assert update.state is State.SUCCEEDED
    assert update.result_urls == ("https://example.com/kie/luma/9c1e4b7a.mp4",)


def test_suno_text_flags_and_callback_exception():
    body = json.loads((POLLS / "suno-mp4-record-info-success.json").read_text())
    body["data"]["successFlag"] = "CALLBACK_EXCEPTION"
    assert PRODUCTS["suno-mp4"].parse_poll(body, "x").state is State.SUCCEEDED


def test_runway_second_id_spelling():
    body = json.loads((POLLS / "runway-record-detail-success.json").read_text())
    data = body["data"]
    data["id"] = 12345
    del data["taskId"]
    data["parentId"] = 0
    data["failCode"] = ""
    update = PRODUCTS["runway"].parse_poll(body, "asked")
    assert update.task_id == "12345"
    assert update.state is State.SUCCEEDED


def test_poll_answer_without_record_is_an_error():
    with pytest.raises(PayloadError):
        PRODUCTS["veo"].parse_poll({"code": 200, "msg": "ok", "data": None}, "x")


def test_poll_products_cover_each_endpoint_once():
    assert [p.slug for p in POLL_PRODUCTS] == [
        "veo",
        "runway",
        "luma",
        "suno-mp4",
        "aleph",
        "mj",
        "4o-image",
        "flux-kontext",
        "suno",
        "market",
    ]
    assert len({p.poll_path for p in POLL_PRODUCTS}) == len(POLL_PRODUCTS)
    assert tuple(p.slug for p in POLL_PRODUCTS) == FAMILIES


def test_product_names_list_every_product():
    names = product_names().split(", ")
    assert names == list(PRODUCTS)
    assert {"aleph", "mj", "4o-image", "flux-kontext", "suno"} <= set(names)


# --- Market (jobs API) ----------------------------------------------------------------------

MARKET = PRODUCTS["market"]
MARKET_FIXTURES = FIXTURES / "market"
NANO_BANANA_PROMPT = "A surrealist-style artwork"
TTS_TEXT = "Unlock powerful API"
#: Every Market callback and recordInfo fixture: (state, results, model, credits, prompt start).
MARKET_EXPECTED = {
    "callback-success.json": (State.SUCCEEDED, 1, "kling-2.6/text-to-video", 55.0, "A paper boat"),
    "callback-success-consume-credits.json": (
        State.SUCCEEDED,
        2,
        "bytedance/seedance-1.5-pro",
        72.5,
        "A lighthouse",
    ),
    "callback-fail.json": (State.FAILED, 0, "wan/2-6-text-to-video", 0.0, "A crowd"),
    "callback-fail-no-failmsg.json": (
        State.FAILED,
        0,
        "hailuo/2-3-image-to-video-pro",
        0.0,
        "The statue",
    ),
    "record-info-generating.json": (State.RUNNING, 0, "kling-2.6/text-to-video", None, "A paper"),
    "record-info-success.json": (State.SUCCEEDED, 1, "kling-2.6/text-to-video", None, "A paper"),
    "record-info-fail.json": (State.FAILED, 0, "wan/2-6-text-to-video", None, "A crowd"),
    "callback-success-image.json": (
        State.SUCCEEDED,
        1,
        "google/nano-banana",
        3.0,
        NANO_BANANA_PROMPT,
    ),
    "record-info-success-image.json": (
        State.SUCCEEDED,
        1,
        "google/nano-banana",
        None,
        NANO_BANANA_PROMPT,
    ),
    "callback-success-audio.json": (
        State.SUCCEEDED,
        1,
        "elevenlabs/text-to-speech-multilingual-v2",
        12.0,
        TTS_TEXT,
    ),
    "record-info-success-audio.json": (
        State.SUCCEEDED,
        1,
        "elevenlabs/text-to-speech-multilingual-v2",
        None,
        TTS_TEXT,
    ),
    "callback-success-no-resulturls.json": (
        State.SUCCEEDED,
        0,
        "elevenlabs/speech-to-text",
        2.0,
        None,
    ),
}
#: The file extension of each media kind's results in the Market fixtures.
EXTENSIONS = {"video": ".mp4", "image": ".png", "audio": ".mp3"}


def test_every_market_fixture_has_an_expectation():
    names = {p.name for p in MARKET_FIXTURES.glob("*.json")} - {
        "create-task-response.json",
        "create-task-response-image.json",
    }
    assert names == set(MARKET_EXPECTED)


@pytest.mark.parametrize("name", sorted(MARKET_EXPECTED))
def test_market_fixture_parses(name):
    body = json.loads((MARKET_FIXTURES / name).read_text())
    state, videos, model, credits, prompt = MARKET_EXPECTED[name]
    if name.startswith("callback"):
        update = MARKET.parse_callback(body)
        assert update.source == "callback"
    else:
        update = MARKET.parse_poll(body, "asked-id")
        assert update.source == "poll"
    assert update.product == "market"
    assert update.task_id == body["data"]["taskId"]
    assert update.state is state
    assert len(update.result_urls) == videos
    extension = EXTENSIONS[update.kind]
    assert all(url.startswith("https://") and url.endswith(extension) for url in update.result_urls)
    assert update.model == model
    assert update.credits == credits
    if prompt is None:
        assert update.prompt is None
    else:
        assert update.prompt and update.prompt.startswith(prompt)
    assert update.raw == body
    if state is State.FAILED:
        assert update.code is not None and update.message


def test_market_failure_reads_fail_code_and_message():
    update = MARKET.parse_callback(load("callback-fail.json"))
    assert update.code == 500  # failCode, a string in the body
    assert update.message.startswith("Your content was flagged")
    polled = MARKET.parse_poll(load("record-info-fail.json"), "x")
    assert (polled.code, polled.message) == (update.code, update.message)


def test_market_failure_without_fail_fields_keeps_the_envelope():
    update = MARKET.parse_callback(load("callback-fail-no-failmsg.json"))
    assert (update.code, update.message) == (501, "Playground task failed.")


def test_market_success_is_judged_by_state_not_code():
    body = load("callback-success.json")
    body["code"] = 501
    assert MARKET.parse_callback(body).state is State.SUCCEEDED
    body = load("callback-fail.json")
    body["code"] = 200
    assert MARKET.parse_callback(body).state is State.FAILED
    del body["data"]["state"]  # no state: the code decides, as for every product
    assert MARKET.parse_callback(body).state is State.SUCCEEDED


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("waiting", State.RUNNING),
        ("queuing", State.RUNNING),
        ("queueing", State.RUNNING),
        ("generating", State.RUNNING),
        ("SUCCESS", State.SUCCEEDED),
        ("fail", State.FAILED),
        ("something-new", State.RUNNING),
        (None, State.RUNNING),
    ],
)
def test_market_poll_states(word, state):
    body = load("record-info-success.json")
    body["data"]["state"] = word
    update = MARKET.parse_poll(body, "x")
    assert update.state is state
    assert bool(update.result_urls) == (state is State.SUCCEEDED)


def test_market_result_json_as_object_and_broken():
    body = load("callback-success.json")
    urls = MARKET.parse_callback(body).result_urls
    body["data"]["resultJson"] = {"resultUrls": list(urls)}
    assert MARKET.parse_callback(body).result_urls == urls
    body["data"]["resultJson"] = "{not json"
    broken = MARKET.parse_callback(body)
    assert broken.state is State.SUCCEEDED and broken.result_urls == ()


@pytest.mark.parametrize(
    ("model", "kept"),
    [
        (None, None),
        ("", None),
        (42, "42"),
        ("x" * 201, None),
        ("kling\n2.6", None),
        ({"id": "kling"}, None),
    ],
)
def test_market_model_from_outside_is_kept_only_when_sane(model, kept):
    body = load("callback-success.json")
    body["data"]["model"] = model
    body["data"]["param"] = "{}"
    assert MARKET.parse_callback(body).model == kept


def test_market_model_falls_back_to_the_request():
    body = load("callback-success.json")
    del body["data"]["model"]
    assert MARKET.parse_callback(body).model == "kling-2.6/text-to-video"


@pytest.mark.parametrize(
    ("data", "credits"),
    [
        ({"creditsConsumed": 55}, 55.0),
        ({"consumeCredits": "12.5"}, 12.5),
        ({"creditsConsumed": None, "consumeCredits": 3}, 3.0),
        ({"creditsConsumed": 0, "consumeCredits": 9}, 0.0),
        ({"creditsConsumed": -5}, None),
        ({"creditsConsumed": "lots"}, None),
        ({"creditsConsumed": True}, None),
        ({}, None),
    ],
)
def test_market_credits_in_either_spelling(data, credits):
    body = load("callback-success.json")
    del body["data"]["creditsConsumed"]
    body["data"].update(data)
    assert MARKET.parse_callback(body).credits == credits


def test_market_callback_without_task_id_is_refused():
    body = load("callback-success.json")
    body["data"]["taskId"] = ""
    with pytest.raises(PayloadError, match=r"data\.taskId"):
        MARKET.parse_callback(body)


@pytest.mark.parametrize(
    ("model_id", "name"),
    [
        ("kling-2.6/text-to-video", "Kling 2.6 text to video"),
        ("kling-2.6/image-to-video", "Kling 2.6 image to video"),
        ("kling/v2-5-turbo-text-to-video-pro", "Kling v2.5 Turbo text to video Pro"),
        ("hailuo/02-text-to-video-standard", "Hailuo 02 text to video Standard"),
        ("hailuo/2-3-image-to-video-pro", "Hailuo 2.3 image to video Pro"),
        ("bytedance/seedance-1.5-pro", "Seedance 1.5 Pro"),
        ("bytedance/seedance-2", "Seedance 2"),
        ("bytedance/seedance-1-pro-image-to-video", "Seedance 1 Pro image to video"),
        ("bytedance/v1-pro-text-to-video", "ByteDance v1 Pro text to video"),
        ("wan/2-6-text-to-video", "Wan 2.6 text to video"),
        ("wan/3-0-video-prime", "Wan 3.0 video Prime"),
        ("grok-imagine/text-to-video", "Grok Imagine text to video"),
        ("sora-2-pro-text-to-video", "Sora 2 Pro text to video"),
        ("sora-2-pro-storyboard", "Sora 2 Pro storyboard"),
        ("google/nano-banana", "Nano Banana"),
        ("nano-banana-2", "Nano Banana 2"),
        ("bytedance/seedream-v4-text-to-image", "Seedream v4 text to image"),
        ("4o-image-api", "GPT-4o image API"),
        ("flux1-kontext", "Flux.1 Kontext"),
        ("elevenlabs/text-to-speech-multilingual-v2", "ElevenLabs text to speech multilingual v2"),
        ("runway/gen4-aleph", "Runway Gen-4 Aleph"),
        ("acme/dream-machine_x", "Acme dream machine x"),
        ("ACME/GPT-video", "ACME GPT video"),
        ("///", "///"),
    ],
)
def test_model_name(model_id, name):
    assert model_name(model_id) == name


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ({"a": 1}, {"a": 1}),
        ("", None),
        ("{broken", None),
        (None, None),
    ],
)
def test_json_value(value, expected):
    assert json_value(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(55, 55.0), ("0.5", 0.5), (0, 0.0), (-1, None), ("nan", None), (10**400, None), (True, None)],
)
def test_amount_of(value, expected):
    assert amount_of(value) == expected
