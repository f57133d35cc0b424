"""The relay's promises: nothing lost, nothing to the wrong webhook, nothing twice."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import psycopg

from relay.receiver import Receiver
from tests.support import (
    add_webhook,
    all_delivered,
    change,
    delivery_states,
    eventually,
    running_relay,
    seed_world,
)

NEW_TODO = (
    "INSERT INTO todos (id, todo_list_id, title) VALUES ('{id}', '{list}', '{id}')"
)


async def test_a_rolled_back_transaction_produces_no_event(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    add_webhook(db, receiver, "/hook")

    async with running_relay(dsn):
        with db.transaction(force_rollback=True):
            db.execute(NEW_TODO.format(id="tdo_rolled_back", list="lst_inbox"))
        change(db, NEW_TODO.format(id="tdo_committed", list="lst_inbox"))
        await receiver.wait_for(1, path="/hook")
        await eventually(lambda: all_delivered(db, expected=1))

    assert [request.payload["currentValue"]["id"] for request in receiver.requests] == [
        "tdo_committed"
    ]
    assert db.execute("SELECT entity_id FROM relay.events").fetchall() == [
        ("tdo_committed",)
    ]


async def test_events_committed_while_no_relay_ran_are_delivered_on_start(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    add_webhook(db, receiver, "/hook")
    for number in range(3):
        change(db, NEW_TODO.format(id=f"tdo_offline_{number}", list="lst_inbox"))

    async with running_relay(dsn, poll_interval=30.0):
        requests = await receiver.wait_for(3, path="/hook")
        await eventually(lambda: all_delivered(db, expected=3))

    assert sorted(request.payload["currentValue"]["id"] for request in requests) == [
        "tdo_offline_0",
        "tdo_offline_1",
        "tdo_offline_2",
    ]


async def test_only_webhooks_whose_filters_and_scope_match_receive_an_event(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    db.execute(
        "INSERT INTO projects (id, company_id, slug, name)"
        " VALUES ('prj_hidden', 'cmp_acme', 'hidden', 'Hidden')"
    )
    add_webhook(db, receiver, "/all")
    add_webhook(db, receiver, "/this-event", events=["TODO_CREATED"])
    add_webhook(db, receiver, "/this-project", project_ids=["prj_ops"])
    add_webhook(db, receiver, "/other-event", events=["COMMENT_CREATED"])
    add_webhook(db, receiver, "/other-project", project_ids=["prj_sales"])
    disabled, _ = add_webhook(db, receiver, "/disabled")
    db.execute("UPDATE relay.webhooks SET enabled = false WHERE id = %s", (disabled,))
    add_webhook(db, receiver, "/other-company", created_by="usr_bob")
    add_webhook(db, receiver, "/not-a-member", created_by="usr_carol")

    async with running_relay(dsn):
        change(db, NEW_TODO.format(id="tdo_scoped", list="lst_inbox"))
        await receiver.wait_for(3)
        await eventually(lambda: all_delivered(db, expected=3))

    assert sorted(request.path for request in receiver.requests) == [
        "/all",
        "/this-event",
        "/this-project",
    ]
    assert all(request.signature_verified for request in receiver.requests)


def delivered_todo_ids(receiver: Receiver, path: str) -> list[str]:
    return [request.payload["currentValue"]["id"] for request in receiver.on(path)]


def deliveries_of(db: psycopg.Connection[Any], entity_id: str) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT d.webhook_id FROM relay.deliveries d"
        " JOIN relay.events e ON e.id = d.event_id WHERE e.entity_id = %s",
        (entity_id,),
    ).fetchall()


async def test_membership_decides_scope_from_the_next_event_on(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    add_webhook(db, receiver, "/alice")
    in_ops = "project_id = 'prj_ops' AND user_id = 'usr_alice'"

    async with running_relay(dsn):
        change(db, NEW_TODO.format(id="tdo_member", list="lst_inbox"))
        await receiver.wait_for(1, path="/alice")
        change(db, f"DELETE FROM project_users WHERE {in_ops}")
        change(db, NEW_TODO.format(id="tdo_removed", list="lst_inbox"))
        # Alice is still in Sales: this later event is delivered, so the one
        # before it has been fanned out already.
        change(db, NEW_TODO.format(id="tdo_sales", list="lst_pipeline"))
        await receiver.wait_for(2, path="/alice")
        removed_deliveries = deliveries_of(db, "tdo_removed")
        change(
            db,
            "INSERT INTO project_users (project_id, user_id)"
            " VALUES ('prj_ops', 'usr_alice')",
        )
        change(db, NEW_TODO.format(id="tdo_added", list="lst_inbox"))
        await receiver.wait_for(3, path="/alice")

    assert removed_deliveries == []
    assert delivered_todo_ids(receiver, "/alice") == [
        "tdo_member",
        "tdo_sales",
        "tdo_added",
    ]


async def test_a_creator_moved_to_another_company_takes_the_scope_along(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    add_webhook(db, receiver, "/alice")

    async with running_relay(dsn):
        # Alice joins Globex and its project, keeping her Acme memberships rows.
        change(
            db,
            "UPDATE users SET company_id = 'cmp_globex' WHERE id = 'usr_alice';"
            " INSERT INTO project_users (project_id, user_id)"
            " VALUES ('prj_globex', 'usr_alice')",
        )
        change(db, NEW_TODO.format(id="tdo_acme", list="lst_inbox"))
        change(
            db,
            "INSERT INTO todo_lists (id, project_id, title)"
            " VALUES ('lst_globex', 'prj_globex', 'Globex plans')",
        )
        [request] = await receiver.wait_for(1, path="/alice")

    assert request.event == "TODO_LIST_CREATED"
    assert request.payload["currentValue"]["id"] == "lst_globex"
    assert deliveries_of(db, "tdo_acme") == []


async def test_two_relays_deliver_each_event_to_each_webhook_once(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    add_webhook(db, receiver, "/first")
    add_webhook(db, receiver, "/second")
    events = 150

    async with (
        running_relay(dsn, batch_size=10, max_in_flight=8, worker_id="relay-a"),
        running_relay(dsn, batch_size=10, max_in_flight=8, worker_id="relay-b"),
    ):
        for start in range(0, events, 10):
            values = ", ".join(
                f"('tdo_pair_{number}', 'lst_inbox', 'pair {number}')"
                for number in range(start, start + 10)
            )
            change(db, f"INSERT INTO todos (id, todo_list_id, title) VALUES {values}")
        await receiver.wait_for(2 * events, timeout=60)
        await eventually(lambda: all_delivered(db, expected=2 * events), timeout=30)

    received = collections.Counter(
        (request.path, request.headers["webhook-id"]) for request in receiver.requests
    )
    assert len(received) == 2 * events
    assert set(received.values()) == {1}
    attempts = db.execute(
        "SELECT count(*), count(DISTINCT delivery_id) FROM relay.attempts"
    ).fetchone()
    assert attempts == (2 * events, 2 * events)
    workers = db.execute(
        "SELECT count(DISTINCT claimed_by) FROM relay.deliveries"
    ).fetchone()
    assert workers == (0,)  # every claim was ended by its result


async def test_a_failed_delivery_is_retried_and_every_attempt_recorded(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    webhook_id, _ = add_webhook(db, receiver, "/flaky")
    receiver.answer("/flaky", 500)

    async with running_relay(dsn, retry_schedule=(0.3,)):
        change(db, NEW_TODO.format(id="tdo_retried", list="lst_inbox"))
        first, second = await receiver.wait_for(2, path="/flaky")
        await eventually(lambda: all_delivered(db, expected=1))

    assert (first.status_sent, second.status_sent) == (500, 200)
    assert first.body == second.body
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert (first.headers["X-Relay-Attempt"], second.headers["X-Relay-Attempt"]) == (
        "1",
        "2",
    )
    assert delivery_states(db) == [("TODO_CREATED", webhook_id, "delivered", 2)]
    attempts = db.execute(
        "SELECT attempt, outcome, status_code, error, response_excerpt"
        " FROM relay.attempts ORDER BY attempt"
    ).fetchall()
    assert attempts == [
        (1, "failed", 500, "HTTP 500 from the receiver", "no"),
        (2, "delivered", 200, None, "ok"),
    ]
    # Each attempt keeps the exact bytes it sent, for `relay deliveries show`.
    bodies = db.execute(
        "SELECT body, replay FROM relay.attempts ORDER BY attempt"
    ).fetchall()
    assert bodies == [(first.body.decode(), 0), (second.body.decode(), 0)]
    # Neither a replay nor a backfill: their headers stay away.
    assert "X-Relay-Replay" not in first.headers
    assert "X-Relay-Backfill" not in second.headers


async def test_no_lock_is_held_while_a_request_is_on_the_wire(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    add_webhook(db, receiver, "/slow")
    arrived = asyncio.Event()
    release = asyncio.Event()
    receiver.hold("/slow", arrived, release)

    # No poll while the request is held: a claim round is a short transaction of
    # its own (lock, then claim), which must not be mistaken for one kept open.
    async with running_relay(dsn, poll_interval=60.0):
        change(db, NEW_TODO.format(id="tdo_slow", list="lst_inbox"))
        async with asyncio.timeout(10):
            await arrived.wait()
        # While the receiver holds the request, every row can be locked at once.
        with db.transaction():
            db.execute("SET LOCAL lock_timeout = '1s'")
            db.execute("SELECT * FROM relay.deliveries FOR UPDATE NOWAIT")
            db.execute("SELECT * FROM relay.events FOR UPDATE NOWAIT")
        in_transaction = db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state LIKE 'idle in transaction%'"
        ).fetchone()
        release.set()
        await eventually(lambda: all_delivered(db, expected=1))

    assert in_transaction == (0,)


async def test_a_libpq_key_value_dsn_works_as_well_as_a_url(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    add_webhook(db, receiver, "/hook")
    key_value = psycopg.conninfo.make_conninfo(dsn, sslmode="disable")

    async with running_relay(key_value):
        change(db, NEW_TODO.format(id="tdo_key_value", list="lst_inbox"))
        [request] = await receiver.wait_for(1, path="/hook")

    assert key_value.startswith(("host=", "user=", "dbname=", "port="))
    assert request.payload["currentValue"]["id"] == "tdo_key_value"


async def test_a_backlog_nobody_wants_does_not_delay_the_event_behind_it(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    add_webhook(db, receiver, "/ops", project_ids=["prj_ops"])
    unwanted = ", ".join(
        f"('tdo_sales_{number}', 'lst_pipeline', 'lead {number}')"
        for number in range(30)
    )
    change(db, f"INSERT INTO todos (id, todo_list_id, title) VALUES {unwanted}")
    change(db, NEW_TODO.format(id="tdo_wanted", list="lst_inbox"))

    # One wake-up at start and no poll for a minute: only draining full batches
    # reaches the wanted event in time.
    async with running_relay(dsn, batch_size=5, poll_interval=60.0):
        [request] = await receiver.wait_for(1, path="/ops", timeout=10)

    assert request.payload["currentValue"]["id"] == "tdo_wanted"


async def test_deleting_a_webhook_mid_request_does_not_stop_recording(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    doomed, _ = add_webhook(db, receiver, "/doomed", events=["COMMENT_CREATED"])
    add_webhook(db, receiver, "/kept", events=["TODO_CREATED"])
    arrived, release = asyncio.Event(), asyncio.Event()
    receiver.hold("/doomed", arrived, release)

    async with running_relay(dsn):
        change(
            db,
            "INSERT INTO comments (id, todo_id, text)"
            " VALUES ('cmt_x', 'tdo_base', 'x')",
        )
        async with asyncio.timeout(10):
            await arrived.wait()
        db.execute("DELETE FROM relay.webhooks WHERE id = %s", (doomed,))
        release.set()
        change(db, NEW_TODO.format(id="tdo_after_delete", list="lst_inbox"))
        await receiver.wait_for(1, path="/kept")
        await eventually(lambda: all_delivered(db, expected=1))

    assert [request.path for request in receiver.requests] == ["/doomed", "/kept"]
    assert db.execute("SELECT attempt, outcome FROM relay.attempts").fetchall() == [
        (1, "delivered")
    ]


async def test_a_backlog_drains_as_requests_finish_not_one_poll_at_a_time(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    add_webhook(db, receiver, "/hook")
    values = ", ".join(
        f"('tdo_backlog_{number}', 'lst_inbox', 'backlog {number}')"
        for number in range(60)
    )
    change(db, f"INSERT INTO todos (id, todo_list_id, title) VALUES {values}")

    # Four slots, batches of 100 and no poll for a minute: only refilling the
    # slots as requests finish delivers the 60 events within the time-out.
    async with running_relay(dsn, max_in_flight=4, poll_interval=60.0):
        await receiver.wait_for(60, path="/hook", timeout=20)
        await eventually(lambda: all_delivered(db, expected=60))

    assert len({request.headers["webhook-id"] for request in receiver.requests}) == 60


async def test_a_webhook_created_while_a_transaction_is_open_gets_its_later_change(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    with psycopg.connect(dsn) as application:
        application.execute("SELECT 1")  # the transaction has begun
        add_webhook(db, receiver, "/late")
        application.execute(NEW_TODO.format(id="tdo_late", list="lst_inbox"))
        application.commit()

    async with running_relay(dsn):
        [request] = await receiver.wait_for(1, path="/late")

    assert request.payload["currentValue"]["id"] == "tdo_late"


async def test_killed_connections_delay_events_but_lose_none(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    add_webhook(db, receiver, "/hook")
    events = 120
    kill = (
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = current_database()"
        " AND application_name IN ('relay', 'relay-listener')"
    )

    # running_relay re-raises whatever ended the relay early.
    async with running_relay(dsn, lease=3.0, request_timeout=2.0):
        for number in range(events):
            change(db, NEW_TODO.format(id=f"tdo_kill_{number}", list="lst_inbox"))
            if number % 30 == 10:
                db.execute(kill)
            await asyncio.sleep(0.005)
        await eventually(lambda: all_delivered(db, expected=events), timeout=60)

    received = {request.headers["webhook-id"] for request in receiver.requests}
    assert len(received) == events


async def test_an_event_whose_payload_cannot_be_built_fails_alone(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    add_webhook(db, receiver, "/hook")
    for name in ("tdo_good_1", "tdo_broken", "tdo_good_2"):
        change(db, NEW_TODO.format(id=name, list="lst_inbox"))
    # A snapshot no payload function can read, as a corrupted row would be.
    db.execute(
        "UPDATE relay.events SET current_value = current_value"
        " || '{\"created_at\": \"not a time\"}' WHERE entity_id = 'tdo_broken'"
    )

    async with running_relay(dsn):
        requests = await receiver.wait_for(2, path="/hook")
        await eventually(
            lambda: db.execute("SELECT count(*) FROM relay.attempts").fetchone() == (3,)
        )

    assert sorted(r.payload["currentValue"]["id"] for r in requests) == [
        "tdo_good_1",
        "tdo_good_2",
    ]
    failed = db.execute(
        "SELECT e.entity_id, d.state, a.outcome, a.error FROM relay.attempts a"
        " JOIN relay.deliveries d ON d.id = a.delivery_id"
        " JOIN relay.events e ON e.id = d.event_id WHERE a.outcome = 'failed'"
    ).fetchall()
    assert failed == [
        (
            "tdo_broken",
            "pending",
            "failed",
            "could not build the payload: invalid input syntax for type timestamp"
            ' with time zone: "not a time"',
        )
    ]


async def test_a_url_aiohttp_cannot_request_fails_its_attempts_like_any_other(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    # Stored by hand: relay webhooks create refuses it (test_input_checks.py).
    seed_world(db)
    webhook_id, _ = add_webhook(db, receiver, "/hook")
    db.execute(
        "UPDATE relay.webhooks SET url = 'http://a..b/hook' WHERE id = %s",
        (webhook_id,),
    )
    db.commit()
    change(db, NEW_TODO.format(id="tdo_unreachable", list="lst_inbox"))

    async with running_relay(dsn, retry_schedule=(0.05,), retry_jitter=0.0):
        expected = [("TODO_CREATED", webhook_id, "failed", 2)]
        await eventually(lambda: delivery_states(db) == expected, timeout=15)

    attempts = db.execute(
        "SELECT attempt, outcome, status_code, error FROM relay.attempts ORDER BY id"
    ).fetchall()
    reason = (
        "the webhook's URL cannot be requested: encoding with 'idna' codec failed"
        " (UnicodeError: label empty or too long)"
    )
    assert attempts == [(1, "failed", None, reason), (2, "failed", None, reason)]
