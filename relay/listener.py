"""The doorbell: a dedicated connection that LISTENs and wakes the service.

Why NOTIFY is only a hint: a notification carries no data and can be missed (the
relay was down, the connection dropped). The service therefore also polls on a
timer, and after every reconnect this listener rings once so that whatever was
committed meanwhile is picked up at once.

A lost connection is logged once per outage, not once per try, and not again
when the claim loop has already said the database is away (``relay/outage.py``);
tries back off from half a second to half a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from relay import db, retries
from relay.errors import DatabaseError
from relay.outage import Outage

logger = logging.getLogger(__name__)

# Rung only while a relay sleeps (the armed doorbell of relay/doorbell.py).
CHANNEL = "relay_events_v2"
HEALTH_CHECK_SECONDS = 5.0


class Listener:
    """Keeps one LISTEN connection alive and sets ``wake`` on every notification."""

    def __init__(self, dsn: str, wake: asyncio.Event, outage: Outage) -> None:
        self.dsn = dsn
        self.wake = wake
        self.outage = outage
        self.listening = asyncio.Event()
        # Failed tries in a row; above 0 during an outage.
        self._failures = 0

    async def run(self) -> None:
        """Listen until cancelled, reconnecting whenever the connection is lost."""
        while True:
            try:
                await self._listen_until_lost()
            except (*db.TRANSIENT_ERRORS, asyncpg.PostgresError) as error:
                self._failures += 1
                delay = retries.reconnect_delay(self._failures)
                self.outage.failed(
                    logger,
                    "Listening connection lost; reconnecting in %.1f s.",
                    delay,
                    action="reconnecting",
                    error=db.first_line(error),
                )
                await asyncio.sleep(delay)

    async def _listen_until_lost(self) -> None:
        connection = await db.connect_async(self.dsn, application_name="relay-listener")
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _: lost.set())
        try:
            await connection.add_listener(CHANNEL, self._on_notification)
            self.listening.set()
            # Whatever was committed while nobody listened is due now.
            self.wake.set()
            if self._failures:
                logger.info(
                    "Listening again after %d failed tries; catching up.",
                    self._failures,
                    extra={"action": "listen", "channel": CHANNEL},
                )
            else:
                logger.info(
                    "Listening for events.",
                    extra={"action": "listen", "channel": CHANNEL},
                )
            self._failures = 0
            while not connection.is_closed():
                # A connection the server ends says so at once; one that silently
                # went away is found by the periodic check.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), HEALTH_CHECK_SECONDS)
                if lost.is_set():
                    break
                await connection.fetchval("SELECT 1", timeout=HEALTH_CHECK_SECONDS)
            raise DatabaseError("the listening connection was closed")
        finally:
            self.listening.clear()
            connection.terminate()

    def _on_notification(
        self, connection: object, pid: int, channel: str, payload: object
    ) -> None:
        self.wake.set()
