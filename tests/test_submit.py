"""Starting generations, without I/O: the models offered, checking a request, kie.ai's bodies."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.kie.submit import (
    BUILT_IN_MARKET,
    RUNWAY,
    VEO_FAST,
    VEO_QUALITY,
    Catalog,
    GenerationRequest,
    RequestError,
    build_request,
    clean_image_url,
    extend_request,
    mj_request,
    request_body,
)

HOOK = "https://bot.example.com/callbacks/veo/tok"


def test_the_catalog_lists_veo_runway_the_built_in_market_models_then_the_configured_ones():
    catalog = Catalog.build(
        ["bytedance/seedance-2", "kling-2.6/text-to-video", "bytedance/seedance-2"]
    )
    keys = [spec.key for spec in catalog.models]
    assert keys[:3] == ["veo:veo3_fast", "veo:veo3", "runway"]
    assert keys[3 : 3 + len(BUILT_IN_MARKET)] == [spec.key for spec in BUILT_IN_MARKET]
    assert keys[-1] == "market:bytedance/seedance-2" and len(keys) == len(set(keys))
    added = catalog.get("market:bytedance/seedance-2")
    assert added is not None and added.label == "Seedance 2" and added.durations
    assert catalog.get("market:nothing") is None


def test_defaults_of_the_commands():
    veo = build_request(VEO_FAST, "  a paper boat  ")
    assert veo == GenerationRequest("veo", "a paper boat", model="veo3_fast", aspect_ratio="16:9")
    runway = build_request(RUNWAY, "a boat")
    assert (runway.duration, runway.quality, runway.aspect_ratio) == (5, "720p", "16:9")
    assert runway.summary() == "Runway, 5 s, 720p, 16:9"


def test_request_bodies_follow_kie_docs():
    veo = build_request(VEO_QUALITY, "boat", image_url="https://e.co/a.png", aspect_ratio="9:16")
    assert request_body(veo, HOOK) == (
        "/api/v1/veo/generate",
        {
            "prompt": "boat",
            "model": "veo3",
            "aspect_ratio": "9:16",
            "callBackUrl": HOOK,
            "imageUrls": ["https://e.co/a.png"],
        },
    )
    runway = build_request(RUNWAY, "boat", image_url="https://e.co/a.png", duration=10)
    path, body = request_body(runway, HOOK)
    assert path == "/api/v1/runway/generate"
    assert body == {
        "prompt": "boat",
        "duration": 10,
        "quality": "720p",
        "waterMark": "",
        "callBackUrl": HOOK,
        "imageUrl": "https://e.co/a.png",
    }  # with an image kie.ai takes no aspect ratio
    i2v = Catalog.build().get("market:kling-2.6/image-to-video")
    assert i2v is not None
    market = build_request(i2v, "boat", image_url="https://e.co/a.png")
    assert request_body(market, HOOK) == (
        "/api/v1/jobs/createTask",
        {
            "model": "kling-2.6/image-to-video",
            "callBackUrl": HOOK,
            "input": {
                "prompt": "boat",
                "image_urls": ["https://e.co/a.png"],
                "duration": "5",
                "sound": False,
            },
        },
    )
    unknown = build_request(Catalog.build(["x/y"]).models[-1], "boat", quality="1080p")
    assert request_body(unknown, HOOK)[1]["input"] == {"prompt": "boat", "resolution": "1080p"}


def test_extend_keeps_the_original_model():
    quality = GenerationRequest("veo", "a", model="veo3")
    request = extend_request("veo_task_1", " on it goes ", quality)
    assert request_body(request, HOOK) == (
        "/api/v1/veo/extend",
        {"taskId": "veo_task_1", "prompt": "on it goes", "model": "quality", "callBackUrl": HOOK},
    )
    assert extend_request("veo_task_1", "on", None).model == "veo3_fast"
    with pytest.raises(RequestError) as empty:
        extend_request("veo_task_1", " ", None)
    assert empty.value.field == "prompt"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "a" * 3001}, "prompt"),
        ({"image_url": "ftp://e.co/a.png"}, "image"),
        ({"image_url": "https:///nohost"}, "image"),
        ({"image_url": "https://e.co/" + "a" * 2000}, "image"),
        ({"duration": 7}, "duration"),
        ({"aspect_ratio": "2:1"}, "aspect"),
        ({"quality": "4k"}, "quality"),
    ],
)
def test_each_problem_names_its_field(kwargs, field):
    arguments = {"prompt": "a boat", **kwargs}
    with pytest.raises(RequestError) as problem:
        build_request(RUNWAY, arguments.pop("prompt"), **arguments)
    assert problem.value.field == field and str(problem.value)


def test_an_image_url_in_slack_link_markup_is_read():
    assert clean_image_url("<https://e.co/a.png|a.png>") == "https://e.co/a.png"
    assert clean_image_url("  ") is None


def test_the_image_models_and_their_bodies():
    catalog = Catalog.build()
    images = [spec.model for spec in catalog.models if spec.media == "image"]
    assert images == [
        "google/nano-banana",
        "bytedance/seedream-v4-text-to-image",
        "4o-image-api",
        "flux1-kontext",
    ]
    nano = catalog.get("market:google/nano-banana")
    assert nano is not None
    request = build_request(nano, " a red fox ")
    assert request.media == "image" and request.summary() == "Nano Banana image"
    assert request_body(request, HOOK) == (
        "/api/v1/jobs/createTask",
        {"model": "google/nano-banana", "callBackUrl": HOOK, "input": {"prompt": "a red fox"}},
    )
    gpt = catalog.get("market:4o-image-api")
    assert gpt is not None
    assert request_body(build_request(gpt, "a fox"), HOOK)[1]["input"] == {
        "prompt": "a fox",
        "size": "1:1",
    }  # kie.ai takes the size, and needs one
    flux = catalog.get("market:flux1-kontext")
    assert flux is not None
    edit = build_request(flux, "at night", image_url="https://e.co/a.png")
    assert request_body(edit, HOOK)[1]["input"] == {
        "prompt": "at night",
        "input_image": "https://e.co/a.png",
    }
    with pytest.raises(RequestError) as no_image:
        build_request(nano, "a fox", image_url="https://e.co/a.png")
    assert no_image.value.field == "image" and "text only" in str(no_image.value)


def test_a_request_says_what_it_makes():
    assert GenerationRequest("veo", "a").noun == "video"
    assert GenerationRequest("market", "a", model="kling-2.6/text-to-video").noun == "video"
    assert GenerationRequest("market", "a", model="elevenlabs/text-to-speech-turbo-2-5").noun == (
        "track"
    )
    assert GenerationRequest("market", "a", model="made/up").noun == "generation"
    assert GenerationRequest("market", "a", model="made/up").summary() == "Made up"


@pytest.mark.parametrize(
    ("action", "index", "path"),
    [("upscale", 1, "/api/v1/mj/generateUpscale"), ("vary", 0, "/api/v1/mj/generateVary")],
)
def test_midjourney_follow_ups_follow_kie_docs(action, index, path):
    request = mj_request("mj_task_1", "a castle", action, index)
    assert request_body(request, HOOK) == (
        path,
        {"taskId": "mj_task_1", "imageIndex": index, "callBackUrl": HOOK},
    )
    assert request.media == "image" and request.noun == "image"
    assert GenerationRequest.from_json(request.to_json()) == request
    assert f"picture {index + 1} of mj_task_1" in request.summary()
    untitled = mj_request("mj_task_1", None, action, index)
    assert GenerationRequest.from_json(untitled.to_json()) == untitled  # no prompt is fine here
    with pytest.raises(RequestError):
        mj_request("mj_task_1", None, action, 4)


@pytest.mark.parametrize(
    "text",
    [
        '{"product":"mj","prompt":"","extends":"g","action":"zoom","index":0}',
        '{"product":"mj","prompt":"","extends":"g","action":"vary","index":4}',
        '{"product":"mj","prompt":"","action":"vary","index":0}',
        '{"product":"mj","prompt":"","extends":"g","action":"vary","index":true}',
        '{"product":"veo","prompt":"a","action":"vary"}',
        '{"product":"market","prompt":"a","index":1}',
    ],
)
def test_a_follow_up_that_names_no_picture_of_a_grid_is_none(text):
    assert GenerationRequest.from_json(text) is None


@given(
    st.builds(
        GenerationRequest,
        product=st.sampled_from(["veo", "runway", "market"]),
        prompt=st.text(min_size=1).filter(str.strip),
        model=st.none() | st.text(),
        image_url=st.none() | st.text(),
        duration=st.none() | st.integers(),
        aspect_ratio=st.none() | st.text(),
        quality=st.none() | st.text(),
        extends=st.none() | st.text(),
    )
)
def test_a_stored_request_reads_back_the_same(request):
    assert GenerationRequest.from_json(request.to_json()) == request


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "not json",
        "[]",
        '{"product":"sora","prompt":"a"}',
        '{"product":"veo"}',
        '{"product":"veo","prompt":"a","duration":true}',
        '{"product":"veo","prompt":"a","model":3}',
    ],
)
def test_a_stored_request_that_cannot_be_read_is_none(text):
    assert GenerationRequest.from_json(text) is None


def test_to_json_leaves_out_what_is_not_set():
    assert json.loads(GenerationRequest("runway", "a").to_json()) == {
        "product": "runway",
        "prompt": "a",
    }


# --- the settings -----------------------------------------------------------------------------


def test_the_submit_settings_are_read_and_explained():
    from bot.cli import _explain
    from bot.config import Settings

    env = {
        "KIE_API_KEY": "k",
        "KIE_SUBMIT": "on",
        "KIE_SUBMIT_CHANNELS": "C0ART, #C0FILM C0ART",
        "KIE_MARKET_MODELS": "bytedance/seedance-2,, wan/2-6-image-to-video ",
    }
    settings = Settings.from_env(env)
    assert settings.kie_submit is True
    assert settings.kie_submit_channels == ("C0ART", "C0FILM")
    assert settings.kie_market_models == ("bytedance/seedance-2", "wan/2-6-image-to-video")
    lines = "\n".join(_explain(settings, env))
    assert "only in C0ART, C0FILM (KIE_SUBMIT_CHANNELS)" in lines and "credits" in lines
    assert "bytedance/seedance-2" in lines
    off = Settings.from_env({"KIE_SUBMIT": "off"})
    assert off.kie_submit is False
    assert "KIE_SUBMIT=off" in "\n".join(_explain(off, {}))
    assert Settings.from_env({}).kie_submit is True


def test_kie_image_model_is_read_and_explained():
    from bot.cli import _explain
    from bot.config import Settings

    default = Settings.from_env({"KIE_API_KEY": "k"})
    assert default.kie_image_model == "google/nano-banana"
    assert "KIE_IMAGE_MODEL=google/nano-banana: /kie image" in "\n".join(_explain(default, {}))
    env = {"KIE_API_KEY": "k", "KIE_IMAGE_MODEL": "kling-2.6/text-to-video"}
    video = Settings.from_env(env)
    assert video.kie_image_model == "kling-2.6/text-to-video"
    assert "its id says it makes videos, not images" in "\n".join(_explain(video, env))
    offered = Catalog.build((*video.kie_market_models, video.kie_image_model))
    assert offered.get("market:kling-2.6/text-to-video") is not None


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"KIE_SUBMIT": "sometimes"}, "KIE_SUBMIT="),
        ({"KIE_SUBMIT_CHANNELS": "general"}, "KIE_SUBMIT_CHANNELS"),
        ({"KIE_SUBMIT_CHANNELS": "C0A,<#C0B>"}, "KIE_SUBMIT_CHANNELS"),
        ({"KIE_MARKET_MODELS": "kling 2.6"}, "KIE_MARKET_MODELS"),
        ({"KIE_MARKET_MODELS": "a" * 141}, "KIE_MARKET_MODELS"),
        ({"KIE_MARKET_MODELS": ",".join(f"m/{n}" for n in range(91))}, "KIE_MARKET_MODELS"),
        ({"KIE_IMAGE_MODEL": "nano banana"}, "KIE_IMAGE_MODEL"),
        ({"KIE_IMAGE_MODEL": "google/nano-banana,seedream"}, "KIE_IMAGE_MODEL"),
    ],
)
def test_malformed_submit_settings_name_their_variable(env, named):
    from bot.config import ConfigError, Settings

    with pytest.raises(ConfigError) as problem:
        Settings.from_env(env)
    assert named in str(problem.value)
