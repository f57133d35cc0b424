"""Finding deliveries and reading one whole: its event, webhook, attempts, bodies.

Filters are checked here (an unknown event name or webhook is bad input, not
an empty answer), then one query runs. Nothing here prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from relay import queries, webhooks
from relay.errors import ConfigError
from relay.events import check_sent_events

Connection = psycopg.Connection[Any]

# Every event name a delivery may carry.
STATES = ("pending", "delivered", "failed")
# The largest id a bigint column holds; a larger one names no delivery.
MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class DeliveryFilter:
    """What ``relay deliveries list`` narrows by; empty or None: no narrowing."""

    webhook_id: str | None = None
    events: Sequence[str] = ()
    states: Sequence[str] = ()
    since: datetime | None = None
    until: datetime | None = None
    record: str | None = None
    limit: int = 50

    def check(self) -> None:
        """Refuse filters that can match nothing because they are mistaken."""
        check_sent_events(self.events)
        if self.since and self.until and self.since >= self.until:
            raise ConfigError("--since must be before --until")


def list_deliveries(
    connection: Connection, wanted: DeliveryFilter
) -> list[dict[str, Any]]:
    """The newest deliveries that match every filter given, at most ``limit``."""
    wanted.check()
    named = queries.load("deliveries")
    if wanted.webhook_id is not None:
        webhooks.check_exist(connection, [wanted.webhook_id])

    with connection.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            named["list_deliveries"],
            {
                "webhook_id": wanted.webhook_id,
                "events": list(wanted.events),
                "states": list(wanted.states),
                "since": wanted.since,
                "until": wanted.until,
                "record": wanted.record,
                "limit": wanted.limit,
            },
        ).fetchall()


def parse_delivery_id(text: str) -> int:
    """A delivery id as the list prints it."""
    if not (text.isascii() and text.isdigit()):
        raise ConfigError(
            f"malformed delivery id {text!r}: a number, as relay deliveries list"
            " prints it"
        )
    return int(text)


def show(connection: Connection, delivery_id: int) -> dict[str, Any]:
    """One delivery: itself, its event, its webhook and every attempt with its body."""
    named = queries.load("deliveries")
    parameters = {"delivery_id": delivery_id}
    with connection.cursor(row_factory=dict_row) as cursor:
        row = None
        if delivery_id <= MAX_ID:
            row = cursor.execute(named["show_delivery"], parameters).fetchone()
        if row is None:
            raise ConfigError(
                f"no delivery {delivery_id}: list them with relay deliveries list"
            )
        attempts = cursor.execute(named["delivery_attempts"], parameters).fetchall()

    return {
        "delivery": {
            key: row[key]
            for key in (
                "id",
                "state",
                "attempts",
                "replays",
                "next_attempt_at",
                "claimed_by",
                "last_status_code",
                "last_error",
                "created_at",
                "updated_at",
                "delivered_at",
            )
        },
        "event": {
            "id": row["event_id"],
            "event": row["event"],
            "entity": row["entity"],
            "entity_id": row["entity_id"],
            "todo_id": row["todo_id"],
            "created_at": row["event_created_at"],
            "backfill_id": row["backfill_id"],
        },
        "webhook": {
            "id": row["webhook_id"],
            "name": row["webhook_name"],
            "url": webhooks.display_url(row["webhook_url"]),
            "status": row["webhook_status"],
            "enabled": row["webhook_enabled"],
        },
        "attempts": attempts,
    }


def latest_body(shown: dict[str, Any]) -> tuple[int, str] | None:
    """The attempt number and body of the latest attempt that sent one."""
    for attempt in reversed(shown["attempts"]):
        if attempt["body"] is not None:
            return attempt["attempt"], attempt["body"]
    return None
