"""relay backfill: existing records sent as creation events, resumable, paced.

The CLI runs as a real process (asyncio, so that a test can interrupt it while
a relay runs in this process and delivers to a real receiver).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import psycopg
import pytest

from relay import backfill_plans, webhooks
from relay.errors import ConfigError
from relay.receiver import ReceivedRequest, Receiver
from tests.support import (
    NEW_ITEM,
    add_webhook,
    bulk_todos,
    change,
    eventually,
    relay_command,
    relay_environment,
    running_relay,
    seed_world,
)

# Beside the seeded world: a checklist item, a todo in Sales, a list in Globex.
MORE_RECORDS = (
    NEW_ITEM + " INSERT INTO todos (id, todo_list_id, title)"
    " VALUES ('tdo_deal', 'lst_pipeline', 'Close the deal');"
    " INSERT INTO todo_lists (id, project_id, title)"
    " VALUES ('lst_globex', 'prj_globex', 'Globex plans');"
)


async def start_backfill(dsn: str, *arguments: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "backfill",
        *arguments,
        env=relay_environment(dsn),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


async def run_backfill(
    dsn: str, *arguments: str, timeout: float = 60
) -> tuple[int, str, str]:
    """Run ``relay backfill`` to its end: exit status, stdout, stderr."""
    process = await start_backfill(dsn, *arguments)
    async with asyncio.timeout(timeout):
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def runs(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT id, state, phase, events_written, total"
        " FROM relay.backfills ORDER BY id"
    ).fetchall()


def written_so_far(db: psycopg.Connection[Any]) -> int:
    row = db.execute("SELECT coalesce(max(events_written), 0) FROM relay.backfills")
    return int(row.fetchone()[0])  # type: ignore[index]


def settled(db: psycopg.Connection[Any]) -> bool:
    """Every event fanned out and every delivery made: nothing is on its way."""
    row = db.execute(
        "SELECT (SELECT count(*) FROM relay.events WHERE fanned_out_at IS NULL)"
        " + (SELECT count(*) FROM relay.deliveries WHERE state <> 'delivered')"
    ).fetchone()
    return row == (0,)


def received(requests: list[ReceivedRequest]) -> set[tuple[str, str]]:
    return {(r.event, r.payload["currentValue"]["id"]) for r in requests}


def test_the_kinds_follow_the_webhook_and_the_operator() -> None:
    every = backfill_plans.CREATION_KINDS

    assert backfill_plans.choose_kinds([], []) == every
    assert backfill_plans.choose_kinds(["TODO_CREATED", "TODO_DELETED"], []) == (
        "TODO_CREATED",
    )
    # Parents first, whatever order the names were given in.
    assert backfill_plans.choose_kinds(
        [], ["COMMENT_CREATED", "TODO_LIST_CREATED"]
    ) == (
        "TODO_LIST_CREATED",
        "COMMENT_CREATED",
    )
    for subscribed, asked, reason in [
        ([], ["TODO_DELETED"], "cannot backfill 'TODO_DELETED'"),
        ([], ["NOPE"], "cannot backfill 'NOPE'"),
        (["TODO_CREATED"], ["TAG_CREATED"], "does not receive TAG_CREATED"),
        (["TODO_DELETED"], [], "receives no creation event"),
    ]:
        with pytest.raises(ConfigError, match=reason):
            backfill_plans.choose_kinds(subscribed, asked)


async def test_a_backfilled_creation_is_byte_for_byte_the_live_one(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    webhook_id, _ = add_webhook(db, receiver, "/hook", events=["TODO_CREATED"])

    async with running_relay(dsn):
        change(
            db,
            "INSERT INTO todos (id, todo_list_id, title, html, position)"
            " VALUES ('tdo_live', 'lst_inbox', 'Ship it', '<p>x</p>', 1.25)",
        )
        [live] = await receiver.wait_for(1, path="/hook")
        # By now: tdo_live too, although it arrived live (as after capture was off).
        status, stdout, _ = await run_backfill(
            dsn, "--webhook", webhook_id, "--cutoff", "now", "--json"
        )
        requests = await receiver.wait_for(4, path="/hook")

    assert status == 0
    summary = json.loads(stdout)
    assert (summary["state"], summary["eventsWritten"]) == ("done", 3)
    backfilled = [
        r for r in requests[1:] if r.payload["currentValue"]["id"] == "tdo_live"
    ]
    assert len(backfilled) == 1
    assert backfilled[0].body == live.body
    assert backfilled[0].headers["X-Relay-Backfill"] == summary["id"]
    assert "X-Relay-Backfill" not in live.headers
    assert backfilled[0].headers["webhook-id"] != live.headers["webhook-id"]
    assert received(requests[1:]) == {
        ("TODO_CREATED", "tdo_base"),
        ("TODO_CREATED", "tdo_bare"),
        ("TODO_CREATED", "tdo_live"),
    }
    bodies = db.execute(
        "SELECT DISTINCT a.body FROM relay.attempts a"
        " JOIN relay.deliveries d ON d.id = a.delivery_id"
        " JOIN relay.events e ON e.id = d.event_id WHERE e.entity_id = 'tdo_live'"
    ).fetchall()
    assert bodies == [(live.body.decode(),)]


async def test_scope_and_filters_decide_what_each_webhook_gets(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    change(db, MORE_RECORDS)
    db.execute("DELETE FROM relay.events")
    every, _ = add_webhook(db, receiver, "/every")
    ops, _ = add_webhook(db, receiver, "/ops", project_ids=["prj_ops"])
    carol, _ = add_webhook(db, receiver, "/carol", created_by="usr_carol")
    some, _ = add_webhook(
        db, receiver, "/some", events=["TODO_CREATED", "COMMENT_CREATED"]
    )
    urgent, _ = add_webhook(db, receiver, "/urgent")
    webhooks.update(db, urgent, webhooks.WebhookChanges(tag_ids=["tag_urgent"]))
    lists = {
        ("TODO_LIST_CREATED", "lst_inbox"),
        ("TODO_LIST_CREATED", "lst_later"),
    }
    project_level = {
        ("TAG_CREATED", "tag_urgent"),
        ("CUSTOM_FIELD_CREATED", "cfd_budget"),
    }
    under_base = {
        ("TODO_CREATED", "tdo_base"),
        ("COMMENT_CREATED", "cmt_base"),
        ("TODO_CHECKLIST_CREATED", "chk_base"),
        ("TODO_CHECKLIST_ITEM_CREATED", "cki_base"),
    }
    sales = {("TODO_LIST_CREATED", "lst_pipeline"), ("TODO_CREATED", "tdo_deal")}
    bare = {("TODO_CREATED", "tdo_bare")}
    expected = {
        "/every": lists | project_level | under_base | sales | bare,
        "/ops": lists | project_level | under_base | bare,
        "/carol": sales,
        "/some": {
            ("TODO_CREATED", "tdo_base"),
            ("TODO_CREATED", "tdo_bare"),
            ("TODO_CREATED", "tdo_deal"),
            ("COMMENT_CREATED", "cmt_base"),
        },
        # Tags narrow records only; lists, tags and fields concern none.
        "/urgent": lists
        | {("TODO_LIST_CREATED", "lst_pipeline")}
        | project_level
        | under_base,
    }

    async with running_relay(dsn):
        outcomes = {}
        for path, webhook_id in [
            ("/every", every),
            ("/ops", ops),
            ("/carol", carol),
            ("/some", some),
            ("/urgent", urgent),
        ]:
            status, stdout, stderr = await run_backfill(
                dsn, "--webhook", webhook_id, "--json"
            )
            assert status == 0, stderr
            outcomes[path] = json.loads(stdout)["eventsWritten"]
        for path, wanted in expected.items():
            await receiver.wait_for(len(wanted), path=path)
        await eventually(lambda: settled(db))

    for path, wanted in expected.items():
        requests = receiver.on(path)
        assert all("X-Relay-Backfill" in r.headers for r in requests), path
        assert received(requests) == wanted, path
        assert len(requests) == len(wanted), path
    # Written is what the scope lets through; the tag filter is fan-out's to apply.
    assert outcomes == {"/every": 11, "/ops": 9, "/carol": 2, "/some": 4, "/urgent": 11}
    # Parents first: each kind's first event follows the previous kind's.
    first_ids = db.execute(
        "SELECT event, min(id) FROM relay.events WHERE for_webhook_id = %s"
        " GROUP BY event ORDER BY 2",
        (every,),
    ).fetchall()
    assert [event for event, _ in first_ids] == list(backfill_plans.CREATION_KINDS)


async def test_by_default_what_the_webhook_received_live_is_left_out(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    webhook_id, _ = add_webhook(db, receiver, "/hook", events=["TODO_CREATED"])
    change(
        db,
        "INSERT INTO todos (id, todo_list_id, title)"
        " VALUES ('tdo_after', 'lst_inbox', 'x')",
    )

    plans = [
        await run_backfill(dsn, "--webhook", webhook_id, "--dry-run", "--json", *extra)
        for extra in ([], ["--cutoff", "now"])
    ]

    counts = [json.loads(stdout)["kinds"] for _, stdout, _ in plans]
    assert counts == [
        [{"event": "TODO_CREATED", "records": 2}],  # tdo_base, tdo_bare
        [{"event": "TODO_CREATED", "records": 3}],  # and tdo_after
    ]
    async with running_relay(dsn):
        status, stdout, _ = await run_backfill(dsn, "--webhook", webhook_id, "--json")
        requests = await receiver.wait_for(3, path="/hook")
    assert (status, json.loads(stdout)["eventsWritten"]) == (0, 2)
    assert sorted(
        (r.payload["currentValue"]["id"], "X-Relay-Backfill" in r.headers)
        for r in requests
    ) == [("tdo_after", False), ("tdo_bare", True), ("tdo_base", True)]


async def test_a_dry_run_counts_and_changes_nothing(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    webhook_id, _ = add_webhook(db, receiver, "/hook", project_ids=["prj_ops"])

    status, stdout, _ = await run_backfill(
        dsn, "--webhook", webhook_id, "--dry-run", "--json"
    )
    table = await run_backfill(dsn, "--webhook", webhook_id, "--dry-run")

    assert status == 0
    assert json.loads(stdout) == {
        "webhookId": webhook_id,
        "resumes": None,
        "kinds": [
            {"event": "TODO_LIST_CREATED", "records": 2},
            {"event": "TAG_CREATED", "records": 1},
            {"event": "CUSTOM_FIELD_CREATED", "records": 1},
            {"event": "TODO_CREATED", "records": 2},
            {"event": "COMMENT_CREATED", "records": 1},
            {"event": "TODO_CHECKLIST_CREATED", "records": 1},
            {"event": "TODO_CHECKLIST_ITEM_CREATED", "records": 0},
        ],
        "total": 8,
    }
    assert table[0] == 0
    assert table[1].splitlines()[0].split() == ["EVENT", "RECORDS"]
    assert table[1].splitlines()[-1].split() == ["total", "8"]
    assert runs(db) == []
    assert db.execute("SELECT count(*) FROM relay.events").fetchone() == (0,)


def test_bad_input_is_one_line_and_status_2(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    created, _ = webhooks.create(
        db,
        webhooks.NewWebhook(
            name="only todos",
            url="http://127.0.0.1:9/x",
            created_by_id="usr_alice",
            events=["TODO_CREATED"],
        ),
    )
    webhook_id = created["id"]
    cases = [
        (["--webhook", "wh_nope"], "relay: error: unknown webhook 'wh_nope'"),
        (
            ["--webhook", webhook_id, "--event", "TODO_DELETED"],
            "relay: error: cannot backfill 'TODO_DELETED': choose creation events",
        ),
        (
            ["--webhook", webhook_id, "--event", "TAG_CREATED"],
            "relay: error: the webhook does not receive TAG_CREATED;"
            " it subscribes to TODO_CREATED",
        ),
    ]

    for arguments, message in cases:
        result = relay_command("backfill", *arguments, dsn=dsn)
        assert result.returncode == 2, arguments
        assert result.stderr.startswith(message), result.stderr
        assert len(result.stderr.splitlines()) == 1
    webhooks.set_enabled(db, webhook_id, False)
    disabled = relay_command("backfill", "--webhook", webhook_id, dsn=dsn)
    assert disabled.returncode == 2
    assert disabled.stderr == (
        f"relay: error: webhook {webhook_id} is disabled: enable it first"
        f" (relay webhooks enable {webhook_id})\n"
    )
    for usage in (
        ["--chunk-size", "0", "--webhook", webhook_id],
        [],
        ["--status", "--restart"],
    ):
        result = relay_command("backfill", *usage, dsn=dsn)
        assert result.returncode == 2, usage
        [line] = result.stderr.splitlines()
        assert line.startswith("relay: error: ")
        assert line.endswith("(see 'relay backfill --help')")
    assert runs(db) == []
    assert db.execute(
        "SELECT count(*) FROM relay.events WHERE backfill_id IS NOT NULL"
    ).fetchone() == (0,)


async def test_one_process_per_webhook_a_kill_stops_it_and_restart_replaces_it(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    webhook_id, _ = add_webhook(db, receiver, "/hook")

    # No relay yet: with one pending event allowed, it writes two and waits.
    waiting = await start_backfill(
        dsn, "--webhook", webhook_id, "--chunk-size", "1", "--max-pending", "1"
    )
    await eventually(lambda: written_so_far(db) == 2)
    second_process = await run_backfill(dsn, "--webhook", webhook_id)
    # A plain kill, as a deploy or systemd sends, stops it as Ctrl-C would.
    waiting.send_signal(signal.SIGTERM)
    async with asyncio.timeout(15):
        _, stderr = await waiting.communicate()
    [(first, *_)] = runs(db)
    status_json = relay_command("backfill", "--status", "--json", dsn=dsn)

    # One process per webhook: a second one gives up after a few seconds.
    assert second_process == (
        1,
        "",
        f"relay: error: another relay backfill of {webhook_id} is running;"
        " wait for it, or stop it and run this again\n",
    )
    assert waiting.returncode == 1
    assert stderr.decode().splitlines()[-1] == (
        f"relay: error: interrupted: backfill bf_{first} stopped at 2 of 9;"
        " run the same command to resume it"
    )
    [shown] = json.loads(status_json.stdout)
    assert {k: shown[k] for k in ("id", "state", "kind", "eventsWritten")} == {
        "id": f"bf_{first}",
        "state": "stopped",  # no process holds it
        "kind": "TODO_LIST_CREATED",
        "eventsWritten": 2,
    }

    async with running_relay(dsn):
        status, stdout, stderr_text = await run_backfill(
            dsn, "--webhook", webhook_id, "--restart", "--json"
        )
        requests = await receiver.wait_for(11, path="/hook")

    assert status == 0, stderr_text
    second = int(json.loads(stdout)["id"].removeprefix("bf_"))
    assert runs(db) == [(first, "cancelled", 0, 2, 9), (second, "done", 7, 9, 9)]
    marks = sorted(r.headers["X-Relay-Backfill"] for r in requests)
    assert marks == [f"bf_{first}"] * 2 + [f"bf_{second}"] * 9
    table = relay_command("backfill", "--status", dsn=dsn).stdout.splitlines()
    assert table[0].split()[:6] == [
        "ID",
        "WEBHOOK",
        "STATE",
        "WRITING",
        "WRITTEN",
        "TOTAL",
    ]
    assert [line.split()[2] for line in table[1:]] == ["cancelled", "done"]
    # Every record went out: the same command again would send them all twice.
    again = await run_backfill(dsn, "--webhook", webhook_id)
    assert again == (
        2,
        "",
        f"relay: error: {webhook_id} was backfilled by bf_{second} (9 records,"
        f" done {finished_at(db, second)}); add --again to send every record"
        " once more\n",
    )


def finished_at(db: psycopg.Connection[Any], run_id: int) -> str:
    row = db.execute(
        "SELECT finished_at FROM relay.backfills WHERE id = %s", (run_id,)
    ).fetchone()
    assert row is not None
    return str(row[0].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


async def test_cancel_gives_up_a_stopped_run_and_again_starts_another(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    webhook_id, _ = add_webhook(db, receiver, "/hook")
    # No relay: with one pending event allowed, it writes two and waits.
    stopped = await start_backfill(
        dsn, "--webhook", webhook_id, "--chunk-size", "1", "--max-pending", "1"
    )
    await eventually(lambda: written_so_far(db) == 2)
    stopped.kill()
    async with asyncio.timeout(15):
        await stopped.communicate()
    [(first, *_)] = runs(db)

    cancelled = await run_backfill(dsn, "--webhook", webhook_id, "--cancel", "--json")
    nothing_left = await run_backfill(dsn, "--webhook", webhook_id, "--cancel")
    fresh = await run_backfill(dsn, "--webhook", webhook_id, "--json")
    refused = await run_backfill(dsn, "--webhook", webhook_id, "--dry-run")
    again = await run_backfill(
        dsn, "--webhook", webhook_id, "--again", "--dry-run", "--json"
    )

    assert cancelled[0] == 0, cancelled[2]
    assert json.loads(cancelled[1])["state"] == "cancelled"
    assert cancelled[2] == f"Cancelled backfill bf_{first} of {webhook_id}.\n"
    assert nothing_left == (
        2,
        "",
        f"relay: error: {webhook_id} has no unfinished backfill to cancel\n",
    )
    assert fresh[0] == 0, fresh[2]
    second = int(json.loads(fresh[1])["id"].removeprefix("bf_"))
    assert runs(db) == [(first, "cancelled", 0, 2, 9), (second, "done", 7, 9, 9)]
    assert refused[0] == 2
    assert f"was backfilled by bf_{second}" in refused[2]
    assert again[0] == 0, again[2]
    assert json.loads(again[1])["total"] == 9


@contextlib.asynccontextmanager
async def live_writer(dsn: str, every: float) -> AsyncIterator[None]:
    """Commit one todo every ``every`` seconds until the block ends."""

    async def write() -> None:
        written = 0
        async with await psycopg.AsyncConnection.connect(
            dsn, autocommit=True
        ) as connection:
            while True:
                await connection.execute(
                    "INSERT INTO todos (id, todo_list_id, title)"
                    " VALUES (%s, 'lst_inbox', 'live')",
                    (f"tdo_live_{written:05d}",),
                )
                written += 1
                await asyncio.sleep(every)

    task = asyncio.create_task(write())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_an_interrupted_backfill_delivers_each_record_once_beside_live_events(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    change(db, "DELETE FROM todos")
    change(db, bulk_todos(20_000, "lst_later"))
    db.execute("DELETE FROM relay.events")
    webhook_id, _ = add_webhook(db, receiver, "/hook", events=["TODO_CREATED"])
    options = ["--webhook", webhook_id, "--chunk-size", "500"]

    async with running_relay(dsn, max_in_flight_per_webhook=64):
        first = await start_backfill(dsn, *options)
        # Live todos come after the run's cutoff: they are live events only.
        await eventually(lambda: runs(db), timeout=15)
        async with live_writer(dsn, every=0.05):
            await eventually(lambda: written_so_far(db) >= 10_000, timeout=40)
            first.kill()
            async with asyncio.timeout(15):
                await first.communicate()
            at_kill = written_so_far(db)
            status, _, stderr = await run_backfill(dsn, *options)
        # What committed, even a last insert whose task was cancelled meanwhile.
        live = [
            todo_id
            for (todo_id,) in db.execute(
                "SELECT id FROM todos WHERE id LIKE 'tdo_live_%' ORDER BY id"
            )
        ]
        await receiver.wait_for(20_000 + len(live), path="/hook", timeout=60)
        await asyncio.sleep(0.5)  # time for a duplicate, were there one

    assert first.returncode == -signal.SIGKILL
    assert 10_000 <= at_kill < 20_000
    assert status == 0, stderr
    [(run_id, *_)] = runs(db)
    assert (
        f"Resuming backfill bf_{run_id} of {webhook_id} at {at_kill:,} of 20,000."
        in stderr
    )
    assert runs(db) == [(run_id, "done", 1, 20_000, 20_000)]
    requests = receiver.on("/hook")
    marked = [r for r in requests if "X-Relay-Backfill" in r.headers]
    unmarked = [r for r in requests if "X-Relay-Backfill" not in r.headers]
    assert {r.headers["X-Relay-Backfill"] for r in marked} == {f"bf_{run_id}"}
    assert {r.event for r in requests} == {"TODO_CREATED"}
    backfilled_ids = sorted(r.payload["currentValue"]["id"] for r in marked)
    assert backfilled_ids == [f"tdo_bulk_{n:05d}" for n in range(1, 20_001)]
    live_ids = sorted(r.payload["currentValue"]["id"] for r in unmarked)
    assert live_ids == live
    assert len(live) >= 10
    # Pacing: live events went through while the backfill still had work.
    is_backfill = ["X-Relay-Backfill" in r.headers for r in requests]
    last_backfilled = max(i for i, marked in enumerate(is_backfill) if marked)
    assert is_backfill.index(False) < last_backfilled
