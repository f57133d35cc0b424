"""``relay prune``: delete delivered events and old attempts past a retention.

The work is relay/prune.py's; this module parses, shows progress per phase and
prints the summary as a table or JSON.
"""

from __future__ import annotations

from typing import Any

import click

from relay import db, prune, retries
from relay.cli_options import dsn_option
from relay.errors import ConfigError
from relay.output import Progress, emit, iso, json_option, print_table


def parse_retention(text: str) -> float:
    try:
        seconds = retries.parse_duration(text)
    except ConfigError as error:
        raise ConfigError(f"--older-than: {error}") from None
    return prune.check_retention(seconds, "--older-than")


@click.command(name="prune")
@dsn_option
@click.option(
    "--older-than",
    default="30d",
    show_default=True,
    help="The retention: what is older may go (s, m, h, d; at least 1h).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=prune.DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Rows read per transaction.",
)
@click.option(
    "--include-failed",
    is_flag=True,
    help="Also delete events whose deliveries failed for good (give them up).",
)
@click.option("--dry-run", is_flag=True, help="Count what would go and delete nothing.")
@json_option
def prune_command(
    dsn: str | None,
    older_than: str,
    batch_size: int,
    include_failed: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Delete delivered events and old attempts past the retention, in batches.

    An event goes with its deliveries and attempts once it is older than the
    retention and every delivery of it was delivered (or failed, with
    --include-failed). Attempts of the deliveries that stay go too, except the
    latest of each. Pending events, and delete events that an older pending
    event may need as context, stay.

    \b
    Example:
      relay prune --older-than 30d --dry-run
      relay prune --older-than 30d --include-failed --json
    """
    policy = prune.PrunePolicy(
        older_than=parse_retention(older_than),
        batch_size=batch_size,
        include_failed=include_failed,
        dry_run=dry_run,
    )
    checked = db.check_dsn(dsn)

    total = prune.Counts()
    with prune.connect(checked) as connection:
        pruner = prune.Pruner(connection, policy)
        phases = (
            ("Attempts", pruner.attempts, pruner.attempt_batches(), "attempt ids"),
            ("Events", pruner.events, pruner.event_batches(), "event ids"),
        )
        for label, span, batches, unit in phases:
            with Progress(label, span.size, unit=unit) as progress:
                for batch in batches:
                    total.add(batch.deleted)
                    progress.advance(batch.ids)

    summary = {
        "dry_run": dry_run,
        "older_than": older_than,
        "cutoff": iso(pruner.cutoff),
        "include_failed": include_failed,
        "events": total.events,
        "deliveries": total.deliveries,
        "attempts": total.attempts,
    }
    emit(summary, as_json, render_summary)


def render_summary(summary: dict[str, Any]) -> None:
    verb = "would delete" if summary["dry_run"] else "deleted"
    rows = [
        {"rows": name, "count": summary[name]}
        for name in ("events", "deliveries", "attempts")
    ]
    print_table(rows, [("rows", "ROWS"), ("count", verb.upper())])
    click.echo(f"Older than {summary['older_than']}: before {summary['cutoff']}.")
