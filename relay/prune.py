"""Retention: delete delivered events and old attempts, in short batches.

Used by ``relay prune`` and by the relay's schedule (``relay/retention.py``), both
through psycopg, so that the SQL in ``sql/queries/prune.sql`` exists once.

What goes, once past the retention: events fanned out whose deliveries are all
delivered (or failed too, when asked), with their deliveries and attempts; and
attempts of the deliveries that stay, except the latest of each. What stays:
events not fanned out, events with a pending delivery, and delete events from
the oldest event that may still be sent on.

Why those delete events stay: a payload is built at each attempt, and the
context of an entity whose parent was deleted comes from the parent's delete
event (``relay.deleted_row_v2``). Were it pruned, a retry or a replay of an
older event would show that parent as null.

Why batches walk id ranges: the outbox has no index on its age, and one would
cost every captured write. Ids and ages grow together, so the oldest id at or
past the cutoff is found by bisecting the primary key (a few dozen lookups),
and each batch reads the next ids below it. Each batch is its own transaction;
events the relay holds are skipped, and the deliveries of an event are locked
before they are judged, so a replay either waits for the batch or keeps it.
"""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from relay import db, queries
from relay.errors import ConfigError, RelayError

# A shorter retention is more likely a slip (a bare 30 is seconds) than a wish.
MIN_RETENTION_SECONDS = 3600.0
MAX_RETENTION_SECONDS = 36500 * 86400.0
DEFAULT_BATCH_SIZE = 1000
# No batch waits longer than this for a row lock (a delivery being recorded).
LOCK_TIMEOUT = "5s"
# Ids beyond every event: nothing waits to be sent.
NO_EVENT_ID = 2**63 - 1


def check_retention(seconds: float, flag: str) -> float:
    """The retention itself, or a ConfigError saying the range allowed."""
    if not MIN_RETENTION_SECONDS <= seconds <= MAX_RETENTION_SECONDS:
        raise ConfigError(
            f"{flag} must be from 1h to 36500d, not {seconds:.15g} seconds"
        )
    return seconds


@dataclass(frozen=True)
class PrunePolicy:
    """What a prune removes and how much at a time."""

    older_than: float
    batch_size: int = DEFAULT_BATCH_SIZE
    # Also delete events whose deliveries failed for good: they are given up.
    include_failed: bool = False
    # Run every batch and roll it back: the counts of what would go.
    dry_run: bool = False


@dataclass
class Counts:
    """Rows deleted (or, in a dry run, that would be)."""

    events: int = 0
    deliveries: int = 0
    attempts: int = 0

    def add(self, other: Counts) -> None:
        self.events += other.events
        self.deliveries += other.deliveries
        self.attempts += other.attempts


@dataclass(frozen=True)
class Batch:
    """One batch done: how many ids it covered and what it deleted."""

    ids: int
    deleted: Counts


@dataclass(frozen=True)
class Span:
    """The ids a phase reads: after ``after``, up to ``through``."""

    after: int
    through: int

    @property
    def size(self) -> int:
        return max(self.through - self.after, 0)


class PruneBusy(RelayError):
    """Another prune holds this database."""


@contextlib.contextmanager
def connect(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection holding the prune lock, or PruneBusy when another has it."""
    with db.connect(dsn, autocommit=True, row_factory=dict_row) as connection:
        named = queries.load("prune")
        connection.execute(named["limit_lock_waits"], {"timeout": LOCK_TIMEOUT})
        taken = connection.execute(named["take_prune_lock"]).fetchone()
        if not (taken and taken["taken"]):
            raise PruneBusy(
                "another prune is running on this database; try again when it ends"
            )
        yield connection


class Pruner:
    """One prune over one connection: its spans of ids, then its two phases.

    Old attempts are trimmed first, then events go: a dry run rolls the trim
    back, and delete_events counts only the attempts the trim left, so a dry run
    and a real one report the same numbers.
    """

    def __init__(
        self,
        connection: psycopg.Connection[Any],
        policy: PrunePolicy,
        now: datetime | None = None,
    ) -> None:
        self.connection = connection
        self.policy = policy
        self.cutoff = (now or datetime.now(UTC)) - timedelta(seconds=policy.older_than)
        self._queries = queries.load("prune")
        self.attempts = self._span("attempt")
        self.events = self._span("event")

    def _one(self, name: str, **parameters: Any) -> dict[str, Any]:
        row = self.connection.execute(self._queries[name], parameters).fetchone()
        assert row is not None, f"{name} returns one row"
        result: dict[str, Any] = row
        return result

    def _span(self, kind: str) -> Span:
        """The ids of events or attempts (``kind``) written before the cutoff."""
        ends = self._one(f"{kind}_id_range")
        if ends["low"] is None:
            return Span(0, 0)
        ids = range(ends["low"], ends["high"] + 1)

        def is_young(row_id: int) -> bool:
            row = self.connection.execute(
                self._queries[f"{kind}_time_at"], {"id": row_id}
            ).fetchone()
            return row is None or row["written_at"] >= self.cutoff

        first_young = bisect.bisect_left(ids, True, key=is_young)
        return Span(ends["low"] - 1, ends["low"] - 1 + first_young)

    def attempt_batches(self) -> Iterator[Batch]:
        """Delete old attempts but the latest of each delivery, batch by batch."""
        after = self.attempts.after
        while after < self.attempts.through:
            last_id = self._batch_end("attempt_batch_end", after, self.attempts)
            with self._batch():
                trimmed = self._one(
                    "trim_attempts", after=after, last_id=last_id, cutoff=self.cutoff
                )
            yield Batch(last_id - after, Counts(attempts=trimmed["attempts"]))
            after = last_id

    def event_batches(self) -> Iterator[Batch]:
        """Delete prunable events, with their deliveries and attempts, by batch."""
        waiting = self._one(
            "oldest_waiting_event",
            through=self.events.through,
            include_failed=self.policy.include_failed,
        )["event_id"]
        after = self.events.after
        while after < self.events.through:
            last_id = self._batch_end("event_batch_end", after, self.events)
            with self._batch():
                locked = self._one(
                    "lock_prunable_events",
                    after=after,
                    last_id=last_id,
                    cutoff=self.cutoff,
                    waiting_event_id=NO_EVENT_ID if waiting is None else waiting,
                )
                deleted = self._one(
                    "delete_events",
                    event_ids=locked["event_ids"],
                    include_failed=self.policy.include_failed,
                    trimmed_through=self.attempts.through,
                    cutoff=self.cutoff,
                )
            yield Batch(last_id - after, Counts(**deleted))
            after = last_id

    def _batch_end(self, name: str, after: int, span: Span) -> int:
        row = self._one(
            name, after=after, through=span.through, batch_size=self.policy.batch_size
        )
        return span.through if row["last_id"] is None else int(row["last_id"])

    @contextlib.contextmanager
    def _batch(self) -> Iterator[None]:
        """One short transaction; rolled back in a dry run."""
        with self.connection.transaction():
            yield
            if self.policy.dry_run:
                raise psycopg.Rollback()


def prune(
    dsn: str, policy: PrunePolicy, should_stop: Callable[[], bool] = lambda: False
) -> Counts:
    """Run a whole prune; between batches, end early when ``should_stop()``."""
    total = Counts()
    with connect(dsn) as connection:
        pruner = Pruner(connection, policy)
        for batches in (pruner.attempt_batches(), pruner.event_batches()):
            for batch in batches:
                total.add(batch.deleted)
                if should_stop():
                    return total
    return total
