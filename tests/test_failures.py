"""Failure explanations: every callback fixture and every documented provider message."""

from __future__ import annotations

import json

import pytest

from bot.kie.failures import HEADINGS, Explanation, explain_failure
from bot.kie.products import PRODUCTS
from bot.slack.messages import build_task_message
from bot.task import State, Task
from tests.conftest import FIXTURES, callback_files, product_of

#: A callback fixture of a stage on the way (Suno's lyrics, its first track): no outcome yet.
RUNNING = "running"

#: Every callback fixture: its expected heading, None for a success, or RUNNING.
EXPECTED_CALLBACKS: dict[str, str | None] = {
    "4o-image-fail-400.json": "Content moderation",
    "4o-image-success-msg-variant.json": None,
    "4o-image-success.json": None,
    "aleph-fail-400.json": "Content moderation",
    "aleph-success.json": None,
    "flux-kontext-fail-400.json": "Content moderation",
    "flux-kontext-fail-500.json": "Provider error",
    "flux-kontext-fail-501.json": "Provider error",
    "flux-kontext-success.json": None,
    "mj-fail-500.json": "Provider error",
    "mj-success.json": None,
    "mj-video-success.json": None,
    "suno-complete.json": None,
    "suno-error.json": "Provider error",
    "suno-fail-501-data-empty.json": "Provider error",
    "suno-first-observed.json": RUNNING,
    "suno-first.json": RUNNING,
    "suno-success.json": None,
    "suno-text.json": RUNNING,
    "luma-fail-500.json": "Provider error",
    "luma-success.json": None,
    "runway-ai-moderator.json": "Content moderation",
    "runway-concurrency-limit.json": "Concurrency limit",
    "runway-extend-success.json": None,
    "runway-fail-500.json": "Provider error",
    "runway-image-format.json": "Input rejected",
    "runway-membership.json": "Plan or quota limit",
    "runway-moderation.json": "Content moderation",
    "runway-success.json": None,
    "suno-mp4-fail-400.json": "Provider error",
    "suno-mp4-fail-451.json": "Source download failed",
    "suno-mp4-success.json": None,
    "veo-4k-fail-500.json": "4K unavailable",
    "veo-4k-success-credits.json": None,
    "veo-4k-success.json": None,
    "veo-extend-success.json": None,
    "veo-fail-400-content-policy.json": "Content moderation",
    "veo-fail-400-image-fetch.json": "Source download failed",
    "veo-fail-400-unsafe-image.json": "Content moderation",
    "veo-fail-422-fallback.json": "Content moderation",
    "veo-fail-500-internal.json": "Provider error",
    "veo-fail-501.json": "Provider error",
    "veo-success-fallback.json": None,
    "veo-success-promptjson-object.json": None,
    "veo-success-resulturls-string.json": None,
    "veo-success.json": None,
}


#: Our own fixtures for documented variants that kie.ai's documentation gives no file for.
EXPECTED_OWN: dict[str, str | None] = {
    "4o-image-fail-400-image-format.json": "Input rejected",
    "4o-image-fail-400-image-size.json": "Input rejected",
    "4o-image-fail-451.json": "Source download failed",
    "4o-image-fail-500-edit.json": "Provider error",
    "suno-fail-400-copyright.json": "Content moderation",
    "suno-fail-408-timeout.json": "Provider error",
    "suno-fail-413-existing-work.json": "Content moderation",
    "suno-fail-531-refunded.json": "Provider error",
    "suno-stage-complete.json": None,
    "suno-stage-first.json": RUNNING,
    "suno-stage-text.json": RUNNING,
    "luma-success-alt-wording.json": None,
    "runway-fail-nulls.json": "Content moderation",
    "runway-hd-trial.json": "Plan or quota limit",
    "suno-mp4-fail-500.json": "Provider error",
    "veo-4k-success-snake-case.json": None,
    "veo-fail-400-english-only.json": "Input rejected",
    "veo-fail-500-timeout.json": "Provider error",
    "veo-success-resulturls-json-string.json": None,
}
FIXTURE_PATHS = {path.name: path for path in callback_files()}


