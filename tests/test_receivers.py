"""Receivers that misbehave, against the real ``relay run`` process.

Delays are checked where the relay wrote them down (``retry_delay_seconds`` of
each attempt) with jitter off, never by sleeping through them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import ssl
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from relay import webhooks
from relay.receiver import Receiver
from tests.conftest import database_url
from tests.endpoints import (
    HAS_OPENSSL,
    endless_endpoint,
    raw_endpoint,
    reset,
    say_nothing,
    silent_port,
    tls_endpoint,
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


# Settled: delivered, failed for good, or waiting out a delay of a minute or more.
UNSETTLED = """
SELECT count(*) FROM relay.deliveries
WHERE claimed_by IS NOT NULL OR attempts = 0
   OR (state = 'pending' AND next_attempt_at < now() + '30 s')
"""
PASSWORD = "never-in-a-log-line"
PATHS = ("dated", "far", "far-429")


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


def settled(db: psycopg.Connection[Any], deliveries: int) -> bool:
    counted = db.execute("SELECT count(*) FROM relay.deliveries").fetchone()
    return counted == (deliveries,) and db.execute(UNSETTLED).fetchone() == (0,)


def with_password(db: psycopg.Connection[Any]) -> str:
    """This test's database URL with a password (trust auth ignores it)."""
    info = db.info
    return database_url(info.host, info.port, info.user, info.dbname, PASSWORD)


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
        endless = await stack.enter_async_context(endless_endpoint())
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
            "endless": register(db, "endless", endless + "/hook"),
        }
        db.execute("LISTEN relay_webhook_status_v1")

        # Every line, debug ones too, is checked for secrets and the DSN's password.
        async with relay_process(
            with_password(db), *COMPRESSED, RELAY_LOG_LEVEL="debug"
        ) as relay:
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
    # A body that never ends: the first 1 KiB is read, the rest left unread.
    assert attempts(db, ids["endless"]) == [(1, "delivered", 200, None, None)]
    assert db.execute(
        "SELECT response_excerpt FROM relay.attempts a"
        " JOIN relay.deliveries d ON d.id = a.delivery_id WHERE d.webhook_id = %s",
        (ids["endless"],),
    ).fetchone() == ("x" * 1024,)

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

    # The log lines of the flaky webhook, field by field.
    [(event_id,)] = db.execute("SELECT id FROM relay.events").fetchall()
    flaky = [line for line in relay.log if line.get("webhook_id") == ids["flaky"]]
    for line in flaky:
        assert datetime.fromisoformat(line.pop("time")).tzinfo is not None
        assert isinstance(line.pop("duration_ms"), float)
    common = {
        "level": "INFO",
        "logger": "relay.attempt",
        "event_id": event_id,
        "webhook_id": ids["flaky"],
    }
    assert flaky == [
        {
            **common,
            "message": "Delivery of TODO_CREATED failed (HTTP 500 from the receiver);"
            " retrying in 0.1 s.",
            "action": "retrying",
            "outcome": "failed",
            "retry_in_s": 0.1,
            "attempt": 1,
            "status": 500,
        },
        {
            **common,
            "message": "Delivery of TODO_CREATED failed (HTTP 503 from the receiver);"
            " retrying in 0.1 s.",
            "action": "retrying",
            "outcome": "failed",
            "retry_in_s": 0.1,
            "attempt": 2,
            "status": 503,
        },
        {
            **common,
            "message": "Delivered TODO_CREATED.",
            "action": "delivered",
            "attempt": 3,
            "status": 200,
        },
    ]

    # Failures of every kind, logged at debug: no secret, signature or password.
    logged = json.dumps(relay.log)
    secrets = [secret for (secret,) in db.execute("SELECT secret FROM relay.webhooks")]
    signatures = [
        request.headers[name]
        for request in receiver.requests
        for name in ("X-Signature", "webhook-signature")
    ]
    assert len(secrets) == len(ids)
    # flaky 3, moved 2 (a 302, then the default 200), four others 1 each
    assert len(signatures) == 2 * len(receiver.requests) == 18
    for secret in secrets:
        assert secret not in logged
        assert secret.removeprefix("whsec_") not in logged
    for signature in signatures:
        assert signature.removeprefix("v1,") not in logged
    assert PASSWORD not in logged


async def test_retry_after_as_an_http_date_and_beyond_the_cap(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    # An HTTP date counts whole seconds: this one is 120 to 121 s ahead.
    ahead = datetime.now(UTC) + timedelta(seconds=121)
    receiver.answer_with("/dated", 503, {"Retry-After": format_datetime(ahead, True)})
    receiver.answer_with("/far", 503, {"Retry-After": "3600"})
    receiver.answer_with("/far-429", 429, {"Retry-After": "3600"})
    ids = {name: register(db, name, receiver.url(f"/{name}")) for name in PATHS}

    async with relay_process(dsn, *COMPRESSED, "--max-retry-after", "600") as relay:
        change(db, NEW_TODO)
        await eventually(lambda: settled(db, len(ids)), timeout=30)
        assert await relay.stop(signal.SIGTERM) == 0

    [(attempt, outcome, status, error, dated)] = attempts(db, ids["dated"])
    assert (attempt, outcome, status, error) == (
        1,
        "failed",
        503,
        "HTTP 503 from the receiver",
    )
    # Less the seconds between writing the date and the attempt.
    assert 110 < dated <= 121
    assert delivery(db, ids["dated"]) == ("pending", 1, True, round(dated))
    assert attempts(db, ids["far"]) == [
        (1, "failed", 503, "HTTP 503 from the receiver", 600.0)
    ]
    assert delivery(db, ids["far"]) == ("pending", 1, True, 600)
    assert attempts(db, ids["far-429"]) == [
        (1, "rate_limited", 429, "HTTP 429: the receiver asks to slow down", 600.0)
    ]
    retrying = [line for line in relay.log if line.get("action") == "retrying"]
    assert sorted(line["retry_in_s"] for line in retrying)[1:] == [600.0, 600.0]


async def untrusted_because(url: str) -> str:
    """Why a TLS client that trusts the system's authorities refuses ``url``."""
    host, port = url.removeprefix("https://").split(":")
    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        async with asyncio.timeout(10):
            await asyncio.open_connection(
                host, int(port), ssl=ssl.create_default_context()
            )
    return str(refused.value.verify_message)


@pytest.mark.skipif(not HAS_OPENSSL, reason="openssl is not installed")
async def test_a_receiver_with_a_self_signed_certificate_fails_the_handshake(
    db: psycopg.Connection[Any], dsn: str, tmp_path: Path
) -> None:
    seed_world(db)

    async with tls_endpoint(tmp_path) as url:
        webhook_id = register(db, "self-signed", url + "/hook")
        async with relay_process(dsn, *COMPRESSED) as relay:
            change(db, NEW_TODO)
            await eventually(lambda: settled(db, 1), timeout=30)
            assert await relay.stop(signal.SIGTERM) == 0
        # "self-signed certificate", or "self signed" in older OpenSSL.
        because = await untrusted_because(url)

    refused = (
        f"TLS handshake with {url.removeprefix('https://')} failed:"
        f" certificate verify failed: {because}"
    )
    assert because.startswith("self")
    assert attempts(db, webhook_id) == [
        (1, "failed", None, refused, 0.1),
        (2, "failed", None, refused, 0.1),
        (3, "failed", None, refused, None),
    ]
