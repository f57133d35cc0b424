"""Telling systemd how the relay is doing: ready, alive, stopping.

Under a unit of ``Type=notify`` systemd sets ``NOTIFY_SOCKET``; the relay says
``READY=1`` once it listens, pings ``WATCHDOG=1`` at half the interval systemd
asks for in ``WATCHDOG_USEC``, and says ``STOPPING=1`` when it drains. Outside
systemd every call does nothing. The pings come from the event loop itself, so
a loop that hangs stops them and systemd restarts the relay.
"""

from __future__ import annotations

import asyncio
import logging
import os

import sdnotify

logger = logging.getLogger(__name__)


class Notifier:
    """The notification socket of systemd, or nothing when there is none."""

    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._notifier = sdnotify.SystemdNotifier() if self.enabled else None

    def notify(self, message: str) -> None:
        if self._notifier is not None:
            self._notifier.notify(message)

    def ready(self) -> None:
        self.notify("READY=1\nSTATUS=Listening for events.")

    def stopping(self) -> None:
        self.notify("STOPPING=1\nSTATUS=Draining requests in flight.")

    def status(self, text: str) -> None:
        self.notify(f"STATUS={text}")

    async def keep_watchdog_fed(self) -> None:
        """Ping the watchdog until cancelled, if systemd asked for pings."""
        interval = watchdog_interval()
        if interval is None or self._notifier is None:
            return
        logger.debug(
            "Pinging the systemd watchdog every %g s.",
            interval,
            extra={"action": "watchdog"},
        )
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(interval)


def watchdog_interval() -> float | None:
    """Half the watchdog time-out systemd set for this process, in seconds."""
    microseconds = os.environ.get("WATCHDOG_USEC", "")
    owner = os.environ.get("WATCHDOG_PID", "")
    if not microseconds.isdigit() or int(microseconds) == 0:
        return None
    if owner and owner != str(os.getpid()):
        return None  # meant for another process of the unit
    return int(microseconds) / 2_000_000