def fixture_names() -> list[str]:
    return sorted(FIXTURE_PATHS)


#: Every Market (jobs API) callback fixture, in tests/fixtures/market/.
EXPECTED_MARKET: dict[str, str | None] = {
    "callback-success.json": None,
    "callback-success-consume-credits.json": None,
    "callback-fail.json": "Content moderation",
    "callback-fail-no-failmsg.json": "Provider error",
    "callback-success-image.json": None,
    "callback-success-audio.json": None,
    "callback-success-no-resulturls.json": None,
}
MARKET_PATHS = {path.name: path for path in sorted((FIXTURES / "market").glob("callback-*.json"))}


def test_every_callback_fixture_has_an_expectation() -> None:
    assert fixture_names() == sorted({**EXPECTED_CALLBACKS, **EXPECTED_OWN})
    assert sorted(MARKET_PATHS) == sorted(EXPECTED_MARKET)


@pytest.mark.parametrize("name", sorted(EXPECTED_MARKET))
def test_market_callback_fixture_heading(name: str) -> None:
    update = PRODUCTS["market"].parse_callback(json.loads(MARKET_PATHS[name].read_text()))
    expected = EXPECTED_MARKET[name]
    if expected is None:
        assert update.state is State.SUCCEEDED
        return
    assert update.state is State.FAILED
    assert explain_failure(update.product, update.code, update.message).heading == expected


@pytest.mark.parametrize("name", fixture_names())
def test_callback_fixture_heading(name: str) -> None:
    product = product_of(name)
    update = PRODUCTS[product].parse_callback(json.loads(FIXTURE_PATHS[name].read_text()))
    expected = {**EXPECTED_CALLBACKS, **EXPECTED_OWN}[name]
    if expected is None:
        assert update.state is State.SUCCEEDED
        return
    if expected == RUNNING:
        assert update.state is State.RUNNING
        return
    assert update.state is State.FAILED
    explanation = explain_failure(update.product, update.code, update.message)
    assert explanation.heading == expected
    assert explanation.next_step.endswith(".")


IMAGE_FETCH = (
    "Failed to fetch the image. Kindly verify any access limits set by you or your service "
    "provider."
)

