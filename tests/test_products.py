"""The product registry: every documented callback and poll shape becomes one TaskUpdate."""

from __future__ import annotations

import json

import pytest

from bot.kie.payload import prompt_of, url_list
from bot.kie.products import POLL_PRODUCTS, PRODUCTS, PayloadError
from bot.task import State
from tests.conftest import CALLBACKS, POLLS, load, product_of

VIDEO = "https://example.com/v.mp4"


CALLBACK_FILES = sorted(
    [p for p in CALLBACKS.glob("*.json") if not p.name.startswith("_")],
    key=lambda p: p.name,
)


@pytest.mark.parametrize("path", CALLBACK_FILES, ids=lambda p: p.name)
def test_every_callback_fixture_parses(path):
    body = json.loads(path.read_text())
    slug = product_of(path.name)
    if body.get("data") is None:
        with pytest.raises(PayloadError):
            PRODUCTS[slug].parse_callback(body)
        return
    update = PRODUCTS[slug].parse_callback(body)
    assert update.product == slug
    assert update.task_id
    assert update.raw == body
    assert update.source == "callback"
    if str(body["code"]) == "200":
        assert update.state is State.SUCCEEDED
        assert update.video_urls and all(u.startswith("https://") for u in update.video_urls)
    else:
        assert update.state is State.FAILED
        assert update.video_urls == () and update.image_urls == ()
        assert update.message


def test_veo_success_reads_urls_and_prompt():
    update = PRODUCTS["veo"].parse_callback(load("veo-success.json"))
    assert update.task_id == "veo_task_3f9c2a7b1d4e"
    assert update.video_urls == ("https://example.com/kie/veo/3f9c2a7b1d4e_0.mp4",)
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
    assert PRODUCTS["veo"].parse_callback(load(name)).video_urls == urls


def test_prompt_json_object_and_string_agree():
    as_object = PRODUCTS["veo"].parse_callback(load("veo-success-promptjson-object.json"))
    as_string = PRODUCTS["veo"].parse_callback(load("veo-success.json"))
    assert as_object.prompt == as_string.prompt


def test_veo_4k_camel_and_snake_case():
    camel = PRODUCTS["veo-4k"].parse_callback(load("veo-4k-success.json"))
    snake = PRODUCTS["veo-4k"].parse_callback(load("veo-4k-success-snake-case.json"))
    assert camel.image_urls == ("https://example.com/kie/veo/3f9c2a7b1d4e_4k.jpg",)
    assert snake.task_id == "veo_task_5a1b2c3d4e5f"
    assert snake.video_urls == ("https://example.com/kie/veo/5a1b2c3d4e5f_4k.mp4",)
    assert snake.image_urls == ("https://example.com/kie/veo/5a1b2c3d4e5f_4k.jpg",)


def test_runway_failure_with_nulls_and_string_code():
    update = PRODUCTS["runway"].parse_callback(load("runway-fail-nulls.json"))
    assert update.state is State.FAILED
    assert update.code == 400
    assert update.message.startswith("Your prompt has triggered")


def test_empty_urls_are_dropped():
    body = {"code": 200, "msg": "ok", "data": {"task_id": "t", "video_url": "", "image_url": None}}
    update = PRODUCTS["runway"].parse_callback(body)
    assert update.video_urls == () and update.image_urls == ()


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
    ],
)
def test_poll_answers(product, name, state, videos):
    body = json.loads((POLLS / name).read_text())
    update = PRODUCTS[product].parse_poll(body, "asked-id")
    assert update.state is state
    assert len(update.video_urls) == videos
    assert update.source == "poll"
    assert update.task_id == body["data"]["taskId"]
    if state is State.FAILED:
        assert update.message and update.code


def test_poll_and_callback_agree_on_results():
    polled = PRODUCTS["veo"].parse_poll(
        json.loads((POLLS / "veo-record-info-success.json").read_text()), "x"
    )
    called = PRODUCTS["veo"].parse_callback(load("veo-success.json"))
    assert (polled.task_id, polled.state, polled.video_urls, polled.prompt) == (
        called.task_id,
        called.state,
        called.video_urls,
        called.prompt,
    )


def test_luma_callback_failed_flag_4_is_success():
    body = json.loads((POLLS / "luma-record-info-success.json").read_text())
    body["data"]["successFlag"] = 4
    update = PRODUCTS["luma"].parse_poll(body, "x")
    assert update.state is State.SUCCEEDED
    assert update.video_urls == ("https://example.com/kie/luma/9c1e4b7a.mp4",)


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
    assert [p.slug for p in POLL_PRODUCTS] == ["veo", "runway", "luma", "suno-mp4"]
    assert len({p.poll_path for p in POLL_PRODUCTS}) == len(POLL_PRODUCTS)
