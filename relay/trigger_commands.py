"""``relay triggers``: check the capture triggers, switch capture off and on again.

Each command reads the catalogue of migration 0030 beside pg_trigger, prints
a table (or ``--json``) to stdout and what it means to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import click

from relay import db, triggers
from relay.cli_options import F, dsn_option
from relay.dba_commands import NEEDS_ACTION
from relay.errors import ConfigError
from relay.output import emit, json_option, print_table

STATUS_COLUMNS = (
    ("table", "TABLE"),
    ("trigger", "TRIGGER"),
    ("kind", "KIND"),
    ("present", "PRESENT"),
    ("enabled", "ENABLED"),
    ("as_installed", "AS INSTALLED"),
    ("difference", "DIFFERENCE"),
)
CHANGE_COLUMNS = (("table", "TABLE"), ("trigger", "TRIGGER"), ("action", "ACTION"))
CHANGED_KEYS = [key for key, _ in CHANGE_COLUMNS]

LOST_CHANGES = (
    "While capture is uninstalled, changes to the application's tables are NOT"
    " captured: no event is written and no webhook will ever hear of them."
    " After relay triggers install, run relay backfill to send events for"
    " the records changed meanwhile."
)


@click.group(name="triggers")
def triggers_group() -> None:
    """Check, uninstall and reinstall the capture triggers.

    \b
    Example:
      relay triggers status
      relay triggers uninstall --dry-run
    """


@triggers_group.command(name="status")
@dsn_option
@json_option
def status_command(dsn: str | None, as_json: bool) -> None:
    """Show each relay trigger the migrations installed, as it is now.

    Exit status 3 when any is missing, disabled or defined differently
    (relay triggers install puts them back), 1 when the database cannot be read.

    \b
    Example:
      relay triggers status --dsn postgresql://postgres@127.0.0.1:5432/app
      relay triggers status --json | jq '.[] | select(.as_installed | not)'
    """
    with db.connect(db.check_dsn(dsn)) as connection:
        connection.read_only = True
        states = triggers.read_states(connection)

    rows = [state.describe() for state in states]
    emit(rows, as_json, lambda data: print_table(data, STATUS_COLUMNS))

    different = [row for row in rows if not row["as_installed"]]
    if different:
        click.echo(
            f"{len(different)} of {len(rows)} relay triggers are not as the"
            " migrations installed them; relay triggers install puts them back.",
            err=True,
        )
        click.get_current_context().exit(NEEDS_ACTION)
    click.echo(f"All {len(rows)} relay triggers are as installed.", err=True)


def dry_run_option(function: F) -> F:
    decorator = click.option(
        "--dry-run", is_flag=True, help="Print the SQL it would run; change nothing."
    )
    return decorator(function)


@triggers_group.command(name="install")
@dsn_option
@dry_run_option
@json_option
def install_command(dsn: str | None, dry_run: bool, as_json: bool) -> None:
    """Put every relay trigger back as the migrations installed it.

    A disabled trigger is enabled as recorded (ALWAYS for capture); a missing
    one is created from its recorded definition; one defined differently is
    dropped and created again. All in one transaction; running it twice
    changes nothing the second time.

    \b
    Example:
      relay triggers install --dry-run
      relay triggers install
    """
    steps = change_triggers(dsn, triggers.install_plan, dry_run, as_json)
    if not steps:
        click.echo("Nothing to do: every relay trigger is as installed.", err=True)
    elif not dry_run:
        click.echo(
            f"Reinstalled: {len(steps)} changes to {count_triggers(steps)} triggers;"
            " changes are captured again. Changes made while capture was off"
            " were not: run relay backfill to send events for those records.",
            err=True,
        )


@triggers_group.command(name="uninstall")
@dsn_option
@dry_run_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def uninstall_command(dsn: str | None, dry_run: bool, yes: bool, as_json: bool) -> None:
    """Disable the capture triggers: the application works, nothing is captured.

    It disables the relay_capture_* triggers and the
    relay_remember_departing_trigger ones that only serve them. The TRUNCATE
    guard and the relay's own triggers stay. Asks for confirmation unless --yes;
    without a terminal, --yes is required.

    \b
    Example:
      relay triggers uninstall --dry-run
      relay triggers uninstall --yes   # bulk load, then:
      relay triggers install
    """
    confirm = None if dry_run or yes else confirm_uninstall
    steps = change_triggers(dsn, triggers.uninstall_plan, dry_run, as_json, confirm)
    if not steps:
        click.echo("Nothing to do: capture is already uninstalled.", err=True)
    elif not dry_run:
        click.echo(f"Disabled {len(steps)} triggers. {LOST_CHANGES}", err=True)


Plan = Callable[[Sequence[triggers.TriggerState]], list[triggers.Step]]


def change_triggers(
    dsn: str | None,
    plan: Plan,
    dry_run: bool,
    as_json: bool,
    confirm: Callable[[Sequence[triggers.Step]], None] | None = None,
) -> list[triggers.Step]:
    """Plan from the catalogue, then print the SQL (dry run) or run it and report.

    Nothing is printed before the change is committed.
    """
    with db.connect(db.check_dsn(dsn), autocommit=True) as connection:
        steps = plan(triggers.read_states(connection))
        rows = [step.describe(connection) for step in steps]
        script = triggers.transaction_text(connection, steps)
        if steps and not dry_run:
            if confirm is not None:
                confirm(steps)
            triggers.run_plan(connection, steps)

    if dry_run:
        emit(rows, as_json, lambda data: click.echo(script) if data else None)
        click.echo(f"{len(steps)} statements would run; nothing was changed.", err=True)
    else:
        done = [{key: row[key] for key in CHANGED_KEYS} for row in rows]
        emit(
            done,
            as_json,
            lambda data: print_table(data, CHANGE_COLUMNS) if data else None,
        )
    return steps


def confirm_uninstall(steps: Sequence[triggers.Step]) -> None:
    """Ask at a terminal; refuse without one (a script must say --yes)."""
    if not sys.stdin.isatty():
        raise ConfigError(
            "relay triggers uninstall stops capturing changes and asks first;"
            " without a terminal, add --yes"
        )
    tables = sorted({step.table for step in steps})
    click.echo(
        f"This disables {len(steps)} triggers on {', '.join(tables)}.\n{LOST_CHANGES}",
        err=True,
    )
    click.confirm("Uninstall capture?", abort=True, err=True)


def count_triggers(steps: Sequence[triggers.Step]) -> int:
    return len({(step.table, step.trigger) for step in steps})