#: (product, code, message, heading) for every message documented in kie-api/README.md.
DOCUMENTED: list[tuple[str, int | None, str, str]] = [
    # Content moderation, in every wording.
    (
        "veo",
        400,
        "Your prompt was flagged by Website as violating content policies.",
        "Content moderation",
    ),
    ("veo", 400, "public error unsafe image upload.", "Content moderation"),
    ("veo", 400, "Public error: unsafe image upload", "Content moderation"),
    (
        "veo",
        422,
        "Your request was rejected by Flow(Your prompt was flagged by Website as violating content "
        "policies). You may consider using our other fallback channels, which are likely to "
        "succeed. Please refer to the documentation.",
        "Content moderation",
    ),
    (
        "veo",
        422,
        "Your request was rejected by Flow(public error minor upload). Please refer to the "
        "documentation.",
        "Content moderation",
    ),
    (
        "veo",
        422,
        "Your request was rejected by Flow(public error prominent people upload).",
        "Content moderation",
    ),
    (
        "runway",
        400,
        "Inappropriate content detected. Please replace the image or video.",
        "Content moderation",
    ),
    (
        "runway",
        400,
        "Detected inappropriate content, please try replacing the video.",
        "Content moderation",
    ),
    (
        "runway",
        400,
        "Your prompt was caught by our AI moderator. Please adjust it and try again!",
        "Content moderation",
    ),
    ("runway", 400, "Your prompt was caught by our AI moderator.", "Content moderation"),
    (
        "runway",
        400,
        "Your prompt has triggered our AI moderator, please re-enter your prompt",
        "Content moderation",
    ),
    (
        "runway",
        400,
        "Your video creation prompt contains NSFW content, which isn't allowed under our policy. "
        "Kindly revise your prompt and generate again.",
        "Content moderation",
    ),
    # Plan or quota, concurrency.
    (
        "runway",
        400,
        "Please try again later. You can upgrade to Standard membership to start generating now.",
        "Plan or quota limit",
    ),
    (
        "runway",
        400,
        "HD quality free trials complete. Subscribe now to continue creating in high resolution.",
        "Plan or quota limit",
    ),
    ("runway", 400, "Reached the limit for concurrent generations.", "Concurrency limit"),
    # Input rejected.
    ("runway", 400, "Incorrect image format.", "Input rejected"),
    ("runway", 400, "Incorrect image format", "Input rejected"),
    ("runway", 400, "Get image info failed.", "Input rejected"),
    ("runway", 400, "get image info failed.", "Input rejected"),
    (
        "runway",
        400,
        "Unsupported width or height. Please adjust the size and try again.",
        "Input rejected",
    ),
    ("runway", 400, "Upload failed due to network reasons, please re-enter.", "Input rejected"),
    ("runway", 400, "Upload failed due to network reasons, please re-enter", "Input rejected"),
    (
        "runway",
        400,
        "Your prompt/negative prompt cannot exceed 2048 characters. Please check if your input is "
        "too long.",
        "Input rejected",
    ),
    ("veo", 400, "Only English prompts are supported at this time.", "Input rejected"),
    (
        "runway",
        422,
        "The request parameters are incorrect, please check the parameters.",
        "Input rejected",
    ),
    # Source download failed.
    (
        "veo",
        400,
        IMAGE_FETCH,
        "Source download failed",
    ),
    (
        "runway",
        451,
        IMAGE_FETCH,
        "Source download failed",
    ),
    ("suno-mp4", 451, "Failed to download source audio file", "Source download failed"),
    ("luma", 400, "Failed to fetch the video.", "Source download failed"),
    # Provider error.
    ("veo", 500, "Internal Error, Please try again later.", "Provider error"),
    ("veo", 500, "Internal Error - Timeout", "Provider error"),
    ("veo", 500, "Timeout", "Provider error"),
    ("veo", 501, "", "Provider error"),
    ("veo", 501, "Failed - Video generation task failed", "Provider error"),
    ("runway", 400, "Generation failed, please try again later", "Provider error"),
    (
        "runway",
        500,
        "Server Error - An unexpected error occurred while processing the request",
        "Provider error",
    ),
    ("suno-mp4", 400, "Music video generation failed", "Provider error"),
    ("suno-mp4", 500, "Build Failed - Audio mp4 generation failed", "Provider error"),
    ("luma", 500, "Modify record generation failed.", "Provider error"),
    (
        "veo",
        455,
        "Service Unavailable - System is currently undergoing maintenance",
        "Provider error",
    ),
    # 4K unavailable.
    (
        "veo-4k",
        500,
        "The 4K version of this video is unavailable. Please try a different video.",
        "4K unavailable",
    ),
    (
        "veo",
        500,
        "The 4K version of this video is unavailable. Please try a different video.",
        "4K unavailable",
    ),
    ("veo-4k", 500, "", "4K unavailable"),
    # Out of credits.
    (
        "veo",
        402,
        "Insufficient Credits - Account does not have enough credits to perform the operation",
        "Out of credits",
    ),
    ("luma", 402, "", "Out of credits"),
    ("runway", None, "Insufficient Credits", "Out of credits"),
    # Market (jobs API): failMsg wordings, and the failure callback's envelope message, which
    # says nothing more than its code.
    (
        "market",
        500,
        "Your content was flagged by the content moderation system. Please modify your prompt.",
        "Content moderation",
    ),
    ("market", 501, "Playground task failed.", "Provider error"),
    ("market", 402, "Playground task failed.", "Out of credits"),
    ("market", 422, "Playground task failed.", "Unknown failure"),
    ("market", 408, "", "Provider error"),
    (
        "market",
        433,
        "The sub-key usage exceeded the limit",
        "Plan or quota limit",
    ),
    ("market", 433, "", "Plan or quota limit"),
    (
        "market",
        500,
        "This voice is not within the range of allowed options",
        "Input rejected",
    ),
    # Runway Aleph.
    ("aleph", 400, "Failed to fetch the image", "Source download failed"),
    ("aleph", 451, "Failed to fetch reference image", "Source download failed"),
    ("aleph", 400, "Inappropriate content detected", "Content moderation"),
    ("aleph", 400, "Upload failed due to network reasons", "Input rejected"),
    # Midjourney.
    ("mj", 500, "Image generation failed", "Provider error"),
    # GPT-4o Image: every errorMessage the record-info page documents.
    (
        "4o-image",
        400,
        "The image content in filesUrl violates content policy",
        "Content moderation",
    ),
    (
        "4o-image",
        400,
        "Image size exceeds maximum of 26214400 bytes",
        "Input rejected",
    ),
    (
        "4o-image",
        400,
        "We couldn't process the provided image file (code=invalid_image_format)",
        "Input rejected",
    ),
    ("4o-image", 400, "Unprocessable image", "Input rejected"),
    ("4o-image", 400, "Image too large", "Input rejected"),
    (
        "4o-image",
        400,
        "Your content was flagged by OpenAI as violating content policies",
        "Content moderation",
    ),
    ("4o-image", 451, IMAGE_FETCH, "Source download failed"),
    ("4o-image", 451, "", "Source download failed"),
    ("4o-image", 500, "Failed to get user token", "Provider error"),
    ("4o-image", 500, "Please try again later", "Provider error"),
    ("4o-image", 500, "Failed to generate image", "Provider error"),
    ("4o-image", 500, "GPT 4O failed to edit the picture", "Provider error"),
    (
        "4o-image",
        400,
        "Generation failed, please try again or contact support",
        "Provider error",
    ),
    (
        "4o-image",
        550,
        "Connection Denied - task rejected due to a full queue",
        "Provider error",
    ),
    ("4o-image", 550, "", "Provider error"),
    # Flux Kontext.
    (
        "flux-kontext",
        400,
        "Your prompt was flagged by Website as violating content policies.",
        "Content moderation",
    ),
    ("flux-kontext", 501, "Image generation task failed", "Provider error"),
    ("flux-kontext", 500, "Internal Error, Please try again later.", "Provider error"),
    (
        "flux-kontext",
        500,
        "The security tolerance level is out of range and should be 0-2 or 0-6",
        "Input rejected",
    ),
    # Suno music: callback codes and poll statuses.
    ("suno", 400, "Lyrics contained copyrighted material", "Content moderation"),
    ("suno", 413, "Uploaded audio matches existing work of art", "Content moderation"),
    ("suno", 408, "", "Provider error"),
    ("suno", 501, "Audio generation failed", "Provider error"),
    ("suno", 501, "Audio generation failed.", "Provider error"),
    (
        "suno",
        531,
        "Generation failed. Your credits have been refunded. Please try again",
        "Provider error",
    ),
    ("suno", 531, "", "Provider error"),
    ("suno", 451, "Failed to download source audio file", "Source download failed"),
    ("suno", 400, "SENSITIVE_WORD_ERROR", "Content moderation"),
    ("suno", None, "Sensitive word detected (SENSITIVE_WORD_ERROR)", "Content moderation"),
    ("suno", 501, "生成失败,请重试或联系客服 (GENERATE_AUDIO_FAILED)", "Provider error"),
    ("suno", None, "生成失败,请重试或联系客服", "Provider error"),
]


