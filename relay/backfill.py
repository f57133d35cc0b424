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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import psycopg
from psycopg.rows import dict_row

from relay import queries
from relay.errors import ConfigError, RelayError

logger = logging.getLogger(__name__)

Connection = psycopg.Connection[Any]

# The creation events a backfill can write, parents before their children.
CREATION_KINDS = (
    "TODO_LIST_CREATED",
    "TAG_CREATED",
    "CUSTOM_FIELD_CREATED",
    "TODO_CREATED",
    "COMMENT_CREATED",
    "TODO_CHECKLIST_CREATED",
    "TODO_CHECKLIST_ITEM_CREATED",
)

# Seconds between two looks at the run's unfinished events while it waits.
PACING_INTERVAL = 0.2


@dataclass(frozen=True)
class Pace:
    chunk_size: int = 500
    max_pending: int = 2000


@dataclass(frozen=True)
class Webhook:
    id: str
    # Its events filter (empty: every event).
    events: tuple[str, ...]
    # The projects of its scope: the creator's, narrowed by its project filter.
    scope_project_ids: tuple[str, ...]


@dataclass(frozen=True)
class Run:
    """One row of relay.backfills."""

    id: int
    webhook_id: str
    kinds: tuple[str, ...]
    phase: int
    cursor: str | None
    cutoff: datetime
    state: str
    events_written: int
    total: int
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Run:
        values = {name: row[name] for name in cls.__dataclass_fields__}
        return cls(**{**values, "kinds": tuple(row["kinds"])})

    @property
    def label(self) -> str:
        """How headers and messages name it: ``bf_<id>``."""
        return f"bf_{self.id}"

    @property
    def kind(self) -> str | None:
        """The creation event being written, or None once every phase is done."""
        return self.kinds[self.phase] if self.phase < len(self.kinds) else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.label,
            "webhookId": self.webhook_id,
            "state": self.state,
            "kinds": list(self.kinds),
            "kind": self.kind,
            "eventsWritten": self.events_written,
            "total": self.total,
            "cutoff": self.cutoff,
            "startedAt": self.started_at,
            "updatedAt": self.updated_at,
            "finishedAt": self.finished_at,
        }


class Reporter(Protocol):
    """Where a run reports: records written, and what it waits for."""

    def advance(self, count: int) -> None: ...

    def note(self, text: str) -> None: ...


def choose_kinds(subscribed: Sequence[str], asked: Sequence[str]) -> tuple[str, ...]:
    """The creation events to write, in CREATION_KINDS order.

    ``subscribed`` is the webhook's events filter (empty: every event); ``asked``
    the operator's ``--event`` names (empty: every creation the webhook gets).
    """
    for name in asked:
        if name not in CREATION_KINDS:
            raise ConfigError(
                f"cannot backfill {name!r}: choose creation events among "
                + ", ".join(CREATION_KINDS)
            )
        if subscribed and name not in subscribed:
            raise ConfigError(
                f"the webhook does not receive {name}; it subscribes to "
                + ", ".join(subscribed)
            )
    kinds = tuple(
        kind
        for kind in CREATION_KINDS
        if (not asked or kind in asked) and (not subscribed or kind in subscribed)
    )
    if not kinds:
        raise ConfigError(
            "the webhook receives no creation event, so there is nothing to"
            " backfill; its events are " + ", ".join(subscribed)
        )
    return kinds


def find_webhook(connection: Connection, webhook_id: str) -> Webhook:
    """The webhook to backfill; a ConfigError if it cannot receive a backfill."""
    named = queries.load("backfill")
    row = connection.execute(
        named["find_webhook"], {"webhook_id": webhook_id}
    ).fetchone()
    if row is None:
        raise ConfigError(f"unknown webhook {webhook_id!r}")
    _, enabled, events, creator_id = row
    if not enabled:
        raise ConfigError(
            f"webhook {webhook_id} is disabled: enable it first"
            f" (relay webhooks enable {webhook_id})"
        )
    if creator_id is None:
        raise ConfigError(
            f"webhook {webhook_id!r} has lost its creator and matches nothing"
        )
    scope = connection.execute(
        named["scope_projects"], {"webhook_id": webhook_id}
    ).fetchone()
    assert scope is not None
    return Webhook(
        id=webhook_id, events=tuple(events), scope_project_ids=tuple(scope[0])
    )


