"""Receivers that misbehave on purpose, on 127.0.0.1, for the fault tests.

Each is a real listening socket: one that reads the request and then says
nothing, one that resets the connection, one that trickles its answer a byte at
a time, one whose answer never ends, one behind a self-signed certificate, and
a port where nothing listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import port_for
from aiohttp import web

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request_head(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        await reader.readuntil(b"\r\n\r\n")


async def say_nothing(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Accept, read the request, and never answer."""
    await read_request_head(reader)
    with contextlib.suppress(ConnectionError):
        await reader.read()  # until the relay gives up and closes
    writer.close()


async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the request head, then reset the connection (RST, not FIN)."""
    await read_request_head(reader)
    raw = writer.get_extra_info("socket")
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@contextlib.asynccontextmanager
async def raw_endpoint(handler: Handler) -> AsyncIterator[str]:
    """A TCP server running ``handler`` per connection; yields its base URL."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2)


@contextlib.asynccontextmanager
async def trickling_endpoint(byte_every: float = 0.2) -> AsyncIterator[str]:
    """Answers 200 at once, then its body one byte every ``byte_every`` seconds."""

    async def trickle(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=200)
        response.content_length = 4096
        await response.prepare(request)
        for _ in range(4096):
            await response.write(b".")
            await asyncio.sleep(byte_every)
        return response

    async with served(trickle) as url:
        yield url


@contextlib.asynccontextmanager
async def endless_endpoint() -> AsyncIterator[str]:
    """Answers 200 at once, then a chunked body that never ends."""

    async def flood(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=200)
        response.enable_chunked_encoding()
        await response.prepare(request)
        # Until the relay hangs up (the write then fails) or the server stops.
        with contextlib.suppress(ConnectionError):
            while True:
                await response.write(b"x" * 4096)
                await asyncio.sleep(0.001)
        return response

    async with served(flood) as url:
        yield url


# A key and a certificate for 127.0.0.1, valid for a day, signed by that key.
SELF_SIGNED = (
    *("openssl", "req", "-x509", "-newkey", "ec", "-nodes", "-days", "1"),
    *("-pkeyopt", "ec_paramgen_curve:prime256v1", "-subj", "/CN=127.0.0.1"),
    *("-addext", "subjectAltName=IP:127.0.0.1"),
)
HAS_OPENSSL = shutil.which("openssl") is not None


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no one signed but itself, and its key."""
    certificate, key = folder / "certificate.pem", folder / "key.pem"
    subprocess.run(
        [*SELF_SIGNED, "-keyout", str(key), "-out", str(certificate)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return certificate, key


@contextlib.asynccontextmanager
async def tls_endpoint(folder: Path) -> AsyncIterator[str]:
    """Answers 200 over HTTPS, with a self-signed certificate; yields its URL."""

    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    certificate, key = self_signed_certificate(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, key)
    async with served(accept, context) as url:
        yield url.replace("http://", "https://", 1)


@contextlib.asynccontextmanager
async def served(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[str]:
    """An aiohttp server on 127.0.0.1 POSTing everything to ``handler``."""
    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def silent_port() -> int:
    """A port on 127.0.0.1 where nothing listens: connections are refused."""
    port: int = port_for.select_random()
    return port
