"""A Slack message's image handed to kie.ai: fetched from Slack's own file host with the bot
token (kie.ai cannot read Slack's private files), then uploaded to kie.ai's File Upload API,
whose link a generation takes as its start image.

The bot token goes only to Slack's file hosts: `files.slack.com`, or the host of
`SLACK_API_URL` when that is not Slack's (a test or a proxy); no redirect is followed.
"""

from __future__ import annotations

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient
from yarl import URL

from bot.kie.client import KieClient, KieError
from bot.slack.from_message import SlackImage

#: The largest start image taken from Slack (kie.ai's image inputs take up to 10 or 25 MB).
MAX_IMAGE_BYTES = 20_000_000
#: Slack's file hosts that are sent the bot token.
SLACK_FILE_HOSTS = frozenset({"files.slack.com"})
_TIMEOUT = aiohttp.ClientTimeout(total=60, connect=10)


class StartImageError(Exception):
    """The message's image could not be handed to kie.ai; `str()` says why, for a person."""


Origin = tuple[str, str | None, int | None]


def slack_file_origins(slack_api_url: str) -> frozenset[Origin]:
    """The (scheme, host, port) a Slack file may be fetched from with the bot token."""
    origins = {_origin(URL(f"https://{host}/")) for host in SLACK_FILE_HOSTS}
    api = URL(slack_api_url)
    if api.host and not (api.host == "slack.com" or api.host.endswith(".slack.com")):
        origins.add(_origin(api))  # a stand-in for Slack: its own host serves the files
    return frozenset(origins)


async def fetch_slack_image(
    session: aiohttp.ClientSession,
    token: str,
    image: SlackImage,
    origins: frozenset[Origin],
    max_bytes: int = MAX_IMAGE_BYTES,
) -> bytes:
    """The bytes of a Slack message's image, fetched with the bot token."""
    url = URL(image.url)
    if _origin(url) not in origins:
        raise StartImageError("it is not on Slack's file host, so the bot does not fetch it.")
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with session.get(
            url, headers=headers, allow_redirects=False, timeout=_TIMEOUT
        ) as response:
            if response.status != 200:
                raise StartImageError(
                    f"Slack answered {response.status} to its download (the app needs the "
                    "files:read scope: see the README)."
                )
            if not response.content_type.startswith("image/"):
                raise StartImageError(
                    "Slack sent no image for it (the app needs the files:read scope: see the "
                    "README)."
                )
            if (response.content_length or 0) > max_bytes:
                raise StartImageError(_too_large(max_bytes))
            data = bytearray()
            async for chunk in response.content.iter_chunked(1 << 16):
                data += chunk
                if len(data) > max_bytes:
                    raise StartImageError(_too_large(max_bytes))
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise StartImageError(f"Slack did not hand it over ({type(exc).__name__}).") from None
    return bytes(data)


async def hand_over(slack: AsyncWebClient, kie: KieClient, image: SlackImage) -> str:
    """Fetch the message's image from Slack with the client's token (only from its file hosts)
    and upload it to kie.ai; the link kie.ai gives. Raises `StartImageError`."""
    origins = slack_file_origins(slack.base_url)
    token = slack.token or ""
    if slack.session is not None:
        data = await fetch_slack_image(slack.session, token, image, origins)
    else:
        async with aiohttp.ClientSession() as session:
            data = await fetch_slack_image(session, token, image, origins)
    try:
        return await kie.upload_file(data, image.name, image.mimetype)
    except KieError as exc:
        raise StartImageError(f"kie.ai did not take it: {exc}.") from None


def _origin(url: URL) -> Origin:
    return (url.scheme, url.host, url.port)


def _too_large(max_bytes: int) -> str:
    return f"it is larger than {max_bytes / 1_000_000:g} MB."
