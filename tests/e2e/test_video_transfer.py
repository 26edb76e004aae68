"""Result videos from the fake kie.ai into the fake Slack over real HTTP on loopback.

The production policy (https only, public addresses only) is exercised over TLS: a stand-in
DNS answers `video.test` with 127.0.0.1, which that one policy treats as public. Every refused
address is refused by name or literal before any connection; nothing leaves loopback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.upload import UploadError, file_title, upload_file
from bot.video.download import (
    MAX_REDIRECTS,
    AddressPolicy,
    DownloadError,
    download_session,
    open_download,
)
from bot.video.errors import TransferError
from bot.video.transfer import open_video
from tests.fakes.kie import FakeFile, FakeKie, pattern_sha256
from tests.fakes.slack import FakeSlack

CHANNEL = "C0VIDEO"
THREAD = "1700000000.000100"
MB = 1_000_000

# A self-signed certificate for video.test, cdn.test and internal.test (2000-2100), tests only.
TLS_KEY = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQggBp6xOJaRIQgDJE3
wpUR/Sn6/FMXFCzpwtqfowV7RNihRANCAATTc/yE6da11WIebxfmbbF58INjZUSI
aPAMPGxSGrd1c6PjCtICMuB01pFTrqPzw1wkRRuJySTN94+Huda1X1AZ
-----END PRIVATE KEY-----
"""
TLS_CERT = """-----BEGIN CERTIFICATE-----
MIIBoTCCAUegAwIBAgIBATAKBggqhkjOPQQDAjAVMRMwEQYDVQQDDAp2aWRlby50
ZXN0MCAXDTAwMDEwMTAwMDAwMFoYDzIxMDAwMTAxMDAwMDAwWjAVMRMwEQYDVQQD
DAp2aWRlby50ZXN0MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE03P8hOnWtdVi
Hm8X5m2xefCDY2VEiGjwDDxsUhq3dXOj4wrSAjLgdNaRU66j88NcJEUbickkzfeP
h7nWtV9QGaOBhTCBgjAuBgNVHREEJzAlggp2aWRlby50ZXN0gghjZG4udGVzdIIN
aW50ZXJuYWwudGVzdDAPBgNVHRMBAf8EBTADAQH/MB0GA1UdDgQWBBQHIJcXszY0
/IiZ2ScMKVgo/e3BtTALBgNVHQ8EBAMCAoQwEwYDVR0lBAwwCgYIKwYBBQUHAwEw
CgYIKoZIzj0EAwIDSAAwRQIhAO3218njeMOJaLHPFUokBLclNuE7iH9vYN/CKaZi
NUnFAiB7LdIRDxqRWxNJwoZaYhwq+ppMntx2DwI3OpnyiSLaDA==
-----END CERTIFICATE-----
"""

LOOPBACK = ipaddress.ip_address("127.0.0.1")


class Names(AbstractResolver):
    """A stand-in DNS: fixed answers per name, every question recorded."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.table:
            raise OSError(socket.EAI_NONAME, f"{host} is unknown")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for address in self.table[host]
        ]

    async def close(self) -> None:
        return None


@pytest.fixture
def tls_server(tmp_path: Path) -> ssl.SSLContext:
    (tmp_path / "cert.pem").write_text(TLS_CERT)
    (tmp_path / "key.pem").write_text(TLS_KEY)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


@pytest.fixture
async def kie(tls_server: ssl.SSLContext) -> AsyncIterator[FakeKie]:
    fake = await FakeKie(tls=tls_server).start()
    yield fake
    await fake.stop()


@pytest.fixture
def names() -> Names:
    return Names({"video.test": ["127.0.0.1"], "internal.test": ["10.0.0.7"]})


@pytest.fixture
async def public(names: Names) -> AsyncIterator[aiohttp.ClientSession]:
    """The production policy, with the fake kie.ai at video.test standing in for a public host."""
    policy = AddressPolicy(treat_as_public=frozenset({LOOPBACK}))
    client_tls = ssl.create_default_context(cadata=TLS_CERT)
    session = download_session(policy, resolver=names, ssl=client_tls)
    yield session
    await session.close()


@pytest.fixture
async def private() -> AsyncIterator[aiohttp.ClientSession]:
    """DOWNLOAD_ALLOW_PRIVATE_HOSTS=on: plain http to loopback."""
    session = download_session(AddressPolicy(allow_private=True))
    yield session
    await session.close()


@pytest.fixture
async def strict() -> AsyncIterator[aiohttp.ClientSession]:
    """The production policy with the system's resolver, for refusals only."""
    session = download_session(AddressPolicy())
    yield session
    await session.close()


