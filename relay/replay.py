"""Sending again what was delivered or failed: choosing deliveries and replaying them.

A replay makes a delivery pending again, due at once, and counts it in
``replays``; ``retry_base`` takes its attempts so far, so the retry schedule
starts afresh and ``X-Relay-Attempt`` goes on counting. Requests of a replayed
delivery carry the same ``webhook-id`` and ``X-Relay-Replay: <replays>``.

Why the ids are chosen first: the choice must not move while it is carried
out, so one query takes the ids, in order, and short transactions of a few
hundred then update them by id. Each update checks the state again, so a
delivery that became pending meanwhile (replayed by someone else, say) is
skipped rather than replayed twice. Each transaction rings the doorbell, so a
running relay sends the first batch while the next is written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from relay import events, queries, webhooks
from relay.claims import DeliveryId, EventId, WebhookId
from relay.errors import ConfigError

Connection = psycopg.Connection[Any]

# Deliveries updated per transaction: short enough to hold few row locks briefly.
BATCH_SIZE = 500
REPLAYABLE_STATES = ("delivered", "failed")


@dataclass(frozen=True)
class Criteria:
    """What the operator chose: deliveries, one event, or a webhook's window.

    Empty or None narrows nothing; no ``states`` means both replayable states.
    """

    delivery_ids: tuple[DeliveryId, ...] = ()
    event_id: EventId | None = None
    webhook_id: WebhookId | None = None
    since: datetime | None = None
    until: datetime | None = None
    event_names: tuple[str, ...] = ()
    states: tuple[str, ...] = ()

    @property
    def replayable_states(self) -> list[str]:
        return list(dict.fromkeys(self.states or REPLAYABLE_STATES))

    def check(self) -> None:
        """A ConfigError when the options do not make one clear choice."""
        narrowing = self.since or self.until or self.event_names
        if self.delivery_ids:
            if self.event_id is not None or self.webhook_id or narrowing or self.states:
                raise ConfigError(
                    "--delivery names deliveries exactly: leave out --event,"
                    " --webhook, --since, --until, --event-name and --state"
                )
        elif self.event_id is not None:
            if narrowing:
                raise ConfigError(
                    "--event replays one event: --since, --until and --event-name"
                    " narrow a --webhook's deliveries instead"
                )
        elif not self.webhook_id:
            if narrowing or self.states:
                raise ConfigError(
                    "--since, --until, --event-name and --state narrow a webhook's"
                    " deliveries: add --webhook ID"
                )
            raise ConfigError(
                "nothing chosen: replay --delivery ID, --event ID or --webhook ID"
            )

        if self.since and self.until and self.since >= self.until:
            raise ConfigError("--since must be earlier than --until")
        events.check_sent_events(self.event_names)
        for state in self.states:
            if state not in REPLAYABLE_STATES:
                raise ConfigError(
                    f"cannot replay state {state!r}; choose delivered or failed"
                )


@dataclass(frozen=True)
class Chosen:
    """One delivery the criteria met; a pending one is skipped."""

    delivery_id: DeliveryId
    event_id: EventId
    event: str
    webhook_id: WebhookId
    webhook_enabled: bool
    state: str
    # When the event happened: what --since and --until compare.
    event_created_at: datetime

    @property
    def pending(self) -> bool:
        return self.state == "pending"


@dataclass(frozen=True)
class Replayed:
    """What a replay did: the deliveries made pending and those left alone."""

    replayed_ids: list[DeliveryId]
    skipped_ids: list[DeliveryId]
    # Pending deliveries whose next retry was brought forward to now.
    retried_ids: list[DeliveryId]


def choose(connection: Connection, criteria: Criteria) -> list[Chosen]:
    """The deliveries ``criteria`` meet, by id; a ConfigError for an unknown id."""
    criteria.check()
    named = queries.load("replay")
    check_known(connection, criteria)

    rows = connection.execute(
        named["select_deliveries"],
        {
            "delivery_ids": list(criteria.delivery_ids) or None,
            "event_id": criteria.event_id,
            "webhook_id": criteria.webhook_id,
            "since": criteria.since,
            "until": criteria.until,
            "event_names": list(criteria.event_names),
            "states": criteria.replayable_states,
        },
    ).fetchall()
    return [Chosen(*row) for row in rows]


def check_known(connection: Connection, criteria: Criteria) -> None:
    named = queries.load("replay")
    if criteria.delivery_ids:
        wanted = sorted(set(criteria.delivery_ids))
        row = connection.execute(named["known_deliveries"], {"ids": wanted}).fetchone()
        known = set(row[0]) if row else set()
        unknown = [str(number) for number in wanted if number not in known]
        if unknown:
            raise ConfigError(
                f"unknown delivery {', '.join(unknown)}; a request's"
                " X-Relay-Delivery header names its delivery"
            )
    if criteria.event_id is not None:
        row = connection.execute(
            named["event_exists"], {"event_id": criteria.event_id}
        ).fetchone()
        if not (row and row[0]):
            raise ConfigError(
                f"unknown event {criteria.event_id}; a request's webhook-id header"
                " names its event (evt_<id>)"
            )
    if criteria.webhook_id:
        webhooks.check_exist(connection, [criteria.webhook_id])


def replay(
    connection: Connection,
    chosen: Sequence[Chosen],
    states: Sequence[str] = REPLAYABLE_STATES,
    *,
    on_batch: Callable[[int], None] | None = None,
    batch_size: int = BATCH_SIZE,
    retry_pending: bool = False,
) -> Replayed:
    """Make the chosen deliveries in ``states`` pending again, batch by batch.

    With ``retry_pending``, the chosen pending deliveries that wait for a retry
    become due now instead of being skipped. ``connection`` must be in
    autocommit: each batch is a transaction of its own. ``on_batch`` hears how
    many deliveries each batch covered.
    """
    named = queries.load("replay")
    to_replay = [item.delivery_id for item in chosen if not item.pending]
    replayed = update_in_batches(
        connection,
        named["replay_deliveries"],
        to_replay,
        {"states": list(states)},
        on_batch,
        batch_size,
    )
    retried: list[DeliveryId] = []
    if retry_pending:
        waiting = [item.delivery_id for item in chosen if item.pending]
        retried = update_in_batches(
            connection, named["retry_pending_now"], waiting, {}, on_batch, batch_size
        )

    done = set(replayed) | set(retried)
    skipped = [item.delivery_id for item in chosen if item.delivery_id not in done]
    return Replayed(
        replayed_ids=sorted(replayed), skipped_ids=skipped, retried_ids=sorted(retried)
    )


def update_in_batches(
    connection: Connection,
    statement: str,
    ids: Sequence[DeliveryId],
    parameters: dict[str, Any],
    on_batch: Callable[[int], None] | None,
    batch_size: int,
) -> list[DeliveryId]:
    """Run ``statement`` over ``ids``, a transaction per batch that also rings
    the doorbell; return the ids it changed."""
    changed: list[DeliveryId] = []
    for start in range(0, len(ids), batch_size):
        batch = list(ids[start : start + batch_size])
        with connection.transaction():
            rows = connection.execute(
                statement, {"ids": batch, **parameters}
            ).fetchall()
            connection.execute(queries.load("replay")["ring_doorbell"])
        changed.extend(DeliveryId(row[0]) for row in rows)
        if on_batch is not None:
            on_batch(len(batch))
    return changed
