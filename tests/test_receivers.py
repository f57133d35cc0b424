"""Receivers that misbehave, against the real ``relay run`` process.

Delays are checked where the relay wrote them down (``retry_delay_seconds`` of
each attempt) with jitter off, never by sleeping through them.
"""

from __future__ import annotations

import contextlib
import signal
from typing import Any

import psycopg

from relay import webhooks
from relay.receiver import Receiver
from tests.endpoints import (
    raw_endpoint,
    reset,
    say_nothing,
    silent_port,
    trickling_endpoint,
)
from tests.support import change, eventually, relay_process, seed_world

NEW_TODO = (
    "INSERT INTO todos (id, todo_list_id, title)"
    " VALUES ('tdo_faults', 'lst_inbox', 'x')"
)
# Two retries a tenth of a second apart, no jitter; a time-out or 429 waits 60 s.
COMPRESSED = [
    "--retry-schedule",
    "0.1s,0.1s",
    "--retry-jitter",
    "0",
    "--request-timeout",
    "1",
    "--lease",
    "5",
]
ATTEMPTS = """
SELECT a.attempt, a.outcome, a.status_code, a.error, a.retry_delay_seconds
FROM relay.attempts a
JOIN relay.deliveries d ON d.id = a.delivery_id
WHERE d.webhook_id = %s
ORDER BY a.attempt
"""


def register(db: psycopg.Connection[Any], name: str, url: str) -> str:
    created, _ = webhooks.create(
        db,
        webhooks.NewWebhook(
            name=name, url=url, created_by_id="usr_alice", events=["TODO_CREATED"]
        ),
    )
    webhook_id: str = created["id"]
    return webhook_id


def attempts(db: psycopg.Connection[Any], webhook_id: str) -> list[tuple[Any, ...]]:
    return db.execute(ATTEMPTS, (webhook_id,)).fetchall()


def delivery(db: psycopg.Connection[Any], webhook_id: str) -> tuple[Any, ...] | None:
    return db.execute(
        "SELECT state, attempts, claimed_by IS NULL,"
        " extract(epoch FROM next_attempt_at - updated_at)::int"
        " FROM relay.deliveries WHERE webhook_id = %s",
        (webhook_id,),
    ).fetchone()