@pytest.mark.parametrize(("product", "code", "message", "heading"), DOCUMENTED)
def test_documented_message(product: str, code: int | None, message: str, heading: str) -> None:
    assert explain_failure(product, code, message).heading == heading


@pytest.mark.parametrize(
    ("product", "code", "heading"),
    [
        ("veo", 402, "Out of credits"),
        ("suno-mp4", 451, "Source download failed"),
        ("runway", 500, "Provider error"),
        ("luma", 501, "Provider error"),
        ("veo", 455, "Provider error"),
        ("veo-4k", 500, "4K unavailable"),
        ("veo", 400, "Unknown failure"),
        ("veo", 422, "Unknown failure"),
        ("veo", None, "Unknown failure"),
    ],
)
def test_code_fallback_for_unknown_text(product: str, code: int | None, heading: str) -> None:
    assert explain_failure(product, code, "Something nobody documented").heading == heading


def test_refunded_and_queue_full_say_so() -> None:
    assert "refunded" in explain_failure("suno", 531, "").next_step
    assert "queue" in explain_failure("4o-image", 550, "").next_step
    assert "own" in explain_failure("suno", 400, "Lyrics contained copyrighted material").next_step


def test_maintenance_next_step_says_maintenance() -> None:
    assert "maintenance" in explain_failure("veo", 455, "").next_step


