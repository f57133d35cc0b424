"""The one function that decides what an answer means, as a table of cases."""

from __future__ import annotations

import aiohttp
import pytest

from relay.delivery import Outcome, classify

CASES = [
    (200, None, Outcome.DELIVERED, None),
    (201, None, Outcome.DELIVERED, None),
    (204, None, Outcome.DELIVERED, None),
    (299, None, Outcome.DELIVERED, None),
    (301, None, Outcome.FAILED, "HTTP 301: redirects are not followed"),
    (308, None, Outcome.FAILED, "HTTP 308: redirects are not followed"),
    (400, None, Outcome.FAILED, "HTTP 400 from the receiver"),
    (429, None, Outcome.FAILED, "HTTP 429 from the receiver"),
    (500, None, Outcome.FAILED, "HTTP 500 from the receiver"),
    (None, TimeoutError(), Outcome.FAILED, "no complete answer within 7 s"),
    (
        None,
        aiohttp.ServerDisconnectedError(),
        Outcome.FAILED,
        "the receiver closed the connection without answering",
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
