"""A guarded streaming download: https, public addresses only, our own redirects, a size cap.

The guard sits in the connection itself: `download_session()` builds a session whose resolver
drops every address a download may not reach, so the address that is checked is the address
that is connected to (no DNS rebinding between the check and the connect). Literal IP hosts
never reach a resolver; `open_download` checks them, and every redirect hop, itself.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from ssl import SSLContext

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from bot.video.errors import TransferError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_REDIRECTS = 5
CHUNK_SIZE = 256 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

#: Cloud metadata services, refused even when private hosts are allowed.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, …
        "169.254.170.2",  # AWS ECS task credentials
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: Special-purpose ranges that Python's `is_global` calls global on some versions.
_NOT_PUBLIC = (ipaddress.ip_network("192.0.0.0/24"), ipaddress.ip_network("fec0::/10"))


class DownloadError(TransferError):
    """A download refused or failed; `reason` is one of the codes in `_EXPLANATIONS` or `http_<status>`."""

    def __init__(
        self, reason: str, detail: str = "", *, retryable: bool = False, explanation: str = ""
    ) -> None:
        super().__init__(
            reason, detail, retryable=retryable, explanation=explanation or _explain(reason, detail)
        )

    @classmethod
    def too_large(cls, max_bytes: int, detail: str) -> DownloadError:
        """`too_large`, its explanation naming the cap in (decimal) megabytes."""
        limit = f"{max_bytes / 1_000_000:g} MB"
        return cls(
            "too_large",
            detail,
            explanation=f"The file is larger than the {limit} this bot saves into Slack (SAVE_VIDEO_MAX_MB).",
        )


#: What the card says for each reason; the same for a video, an image or a track.
_EXPLANATIONS = {
    "too_large": "The file is larger than this bot may save into Slack (SAVE_VIDEO_MAX_MB).",
    "gone": "The link has expired or the file is gone from kie.ai.",
    "empty": "kie.ai served an empty file.",
    "refused_address": "The link points at a private or local address, which downloads may not reach.",
    "bad_scheme": "The link is not an https link.",
    "bad_url": "The link is not a usable URL.",
    "too_many_redirects": f"The link redirects more than {MAX_REDIRECTS} times.",
    "network": "kie.ai's file server could not be reached; the bot tries again.",
}


def _explain(reason: str, detail: str) -> str:
    if reason in _EXPLANATIONS:
        return _EXPLANATIONS[reason]
    if reason.startswith("http_"):
        return f"kie.ai's file server answered HTTP {reason[5:]} for the file."
    return detail or reason


class AddressRefused(OSError):
    """Every address of a host is one that downloads may not reach."""

    def __init__(self, host: str, why: Iterable[str]) -> None:
        super().__init__(
            errno.EACCES, f"{host} resolves only to refused addresses ({'; '.join(why)})"
        )
        self.host = host


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which URLs and addresses a download may reach.

    `allow_private` (DOWNLOAD_ALLOW_PRIVATE_HOSTS) admits loopback, private and link-local
    addresses and plain `http`; cloud metadata addresses stay refused. `treat_as_public` lists
    addresses judged as public whatever their range: tests stand a loopback server in for one.
    """

    allow_private: bool = False
    treat_as_public: frozenset[IPAddress] = field(default_factory=frozenset)

    @property
    def schemes(self) -> frozenset[str]:
        return frozenset({"https", "http"}) if self.allow_private else frozenset({"https"})

    def refusal(self, address: IPAddress) -> str | None:
        """Why a download may not connect to `address`, or None when it may."""
        if address in self.treat_as_public:
            return None
        return address_refusal(address, allow_private=self.allow_private)


def address_refusal(address: IPAddress, *, allow_private: bool = False) -> str | None:
    """Why a download may not connect to `address` (e.g. "127.0.0.1 is loopback"), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            why = address_refusal(embedded, allow_private=allow_private)
            return f"{address} carries {why}" if why else None
        if address.scope_id and not allow_private:
            return f"{address} is scoped to one interface"
    if address in METADATA_ADDRESSES:
        return f"{address} is a cloud metadata address"
    if allow_private:
        return None
    checks = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
    )
    for flag, kind in checks:
        if flag:
            return f"{address} is {kind}"
    if not address.is_global or any(address in net for net in _NOT_PUBLIC):
        return f"{address} is not a public address"
    return None


class GuardedResolver(AbstractResolver):
    """Resolves through `inner` and keeps only the addresses that `policy` allows."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = aiohttp.ThreadedResolver()
        results = await self._inner.resolve(host, port, family)
        allowed: list[ResolveResult] = []
        refused: list[str] = []
        for result in results:
            try:
                address = ipaddress.ip_address(result["host"])
            except ValueError:
                refused.append(f"{result['host']!r} is not an IP address")
                continue
            why = self.policy.refusal(address)
            if why is None:
                allowed.append(result)
            else:
                refused.append(why)
        if not allowed:
            raise AddressRefused(host, refused or ["no address"])
        return allowed

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


