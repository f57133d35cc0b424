"""The health of the whole system at a glance, and what of it needs attention.

``read_status`` gathers the report in one read-only snapshot; ``find_problems``
is a pure function of that report and the thresholds, so what pages someone is
tested without a database. Nothing here prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from relay import queries, webhooks

Connection = psycopg.Connection[Any]

# Below this many rows (by the planner's estimate) delivered deliveries are
# counted exactly; above it the count would read the whole table, so the report
# gives the estimate instead and says so.
EXACT_COUNT_LIMIT = 100_000

# Reasons the relay writes when it disables a webhook itself start otherwise;
# a change made by a person or a script reads "disabled by <role>" (0010).
DISABLED_BY_SOMEONE = "disabled by "


@dataclass(frozen=True)
class Thresholds:
    """What counts as needing attention."""

    # Seconds an event may wait to be fanned out, or a due delivery to be claimed.
    max_backlog_age: float = 300.0
    # Failed deliveries tolerated; None: failed deliveries alone page no one.
    max_failed: int | None = None
    # Webhooks whose health is known to be bad and must not page again.
    ignored_webhooks: frozenset[str] = field(default_factory=frozenset)


def read_status(connection: Connection, thresholds: Thresholds) -> dict[str, Any]:
    """The report as plain data, with ``problems`` and ``ok``."""
    named = queries.load("status")

    with connection.transaction(), connection.cursor(row_factory=dict_row) as cursor:
        cursor.execute(named["snapshot"])
        webhooks.check_exist(
            connection, thresholds.ignored_webhooks, " in --ignore-webhook"
        )
        outbox = fetch_one(cursor, named["outbox"])
        pending = fetch_one(cursor, named["pending_deliveries"])
        finished = fetch_one(cursor, named["failed_deliveries"])
        delivered, exact = count_delivered(cursor, pending["pending"], finished)
        webhook_rows = cursor.execute(named["webhooks"]).fetchall()
        claims = cursor.execute(named["claims"]).fetchall()
        capture = fetch_one(cursor, named["capture"])

    report: dict[str, Any] = {
        "checked_at": outbox.pop("checked_at"),
        "thresholds": {
            "max_backlog_age_seconds": thresholds.max_backlog_age,
            "max_failed": thresholds.max_failed,
            "ignored_webhooks": sorted(thresholds.ignored_webhooks),
        },
        "capture": capture,
        "outbox": outbox,
        "deliveries": {
            **pending,
            "failed": finished["failed"],
            "delivered": delivered,
            "delivered_is_exact": exact,
        },
        "webhooks": [describe_webhook(row) for row in webhook_rows],
        "claims": claims,
    }
    problems = find_problems(report, thresholds)
    return {"ok": not problems, "problems": problems, **report}


def fetch_one(cursor: psycopg.Cursor[dict[str, Any]], query: str) -> dict[str, Any]:
    row = cursor.execute(query).fetchone()
    assert row is not None, "an aggregate returns one row"
    return row


def count_delivered(
    cursor: psycopg.Cursor[dict[str, Any]], pending: int, finished: dict[str, Any]
) -> tuple[int, bool]:
    """Delivered deliveries, and whether that is an exact count or an estimate."""
    estimated_rows: float = finished["estimated_rows"]
    # A table never analysed says -1: it is new, so it is small.
    if estimated_rows < EXACT_COUNT_LIMIT:
        return fetch_one(cursor, queries.load("status")["delivered_deliveries"])[
            "count"
        ], True
    return max(int(estimated_rows) - pending - finished["failed"], 0), False


def describe_webhook(row: dict[str, Any]) -> dict[str, Any]:
    """A webhook's row, saying whether the relay disabled it (which pages)."""
    reason = row["disabled_reason"]
    by_relay = (
        not row["enabled"]
        and reason is not None
        and not reason.startswith(DISABLED_BY_SOMEONE)
    )
    return {**row, "disabled_by_relay": by_relay}


def find_problems(report: dict[str, Any], thresholds: Thresholds) -> list[str]:
    """One sentence per thing that needs a person, in a stable order."""
    problems = []
    limit = thresholds.max_backlog_age

    capture = report["capture"]
    if capture["off"]:
        problems.append(
            f"{capture['off']} of {capture['triggers']} capture triggers are missing"
            " or disabled: changes to their tables make no events (see relay"
            " triggers status; relay triggers install puts them back)"
        )

    outbox_age = report["outbox"]["oldest_age_seconds"]
    if outbox_age is not None and outbox_age > limit:
        problems.append(
            f"the oldest event not fanned out is {duration(outbox_age)} old"
            f" (threshold {duration(limit)}): is a relay running?"
        )
    deliveries = report["deliveries"]
    due_wait = deliveries["oldest_due_wait_seconds"]
    if due_wait is not None and due_wait > limit:
        problems.append(
            f"the oldest due delivery has waited {duration(due_wait)}"
            f" (threshold {duration(limit)}); {deliveries['due']} are due"
        )
    if thresholds.max_failed is not None and deliveries["failed"] > (
        thresholds.max_failed
    ):
        problems.append(
            f"{deliveries['failed']} deliveries failed for good"
            f" (threshold {thresholds.max_failed}):"
            " see relay deliveries list --state failed"
        )

    for webhook in report["webhooks"]:
        if webhook["id"] in thresholds.ignored_webhooks:
            continue
        name = f"webhook {webhook['id']} ({webhook['name']})"
        if webhook["enabled"] and webhook["status"] == "UNHEALTHY":
            problems.append(
                f"{name} is UNHEALTHY: {webhook['consecutive_failures']} failures"
                " in a row"
            )
        elif webhook["disabled_by_relay"]:
            problems.append(
                f"{name} was disabled by the relay: {webhook['disabled_reason']}"
            )
    return problems


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3 h`` or ``2 d``: rounded down, as a person says it."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"
