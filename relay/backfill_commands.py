"""``relay backfill``: send a webhook what already exists, as creation events.

The command parses, opens one connection, and runs relay/backfill.py: a run to
its end (with a progress bar or log lines on stderr), a dry run, or the list of
runs. The summary goes to stdout as a table or, with --json, as JSON.
"""

from __future__ import annotations

from typing import Any

import click

from relay import backfill, backfill_plans, db
from relay.cli_options import dsn_option
from relay.errors import ConfigError, RelayError
from relay.output import Progress, emit, json_option, print_table

RUN_COLUMNS = (
    ("id", "ID"),
    ("webhookId", "WEBHOOK"),
    ("state", "STATE"),
    ("kind", "WRITING"),
    ("eventsWritten", "WRITTEN"),
    ("total", "TOTAL"),
    ("startedAt", "STARTED"),
    ("finishedAt", "FINISHED"),
)


@click.command(name="backfill")
@dsn_option
@click.option("--webhook", "webhook_id", help="The webhook to send the records to.")
@click.option(
    "--event",
    "events",
    multiple=True,
    help="A creation event to write (TODO_CREATED...); repeat it."
    " Default: every creation event the webhook receives.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(1, 10_000),
    default=500,
    show_default=True,
    help="Records written per transaction.",
)
@click.option(
    "--max-pending",
    type=click.IntRange(1, 1_000_000),
    default=2000,
    show_default=True,
    help="Events of the run the relay may have unfinished before the next chunk.",
)
@click.option(
    "--cutoff",
    type=click.Choice(["webhook", "now"]),
    default="webhook",
    show_default=True,
    help="Records created by the webhook's creation (it received later ones live),"
    " or by now (after capture was off; records it already has come again).",
)
@click.option("--restart", is_flag=True, help="Cancel an unfinished run; start anew.")
@click.option(
    "--again",
    is_flag=True,
    help="Start a new run although one already sent every record.",
)
@click.option("--cancel", is_flag=True, help="Cancel the unfinished run; start none.")
@click.option("--dry-run", is_flag=True, help="Count the records; write nothing.")
@click.option("--status", is_flag=True, help="List the runs and their progress.")
@json_option
def backfill_command(
    dsn: str | None,
    webhook_id: str | None,
    events: tuple[str, ...],
    chunk_size: int,
    max_pending: int,
    cutoff: str,
    restart: bool,
    again: bool,
    cancel: bool,
    dry_run: bool,
    status: bool,
    as_json: bool,
) -> None:
    """Send a webhook the records that already exist, as creation events.

    Each record in the webhook's scope and filters becomes one event (such as
    TODO_CREATED) marked with X-Relay-Backfill. A run is resumed where it
    stopped when started again; it needs a running relay to get past
    --max-pending.

    \b
    Example:
      relay backfill --webhook wh_0123456789abcdef0123
      relay backfill --webhook wh_0123456789abcdef0123 --event TODO_CREATED --dry-run
      relay backfill --status
      relay backfill --webhook wh_0123456789abcdef0123 --cancel
    """
    if status:
        if events or restart or dry_run:
            raise click.UsageError("--status takes only --webhook, --dsn and --json")
        show_status(db.check_dsn(dsn), webhook_id, as_json)
        return
    if webhook_id is None:
        raise click.UsageError("give the webhook to backfill: --webhook wh_...")
    if cancel:
        if events or restart or again or dry_run:
            raise click.UsageError("--cancel takes only --webhook, --dsn and --json")
        with db.connect(db.check_dsn(dsn), autocommit=True) as connection:
            cancelled = backfill.cancel(connection, webhook_id)
        if cancelled is None:
            raise ConfigError(f"{webhook_id} has no unfinished backfill to cancel")
        click.echo(f"Cancelled backfill {cancelled.label} of {webhook_id}.", err=True)
        emit(cancelled.as_dict(), as_json, render_run)
        return

    with db.connect(db.check_dsn(dsn), autocommit=True) as connection:
        webhook = backfill_plans.find_webhook(connection, webhook_id)
        request = backfill_plans.Request(
            webhook=webhook,
            kinds=backfill_plans.choose_kinds(webhook.events, events),
            narrowed=bool(events),
            restart=restart,
            again=again,
            up_to_now=cutoff == "now",
        )
        if dry_run:
            show_plan(*backfill_plans.plan(connection, request), request, as_json)
            return
        run, resumed = backfill.start(connection, request)
        announce(run, resumed)
        pace = backfill.Pace(chunk_size=chunk_size, max_pending=max_pending)
        finished = run_with_progress(connection, webhook, run, pace)
    emit({**finished.as_dict(), "resumed": resumed}, as_json, render_run)


def announce(run: backfill_plans.Run, resumed: bool) -> None:
    if resumed:
        click.echo(
            f"Resuming backfill {run.label} of {run.webhook_id}"
            f" at {run.events_written:,} of {run.total:,}.",
            err=True,
        )
    else:
        click.echo(
            f"Starting backfill {run.label} of {run.webhook_id}:"
            f" {run.total:,} records ({', '.join(run.kinds)}).",
            err=True,
        )


def run_with_progress(
    connection: backfill.Connection,
    webhook: backfill_plans.Webhook,
    run: backfill_plans.Run,
    pace: backfill.Pace,
) -> backfill_plans.Run:
    progress = Progress(
        f"backfill {run.label}", run.total, unit="records", initial=run.events_written
    )
    try:
        with progress:
            return backfill.run_to_end(connection, webhook, run, pace, progress)
    except KeyboardInterrupt:
        raise RelayError(
            f"interrupted: backfill {run.label} stopped at {progress.done:,} of"
            f" {run.total:,}; run the same command to resume it"
        ) from None


def render_run(data: dict[str, Any]) -> None:
    print_table([data], RUN_COLUMNS)


def show_plan(
    run: backfill_plans.Run | None,
    counts: dict[str, int],
    request: backfill_plans.Request,
    as_json: bool,
) -> None:
    data = {
        "webhookId": request.webhook.id,
        "resumes": None if run is None else run.label,
        "kinds": [{"event": kind, "records": count} for kind, count in counts.items()],
        "total": sum(counts.values()),
    }
    if run is not None:
        click.echo(
            f"Would resume backfill {run.label} at {run.events_written:,} written.",
            err=True,
        )
    emit(data, as_json, render_plan)


def render_plan(data: dict[str, Any]) -> None:
    rows = [*data["kinds"], {"event": "total", "records": data["total"]}]
    print_table(rows, (("event", "EVENT"), ("records", "RECORDS")))


def show_status(dsn: str, webhook_id: str | None, as_json: bool) -> None:
    with db.connect(dsn) as connection:
        runs = backfill_plans.list_runs(connection, webhook_id)
    emit(
        [run.as_dict() for run in runs],
        as_json,
        lambda rows: print_table(rows, RUN_COLUMNS, empty="No backfill yet."),
    )
