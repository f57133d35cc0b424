"""A webhook receiver on 127.0.0.1 that verifies signatures, for the demo and tests.

It is what a receiver should do: check ``X-Signature`` over the raw body bytes, in
constant time, before trusting anything in the body.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from relay import signing


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    # time.time() when the request arrived, to compare with a commit time.
    received_at: float
    # None when the receiver knows no secret for this path.
    signature_verified: bool | None
    status_sent: int

    @property
    def payload(self) -> Any:
        return json.loads(self.body)

    @property
    def event(self) -> str:
        return self.headers.get("X-Relay-Event", "")


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str] | None = None
    body: str | None = None


class Receiver:
    """Records every POST; answers with scripted statuses, 200 by default."""

    def __init__(
        self, on_request: Callable[[ReceivedRequest], None] | None = None
    ) -> None:
        self.requests: list[ReceivedRequest] = []
        self._secrets: dict[str, str] = {}
        self._scripts: dict[str, deque[Answer]] = defaultdict(deque)
        # Requests that reached each path, counted on arrival (before any hold).
        self.arrivals: dict[str, int] = defaultdict(int)
        self._holds: dict[str, tuple[asyncio.Event, asyncio.Event]] = {}
        self._arrived = asyncio.Condition()
        self._on_request = on_request
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def expect_secret(self, path: str, secret: str) -> None:
        self._secrets[path] = secret

    def answer(self, path: str, *statuses: int) -> None:
        """Answer the next requests to ``path`` with these statuses, in order."""
        self._scripts[path].extend(Answer(status) for status in statuses)

    def answer_with(
        self,
        path: str,
        status: int,
        headers: dict[str, str] | None = None,
        body: str | None = None,
    ) -> None:
        """Answer the next request to ``path`` with these headers and body too."""
        self._scripts[path].append(Answer(status, headers, body))

    def hold(self, path: str, arrived: asyncio.Event, release: asyncio.Event) -> None:
        """Keep requests to ``path`` waiting: set ``arrived``, answer on ``release``."""
        self._holds[path] = (arrived, release)

    def url(self, path: str) -> str:
        return self.base_url + path

    def on(self, path: str) -> list[ReceivedRequest]:
        return [request for request in self.requests if request.path == path]

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(
        self, count: int, *, path: str | None = None, timeout: float = 15.0
    ) -> list[ReceivedRequest]:
        """Wait until ``count`` requests (to ``path``, if given) have arrived."""

        def matching() -> list[ReceivedRequest]:
            return self.requests if path is None else self.on(path)

        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(matching()) >= count)
        return matching()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        received_at = time.time()
        path = request.path
        self.arrivals[path] += 1
        if path in self._holds:
            arrived, release = self._holds[path]
            arrived.set()
            await release.wait()
        secret = self._secrets.get(path)
        verified = None
        if secret is not None:
            verified = signing.verify_blue_signature(
                secret, body, request.headers.get("X-Signature", "")
            )
        script = self._scripts[path]
        answer = script.popleft() if script else Answer(200)
        status = answer.status

        received = ReceivedRequest(
            path=path,
            headers=dict(request.headers),
            body=body,
            received_at=received_at,
            signature_verified=verified,
            status_sent=status,
        )
        async with self._arrived:
            self.requests.append(received)
            self._arrived.notify_all()
        if self._on_request is not None:
            self._on_request(received)
        default_body = "ok" if status < 300 else "no"
        return web.Response(
            status=status,
            text=default_body if answer.body is None else answer.body,
            headers=answer.headers,
        )
