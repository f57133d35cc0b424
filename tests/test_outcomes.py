"""The pure decisions of a delivery: what an answer means, when to try again."""

from __future__ import annotations

import socket
import ssl
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from relay.delivery import Outcome, classify, parse_retry_after
from relay.errors import ConfigError
from relay.retries import RetryPolicy, parse_schedule, reconnect_delay

HOOK = ConnectionKey("hooks.example.org", 443, True, True, None, None, None)

CASES = [
    (200, None, Outcome.DELIVERED, None),
    (201, None, Outcome.DELIVERED, None),
    (204, None, Outcome.DELIVERED, None),
    (299, None, Outcome.DELIVERED, None),
    (301, None, Outcome.FAILED, "HTTP 301: redirects are not followed"),
    (308, None, Outcome.FAILED, "HTTP 308: redirects are not followed"),
    (400, None, Outcome.FAILED, "HTTP 400 from the receiver"),
    (404, None, Outcome.FAILED, "HTTP 404 from the receiver"),
    (
        410,
        None,
        Outcome.GONE,
        "HTTP 410: the receiver says this endpoint is gone",
    ),
    (429, None, Outcome.RATE_LIMITED, "HTTP 429: the receiver asks to slow down"),
    (500, None, Outcome.FAILED, "HTTP 500 from the receiver"),
    (503, None, Outcome.FAILED, "HTTP 503 from the receiver"),
    (None, TimeoutError(), Outcome.TIMED_OUT, "no complete answer within 7 s"),
    # A status line came, then the body trickled past the time-out.
    (200, TimeoutError(), Outcome.TIMED_OUT, "no complete answer within 7 s"),
    (
        None,
        aiohttp.ServerDisconnectedError(),
        Outcome.FAILED,
        "the receiver closed the connection without answering",
    ),
    (
        None,
        aiohttp.ClientOSError(104, "Connection reset by peer"),
        Outcome.FAILED,
        "the receiver reset the connection",
    ),
    (
        None,
        ConnectionResetError(104, "Connection reset by peer"),
        Outcome.FAILED,
        "the receiver reset the connection",
    ),
    (
        None,
        aiohttp.ClientConnectorError(HOOK, ConnectionRefusedError(111, "refused")),
        Outcome.FAILED,
        "connection to hooks.example.org:443 refused: nothing listens there",
    ),
    (
        None,
        aiohttp.ClientConnectorError(
            HOOK, socket.gaierror(-2, "Name or service not known")
        ),
        Outcome.FAILED,
        "cannot resolve the host hooks.example.org: Name or service not known",
    ),
    (
        None,
        aiohttp.ClientConnectorCertificateError(
            HOOK, ssl.SSLCertVerificationError(1, "certificate verify failed")
        ),
        Outcome.FAILED,
        "TLS handshake with hooks.example.org:443 failed: certificate verify failed",
    ),
    # As OpenSSL words it, less its library, reason code and source line.
    (
        None,
        aiohttp.ClientConnectorCertificateError(
            HOOK,
            ssl.SSLCertVerificationError(
                1,
                "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed:"
                " self-signed certificate (_ssl.c:1006)",
            ),
        ),
        Outcome.FAILED,
        "TLS handshake with hooks.example.org:443 failed: certificate verify failed:"
        " self-signed certificate",
    ),
    (
        None,
        aiohttp.ClientPayloadError("broken"),
        Outcome.FAILED,
        "ClientPayloadError: broken",
    ),
]


@pytest.mark.parametrize(("status", "error", "outcome", "reason"), CASES)
def test_classify(
    status: int | None,
    error: BaseException | None,
    outcome: Outcome,
    reason: str | None,
) -> None:
    assert classify(status, error, timeout=7) == (outcome, reason)


NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Thu, 03 Dec 2026 12:05:00 GMT", 300.0),
        # A date already past asks for no wait at all.
        ("Thu, 03 Dec 2026 11:00:00 GMT", 0.0),
        ("-5", None),
        ("soon", None),
        ("1.5", None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(
    header: str | None, seconds: float | None
) -> None:
    assert parse_retry_after(header, NOW) == seconds


def no_jitter(low: float, high: float) -> float:
    return 1.0


POLICY = RetryPolicy(jitter=0.0)


@pytest.mark.parametrize(
    ("attempt", "slow_down", "retry_after", "delay"),
    [
        # The default schedule, after attempts 1 to 8.
        (1, False, None, 5.0),
        (2, False, None, 300.0),
        (3, False, None, 1800.0),
        (4, False, None, 7200.0),
        (5, False, None, 18000.0),
        (6, False, None, 36000.0),
        (7, False, None, 36000.0),
        (8, False, None, None),
        # A time-out or a 429 waits at least a minute.
        (1, True, None, 60.0),
        (2, True, None, 300.0),
        # Retry-After lengthens a delay, never shortens it, and is capped.
        (1, True, 120.0, 120.0),
        (2, False, 30.0, 300.0),
        (1, True, 10 * 86400.0, 86400.0),
        # No retry is left, whatever the receiver asks.
        (8, True, 60.0, None),
    ],
)
def test_the_schedule_without_jitter(
    attempt: int, slow_down: bool, retry_after: float | None, delay: float | None
) -> None:
    assert POLICY.delay_after(
        attempt, slow_down=slow_down, retry_after=retry_after
    ) == (delay)


def test_jitter_stays_within_twenty_percent() -> None:
    policy = RetryPolicy()

    lowest = policy.delay_after(2, uniform=lambda low, high: low)
    highest = policy.delay_after(2, uniform=lambda low, high: high)
    drawn = {policy.delay_after(3) for _ in range(200)}

    assert (lowest, highest) == (240.0, 360.0)
    assert all(delay is not None and 1440.0 <= delay <= 2160.0 for delay in drawn)
    assert len(drawn) > 100


def test_a_schedule_is_written_with_units() -> None:
    assert parse_schedule("5s,5m,30m,2h,5h,10h,10h") == (
        5.0,
        300.0,
        1800.0,
        7200.0,
        18000.0,
        36000.0,
        36000.0,
    )
    assert parse_schedule("0.05, 1d, 7") == (0.05, 86400.0, 7.0)
    assert parse_schedule("") == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5s,soon", "malformed duration 'soon': write a number with s, m, h or d"),
        ("5s,,5m", "malformed duration '': write a number with s, m, h or d"),
        ("8d", "--retry-schedule steps must be at most 7 days each"),
    ],
)
def test_a_malformed_schedule_is_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_schedule(text)

    assert str(refused.value) == message


def test_reconnecting_backs_off_from_half_a_second_to_half_a_minute() -> None:
    ceilings = [
        reconnect_delay(failures, uniform=lambda low, high: high)
        for failures in range(1, 10)
    ]
    floors = [
        reconnect_delay(failures, uniform=lambda low, high: low) for failures in (1, 9)
    ]

    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert floors == [0.25, 15.0]
