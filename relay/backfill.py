"""Backfills: the records that already exist, sent to one webhook as creations.

A run writes, for each record in the webhook's scope, the event that the capture
of its INSERT would have written (``relay.creation_events_v1``, 0028), marked
with the run (``backfill_id``) and the webhook (``for_webhook_id``). Fan-out then
applies the webhook's filters and scope to it like to a live event, and the
relay sends it with ``X-Relay-Backfill``.

Why chunks that commit their cursor: each chunk is one short transaction that
writes the events of the next records and moves the run's cursor past them, so
no lock is held for long, and a run stopped at any point (Ctrl-C, SIGKILL, a
lost connection) resumes after the last chunk that committed: no record is
written twice, none is skipped.

Why pacing: the relay fans events out and claims deliveries in id order, so a
live event written after a chunk waits behind that chunk's events. Before each
chunk the run waits until at most ``max_pending`` of its events are still
unfinished (not fanned out, or a delivery pending): live events then wait behind
about one window, never behind the whole backfill. The events' inserts ring the
doorbell like any others (0020), so a sleeping relay wakes for each chunk.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg.rows import dict_row

from relay import queries
from relay.backfill_plans import (
    Request,
    Run,
    Webhook,
    remaining_of,
    run_to_resume,
    unfinished_run,
)
from relay.errors import RelayError

logger = logging.getLogger(__name__)

Connection = psycopg.Connection[Any]

# Seconds between two looks at the run's unfinished events while it waits.
PACING_INTERVAL = 0.2


@dataclass(frozen=True)
class Pace:
    chunk_size: int = 500
    max_pending: int = 2000


class Reporter(Protocol):
    """Where a run reports: records written, and what it waits for."""

    def advance(self, count: int) -> None: ...

    def note(self, text: str) -> None: ...


def start(connection: Connection, request: Request) -> tuple[Run, bool]:
    """Take the webhook for this process, then resume its unfinished run or start
    one; return the run (its total counted now) and whether it was resumed.

    The webhook is held by a session lock until the connection closes, so two
    processes never write the same run.
    """
    named = queries.load("backfill")
    webhook = request.webhook
    take_webhook(connection, webhook.id)

    with connection.transaction():
        run = run_to_resume(connection, request)
        if request.restart:
            cancelled = cancel_unfinished(connection, webhook.id)
            if cancelled is not None:
                logger.info(
                    "Backfill %s cancelled for a restart.",
                    cancelled.label,
                    extra={"action": "backfill_cancel", "backfill_id": cancelled.id},
                )
        resumed = run is not None
        if run is None:
            with connection.cursor(row_factory=dict_row) as cursor:
                row = cursor.execute(
                    named["start_run"],
                    {
                        "webhook_id": webhook.id,
                        "kinds": list(request.kinds),
                        "cutoff": request.cutoff,
                    },
                ).fetchone()
            assert row is not None
            run = Run.from_row(row)

        counts = remaining_of(connection, webhook, run)
        total = run.events_written + sum(counts.values())
        with connection.cursor(row_factory=dict_row) as cursor:
            row = cursor.execute(
                named["set_total"], {"run_id": run.id, "total": total}
            ).fetchone()
        assert row is not None
    return Run.from_row(row), resumed


def take_webhook(connection: Connection, webhook_id: str) -> None:
    """Hold the webhook for this process until its connection closes."""
    named = queries.load("backfill")
    try:
        with connection.transaction():
            connection.execute(named["limit_lock_wait"])
            connection.execute(named["take_webhook"], {"webhook_id": webhook_id})
    except psycopg.errors.LockNotAvailable:
        raise RelayError(
            f"another relay backfill of {webhook_id} is running; wait for it,"
            " or stop it and run this again"
        ) from None


def cancel_unfinished(connection: Connection, webhook_id: str) -> Run | None:
    """Give up the webhook's unfinished run, if any, and return it as it was."""
    run = unfinished_run(connection, webhook_id)
    if run is None:
        return None
    connection.execute(queries.load("backfill")["cancel_run"], {"run_id": run.id})
    return run


def cancel(connection: Connection, webhook_id: str) -> Run | None:
    """Cancel the webhook's unfinished run once no process writes it."""
    take_webhook(connection, webhook_id)
    with connection.transaction():
        run = cancel_unfinished(connection, webhook_id)
    if run is None:
        return None
    with connection.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute(
            queries.load("backfill")["find_run"], {"run_id": run.id}
        ).fetchone()
    assert row is not None
    return Run.from_row(row)


def run_to_end(
    connection: Connection, webhook: Webhook, run: Run, pace: Pace, report: Reporter
) -> Run:
    """Write chunk after chunk until every phase is done; return the finished run."""
    while run.state == "running":
        wait_for_relay(connection, run, pace, report)
        run, written = write_chunk(connection, webhook, run, pace)
        report.advance(written)
    logger.info(
        "Backfill done.",
        extra={
            "action": "backfill_done",
            "backfill_id": run.id,
            "webhook_id": run.webhook_id,
            "events": run.events_written,
        },
    )
    return run


def wait_for_relay(
    connection: Connection, run: Run, pace: Pace, report: Reporter
) -> None:
    """Return once at most ``max_pending`` of the run's events are unfinished."""
    query = queries.load("backfill")["outstanding"]
    while True:
        row = connection.execute(
            query, {"run_id": run.id, "webhook_id": run.webhook_id}
        ).fetchone()
        if row is None:
            raise RelayError(f"webhook {run.webhook_id} was deleted meanwhile")
        outstanding, enabled = row
        if not enabled:
            raise stopped_by_disable(run)
        if outstanding <= pace.max_pending:
            return
        report.note("waiting for the relay")
        time.sleep(PACING_INTERVAL)


def write_chunk(
    connection: Connection, webhook: Webhook, run: Run, pace: Pace
) -> tuple[Run, int]:
    """One chunk in one transaction: its events and the cursor past them."""
    named = queries.load("backfill")
    with connection.transaction():
        row = connection.execute(named["lock_run"], {"run_id": run.id}).fetchone()
        if row is None:
            raise RelayError(f"webhook {run.webhook_id} was deleted meanwhile")
        state, phase, cursor, enabled = row
        if (state, phase, cursor) != (run.state, run.phase, run.cursor):
            raise RelayError(
                f"backfill {run.label} was changed by someone else ({state});"
                " relay backfill --status shows it"
            )
        if not enabled:
            raise stopped_by_disable(run)
        with connection.cursor(row_factory=dict_row) as rows:
            written = rows.execute(
                named["write_chunk"],
                {
                    "kind": run.kind,
                    "cursor": run.cursor or "",
                    "cutoff": run.cutoff,
                    "size": pace.chunk_size,
                    "webhook_id": run.webhook_id,
                    "run_id": run.id,
                    "project_ids": list(webhook.scope_project_ids),
                },
            ).fetchone()
    assert written is not None
    return Run.from_row(written), int(written["written"])


def stopped_by_disable(run: Run) -> RelayError:
    return RelayError(
        f"webhook {run.webhook_id} was disabled during backfill {run.label};"
        " enable it and run the same command to resume"
    )
