"""The armed doorbell: writers ring only while the relay sleeps.

Why: a NOTIFY in every writing transaction serialises the writers' commits.
While the relay has work it polls back to back and needs no ring, so it keeps
the doorbell disarmed (``sql/migrations/0020_armed_doorbell.sql``); when a round
finds nothing it arms it, and a writer then rings at its commit.

Why arming is followed by settling: a writer may have read "disarmed" just
before the relay armed, and commit just after the relay's last look. Such a
writer had its transaction id before it read (it wrote the outbox row first),
so it is among the transactions running when the relay, after arming, takes a
snapshot. The relay looks once more at once, and again each time some of those
transactions end, until none is left; only then does it sleep. A transaction
that stays open longer than the poll interval is found by the safety-net poll.
"""

from __future__ import annotations

import logging
import time

import asyncpg

from relay import queries

logger = logging.getLogger(__name__)

# Between two checks of the transactions that may have missed the doorbell.
FIRST_SETTLE_STEP = 0.002
LAST_SETTLE_STEP = 0.05


class Doorbell:
    """This relay's side of the doorbell: when to arm, disarm and look again."""

    def __init__(self, poll_interval: float) -> None:
        self.poll_interval = poll_interval
        # None until this relay set it: a relay that died may have left either.
        self.armed: bool | None = None
        # Transactions that may have read "disarmed" and not yet committed.
        self._unsettled: list[int] = []
        self._settle_until = 0.0
        self._settle_step = FIRST_SETTLE_STEP

    async def busy(self, connection: asyncpg.Connection) -> None:
        """The relay found work and polls again at once: writers need not ring."""
        if self.armed is False:
            return
        self.armed = None
        self._unsettled = []
        await connection.fetchval(queries.load("doorbell")["disarm_doorbell"])
        self.armed = False

    async def idle(self, connection: asyncpg.Connection) -> float:
        """The relay found no work: seconds until it should look again.

        0 means at once: just after arming, and whenever a transaction that may
        have missed the doorbell has ended.
        """
        named = queries.load("doorbell")
        if self.armed is not True:
            self.armed = None
            await connection.fetchval(named["arm_doorbell"])
            self._unsettled = await connection.fetchval(named["running_transactions"])
            self.armed = True
            self._settle_until = time.monotonic() + self.poll_interval
            self._settle_step = FIRST_SETTLE_STEP
            return 0.0

        if not self._unsettled:
            return self.poll_interval
        running: list[int] = await connection.fetchval(
            named["still_running"], self._unsettled
        )
        ended = len(running) < len(self._unsettled)
        self._unsettled = running
        if time.monotonic() > self._settle_until:
            # Still open after a whole poll interval: the safety-net poll finds it.
            self._unsettled = []
        if ended:
            return 0.0
        if not self._unsettled:
            return self.poll_interval
        self._settle_step = min(self._settle_step * 2, LAST_SETTLE_STEP)
        return self._settle_step
