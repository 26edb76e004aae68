"""A result video from its link into a Slack thread, streamed end to end."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.upload import UploadedFile, upload_file
from bot.video.download import CHUNK_SIZE, Download, open_download


async def save_video(
    client: AsyncWebClient,
    slack_session: aiohttp.ClientSession,
    download_session: aiohttp.ClientSession,
    url: str,
    *,
    channel: str,
    thread_ts: str | None,
    title: str,
    filename: str,
    max_bytes: int,
    spool_dir: Path | None = None,
    before_complete: Callable[[str], Awaitable[None]] | None = None,
) -> UploadedFile:
    """Download `url` (through `download_session`, see `download_session()`) into the thread.

    The bytes stream from the download to Slack's upload URL; only a download without a
    Content-Length is first spooled to a temporary file in `spool_dir`, since Slack needs the
    length up front. Raises `TransferError` (`DownloadError` or `UploadError`). Uploading each
    video once per thread is the caller's to ensure: every call uploads a new file
    (`before_complete`, see `upload_file`, is where to record that one is about to be shared).
    """
    async with open_video(download_session, url, max_bytes=max_bytes, spool_dir=spool_dir) as (
        body,
        length,
    ):
        return await upload_file(
            client,
            slack_session,
            body,
            length=length,
            filename=filename,
            title=title,
            channel=channel,
            thread_ts=thread_ts,
            before_complete=before_complete,
        )


@asynccontextmanager
async def open_video(
    session: aiohttp.ClientSession,
    url: str,
    *,
    max_bytes: int,
    spool_dir: Path | None = None,
) -> AsyncIterator[tuple[AsyncIterator[bytes], int]]:
    """The video at `url` as a body to stream and its length (see `save_video`): opened with
    `open_download`, spooled to disk only when the server did not say the size."""
    async with (
        open_download(session, url, max_bytes=max_bytes) as download,
        sized_body(download, spool_dir) as sized,
    ):
        yield sized


@asynccontextmanager
async def sized_body(
    download: Download, spool_dir: Path | None = None
) -> AsyncIterator[tuple[AsyncIterator[bytes], int]]:
    """The download's body and its length: streamed when the server said the size, else
    spooled to a temporary file on disk (deleted on exit) to learn it."""
    if download.size is not None:
        yield download.chunks(), download.size
        return
    with tempfile.TemporaryFile(dir=spool_dir) as spool:
        size = 0
        async for chunk in download.chunks():
            await asyncio.to_thread(spool.write, chunk)
            size += len(chunk)
        await asyncio.to_thread(spool.seek, 0)
        yield _read(spool), size


async def _read(spool: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(spool.read, CHUNK_SIZE):
        yield chunk