@pytest.fixture
async def slack(
    fake_slack: FakeSlack,
) -> AsyncIterator[tuple[AsyncWebClient, aiohttp.ClientSession]]:
    session = aiohttp.ClientSession()
    client = AsyncWebClient(
        token="xoxb-test", base_url=fake_slack.api_url, session=session, retry_handlers=[]
    )
    yield client, session
    await session.close()


def https(kie: FakeKie, name: str, host: str = "video.test") -> str:
    return f"https://{host}:{kie.tls_port}/files/{name}"


async def save(
    slack: tuple[AsyncWebClient, aiohttp.ClientSession],
    downloads: aiohttp.ClientSession,
    url: str,
    *,
    max_bytes: int = 50 * MB,
    spool_dir: Path | None = None,
):
    """The video at `url` into the thread, as the delivery saves one: `open_video`, then
    Slack's external upload."""
    client, session = slack
    async with open_video(downloads, url, max_bytes=max_bytes, spool_dir=spool_dir) as (
        body,
        length,
    ):
        return await upload_file(
            client,
            session,
            body,
            length=length,
            filename="kie-task-1.mp4",
            title=file_title("Veo 3.1", "A cat surfs a wave at sunset"),
            channel=CHANNEL,
            thread_ts=THREAD,
        )


# --- whole videos arrive -------------------------------------------------------------------


async def test_video_streams_over_https_into_the_thread(kie, public, slack, fake_slack):
    size = 3 * MB + 12345
    kie.serve_file("clip.mp4", FakeFile(size))
    saved = await save(slack, public, https(kie, "clip.mp4"))
    [upload] = fake_slack.shared(CHANNEL, THREAD)
    assert saved.file_id == upload.file_id and saved.size == size
    assert (upload.received, upload.sha256) == (size, pattern_sha256(size))
    assert upload.length == size and upload.filename == "kie-task-1.mp4"
    assert upload.title == "Veo 3.1 · A cat surfs a wave at sunset"
    assert not upload.chunked, "the bytes go with a Content-Length, as Slack announced"
    assert not upload.authorization, "the upload URL gets no token"
    assert kie.file_requests == ["clip.mp4"]


async def test_video_without_length_is_spooled_to_disk_then_sent_whole(
    kie, private, slack, fake_slack, tmp_path
):
    spool = tmp_path / "spool"
    spool.mkdir()
    size = 2 * MB + 7
    url = kie.serve_file("nolength.mp4", FakeFile(size, length_header=False))
    await save(slack, private, url, spool_dir=spool)
    [upload] = fake_slack.shared(CHANNEL, THREAD)
    assert (upload.length, upload.received, upload.sha256) == (size, size, pattern_sha256(size))
    assert list(spool.iterdir()) == [], "the spool file is gone"


async def test_gzip_encoded_video_is_sized_by_its_decoded_bytes(kie, private, slack, fake_slack):
    size = 4 * MB
    url = kie.serve_file("gzip.mp4", FakeFile(size, gzip=True))
    await save(slack, private, url)
    [upload] = fake_slack.shared(CHANNEL, THREAD)
    assert (upload.length, upload.received, upload.sha256) == (size, size, pattern_sha256(size))


