"""Request bodies, built by one SQL query from the outbox and the current context."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from relay import queries
from relay.claims import DeliveryId


async def build(
    connection: asyncpg.Connection, delivery_ids: Sequence[DeliveryId]
) -> dict[DeliveryId, bytes]:
    """The exact body bytes of each delivery, keyed by delivery id."""
    rows = await connection.fetch(
        queries.load("payloads")["build_payloads"], list(delivery_ids)
    )
    return {DeliveryId(row["delivery_id"]): row["body"].encode("utf-8") for row in rows}
