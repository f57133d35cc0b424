"""The command line: parse, open what is needed, run one thing, print.

Data goes to stdout, progress and logs to stderr. Errors are one line and an exit
status: 2 for bad input, 1 for a failure.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from relay import db, logformat, migrations, retries, webhooks
from relay.errors import RelayError
from relay.filters import CLEARABLE
from relay.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def dsn_option(function: F) -> F:
    decorator = click.option(
        "--dsn",
        envvar="DATABASE_URL",
        help="PostgreSQL DSN or URL. Default: $DATABASE_URL.",
    )
    return decorator(function)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    default="info",
    envvar="RELAY_LOG_LEVEL",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    show_default=True,
)
@click.option(
    "--log-format",
    default="plain",
    envvar="RELAY_LOG_FORMAT",
    type=click.Choice(["plain", "json"]),
    show_default=True,
)
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.version_option(package_name="relay")
def cli(log_level: str, log_format: str, debug: bool) -> None:
    """Outgoing webhooks from PostgreSQL.

    \b
    Example:
      export DATABASE_URL=postgresql://postgres@127.0.0.1:5432/app
      relay migrate && relay run
    """
    logformat.configure(log_level, log_format)


@cli.command()
@dsn_option
def migrate(dsn: str | None) -> None:
    """Install or upgrade the schema, triggers and payload functions.

    \b
    Example:
      relay migrate --dsn postgresql://postgres@127.0.0.1:5432/app
    """
    applied = migrations.apply_migrations(db.check_dsn(dsn))
    if applied:
        click.echo(migrations.CAPTURE_NOTE, err=True)
        click.echo(f"Applied {len(applied)} migrations: {', '.join(applied)}", err=True)
    else:
        click.echo("The database is up to date.", err=True)


@cli.command()
@dsn_option
@click.option(
    "--poll-interval",
    type=float,
    default=1.0,
    envvar="RELAY_POLL_INTERVAL",
    show_default=True,
    help="Seconds between safety-net polls.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=100,
    envvar="RELAY_BATCH_SIZE",
    show_default=True,
)
@click.option(
    "--max-in-flight",
    type=click.IntRange(1, 10_000),
    default=64,
    envvar="RELAY_MAX_IN_FLIGHT",
    show_default=True,
    help="Requests on the wire at once.",
)
@click.option(
    "--request-timeout",
    type=float,
    default=10.0,
    envvar="RELAY_REQUEST_TIMEOUT",
    show_default=True,
    help="Seconds one request may take in all.",
)
@click.option(
    "--max-in-flight-per-webhook",
    type=click.IntRange(1, 10_000),
    default=10,
    envvar="RELAY_MAX_IN_FLIGHT_PER_WEBHOOK",
    show_default=True,
    help="Requests on the wire at once for one webhook, over all relays.",
)
@click.option(
    "--retry-schedule",
    default=retries.DEFAULT_SCHEDULE_TEXT,
    envvar="RELAY_RETRY_SCHEDULE",
    show_default=True,
    help="Delays before the 2nd, 3rd, ... attempt (s, m, h, d); then it fails.",
)
@click.option(
    "--retry-jitter",
    type=float,
    default=0.2,
    envvar="RELAY_RETRY_JITTER",
    show_default=True,
    help="Each delay varies randomly by up to this fraction.",
)
@click.option(
    "--slow-down-delay",
    type=float,
    default=60.0,
    envvar="RELAY_SLOW_DOWN_DELAY",
    show_default=True,
    help="Least seconds to wait after a time-out or a 429.",
)
@click.option(
    "--max-retry-after",
    type=float,
    default=86400.0,
    envvar="RELAY_MAX_RETRY_AFTER",
    show_default=True,
    help="A receiver's Retry-After is honoured up to this many seconds.",
)
@click.option(
    "--unhealthy-after",
    type=click.IntRange(1, 10_000),
    default=5,
    envvar="RELAY_UNHEALTHY_AFTER",
    show_default=True,
    help="Failures in a row that make a webhook UNHEALTHY.",
)
@click.option(
    "--disable-after",
    default="5d",
    envvar="RELAY_DISABLE_AFTER",
    show_default=True,
    help="Failing this long without a success disables a webhook (s, m, h, d).",
)
@click.option(
    "--lease",
    type=float,
    default=60.0,
    envvar="RELAY_LEASE",
    show_default=True,
    help="Seconds a claim is held before it is retaken.",
)
@click.option(
    "--shutdown-grace",
    type=float,
    default=10.0,
    envvar="RELAY_SHUTDOWN_GRACE",
    show_default=True,
    help="Seconds requests in flight get to finish on SIGTERM.",
)
def run(
    dsn: str | None, retry_schedule: str, disable_after: str, **options: Any
) -> None:
    """Run the relay until SIGTERM or Ctrl-C.

    \b
    Example:
      DATABASE_URL=postgresql://postgres@127.0.0.1:5432/app relay run
    """
    settings = Settings(
        dsn=db.check_dsn(dsn),
        retry_schedule=retries.parse_schedule(retry_schedule),
        disable_after=retries.parse_duration(disable_after),
        **options,
    )
    # Imported here, like the demo: aiohttp is only needed by these two commands.
    from relay import service

    asyncio.run(service.serve(settings))


@cli.group(name="webhooks")
def webhooks_group() -> None:
    """Register and manage webhooks."""


FILTER_OPTIONS = (
    ("--event", "events", "An event to receive"),
    ("--project", "project_ids", "A project of the creator's to cover"),
    ("--list", "todo_list_ids", "A list whose records and events to receive"),
    ("--tag", "tag_ids", "A tag the record must carry"),
    ("--assignee", "assignee_ids", "A user the record must be assigned to"),
    ("--field", "changed_fields", "A field (title, a cfd_ id...) whose change counts"),
)


def filter_options(meaning_of_none: str) -> Callable[[F], F]:
    """--event, --project, --list, --tag, --assignee and --field, all repeatable."""

    def decorate(function: F) -> F:
        for flag, name, text in reversed(FILTER_OPTIONS):
            decorator = click.option(
                flag, name, multiple=True, help=f"{text}; repeat it. {meaning_of_none}"
            )
            function = decorator(function)
        return function

    return decorate


@webhooks_group.command(name="create")
@dsn_option
@click.option("--name", required=True, help="A label for people.")
@click.option("--url", required=True, help="Where payloads are POSTed.")
@click.option(
    "--created-by",
    "created_by_id",
    required=True,
    help="The creator's user id; scope follows their memberships.",
)
@filter_options("None means no narrowing.")
@click.option("--secret", help="Signing secret; generated when absent.")
def create_webhook(dsn: str | None, **fields: Any) -> None:
    """Register a webhook and print it with its secret, shown only this once.

    \b
    Example:
      relay webhooks create --name "CRM sync" --url https://crm.example.org/hook \\
        --created-by usr_2 --event TODO_CREATED --event TODO_DELETED --project prj_1
    """
    with db.connect(db.check_dsn(dsn)) as connection:
        created, secret = webhooks.create(connection, webhooks.NewWebhook(**fields))
    click.echo(json.dumps({**created, "secret": secret}, indent=2, ensure_ascii=False))
    click.echo("Store the secret now: it is not shown again.", err=True)


@webhooks_group.command(name="update")
@dsn_option
@click.argument("webhook_id")
@click.option("--name", help="A new label.")
@click.option("--url", help="A new URL.")
@filter_options("Replaces the whole filter.")
@click.option(
    "--clear",
    multiple=True,
    type=click.Choice(list(CLEARABLE)),
    help="Empty one filter, so that it no longer narrows (repeat it).",
)
def update_webhook(dsn: str | None, webhook_id: str, **changes: Any) -> None:
    """Change a webhook's name, URL or filters and print it (never its secret).

    A filter option replaces that whole filter; --clear empties one. The result
    is checked as create would check it.

    \b
    Example:
      relay webhooks update wh_0123456789abcdef0123 \\
        --list lst_1 --tag tag_urgent --clear assignees
    """
    with db.connect(db.check_dsn(dsn)) as connection:
        updated = webhooks.update(
            connection, webhook_id, webhooks.WebhookChanges(**changes)
        )
    click.echo(json.dumps(updated, indent=2, ensure_ascii=False))


@webhooks_group.command(name="list")
@dsn_option
def list_webhooks(dsn: str | None) -> None:
    """List every webhook, with the filters that narrow it.

    \b
    Example:
      relay webhooks list
    """
    with db.connect(db.check_dsn(dsn)) as connection:
        found = webhooks.list_all(connection)
    width = max([len("URL"), *(len(item["url"]) for item in found)])
    click.echo(
        f"{'ID':<26} {'STATUS':<9} {'ENABLED':<7} {'NAME':<20} {'URL':<{width}} FILTERS"
    )
    for item in found:
        enabled = "yes" if item["enabled"] else "no"
        click.echo(
            f"{item['id']:<26} {item['status']:<9} {enabled:<7} "
            f"{item['name'][:20]:<20} {item['url']:<{width}} "
            f"{describe_filters(item['metadata'])}"
        )


# The filters in metadata as the webhook's JSON shows them, by --clear word.
LISTED_FILTERS = {
    "events": "events",
    "projects": "projectIds",
    "lists": "todoListIds",
    "tags": "tagIds",
    "assignees": "assigneeIds",
    "fields": "changedFields",
}


def describe_filters(metadata: dict[str, list[str]]) -> str:
    """How many values each non-empty filter holds, e.g. ``events=2 lists=1``."""
    counts = [
        f"{word}={len(metadata[key])}"
        for word, key in LISTED_FILTERS.items()
        if metadata.get(key)
    ]
    return " ".join(counts) or "-"


@webhooks_group.command(name="show")
@dsn_option
@click.argument("webhook_id")
def show_webhook(dsn: str | None, webhook_id: str) -> None:
    """Show one webhook (never its secret) with its delivery counts.

    \b
    Example:
      relay webhooks show wh_0123456789abcdef0123
    """
    with db.connect(db.check_dsn(dsn)) as connection:
        click.echo(
            json.dumps(
                webhooks.show(connection, webhook_id), indent=2, ensure_ascii=False
            )
        )


@webhooks_group.command(name="delete")
@dsn_option
@click.argument("webhook_id")
def delete_webhook(dsn: str | None, webhook_id: str) -> None:
    """Delete a webhook with its deliveries and attempts.

    \b
    Example:
      relay webhooks delete wh_0123456789abcdef0123
    """
    with db.connect(db.check_dsn(dsn)) as connection:
        webhooks.delete(connection, webhook_id)
    click.echo(f"Deleted {webhook_id}.", err=True)


@webhooks_group.command(name="enable")
@dsn_option
@click.argument("webhook_id")
def enable_webhook(dsn: str | None, webhook_id: str) -> None:
    """Enable a webhook; if it was disabled, send it WEBHOOK_HEALTH_CHECK.

    \b
    Example:
      relay webhooks enable wh_0123456789abcdef0123
    """
    switch_webhook(dsn, webhook_id, enabled=True)


@webhooks_group.command(name="disable")
@dsn_option
@click.argument("webhook_id")
def disable_webhook(dsn: str | None, webhook_id: str) -> None:
    """Disable a webhook: it receives nothing until enabled again.

    \b
    Example:
      relay webhooks disable wh_0123456789abcdef0123
    """
    switch_webhook(dsn, webhook_id, enabled=False)


def switch_webhook(dsn: str | None, webhook_id: str, *, enabled: bool) -> None:
    with db.connect(db.check_dsn(dsn)) as connection:
        changed = webhooks.set_enabled(connection, webhook_id, enabled)
    click.echo(json.dumps(changed, ensure_ascii=False))


@cli.command(name="demo")
@click.option(
    "--dsn",
    envvar="DATABASE_URL",
    help="Use this database instead of a throwaway cluster.",
)
def demo_command(dsn: str | None) -> None:
    """Show the whole path: changes in PostgreSQL arriving as signed webhooks.

    Without --dsn or DATABASE_URL it starts a throwaway PostgreSQL cluster and
    removes it afterwards.

    \b
    Example:
      relay demo
    """
    root = click.get_current_context().find_root()
    if root.get_parameter_source("log_level") is click.core.ParameterSource.DEFAULT:
        # The demo prints each delivery itself; routine log lines would bury them.
        logformat.configure("warning", root.params["log_format"])
    from relay import demo

    asyncio.run(demo.run_demo(dsn or None))


def main() -> None:
    """Entry point: run the CLI and turn RelayError into one line and a status."""
    debug = "--debug" in sys.argv[1:]
    try:
        result = cli.main(standalone_mode=False)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except RelayError as error:
        if debug:
            raise
        click.echo(f"relay: error: {error}", err=True)
        sys.exit(error.exit_code)
    sys.exit(result if isinstance(result, int) else 0)
