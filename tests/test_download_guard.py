"""The download guard's decisions, one function at a time; the video settings; file names.

No test here opens a connection: addresses and names are judged, never reached.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from bot.config import ConfigError
from bot.slack.upload import file_name, file_title, track_title
from bot.video.download import (
    AddressPolicy,
    AddressRefused,
    DownloadError,
    GuardedResolver,
    address_refusal,
    check_url,
)
from bot.video.settings import (
    MEGABYTE,
    parse_allow_private_hosts,
    parse_save_video_max_mb,
    parse_save_videos,
)

REFUSED = [
    "127.0.0.1",
    "127.255.255.254",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",
    "169.254.1.1",
    "100.64.0.1",
    "100.100.100.200",
    "192.0.0.192",
    "0.0.0.0",
    "0.1.2.3",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "198.18.0.1",
    "192.0.2.1",
    "::",
    "::1",
    "fc00::1",
    "fd00:ec2::254",
    "fe80::1",
    "fe80::1%1",
    "fec0::1",
    "ff02::1",
    "2001:db8::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "::127.0.0.1",  # IPv4-compatible (deprecated)
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "151.101.1.69", "2606:4700:4700::1111", "64:ff9b::808:808"]
METADATA = ["169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254", "100.100.100.200"]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address):
    parsed = ipaddress.ip_address(address)
    why = address_refusal(parsed)
    assert why is not None and str(parsed) in why


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address):
    assert address_refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.1.1", "::1", "fc00::1"])
def test_private_hosts_allowed_admits_private_ranges(address):
    assert address_refusal(ipaddress.ip_address(address), allow_private=True) is None


@pytest.mark.parametrize("address", METADATA)
def test_metadata_addresses_are_refused_even_with_private_hosts_allowed(address):
    why = address_refusal(ipaddress.ip_address(address), allow_private=True)
    assert why is not None and "metadata" in why


def test_treat_as_public_exempts_only_its_addresses():
    policy = AddressPolicy(treat_as_public=frozenset({ipaddress.ip_address("127.0.0.1")}))
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("127.0.0.2")) is not None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/v.mp4", "bad_scheme"),
        ("ftp://example.com/v.mp4", "bad_scheme"),
        ("file:///etc/passwd", "bad_scheme"),
        ("v.mp4", "bad_scheme"),
        ("https:///v.mp4", "bad_url"),
        ("https://127.0.0.1/v.mp4", "refused_address"),
        ("https://10.0.0.1:8443/v.mp4", "refused_address"),
        ("https://172.16.5.4/v.mp4", "refused_address"),
        ("https://192.168.0.10/v.mp4", "refused_address"),
        ("https://169.254.169.254/latest/meta-data/", "refused_address"),
        ("https://[::1]/v.mp4", "refused_address"),
        ("https://[fc00::1]/v.mp4", "refused_address"),
        ("https://[::ffff:127.0.0.1]/v.mp4", "refused_address"),
        ("https://[::ffff:7f00:1]/v.mp4", "refused_address"),
        ("https://2130706433/v.mp4", "refused_address"),
        ("https://0x7f.1/v.mp4", "refused_address"),
        ("https://127.1/v.mp4", "refused_address"),
        ("https://017700000001/v.mp4", "refused_address"),
    ],
)
def test_check_url_refuses(url, reason):
    with pytest.raises(DownloadError) as caught:
        check_url(url, AddressPolicy())
    assert caught.value.reason == reason and not caught.value.retryable


def test_check_url_allows_https_names_and_public_literals():
    for url in (
        "https://tempfile.aiquickdraw.com/p/a.mp4",
        "https://8.8.8.8/v",
        "https://[2606:4700::1]/v",
    ):
        assert str(check_url(url, AddressPolicy())) == url


def test_http_and_private_literals_with_private_hosts_allowed():
    policy = AddressPolicy(allow_private=True)
    assert check_url("http://127.0.0.1:8080/v.mp4", policy).port == 8080
    with pytest.raises(DownloadError, match="metadata"):
        check_url("http://169.254.169.254/", policy)
    with pytest.raises(DownloadError) as caught:
        check_url("ftp://127.0.0.1/", policy)
    assert caught.value.reason == "bad_scheme"


class Answers(AbstractResolver):
    """A stand-in DNS answering every name with `addresses`."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        return None


