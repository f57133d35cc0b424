"""``relay migrate``: apply the migrations, or show what it would do first.

``--status`` compares the files on disk with ``relay.schema_migrations``;
``--dry-run`` prints the SQL of the pending files. Both only read, in a
read-only session.
"""

from __future__ import annotations

from typing import Any

import click

from relay import db, migrations
from relay.cli_options import dsn_option
from relay.errors import NEEDS_ACTION_EXIT, MigrationError
from relay.output import emit, json_option, print_table

# The status of a check that worked and found something to do (a pending
# migration, a trigger not as installed), apart from 1 (could not check, or
# refused) and 2 (bad input), so that a deploy script can tell them apart.
NEEDS_ACTION = NEEDS_ACTION_EXIT

STATUS_COLUMNS = (
    ("version", "VERSION"),
    ("name", "NAME"),
    ("applied_at", "APPLIED AT"),
    ("state", "STATE"),
)


@click.command(name="migrate")
@dsn_option
@click.option(
    "--status",
    "show_status",
    is_flag=True,
    help=f"List every migration and its state; exit {NEEDS_ACTION} if any is pending.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the SQL of the pending migrations, in order; change nothing.",
)
@json_option
def migrate_command(
    dsn: str | None, show_status: bool, dry_run: bool, as_json: bool
) -> None:
    """Install or upgrade the schema, triggers and payload functions.

    With --status, list every migration on disk and in the database: applied,
    pending, changed on disk (relay migrate will refuse) or missing on disk
    (applied by another relay version). Exit status: 0 up to date, 3 pending,
    1 changed on disk or the database cannot be read.

    With --dry-run, print the exact SQL of each pending migration to stdout.

    \b
    Example:
      relay migrate --dsn postgresql://postgres@127.0.0.1:5432/app --status
      relay migrate --dry-run > pending.sql   # review it, then:
      relay migrate
    """
    if show_status and dry_run:
        raise click.UsageError("choose one of --status and --dry-run")
    if as_json and not (show_status or dry_run):
        raise click.UsageError("--json goes with --status or --dry-run")
    checked = db.check_dsn(dsn)

    if show_status:
        show_migration_status(checked, as_json)
    elif dry_run:
        print_pending_sql(checked, as_json)
    else:
        apply_pending(checked)


def apply_pending(dsn: str) -> None:
    applied = migrations.apply_migrations(dsn)
    if applied:
        click.echo(migrations.CAPTURE_NOTE, err=True)
        click.echo(f"Applied {len(applied)} migrations: {', '.join(applied)}", err=True)
    else:
        click.echo("The database is up to date.", err=True)


def show_migration_status(dsn: str, as_json: bool) -> None:
    found = migrations.status(dsn)
    rows = [
        {
            "version": item.version,
            "name": item.name,
            "applied_at": item.applied_at,
            "state": item.state,
        }
        for item in found
    ]
    emit(rows, as_json, lambda data: print_table(data, STATUS_COLUMNS))

    changed = [item.label for item in found if item.state == "changed on disk"]
    unknown = [item.label for item in found if item.state == "missing on disk"]
    waiting = [item.label for item in found if item.state == "pending"]
    if unknown:
        click.echo(
            f"Applied by another version of relay: {', '.join(unknown)}.", err=True
        )
    if changed:
        raise MigrationError(
            f"{', '.join(changed)} changed on disk after being applied;"
            " restore the files and add a new migration instead"
        )
    if waiting:
        click.echo(
            f"Pending: {', '.join(waiting)}; review the SQL with"
            " relay migrate --dry-run, then run relay migrate.",
            err=True,
        )
        click.get_current_context().exit(NEEDS_ACTION)
    click.echo("The database is up to date.", err=True)


def print_pending_sql(dsn: str, as_json: bool) -> None:
    waiting, bootstrap = migrations.pending(dsn)
    data: dict[str, Any] = {
        "bootstrap": migrations.BOOTSTRAP.strip() if bootstrap else None,
        "migrations": [
            {
                "version": item.version,
                "name": item.name,
                "checksum": item.checksum,
                "sql": item.sql,
            }
            for item in waiting
        ],
    }
    emit(data, as_json, print_script)
    if waiting:
        click.echo(
            f"Would run: {', '.join(item.label for item in waiting)};"
            " nothing was changed.",
            err=True,
        )
    else:
        click.echo("The database is up to date; nothing would run.", err=True)


def print_script(data: dict[str, Any]) -> None:
    """The pending SQL as one reviewable script, a header comment per file."""
    if not data["migrations"]:
        return
    click.echo(
        "-- relay migrate would run the migrations below in this order, each in"
        "\n-- its own transaction, and record each in relay.schema_migrations."
        "\n-- Nothing has been changed."
    )
    if data["bootstrap"]:
        click.echo("\n-- First, relay migrate's own record of what it applied:")
        click.echo(data["bootstrap"])
    for item in data["migrations"]:
        click.echo(
            f"\n-- ==== {item['version']:04d}_{item['name']}.sql"
            f" (sha256 {item['checksum']}) ===="
        )
        click.echo(item["sql"].rstrip("\n"))
