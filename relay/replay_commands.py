"""The ``relay replay`` command: send again what was delivered or failed.

It checks the choice, takes the ids, shows them (``--dry-run``) or asks before
a large replay, then runs relay/replay.py batch by batch with a progress bar.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import asdict
from datetime import datetime
from typing import Any

import click

from relay import db, replay
from relay.claims import DeliveryId, EventId, WebhookId
from relay.cli_options import dsn_option, moment_option
from relay.errors import ConfigError
from relay.output import Progress, emit, json_option, print_table

COLUMNS = (
    ("delivery_id", "DELIVERY"),
    ("event_id", "EVENT ID"),
    ("event", "EVENT"),
    ("webhook_id", "WEBHOOK"),
    ("state", "STATE"),
    ("event_created_at", "EVENT CREATED"),
)


def event_id_option(
    context: click.Context, parameter: click.Parameter, value: str | None
) -> EventId | None:
    """An event id as the database has it (``12``) or as receivers see it
    (``evt_12``)."""
    if value is None:
        return None
    text = value.strip().removeprefix("evt_")
    if not text.isascii() or not text.isdigit() or int(text) == 0:
        raise click.BadParameter(f"{value!r} is no event id; write 12 or evt_12")
    return EventId(int(text))


def deliveries(count: int) -> str:
    return f"{count:,} {'delivery' if count == 1 else 'deliveries'}"


@click.command(name="replay")
@dsn_option
@click.option(
    "--delivery",
    "delivery_ids",
    type=click.IntRange(min=1),
    multiple=True,
    help="A delivery to send again (X-Relay-Delivery); repeat it.",
)
@click.option(
    "--event",
    "event_id",
    metavar="ID",
    callback=event_id_option,
    help="An event (12 or evt_12) whose deliveries to send again.",
)
@click.option(
    "--webhook",
    "webhook_id",
    help="A webhook whose deliveries to send again; with --event, only its own.",
)
@moment_option("--since", "With --webhook: events from this time on (ISO or 2h).")
@moment_option("--until", "With --webhook: events before this time (ISO or 30m).")
@click.option(
    "--event-name",
    "event_names",
    multiple=True,
    help="With --webhook: only this event, e.g. TODO_CREATED; repeat it.",
)
@click.option(
    "--state",
    "states",
    type=click.Choice(replay.REPLAYABLE_STATES),
    multiple=True,
    help="Only deliveries in this state; repeat it. Default: both.",
)
@click.option(
    "--retry-pending",
    is_flag=True,
    help="Also make chosen pending deliveries that wait for a retry due now.",
)
@click.option(
    "--dry-run", is_flag=True, help="List what would be sent; change nothing."
)
@click.option("--yes", is_flag=True, help="Do not ask, however many are chosen.")
@click.option(
    "--confirm-above",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Ask before replaying more deliveries than this.",
)
@json_option
def replay_command(
    dsn: str | None,
    delivery_ids: tuple[int, ...],
    event_id: EventId | None,
    webhook_id: str | None,
    since: datetime | None,
    until: datetime | None,
    event_names: tuple[str, ...],
    states: tuple[str, ...],
    retry_pending: bool,
    dry_run: bool,
    yes: bool,
    confirm_above: int,
    as_json: bool,
) -> None:
    """Send again deliveries that were delivered or failed.

    Choose exactly one: --delivery (repeatable); --event, optionally for one
    --webhook; or --webhook with --since, --until, --event-name and --state.
    Pending deliveries are already going to be sent: they are skipped, or with
    --retry-pending their next retry is now. A replayed request carries the
    same webhook-id and X-Relay-Replay.

    \b
    Example:
      relay replay --webhook wh_0123456789abcdef0123 --since 2026-12-03T10:00Z \\
        --until 2026-12-03T12:00Z --state failed --dry-run
      relay replay --event evt_4711 --yes
      relay replay --webhook wh_0123456789abcdef0123 --state failed \\
        --since 1d --retry-pending --yes
    """
    criteria = replay.Criteria(
        delivery_ids=tuple(DeliveryId(number) for number in delivery_ids),
        event_id=event_id,
        webhook_id=WebhookId(webhook_id) if webhook_id is not None else None,
        since=since,
        until=until,
        event_names=tuple(dict.fromkeys(event_names)),
        states=tuple(dict.fromkeys(states)),
    )
    criteria.check()

    with db.connect(db.check_dsn(dsn), autocommit=True) as connection:
        chosen = replay.choose(connection, criteria)
        to_replay = [item for item in chosen if retry_pending or not item.pending]
        if dry_run:
            warn_disabled(to_replay)
            show_dry_run(chosen, as_json, retry_pending)
            return
        if len(to_replay) > confirm_above and not yes:
            confirm(to_replay, confirm_above)

        with Progress("Replaying", len(to_replay), unit="deliveries") as progress:
            replayed = replay.replay(
                connection,
                chosen,
                criteria.replayable_states,
                on_batch=progress.advance,
                retry_pending=retry_pending,
            )

    done = set(replayed.replayed_ids) | set(replayed.retried_ids)
    disabled = warn_disabled([item for item in chosen if item.delivery_id in done])
    summary = {
        "replayed": len(replayed.replayed_ids),
        "skipped": len(replayed.skipped_ids),
        "replayed_ids": replayed.replayed_ids,
        "skipped_ids": replayed.skipped_ids,
        "disabled_webhooks": disabled,
    }
    if retry_pending:
        summary["retried_now"] = len(replayed.retried_ids)
        summary["retried_now_ids"] = replayed.retried_ids
    emit(summary, as_json, render_summary)


def show_dry_run(
    chosen: list[replay.Chosen], as_json: bool, retry_pending: bool
) -> None:
    rows = [asdict(item) for item in chosen]
    for row in rows:
        del row["webhook_enabled"]
    pending = sum(item.pending for item in chosen)
    data: dict[str, Any] = {
        "dry_run": True,
        "would_replay": len(chosen) - pending,
        "skipped": 0 if retry_pending else pending,
        "deliveries": rows,
    }
    if retry_pending:
        data["would_retry_now"] = pending

    def render(data: dict[str, Any]) -> None:
        print_table(data["deliveries"], COLUMNS, empty="No delivery matches.")
        if retry_pending:
            click.echo(
                f"Would replay {deliveries(data['would_replay'])} and retry"
                f" {deliveries(data['would_retry_now'])} now (unless in flight)."
            )
            return
        click.echo(
            f"Would replay {deliveries(data['would_replay'])}"
            f" ({data['skipped']:,} skipped: still pending)."
        )

    emit(data, as_json, render)


def confirm(to_replay: list[replay.Chosen], threshold: int) -> None:
    """Ask on a terminal; refuse without one rather than wait for an answer."""
    webhook_ids = sorted({item.webhook_id for item in to_replay})
    target = webhook_ids[0] if len(webhook_ids) == 1 else f"{len(webhook_ids)} webhooks"
    if not sys.stdin.isatty():
        raise ConfigError(
            f"{deliveries(len(to_replay))} chosen, more than --confirm-above"
            f" {threshold}, and no terminal to ask: check with --dry-run, then"
            " add --yes"
        )
    pending = sum(item.pending for item in to_replay)
    what = f"Replay {deliveries(len(to_replay) - pending)}"
    if pending:
        what += f" and retry {deliveries(pending)} now"
    click.confirm(f"{what} to {target}?", abort=True, err=True)


def warn_disabled(replayed: list[replay.Chosen]) -> list[str]:
    """Say which webhooks are disabled, so replaying sends nothing yet; list them."""
    counts = Counter(item.webhook_id for item in replayed if not item.webhook_enabled)
    for webhook_id, count in sorted(counts.items()):
        click.echo(
            f"relay: warning: webhook {webhook_id} is disabled: its"
            f" {deliveries(count)} {'waits' if count == 1 else 'wait'} until it is"
            " enabled"
            f" (relay webhooks enable {webhook_id}).",
            err=True,
        )
    return sorted(counts)


def render_summary(summary: dict[str, Any]) -> None:
    if "retried_now" in summary:
        click.echo(
            f"Replayed {deliveries(summary['replayed'])}; retrying"
            f" {deliveries(summary['retried_now'])} now"
            f" ({summary['skipped']:,} skipped: in flight or due already)."
        )
        return
    click.echo(
        f"Replayed {deliveries(summary['replayed'])}"
        f" ({summary['skipped']:,} skipped: still pending)."
    )
