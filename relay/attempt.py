"""One attempt seen from the service: its headers, what follows it, its log line.

Kept apart from ``delivery`` (which sends and classifies, knowing nothing of
claims) and from ``service`` (which runs the loop).
"""

from __future__ import annotations

import logging
import time

from relay import signing
from relay.claims import Claim
from relay.delivery import Outcome, Result
from relay.retries import RetryPolicy

logger = logging.getLogger(__name__)


def retry_delay(policy: RetryPolicy, attempt: int, result: Result) -> float | None:
    """Seconds until this delivery is tried again; None when it is done."""
    match result.outcome:
        case Outcome.DELIVERED:
            return None
        case Outcome.TIMED_OUT | Outcome.RATE_LIMITED:
            slow_down = True
        case Outcome.FAILED | Outcome.GONE:
            slow_down = False
    return policy.delay_after(
        attempt, slow_down=slow_down, retry_after=result.retry_after
    )


def request_headers(claim: Claim, body: bytes) -> dict[str, str]:
    """Content type, both signature schemes and the delivery's identifiers."""
    message_id = f"evt_{claim.event_id}"
    headers = {
        "Content-Type": "application/json",
        # The same as webhook-id, named for receivers that know no Standard Webhooks.
        "X-Relay-Event-Id": message_id,
        "X-Relay-Event": claim.event,
        "X-Relay-Delivery": str(claim.delivery_id),
        "X-Relay-Attempt": str(claim.attempt),
    }
    # Only when they apply, so that an ordinary delivery's headers stay as they were.
    if claim.replay:
        headers["X-Relay-Replay"] = str(claim.replay)
    if claim.backfill_id is not None:
        headers["X-Relay-Backfill"] = f"bf_{claim.backfill_id}"
    headers.update(
        signing.signature_headers(claim.secret, message_id, int(time.time()), body)
    )
    return headers


def log_result(claim: Claim, result: Result, retry_in: float | None) -> None:
    fields = {
        "event_id": claim.event_id,
        "webhook_id": claim.webhook_id,
        "attempt": claim.attempt,
        "status": result.status_code,
        "duration_ms": round(result.duration_ms, 1),
    }
    if result.outcome is Outcome.DELIVERED:
        logger.info(
            "Delivered %s.", claim.event, extra={"action": "delivered", **fields}
        )
    elif result.outcome is Outcome.GONE:
        logger.warning(
            "Delivery of %s refused (%s); the webhook is disabled and this delivery"
            " waits until it is enabled again.",
            claim.event,
            result.error,
            extra={"action": "gone", "outcome": result.outcome.value, **fields},
        )
    elif retry_in is None:
        logger.warning(
            "Delivery of %s failed (%s); no retry is left.",
            claim.event,
            result.error,
            extra={"action": "failed", "outcome": result.outcome.value, **fields},
        )
    else:
        logger.info(
            "Delivery of %s failed (%s); retrying in %s.",
            claim.event,
            result.error,
            describe_delay(retry_in),
            extra={
                "action": "retrying",
                "outcome": result.outcome.value,
                "retry_in_s": round(retry_in, 1),
                **fields,
            },
        )


def describe_delay(seconds: float) -> str:
    """``0.2 s``, ``4 min``, ``2.5 h``: a delay as a person would say it."""
    if seconds < 60:
        return f"{seconds:.3g} s"
    if seconds < 3600:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"