async def test_redirects_within_allowed_hosts_are_followed(kie, public, slack, fake_slack):
    kie.serve_file("clip.mp4", FakeFile(1000))
    for hop in range(MAX_REDIRECTS):
        target = "clip.mp4" if hop == 0 else f"hop{hop - 1}"
        kie.redirect(f"hop{hop}", https(kie, target), status=(301, 302, 303, 307, 308)[hop])
    await save(slack, public, https(kie, f"hop{MAX_REDIRECTS - 1}"))
    assert [u.received for u in fake_slack.shared(CHANNEL)] == [1000]


# --- what downloads refuse -------------------------------------------------------------------


async def download_error(
    session: aiohttp.ClientSession, url: str, max_bytes: int = MB
) -> DownloadError:
    with pytest.raises(DownloadError) as caught:
        async with open_download(session, url, max_bytes=max_bytes) as download:
            async for _ in download.chunks():
                pass
    return caught.value


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "[::1]",
        "[fc00::1]",
        "[fe80::1]",
        "[::ffff:127.0.0.1]",
        "[fd00:ec2::254]",
        "2130706433",
        "127.0.0.1.",
        "[fe80::1%25eth0]",
        "LOCALHOST",
    ],
)
async def test_literal_private_addresses_are_refused_before_any_request(strict, host):
    error = await download_error(strict, f"https://{host}/video.mp4")
    assert error.reason == "refused_address" and not error.retryable


async def test_a_name_for_loopback_is_refused_by_the_resolver(strict, kie):
    # localhost resolves (system resolver, no traffic) to loopback only: no connection is made.
    error = await download_error(strict, f"https://localhost:{kie.tls_port}/files/clip.mp4")
    assert error.reason == "refused_address"
    assert "loopback" in error.detail
    assert kie.file_requests == []


async def test_a_name_for_a_private_address_is_refused_by_the_resolver(public, names, kie):
    error = await download_error(public, https(kie, "clip.mp4", host="internal.test"))
    assert error.reason == "refused_address" and "10.0.0.7 is private" in error.detail
    assert names.asked == ["internal.test"]
    assert kie.file_requests == []


@pytest.mark.parametrize(
    ("to", "reason"),
    [
        ("https://internal.test:{port}/files/clip.mp4", "refused_address"),
        ("https://[::1]:{port}/files/clip.mp4", "refused_address"),
        ("https://169.254.169.254/latest/meta-data/", "refused_address"),
        ("https://10.0.0.1/video.mp4", "refused_address"),
        ("http://video.test:{port}/files/clip.mp4", "bad_scheme"),
        ("file:///etc/passwd", "bad_scheme"),
    ],
)
async def test_a_redirect_to_a_refused_place_is_refused(public, kie, to, reason):
    kie.serve_file("clip.mp4", FakeFile(1000))
    kie.redirect("away", to.format(port=kie.tls_port))
    error = await download_error(public, https(kie, "away"))
    assert error.reason == reason
    assert kie.file_requests == ["away"]


async def test_only_the_checked_address_is_dialled(public, names, kie, slack, fake_slack):
    # cdn.test answers a refused loopback address first; a trap listens there on the same port.
    # Only the allowed address is connected to: the check and the connection see one answer.
    trapped = []

    def trap(_reader, writer):
        trapped.append(writer.get_extra_info("peername"))
        writer.close()

    try:
        server = await asyncio.start_server(trap, "127.0.0.2", kie.tls_port)
    except OSError:
        pytest.skip("127.0.0.2 is not a loopback address here")
    names.table["cdn.test"] = ["127.0.0.2", "127.0.0.1"]
    kie.serve_file("clip.mp4", FakeFile(5000))
    try:
        await save(slack, public, https(kie, "clip.mp4", host="cdn.test"))
    finally:
        server.close()
        await server.wait_closed()
    assert trapped == []
    assert [u.received for u in fake_slack.shared(CHANNEL)] == [5000]


