"""Sending one request and deciding what its answer means. Knows nothing of SQL.

``classify`` is the one place that turns a status code or an exception into an
outcome; everything else branches on the outcome it returns.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

import aiohttp

from relay import __version__

logger = logging.getLogger(__name__)

EXCERPT_BYTES = 1024
USER_AGENT = f"relay-webhooks/{__version__}"


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    # TODO(issue 4): tell apart gone (410), rate-limited and permanent failures.
    FAILED = "failed"


@dataclass(frozen=True)
class Request:
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    status_code: int | None
    # What happened, in words an operator understands; None on success.
    error: str | None
    response_excerpt: str | None
    duration_ms: float
    attempted_at: datetime


def classify(
    status_code: int | None, error: BaseException | None, timeout: float
) -> tuple[Outcome, str | None]:
    """The outcome of an attempt and, for a failure, why, in one line."""
    if error is not None:
        return Outcome.FAILED, describe_error(error, timeout)
    assert status_code is not None
    if 200 <= status_code < 300:
        return Outcome.DELIVERED, None
    if 300 <= status_code < 400:
        return Outcome.FAILED, f"HTTP {status_code}: redirects are not followed"
    return Outcome.FAILED, f"HTTP {status_code} from the receiver"


def describe_error(error: BaseException, timeout: float) -> str:
    if isinstance(error, TimeoutError):
        return f"no complete answer within {timeout:g} s"
    if isinstance(error, aiohttp.ClientConnectorError):
        return f"cannot connect to {error.host}:{error.port}: {error.os_error}"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "the receiver closed the connection without answering"
    if isinstance(error, aiohttp.ClientError):
        return f"{type(error).__name__}: {error}"
    return f"{type(error).__name__}: {error}"


class Sender:
    """An aiohttp session with a bounded number of requests in flight."""

    def __init__(self, *, timeout: float, max_in_flight: int) -> None:
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Sender:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.max_in_flight),
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            headers={"User-Agent": USER_AGENT},
        )
        return self

    async def __aexit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, request: Request) -> Result:
        """POST one request; never raises for what the receiver or network did."""
        assert self._session is not None, "use Sender as an async context manager"
        attempted_at = datetime.now(UTC)
        started = time.perf_counter()
        status_code: int | None = None
        excerpt: str | None = None
        failure: BaseException | None = None

        try:
            async with self._session.post(
                request.url,
                data=request.body,
                headers=request.headers,
                allow_redirects=False,
            ) as response:
                status_code = response.status
                excerpt = await read_excerpt(response)
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            failure = error

        duration_ms = (time.perf_counter() - started) * 1000
        outcome, reason = classify(status_code, failure, self.timeout)
        return Result(outcome, status_code, reason, excerpt, duration_ms, attempted_at)


async def read_excerpt(response: aiohttp.ClientResponse) -> str:
    """At most EXCERPT_BYTES of the body, as text PostgreSQL can store."""
    chunks: list[bytes] = []
    remaining = EXCERPT_BYTES
    while remaining > 0:
        chunk = await response.content.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    text = b"".join(chunks).decode("utf-8", errors="replace")
    return text.replace("\x00", "")
