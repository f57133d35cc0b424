"""Write overhead: what capture costs the application's own writing transactions.

Four pgbench clients insert one todo per transaction, in three databases cloned
from one template: (a) no capture (relay's triggers on ``todos`` disabled), (b)
the floor, a bare statement trigger that only inserts the outbox row (no context
look-up, no doorbell), and (c) relay's capture as installed, doorbell included.
A relay with no webhook runs beside each, as it would in production: it fans the
events out, so it is busy in (b) and (c) and idle in (a). The three take turns
in short rounds, so that a change in the machine's load touches all of them. A
fourth configuration, relay's capture with the doorbell trigger disabled, tells
what the capture costs apart from the wake-up.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from psycopg import sql

from bench.harness import LIST, USER, Server, pgbench, relay_process
from bench.report import Row

CLIENTS = 4

WRITE_SCRIPT = (
    "INSERT INTO todos (todo_list_id, title, created_by_id)"
    f" VALUES ('{LIST}', 'Written by pgbench', '{USER}');\n"
)

BARE_TRIGGER_SQL = """
CREATE FUNCTION public.bench_bare_outbox() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO relay.events (event, entity, entity_id, current_value)
    SELECT 'TODO_CREATED', 'todo', n.id, to_jsonb(n) FROM new_rows n;
    RETURN NULL;
END;
$$;
CREATE TRIGGER bench_bare_outbox_trigger AFTER INSERT ON public.todos
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.bench_bare_outbox();
"""


def disable_triggers(db: psycopg.Connection[Any], table: str, like: str) -> None:
    names = db.execute(
        "SELECT tgname FROM pg_trigger"
        " WHERE tgrelid = %s::regclass AND NOT tgisinternal AND tgname LIKE %s",
        (table, like),
    ).fetchall()
    schema, name = table.split(".")
    for (trigger,) in names:
        db.execute(
            sql.SQL("ALTER TABLE {}.{} DISABLE TRIGGER {}").format(
                sql.Identifier(schema), sql.Identifier(name), sql.Identifier(trigger)
            )
        )


def prepare(dsn: str, config: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as db:
        if config in ("none", "bare"):
            disable_triggers(db, "public.todos", "relay_%")
        if config in ("bare", "quiet"):
            disable_triggers(db, "relay.events", "relay_%")
        if config == "bare":
            db.execute(BARE_TRIGGER_SQL)


async def run(server: Server, seconds: float, rounds: int) -> list[Row]:
    configs = ("none", "bare", "quiet", "relay")
    rates: dict[str, list[float]] = {config: [] for config in configs}
    with (
        server.database("writes_none") as none_dsn,
        server.database("writes_bare") as bare_dsn,
        server.database("writes_quiet") as quiet_dsn,
        server.database("writes_relay") as relay_dsn,
    ):
        dsns = {
            "none": none_dsn,
            "bare": bare_dsn,
            "quiet": quiet_dsn,
            "relay": relay_dsn,
        }
        for config in configs:
            prepare(dsns[config], config)
        for _ in range(rounds):
            for config in configs:
                async with relay_process(dsns[config]):
                    tps = await asyncio.to_thread(
                        pgbench,
                        dsns[config],
                        WRITE_SCRIPT,
                        clients=CLIENTS,
                        seconds=seconds / rounds,
                    )
                rates[config].append(tps)

    mean = {config: sum(values) / len(values) for config, values in rates.items()}
    details = {"tps_per_round": rates, "clients": CLIENTS, "seconds": seconds}
    return [
        Row(
            figure="write overhead",
            measured="capture, tx/s",
            value=mean["relay"],
            baseline_name="(a) no capture",
            baseline=mean["none"],
            ratio=mean["relay"] / mean["none"],
            target=">= 0.75",
            met=mean["relay"] / mean["none"] >= 0.75,
            details=details,
        ),
        Row(
            figure="write overhead",
            measured="capture, tx/s",
            value=mean["relay"],
            baseline_name="(b) bare outbox trigger",
            baseline=mean["bare"],
            ratio=mean["relay"] / mean["bare"],
            target=">= 0.95",
            met=mean["relay"] / mean["bare"] >= 0.95,
            details=details,
        ),
        # Where the difference goes: the floor itself against (a), and relay's
        # capture with its doorbell silenced (the relay then polls once a second).
        Row(
            figure="write overhead",
            measured="(b) bare outbox trigger, tx/s",
            value=mean["bare"],
            baseline_name="(a) no capture",
            baseline=mean["none"],
            ratio=mean["bare"] / mean["none"],
            target="report",
            met=None,
        ),
        Row(
            figure="write overhead",
            measured="capture, doorbell off, tx/s",
            value=mean["quiet"],
            baseline_name="(b) bare outbox trigger",
            baseline=mean["bare"],
            ratio=mean["quiet"] / mean["bare"],
            target="report",
            met=None,
        ),
    ]