async def test_too_many_redirects(public, kie):
    kie.redirect("loop", https(kie, "loop"))
    error = await download_error(public, https(kie, "loop"))
    assert error.reason == "too_many_redirects"
    assert len(kie.file_requests) == MAX_REDIRECTS + 1


async def test_plain_http_only_with_private_hosts_allowed(public, private, kie):
    url = kie.serve_file("clip.mp4", FakeFile(1000))
    assert (await download_error(public, url)).reason == "bad_scheme"
    assert kie.file_requests == []
    async with open_download(private, url, max_bytes=MB) as download:
        assert download.size == 1000
        assert sum([len(c) async for c in download.chunks()]) == 1000


async def test_a_session_without_the_guard_is_not_used(kie):
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TypeError):
            async with open_download(session, kie.serve_file("a", FakeFile(10)), max_bytes=MB):
                pass
    assert kie.file_requests == []


# --- the size cap ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "file",
    [
        FakeFile(MB + 1),  # an honest Content-Length over the cap: refused before the body
        FakeFile(1000, declared=5 * MB),  # a Content-Length over the cap, whatever comes
        FakeFile(3 * MB, length_header=False),  # no Content-Length: stopped while streaming
        FakeFile(3 * MB, gzip=True),  # a small Content-Length for a body that decodes larger
    ],
    ids=["honest", "lying", "none", "gzip"],
)
async def test_a_video_over_the_cap_is_not_uploaded(private, slack, fake_slack, kie, file):
    url = kie.serve_file("big.mp4", file)
    with pytest.raises(DownloadError) as caught:
        await save(slack, private, url, max_bytes=MB)
    assert caught.value.reason == "too_large" and not caught.value.retryable
    assert "larger than the 1 MB" in caught.value.explanation
    assert fake_slack.count("files.getUploadURLExternal") == 0
    assert fake_slack.uploads == {}


async def test_exactly_the_cap_is_fine(private, slack, fake_slack, kie):
    url = kie.serve_file("edge.mp4", FakeFile(MB, length_header=False))
    await save(slack, private, url, max_bytes=MB)
    assert [u.received for u in fake_slack.shared(CHANNEL)] == [MB]


async def test_a_stream_cut_short_is_a_retryable_download_error(private, slack, fake_slack, kie):
    url = kie.serve_file("cut.mp4", FakeFile(MB, declared=2 * MB))
    with pytest.raises(DownloadError) as caught:
        await save(slack, private, url, max_bytes=10 * MB)
    assert caught.value.reason == "network" and caught.value.retryable
    assert fake_slack.shared(CHANNEL) == []


# --- links that are gone or broken -----------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "reason", "retryable"),
    [
        (FakeFile(status=404), "gone", False),
        (FakeFile(status=410), "gone", False),
        (
            FakeFile(
                status=403,
                body="<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
            ),
            "gone",
            False,
        ),
        (FakeFile(status=403, body="Forbidden"), "http_403", False),
        (FakeFile(status=500), "http_500", True),
        (FakeFile(status=429), "http_429", True),
    ],
)
async def test_error_statuses(public, kie, file, reason, retryable):
    kie.serve_file("x.mp4", file)
    error = await download_error(public, https(kie, "x.mp4"))
    assert (error.reason, error.retryable) == (reason, retryable)
    assert isinstance(error, TransferError) and error.explanation


async def test_an_unknown_name_is_a_retryable_network_error(public, kie):
    error = await download_error(public, https(kie, "x.mp4", host="nowhere.test"))
    assert error.reason == "network" and error.retryable


# --- Slack's answers -------------------------------------------------------------------------


async def body(size: int) -> AsyncIterator[bytes]:
    yield b"v" * size


async def upload(slack, size: int = 100, channel: str = CHANNEL):
    client, session = slack
    return await upload_file(
        client,
        session,
        body(size),
        length=size,
        filename="kie-task-1.mp4",
        title="Runway · a title",
        channel=channel,
        thread_ts=THREAD,
    )