class GuardedConnector(aiohttp.TCPConnector):
    """A TCP connector that connects only to addresses its policy allows."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        resolver: AbstractResolver | None = None,
        ssl: SSLContext | bool = True,
    ) -> None:
        self.policy = policy
        self._guard = GuardedResolver(policy, resolver)
        super().__init__(resolver=self._guard, ssl=ssl)

    async def close(self, *, abort_ssl: bool = False) -> None:
        await super().close(abort_ssl=abort_ssl)
        await self._guard.close()


def download_session(
    policy: AddressPolicy,
    *,
    resolver: AbstractResolver | None = None,
    ssl: SSLContext | bool = True,
) -> aiohttp.ClientSession:
    """A session for `open_download`: guarded connector, no cookies, no proxy from the environment.

    `resolver` is the one names go through before the guard (default: the system's);
    `ssl` is passed to the connector (a private CA, for tests and private deployments).
    Call it inside a running event loop and close the session when done.
    """
    return aiohttp.ClientSession(
        connector=GuardedConnector(policy, resolver=resolver, ssl=ssl),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        headers={"Accept-Encoding": "identity", "User-Agent": "kie-slack"},
    )


def check_url(url: str | URL, policy: AddressPolicy) -> URL:
    """`url` parsed, or `DownloadError` for a bad scheme, no host, or a refused literal address."""
    try:
        parsed = url if isinstance(url, URL) else URL(url)
    except (TypeError, ValueError):
        raise DownloadError("bad_url", f"{url!r} is not a URL") from None
    if parsed.scheme not in policy.schemes:
        allowed = " or ".join(sorted(policy.schemes))
        raise DownloadError("bad_scheme", f"{parsed.scheme or 'no'} scheme; only {allowed}")
    host = parsed.host
    if not host:
        raise DownloadError("bad_url", f"{str(parsed)!r} has no host")
    address = _literal_address(host)
    if address is not None and (why := policy.refusal(address)) is not None:
        raise DownloadError("refused_address", why)
    return parsed


def _literal_address(host: str) -> IPAddress | None:
    """The address a literal host means, legacy IPv4 forms (`2130706433`, `127.1`) included."""
    host = host.strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and host[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


@dataclass(slots=True)
class Download:
    """An open download: the final `url`, its `size` when the server said it, and its body."""

    url: URL
    size: int | None
    content_type: str | None
    _response: aiohttp.ClientResponse
    _max_bytes: int
    _consumed: bool = False

    async def chunks(self, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """The body in chunks; `DownloadError` past the size cap or when the stream breaks."""
        if self._consumed:
            raise RuntimeError("the body of a download can be read once")
        self._consumed = True
        received = 0
        try:
            async for chunk in self._response.content.iter_chunked(chunk_size):
                received += len(chunk)
                if received > self._max_bytes:
                    raise DownloadError.too_large(
                        self._max_bytes, f"more than {self._max_bytes} bytes"
                    )
                yield chunk
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DownloadError("network", _describe(exc), retryable=True) from None
        if received == 0:
            raise DownloadError("empty", "the body was empty")


@asynccontextmanager
async def open_download(
    session: aiohttp.ClientSession,
    url: str,
    *,
    max_bytes: int,
    read_timeout: float = 60,
) -> AsyncIterator[Download]:
    """Open `url` for streaming, following up to `MAX_REDIRECTS` redirects, each one checked.

    `session` must come from `download_session()`; its policy decides what may be reached.
    Raises `DownloadError` (a `TransferError`) before yielding when the file cannot be had,
    and while streaming when it turns out larger than `max_bytes` or the stream breaks.
    """
    connector = session.connector
    if not isinstance(connector, GuardedConnector):
        raise TypeError("open_download needs a session from download_session()")
    policy = connector.policy
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=read_timeout)
    current = check_url(url, policy)
    for hop in range(MAX_REDIRECTS + 1):
        response = await _get(session, current, timeout)
        try:
            if response.status in _REDIRECTS:
                location = response.headers.get("Location")
                if not location:
                    raise DownloadError(f"http_{response.status}", "a redirect without a Location")
                if hop == MAX_REDIRECTS:
                    raise DownloadError("too_many_redirects", f"more than {MAX_REDIRECTS}")
                try:
                    target = current.join(URL(location))
                except ValueError:
                    raise DownloadError("bad_url", f"redirect to {location!r}") from None
                current = check_url(target, policy)
                continue
            if response.status != 200:
                raise await _status_error(response)
            size = _declared_size(response)
            if size is not None and size > max_bytes:
                raise DownloadError.too_large(max_bytes, f"{size} bytes, more than {max_bytes}")
            if size == 0:
                raise DownloadError("empty", "Content-Length: 0")
            yield Download(current, size, response.content_type, response, max_bytes)
            return
        finally:
            response.close()
    raise AssertionError("unreachable")  # pragma: no cover


async def _get(
    session: aiohttp.ClientSession, url: URL, timeout: aiohttp.ClientTimeout
) -> aiohttp.ClientResponse:
    try:
        return await session.get(url, allow_redirects=False, timeout=timeout)
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, AddressRefused):
            raise DownloadError("refused_address", exc.os_error.strerror or "") from None
        raise DownloadError("network", _describe(exc), retryable=True) from None
    except aiohttp.InvalidURL as exc:
        raise DownloadError("bad_url", _describe(exc)) from None
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise DownloadError("network", _describe(exc), retryable=True) from None


def _declared_size(response: aiohttp.ClientResponse) -> int | None:
    """Content-Length when it is the size of the body we read (not of an encoded body)."""
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return None
    return response.content_length


async def _status_error(response: aiohttp.ClientResponse) -> DownloadError:
    status = response.status
    if status in (404, 410):
        return DownloadError("gone", f"HTTP {status}")
    if status == 403:
        # Expired signed links (kie.ai's 20-minute download URLs, S3-style storage) answer 403.
        try:
            head = await response.content.read(4096)
        except (aiohttp.ClientError, TimeoutError, OSError):
            head = b""
        if b"expired" in head.lower():
            return DownloadError("gone", "HTTP 403: the link has expired")
    retryable = status in (408, 425, 429) or status >= 500
    return DownloadError(f"http_{status}", f"HTTP {status}", retryable=retryable)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
