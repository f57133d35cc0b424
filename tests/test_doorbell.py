"""The armed doorbell: writers ring only while the relay sleeps, and nothing is lost.

The relays here poll once an hour, so every event they deliver was found through
the doorbell or through settling after arming, never through the safety net.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import asyncpg
import psycopg

from relay import claims
from relay.doorbell import Doorbell
from relay.receiver import Receiver
from tests.support import (
    add_webhook,
    all_delivered,
    eventually,
    running_relay,
    seed_world,
)

CHANNEL = "relay_events_v2"
HOUR = 3600.0
NEW_TODO = "INSERT INTO todos (id, todo_list_id, title) VALUES (%s, 'lst_inbox', %s)"


def set_doorbell(db: psycopg.Connection[Any], armed: bool) -> None:
    db.execute("SELECT setval('relay.doorbell_armed_v2', %s)", (int(armed),))


def listen(dsn: str) -> psycopg.Connection[Any]:
    listener = psycopg.connect(dsn, autocommit=True)
    listener.execute(f"LISTEN {CHANNEL}")
    return listener


def rings(listener: psycopg.Connection[Any], wait: float) -> int:
    return sum(1 for _ in listener.notifies(timeout=wait))


def test_a_writer_rings_only_while_the_doorbell_is_armed(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    with listen(dsn) as listener:
        set_doorbell(db, armed=False)
        db.execute(NEW_TODO, ("tdo_quiet", "written while a relay polls"))
        set_doorbell(db, armed=True)
        db.execute(NEW_TODO, ("tdo_loud", "written while a relay sleeps"))

        # Notifications arrive in commit order: had the first write rung, its
        # notification would come before the second's.
        first = next(listener.notifies(timeout=10, stop_after=1))
        assert first.channel == CHANNEL and first.payload == ""
        assert rings(listener, wait=0) == 0


def test_a_repeatable_read_writer_sees_the_doorbell_armed_after_its_snapshot(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    set_doorbell(db, armed=False)
    with listen(dsn) as listener, psycopg.connect(dsn) as writer:
        writer.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        writer.execute("SELECT count(*) FROM todos")  # takes the snapshot

        set_doorbell(db, armed=True)
        writer.execute(NEW_TODO, ("tdo_late", "written after arming"))
        writer.commit()

        assert next(listener.notifies(timeout=10, stop_after=1)).channel == CHANNEL


async def test_a_writer_that_read_disarmed_is_waited_for_after_arming(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    relay = await asyncpg.connect(dsn)
    doorbell = Doorbell(poll_interval=HOUR)
    try:
        await doorbell.busy(relay)
        with psycopg.connect(dsn) as writer:
            # Reads "disarmed" and stays open while the relay runs out of work.
            writer.execute(NEW_TODO, ("tdo_racing", "written across arming"))

            assert await doorbell.idle(relay) == 0  # armed: look once more now
            assert await claims.fan_out(relay, 100) == 0  # not committed yet
            # Other transactions on the server may end meanwhile (a look at
            # once), but while this one is open the relay never sleeps an hour.
            for _ in range(5):
                assert await doorbell.idle(relay) < HOUR

            writer.commit()

        assert await doorbell.idle(relay) == 0  # it ended: look now
        assert await claims.fan_out(relay, 100) == 1
        # Then it settles, once the server's other transactions of that moment end.
        for _ in range(400):
            pause = await doorbell.idle(relay)
            if pause == HOUR:
                break
            await asyncio.sleep(pause)
        assert pause == HOUR
    finally:
        await relay.close()


async def test_bursts_from_concurrent_writers_arrive_once_each_without_polling(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    add_webhook(db, receiver, "/hook")
    writers, bursts, per_burst = 4, 6, 10

    async def write(writer: int) -> None:
        connection = await asyncpg.connect(dsn)
        try:
            for burst in range(bursts):
                for number in range(per_burst):
                    todo_id = f"tdo_{writer}_{burst}_{number}"
                    await connection.execute(
                        "INSERT INTO todos (id, todo_list_id, title)"
                        " VALUES ($1, 'lst_inbox', $1)",
                        todo_id,
                    )
                # Let the relay run out of work and arm between bursts.
                await asyncio.sleep(0.05 * (writer + 1))
        finally:
            await connection.close()

    expected = writers * bursts * per_burst
    async with running_relay(dsn, poll_interval=HOUR):
        await asyncio.gather(*(write(writer) for writer in range(writers)))
        requests = await receiver.wait_for(expected, path="/hook", timeout=60)
        await eventually(lambda: all_delivered(db, expected=expected), timeout=30)

    counts = collections.Counter(
        request.payload["currentValue"]["id"] for request in requests
    )
    assert len(counts) == expected
    assert set(counts.values()) == {1}