@pytest.mark.parametrize(
    "error",
    [
        "storage_limit_reached",
        "file_uploads_disabled",
        "file_upload_size_restricted",
        "restricted_action",
        "channel_not_found",
        "is_archived",
    ],
)
async def test_slack_refusals_are_permanent_and_explained(slack, fake_slack, error):
    fake_slack.fail_next("files.completeUploadExternal", error=error)
    with pytest.raises(UploadError) as caught:
        await upload(slack)
    assert caught.value.reason == error and not caught.value.retryable
    assert caught.value.explanation and error not in caught.value.explanation
    assert fake_slack.shared(CHANNEL) == []


async def test_missing_files_write_scope(slack, fake_slack):
    fake_slack.fail_next(
        "files.getUploadURLExternal", error="missing_scope", extra={"needed": "files:write"}
    )
    with pytest.raises(UploadError) as caught:
        await upload(slack)
    assert caught.value.reason == "missing_scope" and not caught.value.retryable
    assert "files:write" in caught.value.explanation
    assert fake_slack.uploads == {}


@pytest.mark.parametrize(
    ("method", "fault", "reason", "retry_after"),
    [
        ("files.getUploadURLExternal", {"status": 429, "retry_after": 7}, "ratelimited", 7.0),
        ("files.completeUploadExternal", {"status": 429, "retry_after": 3}, "ratelimited", 3.0),
        ("files.getUploadURLExternal", {"status": 503}, "http_503", None),
        ("files.completeUploadExternal", {"error": "internal_error"}, "internal_error", None),
        ("files.getUploadURLExternal", {"drop": True}, "network", None),
        ("upload", {"status": 500}, "http_500", None),
        ("upload", {"drop": True}, "network", None),
    ],
)
async def test_passing_trouble_is_retryable(slack, fake_slack, method, fault, reason, retry_after):
    fake_slack.fail_next(method, **fault)
    with pytest.raises(UploadError) as caught:
        await upload(slack)
    assert (caught.value.reason, caught.value.retryable) == (reason, True)
    assert caught.value.retry_after == retry_after
    await upload(slack)  # the next try goes through
    assert len(fake_slack.shared(CHANNEL)) == 1


async def test_a_public_channel_is_joined_then_shared_into(slack, fake_slack):
    fake_slack.not_joined[CHANNEL] = "public"
    await upload(slack)
    assert fake_slack.joins == [CHANNEL]
    assert fake_slack.count("files.completeUploadExternal") == 2
    assert len(fake_slack.shared(CHANNEL, THREAD)) == 1


async def test_a_private_channel_asks_for_an_invitation(slack, fake_slack):
    fake_slack.not_joined[CHANNEL] = "private"
    with pytest.raises(UploadError) as caught:
        await upload(slack)
    assert caught.value.reason == "not_in_channel" and not caught.value.retryable
    assert "invite" in caught.value.explanation
    assert fake_slack.count("conversations.join") == 1
    assert fake_slack.shared(CHANNEL) == []


async def test_joining_needs_its_scope(slack, fake_slack):
    fake_slack.not_joined[CHANNEL] = "public"
    fake_slack.fail_next(
        "conversations.join", error="missing_scope", extra={"needed": "channels:join"}
    )
    with pytest.raises(UploadError) as caught:
        await upload(slack)
    assert caught.value.reason == "missing_scope"
    assert "channels:join" in caught.value.explanation


async def test_a_body_shorter_than_announced_fails_instead_of_hanging(slack, fake_slack):
    client, session = slack

    async def short() -> AsyncIterator[bytes]:
        yield b"x" * 10

    with pytest.raises(UploadError) as caught:
        await upload_file(
            client,
            session,
            short(),
            length=100,
            filename="a.mp4",
            title="a",
            channel=CHANNEL,
        )
    assert caught.value.reason == "length_mismatch"
    assert fake_slack.shared(CHANNEL) == []
