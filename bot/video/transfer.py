"""A result file (a video, an image, a track) from its link into a Slack thread, streamed end
to end."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

import aiohttp

from bot.video.download import CHUNK_SIZE, Download, open_download


@asynccontextmanager
async def open_video(
    session: aiohttp.ClientSession,
    url: str,
    *,
    max_bytes: int,
    spool_dir: Path | None = None,
) -> AsyncIterator[tuple[AsyncIterator[bytes], int]]:
    """The file at `url` as a body to stream and its length, for Slack's upload (which needs
    the size up front): opened with `open_download` (through `download_session()`), spooled
    to disk only when the server did not say the size. Raises `DownloadError`."""
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