@pytest.mark.parametrize(
    "addresses",
    [("127.0.0.1",), ("10.0.0.7", "192.168.1.2"), ("::1",), ("::ffff:127.0.0.1",), ("fe80::1%2",)],
)
async def test_resolver_refuses_a_name_with_only_refused_addresses(addresses):
    resolver = GuardedResolver(AddressPolicy(), Answers(*addresses))
    with pytest.raises(AddressRefused) as caught:
        await resolver.resolve("cdn.example", 443)
    assert "cdn.example" in str(caught.value)
    assert isinstance(caught.value, OSError)


async def test_resolver_keeps_only_allowed_addresses():
    # A rebinding answer mixes a public and a private address: only the public one is dialled.
    resolver = GuardedResolver(AddressPolicy(), Answers("10.0.0.7", "8.8.8.8", "::1"))
    assert [r["host"] for r in await resolver.resolve("cdn.example", 443)] == ["8.8.8.8"]


async def test_resolver_refuses_what_is_not_an_address():
    resolver = GuardedResolver(AddressPolicy(), Answers("not-an-address"))
    with pytest.raises(AddressRefused):
        await resolver.resolve("cdn.example", 443)


async def test_localhost_through_the_system_resolver_is_refused():
    # getaddrinfo answers from the hosts file; nothing is sent anywhere.
    resolver = GuardedResolver(AddressPolicy())
    with pytest.raises(AddressRefused, match="loopback"):
        await resolver.resolve("localhost", 443)
    await resolver.close()


def test_settings_defaults():
    assert parse_save_videos(None) is True
    assert parse_save_video_max_mb(None) == 1000
    assert parse_allow_private_hosts(None) is False
    assert MEGABYTE == 1_000_000


@pytest.mark.parametrize(
    ("value", "expected"),
    [("on", True), ("OFF", False), ("true", True), ("0", False), (" yes ", True)],
)
def test_switches(value, expected):
    assert parse_save_videos(value) is expected
    assert parse_allow_private_hosts(value) is expected


@pytest.mark.parametrize("value", ["maybe", "2", "enabled"])
def test_a_malformed_switch_names_its_variable(value):
    with pytest.raises(ConfigError, match="SLACK_SAVE_VIDEOS"):
        parse_save_videos(value)
    with pytest.raises(ConfigError, match="DOWNLOAD_ALLOW_PRIVATE_HOSTS"):
        parse_allow_private_hosts(value)


def test_max_mb():
    assert parse_save_video_max_mb("250") == 250
    for value in ("0", "-5", "1.5", "lots", "100001"):
        with pytest.raises(ConfigError, match="SAVE_VIDEO_MAX_MB"):
            parse_save_video_max_mb(value)


def test_title_is_the_product_and_the_prompts_start():
    assert file_title("Veo 3.1", "A cat\nsurfs  a wave") == "Veo 3.1 · A cat surfs a wave"
    assert file_title("Runway", None) == "Runway"
    assert file_title("Runway", "  \t ") == "Runway"
    long = file_title("Veo 3.1", "word " * 100, limit=60)
    assert len(long) <= 60 and long.endswith("word…")
    assert "\x00" not in file_title("Luma Modify", "bad\x00bytes\x1b[31m")


def test_a_tracks_title_is_its_name_and_length():
    assert track_title("Iron Man", 198.4) == "Iron Man (3:18)"
    assert track_title("Long  Night\n", 3725) == "Long Night (1:02:05)"
    assert track_title("Untimed", None) == "Untimed"
    assert track_title("  ", 120) == "", "no name: the caller titles it otherwise"
    long = track_title("la " * 60, 61, limit=40)
    assert len(long) <= 40 and long.endswith("… (1:01)")


def test_filename_is_safe_and_its_extension_fits_the_kind():
    assert file_name("abc123") == "kie-abc123-1.mp4"
    assert file_name("a/b:c", 1, "https://x/y/clip.MOV?sig=1") == "kie-a-b-c-2.mov"
    assert file_name("t", 0, "https://x/y/file.exe") == "kie-t-1.mp4"
    assert file_name("../..", 0, "not a url ::") == "kie-file-1.mp4"
    assert file_name("t", 0, "https://x/a.jpeg", "image") == "kie-t-1.jpeg"
    assert file_name("t", 2, "https://x/a.png", "image") == "kie-t-3.png"
    assert file_name("t", 0, "https://x/render?id=4", "image") == "kie-t-1.png"
    assert file_name("t", 0, "https://x/song.mp3", "audio") == "kie-t-1.mp3"
    assert file_name("t", 0, "https://x/stream/7d1e", "audio") == "kie-t-1.mp3"
    assert file_name("t", 0, "https://x/a.mp4", "audio") == "kie-t-1.mp3", "not another kind's"