def unfinished_run(connection: Connection, webhook_id: str) -> Run | None:
    with connection.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute(
            queries.load("backfill")["find_unfinished_run"],
            {"webhook_id": webhook_id},
        ).fetchone()
    return None if row is None else Run.from_row(row)


def remaining(
    connection: Connection,
    webhook: Webhook,
    kinds: Sequence[str],
    *,
    phase: int = 0,
    cursor: str | None = None,
    cutoff: datetime | None = None,
) -> dict[str, int]:
    """Records per kind still to write from (phase, cursor), created by cutoff."""
    query = queries.load("backfill")["count_records"]
    if cutoff is None:
        now = connection.execute("SELECT now()").fetchone()
        assert now is not None
        cutoff = now[0]
    counts: dict[str, int] = {}
    for index, kind in enumerate(kinds):
        if index < phase:
            counts[kind] = 0
            continue
        after = (cursor or "") if index == phase else ""
        row = connection.execute(
            query,
            {
                "kind": kind,
                "cursor": after,
                "cutoff": cutoff,
                "project_ids": list(webhook.scope_project_ids),
            },
        ).fetchone()
        assert row is not None
        counts[kind] = row[0]
    return counts


@dataclass(frozen=True)
class Request:
    """What the operator asked for: which kinds, and whether to start afresh."""

    webhook: Webhook
    kinds: tuple[str, ...]
    # True when --event named the kinds: a run to resume must cover the same.
    narrowed: bool = False
    restart: bool = False


def run_to_resume(connection: Connection, request: Request) -> Run | None:
    """The webhook's unfinished run that a start would resume, if any."""
    if request.restart:
        return None
    run = unfinished_run(connection, request.webhook.id)
    if run is not None and request.narrowed and request.kinds != run.kinds:
        raise ConfigError(
            f"backfill {run.label} of {run.webhook_id} covers "
            + ", ".join(run.kinds)
            + "; leave out --event to resume it, or add --restart"
        )
    return run


def plan(connection: Connection, request: Request) -> tuple[Run | None, dict[str, int]]:
    """What a start would do, changing nothing: the run it resumes, if any, and
    the records per kind it would write."""
    run = run_to_resume(connection, request)
    if run is None:
        return None, remaining(connection, request.webhook, request.kinds)
    return run, remaining_of(connection, request.webhook, run)


def remaining_of(connection: Connection, webhook: Webhook, run: Run) -> dict[str, int]:
    return remaining(
        connection,
        webhook,
        run.kinds,
        phase=run.phase,
        cursor=run.cursor,
        cutoff=run.cutoff,
    )


def start(connection: Connection, request: Request) -> tuple[Run, bool]:
    """Take the webhook for this process, then resume its unfinished run or start
    one; return the run (its total counted now) and whether it was resumed.

    The webhook is held by a session lock until the connection closes, so two
    processes never write the same run.
    """
    named = queries.load("backfill")
    webhook = request.webhook
    taken = connection.execute(named["take_webhook"], {"webhook_id": webhook.id})
    if taken.fetchone() != (True,):
        raise RelayError(
            f"another relay backfill of {webhook.id} is running; wait for it,"
            " or stop it and run this again"
        )

    with connection.transaction():
        run = run_to_resume(connection, request)
        if request.restart:
            cancel_unfinished(connection, webhook.id)
        resumed = run is not None
        if run is None:
            with connection.cursor(row_factory=dict_row) as cursor:
                row = cursor.execute(
                    named["start_run"],
                    {"webhook_id": webhook.id, "kinds": list(request.kinds)},
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


def cancel_unfinished(connection: Connection, webhook_id: str) -> None:
    run = unfinished_run(connection, webhook_id)
    if run is None:
        return
    connection.execute(queries.load("backfill")["cancel_run"], {"run_id": run.id})
    logger.info(
        "Backfill cancelled for a restart.",
        extra={"action": "backfill_cancel", "backfill_id": run.id},
    )


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


def list_runs(connection: Connection, webhook_id: str | None) -> list[Run]:
    with connection.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(
            queries.load("backfill")["list_runs"], {"webhook_id": webhook_id}
        ).fetchall()
    return [Run.from_row(row) for row in rows]
