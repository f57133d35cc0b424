"""One warning per database outage, whichever part of the relay meets it first.

The listener, the claim loop and the writer of results each need the database
and each find out on their own that it went away. An operator needs one line
saying so and one saying it is back, not one per part and per try: the first
failure of an outage is a WARNING, every later one DEBUG, and the claim loop's
first success after it ends the outage with one INFO line.

Why a failure soon after the end is not a new outage: after a restart, pooled
connections opened before it fail once when next used, and the part that uses
one may well be another than the part that saw the database answer again.
"""

from __future__ import annotations

import logging
import time
from typing import Any

# A failure within this many seconds of an outage's end belongs to that outage.
SETTLING_SECONDS = 10.0


class Outage:
    """The relay's view of whether the database is away, shared by its parts."""

    def __init__(self) -> None:
        # Failures since the outage began; 0 while the database answers.
        self.failures = 0
        self._ended_at: float | None = None

    def failed(
        self, logger: logging.Logger, message: str, *args: Any, **extra: Any
    ) -> None:
        """Log a failure to use the database: WARNING if it starts an outage."""
        settling = (
            self._ended_at is not None
            and time.monotonic() - self._ended_at < SETTLING_SECONDS
        )
        starts = self.failures == 0 and not settling
        self.failures += 1
        logger.log(
            logging.WARNING if starts else logging.DEBUG, message, *args, extra=extra
        )

    def answered(self, logger: logging.Logger) -> None:
        """The database answered the claim loop: end the outage, if there was one."""
        if not self.failures:
            return
        logger.info(
            "Database available again; catching up.",
            extra={"action": "reconnected", "failures": self.failures},
        )
        self.failures = 0
        self._ended_at = time.monotonic()
