"""Claiming due work and recording what became of it, in PostgreSQL.

Why claims have leases: a claim commits at once, so no transaction or row lock
stays open while a request is on the wire. A claim moves ``next_attempt_at`` past
the lease and names its relay in ``claimed_by``; if that relay dies, the delivery
is simply due again when the lease runs out and another relay takes it. Delivery
is therefore at least once. ``FOR UPDATE SKIP LOCKED`` keeps two relays from
taking the same rows in the same instant.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NewType

import asyncpg

from relay import queries

logger = logging.getLogger(__name__)

DeliveryId = NewType("DeliveryId", int)
EventId = NewType("EventId", int)
WebhookId = NewType("WebhookId", str)


@dataclass(frozen=True)
class Claim:
    """One delivery this relay now holds: an event for one webhook."""

    delivery_id: DeliveryId
    event_id: EventId
    event: str
    webhook_id: WebhookId
    url: str
    secret: str
    attempt: int

    def __repr__(self) -> str:
        # The secret stays out of logs and tracebacks.
        return (
            f"Claim(delivery_id={self.delivery_id}, event_id={self.event_id}, "
            f"event={self.event!r}, webhook_id={self.webhook_id!r}, "
            f"attempt={self.attempt})"
        )


@dataclass(frozen=True)
class AttemptRecord:
    """What one attempt came to, ready to be written back."""

    claim: Claim
    outcome: str
    status_code: int | None
    duration_ms: float
    error: str | None
    response_excerpt: str | None
    attempted_at: datetime
    # None when the delivery is done; otherwise when to try again.
    retry_in_seconds: float | None


async def fan_out(connection: asyncpg.Connection, batch_size: int) -> int:
    """Create deliveries for up to ``batch_size`` new events; return how many events."""
    row = await connection.fetchrow(
        queries.load("claims")["fan_out_events"], batch_size
    )
    events: int = row["events"]
    if events:
        logger.debug(
            "Fanned out %d events into %d deliveries.",
            events,
            row["deliveries"],
            extra={"action": "fan_out", "events": events},
        )
    return events


async def claim(
    connection: asyncpg.Connection, worker_id: str, limit: int, lease: float
) -> list[Claim]:
    """Take up to ``limit`` due deliveries for this relay."""
    rows = await connection.fetch(
        queries.load("claims")["claim_deliveries"], limit, worker_id, lease
    )
    return [
        Claim(
            delivery_id=DeliveryId(row["delivery_id"]),
            event_id=EventId(row["event_id"]),
            event=row["event"],
            webhook_id=WebhookId(row["webhook_id"]),
            url=row["url"],
            secret=row["secret"],
            attempt=row["attempt"],
        )
        for row in rows
    ]


async def record(
    connection: asyncpg.Connection, records: Sequence[AttemptRecord]
) -> None:
    """Write a batch of attempts and the state of their deliveries."""
    await connection.execute(
        queries.load("claims")["record_attempts"],
        [item.claim.delivery_id for item in records],
        [item.claim.attempt for item in records],
        [item.outcome for item in records],
        [item.status_code for item in records],
        [item.duration_ms for item in records],
        [item.error for item in records],
        [item.response_excerpt for item in records],
        [item.attempted_at for item in records],
        [item.retry_in_seconds for item in records],
    )


async def release(
    connection: asyncpg.Connection, worker_id: str, claims: Sequence[Claim]
) -> None:
    """Hand back claims that were never attempted, due again at once."""
    await connection.execute(
        queries.load("claims")["release_claims"],
        [item.delivery_id for item in claims],
        [item.attempt for item in claims],
        worker_id,
    )
