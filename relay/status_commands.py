"""``relay status``: the system at a glance, with an exit status for monitoring.

The verdict comes first (``OK`` or one ``ATTENTION:`` line per problem), as a
monitoring check's first line is its summary; the details follow.
"""

from __future__ import annotations

from typing import Any

import click

from relay import db, retries, status
from relay.cli_options import dsn_option
from relay.errors import NEEDS_ACTION_EXIT
from relay.output import emit, iso, json_option, print_table

WEBHOOK_COLUMNS = (
    ("id", "ID"),
    ("name", "NAME"),
    ("enabled", "ENABLED"),
    ("status", "STATUS"),
    ("consecutive_failures", "FAILURES"),
    ("failing_since", "FAILING SINCE"),
    ("last_success_at", "LAST SUCCESS"),
    ("last_failure_at", "LAST FAILURE"),
    ("last_failure_error", "LAST ERROR"),
    ("pending", "PENDING"),
    ("failed", "FAILED"),
)

CLAIM_COLUMNS = (
    ("relay", "RELAY"),
    ("claims", "CLAIMS"),
    ("oldest_claimed_at", "OLDEST CLAIM"),
    ("first_lease_ends_at", "FIRST LEASE ENDS"),
)


@click.command(name="status")
@dsn_option
@click.option(
    "--max-backlog-age",
    default="5m",
    show_default=True,
    help="How long an event may wait for fan-out, or a due delivery for a relay"
    " (s, m, h, d).",
)
@click.option(
    "--max-failed",
    type=click.IntRange(0),
    help="Failed deliveries tolerated; more need attention. Default: no check.",
)
@click.option(
    "--ignore-webhook",
    "ignored_webhooks",
    multiple=True,
    help="A webhook whose health needs no attention (known, being handled); repeat it.",
)
@json_option
def status_command(
    dsn: str | None,
    max_backlog_age: str,
    max_failed: int | None,
    ignored_webhooks: tuple[str, ...],
    as_json: bool,
) -> None:
    """Show the health of the whole system; exit 3 when something needs attention.

    Attention: an event or a due delivery waiting longer than --max-backlog-age,
    an enabled webhook that is UNHEALTHY, a webhook the relay disabled (one
    disabled by a person does not count), more failed deliveries than
    --max-failed. Exit status 0 when all is well, 3 when something needs
    attention, 1 when the database cannot be read, 2 for bad input.

    \b
    Example:
      relay status --max-backlog-age 10m || page-the-on-call
      relay status --json | jq .problems
    """
    thresholds = status.Thresholds(
        max_backlog_age=retries.parse_duration(max_backlog_age),
        max_failed=max_failed,
        ignored_webhooks=frozenset(ignored_webhooks),
    )

    with db.connect(db.check_dsn(dsn)) as connection:
        report = status.read_status(connection, thresholds)

    emit(report, as_json, render_status)
    if not report["ok"]:
        click.get_current_context().exit(NEEDS_ACTION_EXIT)


def render_status(report: dict[str, Any]) -> None:
    for problem in report["problems"]:
        click.echo(f"ATTENTION: {problem}")
    if report["ok"]:
        click.echo("OK: nothing needs attention.")
    click.echo(f"Checked at {iso(report['checked_at'])}.")

    capture = report["capture"]
    on = capture["triggers"] - capture["off"]
    click.echo(f"\nCapture: {on} of {capture['triggers']} capture triggers on")
    outbox = report["outbox"]
    click.echo(
        f"Outbox: {outbox['events']:,} events not fanned out"
        + age_note("oldest", outbox["oldest_age_seconds"])
    )
    deliveries = report["deliveries"]
    about = "" if deliveries["delivered_is_exact"] else "about "
    click.echo(
        f"Deliveries: {deliveries['pending']:,} pending"
        f" ({deliveries['due']:,} due, {deliveries['in_flight']:,} in flight,"
        f" {deliveries['waiting_retry']:,} waiting for a retry,"
        f" {deliveries['held']:,} held by disabled webhooks)"
        + age_note("oldest event", deliveries["oldest_event_age_seconds"])
        + f"; {deliveries['failed']:,} failed; {about}{deliveries['delivered']:,}"
        " delivered"
    )

    click.echo("\nWebhooks:")
    print_table(
        [with_disabler(row) for row in report["webhooks"]],
        WEBHOOK_COLUMNS,
        empty="No webhooks.",
    )
    click.echo("\nRelays holding claims:")
    print_table(report["claims"], CLAIM_COLUMNS, empty="None.")


def age_note(label: str, seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f", {label} {status.duration(seconds)} old"


def with_disabler(webhook: dict[str, Any]) -> dict[str, Any]:
    """The webhook's row saying who disabled it: the relay pages, a person not."""
    if webhook["enabled"]:
        return webhook
    by = "relay" if webhook["disabled_by_relay"] else "operator"
    return {**webhook, "enabled": f"no ({by})"}
