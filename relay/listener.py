"""The doorbell: a dedicated connection that LISTENs and wakes the service.

Why NOTIFY is only a hint: a notification carries no data and can be missed (the
relay was down, the connection dropped). The service therefore also polls on a
timer, and after every reconnect this listener rings once so that whatever was
committed meanwhile is picked up at once.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from relay import db
from relay.errors import DatabaseError

logger = logging.getLogger(__name__)

CHANNEL = "relay_events_v1"
HEALTH_CHECK_SECONDS = 5.0
# TODO(issue 4): reconnect with a growing backoff instead of a fixed delay.
RECONNECT_DELAY_SECONDS = 1.0


class Listener:
    """Keeps one LISTEN connection alive and sets ``wake`` on every notification."""

    def __init__(self, dsn: str, wake: asyncio.Event) -> None:
        self.dsn = dsn
        self.wake = wake
        self.listening = asyncio.Event()
        self._outage_logged = False

    async def run(self) -> None:
        """Listen until cancelled, reconnecting whenever the connection is lost."""
        while True:
            try:
                await self._listen_until_lost()
            except (
                DatabaseError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                asyncpg.InternalClientError,
                OSError,
            ) as error:
                if not self._outage_logged:
                    logger.warning(
                        "Listening connection lost; reconnecting.",
                        extra={"action": "reconnect", "error": str(error)},
                    )
                    self._outage_logged = True
                await asyncio.sleep(RECONNECT_DELAY_SECONDS)

    async def _listen_until_lost(self) -> None:
        connection = await db.connect_async(self.dsn, application_name="relay-listener")
        try:
            await connection.add_listener(CHANNEL, self._on_notification)
            self.listening.set()
            self._outage_logged = False
            # Whatever was committed while nobody listened is due now.
            self.wake.set()
            logger.info(
                "Listening for events.", extra={"action": "listen", "channel": CHANNEL}
            )
            while not connection.is_closed():
                await asyncio.sleep(HEALTH_CHECK_SECONDS)
                await connection.fetchval("SELECT 1", timeout=HEALTH_CHECK_SECONDS)
            raise DatabaseError("the listening connection was closed")
        finally:
            self.listening.clear()
            connection.terminate()

    def _on_notification(
        self, connection: object, pid: int, channel: str, payload: object
    ) -> None:
        self.wake.set()
