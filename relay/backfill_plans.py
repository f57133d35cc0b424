"""What a backfill covers: the creation events, the webhook's scope, the records
left to write, and the runs recorded in relay.backfills.

Nothing here writes: relay/backfill.py starts and runs a backfill from these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from relay import queries
from relay.errors import ConfigError

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


@dataclass(frozen=True)
class Webhook:
    id: str
    # Its events filter (empty: every event).
    events: tuple[str, ...]
    # The projects of its scope: the creator's, narrowed by its project filter.
    scope_project_ids: tuple[str, ...]
    # What was created after this reached it as live events.
    created_at: datetime


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
    _, enabled, events, creator_id, created_at = row
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
        id=webhook_id,
        events=tuple(events),
        scope_project_ids=tuple(scope[0]),
        created_at=created_at,
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
    """Records per kind still to write from (phase, cursor), created by cutoff
    (by now, when None)."""
    query = queries.load("backfill")["count_records"]
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
    # True: a new run although one already wrote every record.
    again: bool = False
    # True: every record that exists now, also those created since the webhook
    # (which it received live, unless capture was off). False: those created by
    # the webhook's creation, so that none arrives twice.
    up_to_now: bool = False

    @property
    def cutoff(self) -> datetime | None:
        """Records created by when; None for now."""
        return None if self.up_to_now else self.webhook.created_at


def run_to_resume(connection: Connection, request: Request) -> Run | None:
    """The webhook's unfinished run that a start would resume, if any."""
    if request.restart:
        return None
    run = unfinished_run(connection, request.webhook.id)
    if run is None and not request.again:
        refuse_a_second_run(connection, request.webhook.id)
    if run is not None and request.narrowed and request.kinds != run.kinds:
        raise ConfigError(
            f"backfill {run.label} of {run.webhook_id} covers "
            + ", ".join(run.kinds)
            + "; leave out --event to resume it, or add --restart"
        )
    return run


def refuse_a_second_run(connection: Connection, webhook_id: str) -> None:
    """A ConfigError when a run of this webhook already wrote every record:
    starting again would send each of them once more."""
    with connection.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute(
            queries.load("backfill")["find_finished_run"], {"webhook_id": webhook_id}
        ).fetchone()
    if row is not None:
        done = Run.from_row(row)
        assert done.finished_at is not None
        finished = done.finished_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise ConfigError(
            f"{webhook_id} was backfilled by {done.label} ({done.events_written:,}"
            f" records, done {finished}); add --again to send every record once more"
        )


def plan(connection: Connection, request: Request) -> tuple[Run | None, dict[str, int]]:
    """What a start would do, changing nothing: the run it resumes, if any, and
    the records per kind it would write."""
    run = run_to_resume(connection, request)
    if run is None:
        return None, remaining(
            connection, request.webhook, request.kinds, cutoff=request.cutoff
        )
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


def list_runs(connection: Connection, webhook_id: str | None) -> list[Run]:
    with connection.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(
            queries.load("backfill")["list_runs"], {"webhook_id": webhook_id}
        ).fetchall()
    return [Run.from_row(row) for row in rows]
