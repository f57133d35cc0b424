"""The command line: parse, open what is needed, run one thing, print.

Data goes to stdout, progress and logs to stderr. Errors are one line and an exit
status: 2 for bad input, 1 for a failure.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import traceback
from types import FrameType
from typing import Any

import click

from relay import db, logformat, retries
from relay.backfill_commands import backfill_command
from relay.cli_options import dsn_option
from relay.dba_commands import migrate_command
from relay.deliveries_commands import deliveries_group
from relay.errors import RelayError
from relay.prune_commands import prune_command
from relay.replay_commands import replay_command
from relay.settings import Settings
from relay.status_commands import status_command
from relay.trigger_commands import triggers_group
from relay.webhook_commands import webhooks_group


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
    default=256,
    envvar="RELAY_BATCH_SIZE",
    show_default=True,
)
@click.option(
    "--max-in-flight",
    type=click.IntRange(1, 10_000),
    default=256,
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
@click.option(
    "--retention",
    default="",
    envvar="RELAY_RETENTION",
    help="Prune delivered events and attempts older than this (30d); empty: never.",
)
@click.option(
    "--prune-interval",
    default="1h",
    envvar="RELAY_PRUNE_INTERVAL",
    show_default=True,
    help="Time between two prunes when --retention is set (s, m, h, d).",
)
def run(
    dsn: str | None,
    retry_schedule: str,
    disable_after: str,
    retention: str,
    prune_interval: str,
    **options: Any,
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
        retention=retries.parse_duration(retention) if retention.strip() else None,
        prune_interval=retries.parse_duration(prune_interval),
        **options,
    )
    # Imported here, like the demo: aiohttp is only needed by these two commands.
    from relay import service

    asyncio.run(service.serve(settings))


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


cli.add_command(webhooks_group)
cli.add_command(replay_command)
cli.add_command(deliveries_group)
cli.add_command(status_command)
cli.add_command(prune_command)
cli.add_command(migrate_command)
cli.add_command(triggers_group)
cli.add_command(backfill_command)


def stop_like_ctrl_c(signal_number: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Entry point: run the CLI and turn RelayError into one line and a status."""
    debug = "--debug" in sys.argv[1:]
    # A plain kill (a deploy, systemd) stops a command as Ctrl-C does, with its
    # message; `relay run` and the demo install their own handlers over this.
    signal.signal(signal.SIGTERM, stop_like_ctrl_c)
    try:
        result = cli.main(standalone_mode=False, prog_name="relay")
    except click.UsageError as error:
        # One line, like every other error, with where to read more.
        where = error.ctx.command_path if error.ctx else "relay"
        message = " ".join(error.format_message().split())
        click.echo(f"relay: error: {message} (see '{where} --help')", err=True)
        sys.exit(error.exit_code)
    except click.ClickException as error:
        click.echo(f"relay: error: {error.format_message()}", err=True)
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except RelayError as error:
        if debug:
            traceback.print_exc()
        click.echo(f"relay: error: {error}", err=True)
        sys.exit(error.exit_code)
    sys.exit(result if isinstance(result, int) else 0)
