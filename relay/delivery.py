"""Sending one request and deciding what its answer means. Knows nothing of SQL.

``classify`` is the one place that turns a status code or an exception into an
outcome; everything else branches on the outcome it returns.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import logging
import re
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType

import aiohttp

from relay import __version__

logger = logging.getLogger(__name__)

EXCERPT_BYTES = 1024
# What OpenSSL puts around its reason: "[SSL: CERTIFICATE_VERIFY_FAILED] " before,
# " (_ssl.c:1006)" after; neither tells an operator anything.
_OPENSSL_DECORATION = re.compile(r"^\[\w+: \w+\] | \(_ssl\.c:\d+\)$")
USER_AGENT = f"relay-webhooks/{__version__}"


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    # Tried again on the schedule: 3xx, 4xx but 410 and 429, 5xx, network errors.
    FAILED = "failed"
    # Tried again no sooner than the slow-down delay: the receiver is overloaded.
    TIMED_OUT = "timed_out"
    RATE_LIMITED = "rate_limited"
    # 410: the receiver says the endpoint is gone for good; the webhook is disabled.
    GONE = "gone"


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
    # The receiver's Retry-After, in seconds from the attempt, when it sent one.
    retry_after: float | None = None


def classify(
    status_code: int | None, error: BaseException | None, timeout: float
) -> tuple[Outcome, str | None]:
    """The outcome of an attempt and, for a failure, why, in one line."""
    if error is not None:
        if isinstance(error, TimeoutError):
            return Outcome.TIMED_OUT, f"no complete answer within {timeout:g} s"
        return Outcome.FAILED, describe_error(error)
    assert status_code is not None
    if 200 <= status_code < 300:
        return Outcome.DELIVERED, None
    if 300 <= status_code < 400:
        return Outcome.FAILED, f"HTTP {status_code}: redirects are not followed"
    if status_code == 410:
        return Outcome.GONE, "HTTP 410: the receiver says this endpoint is gone"
    if status_code == 429:
        return Outcome.RATE_LIMITED, "HTTP 429: the receiver asks to slow down"
    return Outcome.FAILED, f"HTTP {status_code} from the receiver"


def describe_error(error: BaseException) -> str:
    """A network failure in words; checked from the most to the least specific."""
    if isinstance(error, aiohttp.ClientSSLError):
        reason = _OPENSSL_DECORATION.sub("", str(error.os_error))
        return f"TLS handshake with {error.host}:{error.port} failed: {reason}"
    if isinstance(error, aiohttp.ClientConnectorError):
        where = f"{error.host}:{error.port}"
        if isinstance(error.os_error, socket.gaierror):
            return f"cannot resolve the host {error.host}: {error.os_error.strerror}"
        if isinstance(error.os_error, ConnectionRefusedError):
            return f"connection to {where} refused: nothing listens there"
        return f"cannot connect to {where}: {error.os_error}"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "the receiver closed the connection without answering"
    if isinstance(error, ConnectionResetError) or (
        isinstance(error, aiohttp.ClientOSError) and error.errno == errno.ECONNRESET
    ):
        return "the receiver reset the connection"
    if isinstance(error, ValueError):
        return f"the webhook's URL cannot be requested: {error}"
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

        retry_after: float | None = None

        # One bound for the whole attempt: connecting, sending, the status line and
        # the excerpt. A receiver that trickles its answer is cut off all the same.
        try:
            async with (
                asyncio.timeout(self.timeout),
                self._session.post(
                    request.url,
                    data=request.body,
                    headers=request.headers,
                    allow_redirects=False,
                ) as response,
            ):
                status_code = response.status
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"), attempted_at
                )
                excerpt = await read_excerpt(response)
        # ValueError: a URL that aiohttp cannot request (an invalid international
        # host name, say), stored before relay checked URLs as it does now, or by
        # hand in SQL. It fails its attempt like any other; it must not kill it.
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as error:
            failure = error
        except Exception as error:
            # Not foreseen, so logged in full; still a failed attempt, recorded and
            # retried on the schedule, rather than a task that dies unrecorded.
            logger.error(
                "Unexpected error while sending; the attempt counts as failed.",
                exc_info=True,
                extra={"action": "deliver"},
            )
            failure = error

        duration_ms = (time.perf_counter() - started) * 1000
        outcome, reason = classify(status_code, failure, self.timeout)
        return Result(
            outcome,
            status_code,
            reason,
            excerpt,
            duration_ms,
            attempted_at,
            retry_after,
        )


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` header asks for: delay-seconds or an HTTP date."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


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
