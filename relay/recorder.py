"""Writing attempt results back in batches, and announcing what they changed.

Requests finish one by one; the recorder writes whatever has piled up in one
transaction, so a burst of answers costs one round trip rather than one per
delivery. The same transaction counts each webhook's failures and changes its
status; the changes are logged here, and announced to the application by a
trigger (NOTIFY ``relay_webhook_status_v1``).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from relay import claims, db
from relay.claims import AttemptRecord, DeliveryId, HealthRules, StatusChange
from relay.outage import Outage

logger = logging.getLogger(__name__)

# A failed write of results is tried again soon: the leases of what it records
# are running out meanwhile.
RECORD_RETRY_SECONDS = 1.0


class Recorder:
    """Collects attempt results and writes them back in batches."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        rules: HealthRules,
        written: asyncio.Event,
        outage: Outage,
    ) -> None:
        self._pool = pool
        self._outage = outage
        self._rules = rules
        # Set after each write: ended claims free their webhook's slots, and work
        # held back by the per-webhook limit can be claimed now.
        self._written = written
        self._queue: asyncio.Queue[AttemptRecord | None] = asyncio.Queue()
        # The deliveries whose results are queued or being written: their requests
        # have ended, so their claims no longer take a slot of their webhook.
        self.unwritten: set[DeliveryId] = set()

    def add(self, record: AttemptRecord) -> None:
        self.unwritten.add(record.claim.delivery_id)
        self._queue.put_nowait(record)

    def close(self) -> None:
        """Ask ``run`` to flush what is queued and return."""
        self._queue.put_nowait(None)

    async def run(self) -> None:
        closing = False
        while not closing:
            batch: list[AttemptRecord] = []
            item = await self._queue.get()
            while item is not None:
                batch.append(item)
                if self._queue.empty():
                    break
                item = self._queue.get_nowait()
            closing = item is None
            if batch:
                try:
                    await self._write(batch)
                finally:
                    # Written, or given up on: either way the database now holds
                    # the claim as it stands, and counts it as the claim query does.
                    self.unwritten.difference_update(
                        item.claim.delivery_id for item in batch
                    )

    async def _write(self, batch: list[AttemptRecord]) -> None:
        # An unrecorded attempt is not lost: its lease runs out and it is sent again.
        while True:
            try:
                async with self._pool.acquire() as connection:
                    changes = await claims.record(connection, batch, self._rules)
                break
            except db.TRANSIENT_ERRORS as error:
                # Once per outage at WARNING; the service says when it is over.
                self._outage.failed(
                    logger,
                    "Could not record %d attempts; trying again.",
                    len(batch),
                    action="record",
                    error=db.first_line(error),
                )
                await asyncio.sleep(RECORD_RETRY_SECONDS)
            except Exception as error:
                # Trying the same batch again would fail the same way and hold up
                # every result behind it; the recorder itself must live on.
                logger.error(
                    "Could not record %d attempts; they will be sent again.",
                    len(batch),
                    exc_info=not isinstance(error, asyncpg.PostgresError),
                    extra={"action": "record", "error": db.first_line(error)},
                )
                return
        self._written.set()
        for change in changes:
            log_status_change(change)


def log_status_change(change: StatusChange) -> None:
    fields = {
        "action": "webhook_status",
        "webhook_id": change.webhook_id,
        "old_status": change.old_status,
        "status": change.new_status,
        "enabled": change.enabled,
        "reason": change.reason,
    }
    if change.was_enabled and not change.enabled:
        logger.warning(
            "Webhook disabled: %s; it receives nothing until enabled again.",
            change.reason,
            extra=fields,
        )
    elif change.new_status == "UNHEALTHY":
        logger.warning("Webhook unhealthy: %s.", change.reason, extra=fields)
    else:
        logger.info("Webhook healthy again.", extra=fields)
