"""Claiming due work and recording what became of it, in PostgreSQL.

Why claims have leases: a claim commits at once, so no transaction or row lock
stays open while a request is on the wire. A claim moves ``next_attempt_at`` past
the lease and names its relay in ``claimed_by``; if that relay dies, the delivery
is simply due again when the lease runs out and another relay takes it. Delivery
is therefore at least once. ``FOR UPDATE SKIP LOCKED`` keeps two relays from
taking the same rows in the same instant.

Why claims take turns: the per-webhook limit counts the live claims of every
relay. A relay that counted while another was claiming would not see that claim
and could exceed the limit, so each claim first takes a transaction-level
advisory lock; claims are short, so the wait is a few milliseconds at most.

Why health is written with the attempts: a webhook's run of failures, and the
status it implies, must change in the same transaction as the attempts that
caused it, or a crash between the two would count an attempt twice or never.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
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
    # Which replay this is (0: the original run); the retry schedule counts the
    # attempts since the latest replay, which had ``retry_base`` before it.
    replay: int = 0
    retry_base: int = 0
    # The backfill run that wrote the event, if one did.
    backfill_id: int | None = None

    @property
    def retry_position(self) -> int:
        """The attempt's place in the retry schedule: 1 for a first try."""
        return self.attempt - self.retry_base

    def __repr__(self) -> str:
        # The secret stays out of logs and tracebacks.
        return (
            f"Claim(delivery_id={self.delivery_id}, event_id={self.event_id}, "
            f"event={self.event!r}, webhook_id={self.webhook_id!r}, "
            f"attempt={self.attempt}, replay={self.replay})"
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
    # None when the delivery is done (delivered, or failed for good).
    retry_in_seconds: float | None
    # False when the request never left (its payload could not be built): that
    # says nothing of the receiver's health.
    reached_receiver: bool = True
    # The exact body sent; None when none could be built.
    body: bytes | None = None


@dataclass(frozen=True)
class StatusChange:
    """A webhook's status or enabled flag changed because of recorded attempts."""

    webhook_id: WebhookId
    old_status: str
    new_status: str
    was_enabled: bool
    enabled: bool
    reason: str


@dataclass(frozen=True)
class HealthRules:
    unhealthy_after: int
    disable_after: float


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
    connection: asyncpg.Connection,
    worker_id: str,
    limit: int,
    lease: float,
    per_webhook: int,
    answered: Collection[DeliveryId] = (),
    *,
    build: bool = False,
) -> tuple[list[Claim], dict[DeliveryId, bytes]]:
    """Take up to ``limit`` due deliveries, ``per_webhook`` in flight at most.

    ``answered`` are this relay's claims whose requests have ended but whose
    results are still on their way to the database: they hold no slot. With
    ``build``, each claim comes with its body, the same as ``payloads.build``'s;
    if one body cannot be built the statement fails and nothing is claimed.
    """
    named = queries.load("claims")
    async with connection.transaction():
        await connection.execute(named["lock_claims"])
        rows = await connection.fetch(
            named["claim_deliveries"],
            limit,
            worker_id,
            lease,
            per_webhook,
            list(answered),
            build,
        )
    bodies = {
        DeliveryId(row["delivery_id"]): row["body"].encode() for row in rows if build
    }
    return [claim_of(row) for row in rows], bodies


def claim_of(row: asyncpg.Record) -> Claim:
    return Claim(
        delivery_id=DeliveryId(row["delivery_id"]),
        event_id=EventId(row["event_id"]),
        event=row["event"],
        webhook_id=WebhookId(row["webhook_id"]),
        url=row["url"],
        secret=row["secret"],
        attempt=row["attempt"],
        replay=row["replay"],
        retry_base=row["retry_base"],
        backfill_id=row["backfill_id"],
    )


async def record(
    connection: asyncpg.Connection,
    records: Sequence[AttemptRecord],
    rules: HealthRules,
) -> list[StatusChange]:
    """Write a batch of attempts, their deliveries' state and their webhooks' health.

    Returns the webhooks whose status or enabled flag changed.
    """
    named = queries.load("claims")
    judged = [item for item in records if item.reached_receiver]
    webhook_ids = [item.claim.webhook_id for item in judged]

    async with connection.transaction():
        await connection.execute(named["mark_health_update"])
        await connection.execute(named["lock_webhooks"], sorted(set(webhook_ids)))
        rows = await connection.fetch(
            named["update_webhook_health"],
            webhook_ids,
            [item.outcome for item in judged],
            [item.attempted_at for item in judged],
            rules.unhealthy_after,
            rules.disable_after,
            [item.status_code for item in judged],
            [item.error for item in judged],
        )
        await write_attempts(connection, records)
    return [
        StatusChange(
            webhook_id=WebhookId(row["webhook_id"]),
            old_status=row["old_status"],
            new_status=row["new_status"],
            was_enabled=row["old_enabled"],
            enabled=row["new_enabled"],
            reason=row["reason"],
        )
        for row in rows
    ]


async def write_attempts(
    connection: asyncpg.Connection, records: Sequence[AttemptRecord]
) -> None:
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
        [None if item.body is None else item.body.decode() for item in records],
        [item.claim.replay for item in records],
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
