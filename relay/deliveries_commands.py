"""The ``relay deliveries`` commands: find deliveries, and read one whole.

Each command checks its input, opens one connection, runs one function of
relay/deliveries.py and prints a table, or JSON with ``--json``.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import click

from relay import db, deliveries
from relay.cli_options import dsn_option, moment_option
from relay.errors import RelayError
from relay.output import cell, emit, json_option, print_table

LIST_COLUMNS = (
    ("id", "ID"),
    ("event_id", "EVENT ID"),
    ("event", "EVENT"),
    ("webhook_id", "WEBHOOK"),
    ("state", "STATE"),
    ("attempts", "ATTEMPTS"),
    ("last", "LAST STATUS/ERROR"),
    ("event_created_at", "CREATED"),
    ("delivered_at", "DELIVERED"),
)

ATTEMPT_COLUMNS = (
    ("attempt", "ATTEMPT"),
    ("replay", "REPLAY"),
    ("attempted_at", "TIME"),
    ("outcome", "OUTCOME"),
    ("status_code", "STATUS"),
    ("duration", "DURATION"),
    ("error", "ERROR"),
    ("response_excerpt", "RESPONSE"),
)


@click.group(name="deliveries")
def deliveries_group() -> None:
    """Find deliveries and see every attempt at one.

    \b
    Example:
      relay deliveries list --state failed --since 1d
      relay deliveries show 4711
    """


@deliveries_group.command(name="list")
@dsn_option
@click.option("--webhook", "webhook_id", help="Only this webhook's deliveries.")
@click.option(
    "--event",
    "events",
    multiple=True,
    help="Only this event (TODO_CREATED...); repeat it.",
)
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(deliveries.STATES),
    help="Only deliveries in this state; repeat it.",
)
@moment_option("--since", "Events created at or after this (ISO 8601, or 2h ago).")
@moment_option("--until", "Events created before this (ISO 8601, or 30m ago).")
@click.option(
    "--record", help="Events about this record (tdo_..., or a list, a tag...)."
)
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=50,
    show_default=True,
    help="At most this many, newest first.",
)
@json_option
def list_command(
    dsn: str | None,
    webhook_id: str | None,
    events: tuple[str, ...],
    states: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    record: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List deliveries, newest first, narrowed by every filter given.

    \b
    Example:
      relay deliveries list --webhook wh_0123456789abcdef0123 --state failed \\
        --since 2h --event TODO_CREATED --event TODO_DELETED
      relay deliveries list --record tdo_8f2k --json
    """
    wanted = deliveries.DeliveryFilter(
        webhook_id=webhook_id,
        events=events,
        states=states,
        since=since,
        until=until,
        record=record,
        limit=limit,
    )
    wanted.check()

    with db.connect(db.check_dsn(dsn)) as connection:
        found = deliveries.list_deliveries(connection, wanted)

    emit(found, as_json, render_list)


def render_list(found: list[dict[str, Any]]) -> None:
    rows = [
        {**row, "last": row["last_error"] or row["last_status_code"]} for row in found
    ]
    print_table(rows, LIST_COLUMNS, empty="No deliveries match.")


@deliveries_group.command(name="show")
@dsn_option
@click.argument("delivery_id")
@click.option(
    "--body",
    "body_only",
    is_flag=True,
    help="Print only the body the latest attempt sent, byte for byte.",
)
@json_option
def show_command(
    dsn: str | None, delivery_id: str, body_only: bool, as_json: bool
) -> None:
    """Show a delivery, its event and webhook, every attempt and the body sent.

    The table shows the body of the latest attempt that sent one; --json holds
    every attempt's body; --body prints only that body, exactly as it was sent
    (to check a signature, say).

    \b
    Example:
      relay deliveries show 4711
      relay deliveries show 4711 --body > body.json
    """
    number = deliveries.parse_delivery_id(delivery_id)

    with db.connect(db.check_dsn(dsn)) as connection:
        shown = deliveries.show(connection, number)

    if body_only:
        write_body(shown)
    else:
        emit(shown, as_json, render_delivery)


def write_body(shown: dict[str, Any]) -> None:
    latest = deliveries.latest_body(shown)
    if latest is None:
        delivery_id = shown["delivery"]["id"]
        raise RelayError(f"delivery {delivery_id} has sent no body yet")
    sys.stdout.flush()
    sys.stdout.buffer.write(latest[1].encode("utf-8"))
    sys.stdout.buffer.flush()


def render_delivery(shown: dict[str, Any]) -> None:
    delivery, event, webhook = shown["delivery"], shown["event"], shown["webhook"]
    click.echo(
        f"Delivery {delivery['id']}: {delivery['state']}; attempts:"
        f" {delivery['attempts']}; replays: {delivery['replays']}"
    )
    for label, key in (
        ("created", "created_at"),
        ("delivered", "delivered_at"),
        ("next attempt", "next_attempt_at"),
        ("claimed by", "claimed_by"),
        ("last status", "last_status_code"),
        ("last error", "last_error"),
    ):
        click.echo(f"  {label + ':':<14}{cell(delivery[key])}")
    backfill = f", backfill bf_{event['backfill_id']}" if event["backfill_id"] else ""
    click.echo(
        f"Event {event['id']}: {event['event']} of {event['entity']}"
        f" {event['entity_id']}, created {cell(event['created_at'])}{backfill}"
    )
    enabled = "enabled" if webhook["enabled"] else "disabled"
    click.echo(
        f"Webhook {webhook['id']}: {webhook['name']} <{webhook['url']}>,"
        f" {webhook['status']}, {enabled}"
    )

    click.echo("\nAttempts:")
    rows = [
        {**attempt, "duration": f"{attempt['duration_ms']:.1f} ms"}
        for attempt in shown["attempts"]
    ]
    print_table(rows, ATTEMPT_COLUMNS, empty="None yet.")

    latest = deliveries.latest_body(shown)
    if latest is not None:
        click.echo(f"\nBody sent at attempt {latest[0]}:")
        click.echo(latest[1])