def test_message_beats_code() -> None:
    moderated = explain_failure("veo", 500, "Your prompt was flagged by Website.")
    assert moderated.heading == "Content moderation"
    assert explain_failure("veo-4k", 500, "Internal Error - Timeout").heading == "Provider error"


def test_matching_ignores_case_and_spacing() -> None:
    message = "  REACHED the limit for\nCONCURRENT   generations  "
    assert explain_failure("runway", 400, message).heading == "Concurrency limit"


def test_flow_rejection_is_judged_by_its_inner_message() -> None:
    inner_timeout = "Your request was rejected by Flow(Internal Error - Timeout). Please retry."
    assert explain_failure("veo", 422, inner_timeout).heading == "Provider error"
    inner_unknown = "Your request was rejected by Flow(something odd). Please refer to the docs."
    assert explain_failure("veo", 422, inner_unknown).heading == "Unknown failure"


def test_empty_message_and_no_code_is_unknown() -> None:
    assert explain_failure("veo", None, "").heading == "Unknown failure"
    assert explain_failure("unknown-product", None, "").heading == "Unknown failure"


def test_every_explanation_uses_a_design_heading_and_a_concrete_step() -> None:
    messages = [message for _, _, message, _ in DOCUMENTED] + ["", "whatever"]
    for product in PRODUCTS:
        for code in (None, 200, 400, 402, 422, 451, 455, 500, 501):
            for message in messages:
                found = explain_failure(product, code, message)
                assert isinstance(found, Explanation)
                assert found.heading in HEADINGS
                assert len(found.next_step) > 20
                assert found.next_step[0].isupper()


def test_headings_are_exactly_the_design_table() -> None:
    assert HEADINGS == (
        "Content moderation",
        "Plan or quota limit",
        "Concurrency limit",
        "Input rejected",
        "Source download failed",
        "Provider error",
        "4K unavailable",
        "Out of credits",
        "Unknown failure",
    )


def test_out_of_credits_points_to_billing() -> None:
    assert "https://kie.ai/billing" in explain_failure("veo", 402, "").next_step


def test_unknown_failure_card_keeps_the_raw_message() -> None:
    raw = "Quantum flux capacitor misaligned (code Z-9)"
    assert explain_failure("runway", 400, raw).heading == "Unknown failure"
    task = Task("runway", "t-unknown", State.FAILED, code=400, message=raw)
    text = "\n".join(
        block["text"]["text"] for block in build_task_message(task).blocks if "text" in block
    )
    assert "Unknown failure" in text
    assert raw in text
    assert "Next step" in text