async def test_each_misbehaving_receiver_gets_the_documented_treatment(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    receiver.answer("/flaky", 500, 503)
    receiver.answer_with("/busy", 429, {"Retry-After": "120"})
    receiver.answer("/busy-no-hint", 429)
    receiver.answer("/gone", 410)
    receiver.answer_with("/moved", 302, {"Location": receiver.url("/elsewhere")})
    receiver.answer_with("/chatty", 200, body="x" * 100_000)
    refused_port = silent_port()

    async with contextlib.AsyncExitStack() as stack:
        hanging = await stack.enter_async_context(raw_endpoint(say_nothing))
        resetting = await stack.enter_async_context(raw_endpoint(reset))
        trickling = await stack.enter_async_context(trickling_endpoint())
        ids = {
            "flaky": register(db, "flaky", receiver.url("/flaky")),
            "busy": register(db, "busy", receiver.url("/busy")),
            "busy-no-hint": register(db, "busy 2", receiver.url("/busy-no-hint")),
            "gone": register(db, "gone", receiver.url("/gone")),
            "moved": register(db, "moved", receiver.url("/moved")),
            "chatty": register(db, "chatty", receiver.url("/chatty")),
            "hanging": register(db, "hanging", hanging + "/hook"),
            "resetting": register(db, "resetting", resetting + "/hook"),
            "trickling": register(db, "trickling", trickling + "/hook"),
            "refused": register(db, "refused", f"http://127.0.0.1:{refused_port}/hook"),
        }
        db.execute("LISTEN relay_webhook_status_v1")

        async with relay_process(dsn, *COMPRESSED) as relay:
            change(db, NEW_TODO)
            # Settled: delivered, failed for good, or waiting out a long delay.
            await eventually(
                lambda: (
                    db.execute(
                        "SELECT count(*) FROM relay.deliveries"
                        " WHERE claimed_by IS NULL AND attempts > 0"
                        " AND (state <> 'pending' OR next_attempt_at > now() + '30 s')"
                    ).fetchone()
                    == (len(ids) - 1,)
                    and delivery(db, ids["gone"]) is not None
                ),
                timeout=30,
            )
            notifications = list(db.notifies(timeout=5, stop_after=1))
            assert await relay.stop(signal.SIGTERM) == 0

    timeout_error = "no complete answer within 1 s"
    assert attempts(db, ids["flaky"]) == [
        (1, "failed", 500, "HTTP 500 from the receiver", 0.1),
        (2, "failed", 503, "HTTP 503 from the receiver", 0.1),
        (3, "delivered", 200, None, None),
    ]
    assert attempts(db, ids["busy"]) == [
        (1, "rate_limited", 429, "HTTP 429: the receiver asks to slow down", 120.0)
    ]
    assert delivery(db, ids["busy"]) == ("pending", 1, True, 120)
    assert attempts(db, ids["busy-no-hint"]) == [
        (1, "rate_limited", 429, "HTTP 429: the receiver asks to slow down", 60.0)
    ]
    assert attempts(db, ids["moved"])[0] == (
        1,
        "failed",
        302,
        "HTTP 302: redirects are not followed",
        0.1,
    )
    assert receiver.on("/elsewhere") == []
    assert attempts(db, ids["hanging"]) == [(1, "timed_out", None, timeout_error, 60.0)]
    assert attempts(db, ids["trickling"]) == [
        (1, "timed_out", 200, timeout_error, 60.0)
    ]
    assert attempts(db, ids["resetting"]) == [
        (1, "failed", None, "the receiver reset the connection", 0.1),
        (2, "failed", None, "the receiver reset the connection", 0.1),
        (3, "failed", None, "the receiver reset the connection", None),
    ]
    refused = f"connection to 127.0.0.1:{refused_port} refused: nothing listens there"
    assert attempts(db, ids["refused"]) == [
        (1, "failed", None, refused, 0.1),
        (2, "failed", None, refused, 0.1),
        (3, "failed", None, refused, None),
    ]
    assert delivery(db, ids["refused"])[:3] == ("failed", 3, True)  # type: ignore[index]
    excerpt = db.execute(
        "SELECT length(response_excerpt) FROM relay.attempts a"
        " JOIN relay.deliveries d ON d.id = a.delivery_id WHERE d.webhook_id = %s",
        (ids["chatty"],),
    ).fetchone()
    assert excerpt == (1024,)

    # 410: the webhook is disabled at once; the delivery waits for a re-enable.
    assert attempts(db, ids["gone"]) == [
        (1, "gone", 410, "HTTP 410: the receiver says this endpoint is gone", 0.1)
    ]
    assert db.execute(
        "SELECT status, enabled FROM relay.webhooks WHERE id = %s", (ids["gone"],)
    ).fetchone() == ("HEALTHY", False)
    assert db.execute(
        "SELECT webhook_id, old_status, new_status, old_enabled, new_enabled, reason"
        " FROM relay.webhook_status_changes"
    ).fetchall() == [
        (
            ids["gone"],
            "HEALTHY",
            "HEALTHY",
            True,
            False,
            "the receiver answered 410 Gone",
        )
    ]
    assert [(n.channel, n.payload) for n in notifications] == [
        (
            "relay_webhook_status_v1",
            f'{{"webhook_id" : "{ids["gone"]}", "old_status" : "HEALTHY", '
            '"new_status" : "HEALTHY", "enabled" : false, '
            '"reason" : "the receiver answered 410 Gone"}',
        )
    ]
    assert any(
        line["message"] == "Webhook disabled: the receiver answered 410 Gone;"
        " it receives nothing until enabled again."
        for line in relay.log
    )
    [gone] = [line for line in relay.log if line.get("action") == "gone"]
    assert gone["message"] == (
        "Delivery of TODO_CREATED refused (HTTP 410: the receiver says this endpoint"
        " is gone); the webhook is disabled and this delivery waits until it is"
        " enabled again."
    )
