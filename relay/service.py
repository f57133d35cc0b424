"""The service loop: wake up, claim, build, sign, send, record; and stop cleanly.

This is where PostgreSQL (claims, payloads) and HTTP (signing, delivery) meet.
Requests run as tasks, at most ``max_in_flight`` at once and at most
``max_in_flight_per_webhook`` for one webhook (the claim query counts those);
their results go to the recorder (``relay/recorder.py``).

Why the relay never exits on a database error: PostgreSQL restarts, failovers
and killed connections pass. The loop logs the first failure of an outage, waits
with a growing backoff (cut short when the listener reconnects), and logs once
more when the database answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import UTC, datetime

import asyncpg

from relay import attempt, claims, db, migrations, payloads, retention, retries
from relay.claims import AttemptRecord, Claim, DeliveryId, HealthRules
from relay.delivery import Outcome, Request, Sender
from relay.doorbell import Doorbell
from relay.listener import Listener
from relay.outage import Outage
from relay.recorder import Recorder
from relay.settings import Settings
from relay.systemd import Notifier

logger = logging.getLogger(__name__)

POOL_SIZE = 4
# While writers keep adding events and the doorbell is disarmed: the pause
# between two looks, far below the latency a receiver notices. It grows with the
# events each look finds (by BUSY_PAUSE_SECONDS for every EVENTS_PER_BUSY_PAUSE),
# up to MAX_BUSY_PAUSE_SECONDS: under a heavy write load, fewer and fuller rounds
# leave the writers more of the machine.
BUSY_PAUSE_SECONDS = 0.002
EVENTS_PER_BUSY_PAUSE = 10
MAX_BUSY_PAUSE_SECONDS = 0.01


class RelayService:
    """One relay process: runs until ``stop`` is called, then drains and returns."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._in_flight: dict[asyncio.Task[None], Claim] = {}
        # Set while the last round found more due work than it could take.
        self._backlog = False
        # With a backlog, wait for this many free slots rather than claim one by one.
        self._refill_at = max(1, min(settings.batch_size, settings.max_in_flight) // 4)
        self._policy = settings.retry_policy
        self._notifier = Notifier()
        # Claims that failed in a row on database errors: the backoff grows with it.
        self._database_failures = 0
        # Shared with the listener and the recorder: one warning per outage.
        self._outage = Outage()
        self._doorbell = Doorbell(settings.poll_interval)

    def stop(self) -> None:
        """Take no new claims; let requests in flight finish within the grace."""
        if not self._stopping.is_set():
            logger.info("Stopping: no new claims.", extra={"action": "stop"})
            self._notifier.stopping()
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        settings = self.settings
        await asyncio.to_thread(migrations.check_current, settings.dsn)
        listener = Listener(settings.dsn, self._wake, self._outage)

        async with (
            db.open_pool(settings.dsn, POOL_SIZE) as pool,
            Sender(
                timeout=settings.request_timeout,
                max_in_flight=settings.max_in_flight,
            ) as sender,
        ):
            rules = HealthRules(settings.unhealthy_after, settings.disable_after)
            recorder = Recorder(pool, rules, self._wake, self._outage)
            recorder_task = asyncio.create_task(recorder.run())
            listener_task = asyncio.create_task(listener.run())
            watchdog_task = asyncio.create_task(self._notifier.keep_watchdog_fed())
            pruning_task = retention.start(settings, self._stopping)
            try:
                await self._wait_until_listening(listener)
                if not self._stopping.is_set():
                    logger.info(
                        "Relay started.",
                        extra={"action": "start", "worker_id": settings.worker_id},
                    )
                    self.ready.set()
                    self._notifier.ready()
                    await self._pump(pool, sender, recorder)
                await self._drain(pool)
            finally:
                listener_task.cancel()
                await retention.finish(pruning_task, settings.shutdown_grace)
                recorder.close()
                await self._finish(recorder_task)
                watchdog_task.cancel()
                await asyncio.gather(
                    listener_task, watchdog_task, return_exceptions=True
                )
        logger.info("Relay stopped.", extra={"action": "stopped"})

    async def _finish(self, recorder_task: asyncio.Task[None]) -> None:
        """Let the recorder flush, but not forever if the database is gone."""
        done, _ = await asyncio.wait(
            {recorder_task}, timeout=self.settings.shutdown_grace
        )
        if not done:
            logger.warning(
                "Could not record the last attempts; they are sent again later.",
                extra={"action": "record"},
            )
            recorder_task.cancel()
            await asyncio.gather(recorder_task, return_exceptions=True)

    async def _wait_until_listening(self, listener: Listener) -> None:
        waiting = asyncio.create_task(listener.listening.wait())
        stopping = asyncio.create_task(self._stopping.wait())
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        stopping.cancel()

    async def _pump(
        self, pool: asyncpg.Pool, sender: Sender, recorder: Recorder
    ) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            pause = self.settings.poll_interval
            if self._free_slots() >= (self._refill_at if self._backlog else 1):
                try:
                    pause = await self._round(pool, sender, recorder)
                    self._database_answered()
                except db.TRANSIENT_ERRORS as error:
                    self._database_failed(error)
                    self._backlog = False
                except Exception as error:
                    # An error that is not passing (a bug, a broken schema) must not
                    # end the service; it is logged for an operator and tried again.
                    logger.error(
                        "Could not claim work; trying again.",
                        exc_info=not isinstance(error, asyncpg.PostgresError),
                        extra={"action": "claim", "error": db.first_line(error)},
                    )
                    self._backlog = False
            if pause > 0:
                await self._sleep_until_woken(pause)

    async def _round(
        self, pool: asyncpg.Pool, sender: Sender, recorder: Recorder
    ) -> float:
        """One look for work; return how long to wait before the next (0: at once).

        While writers keep adding events the relay looks again soon and keeps
        the doorbell disarmed; when a look finds no new event it arms it (see
        ``relay/doorbell.py``). Deliveries held back by their webhook's limit need
        no look at once: the recorder wakes the relay when slots free up.
        """
        async with pool.acquire() as connection:
            new_events, self._backlog = await self._claim_and_send(
                connection, sender, recorder
            )
            if new_events or self._backlog:
                await self._doorbell.busy(connection)
                # A short breath lets writers add a few more events to the next
                # batch instead of paying a round for each of them.
                return 0.0 if self._backlog else busy_pause(new_events)
            return await self._doorbell.idle(connection)

    def _database_failed(self, error: Exception) -> None:
        self._database_failures += 1
        self._outage.failed(
            logger,
            "Database unavailable; reconnecting with backoff.",
            action="reconnecting",
            error=db.first_line(error),
        )
        if self._database_failures == 1:
            self._notifier.status("Database unavailable; reconnecting.")

    def _database_answered(self) -> None:
        self._outage.answered(logger)
        if self._database_failures:
            self._notifier.status("Listening for events.")
        self._database_failures = 0

    async def _claim_and_send(
        self, connection: asyncpg.Connection, sender: Sender, recorder: Recorder
    ) -> tuple[int, bool]:
        """Fan out and claim one batch.

        Returns how many new events it found, and whether a full batch suggests more.
        """
        batch_size = self.settings.batch_size
        limit = min(self._free_slots(), batch_size)

        fanned_out = await claims.fan_out(connection, batch_size)
        claimed, bodies = await self._claim(connection, limit, recorder)

        if claimed:
            logger.info(
                "Claimed %d deliveries.",
                len(claimed),
                extra={"action": "claimed", "count": len(claimed)},
            )

        for item in claimed:
            body = bodies.get(item.delivery_id)
            if body is None:
                continue  # its webhook was deleted since the claim
            task = asyncio.create_task(self._deliver(item, body, sender, recorder))
            self._in_flight[task] = item
            task.add_done_callback(self._forget)
        return fanned_out, fanned_out == batch_size or len(claimed) == limit

    async def _claim(
        self, connection: asyncpg.Connection, limit: int, recorder: Recorder
    ) -> tuple[list[Claim], dict[DeliveryId, bytes]]:
        """Claim up to ``limit`` deliveries with their bodies.

        One body that cannot be built fails the whole statement and nothing is
        claimed; it must not hold up the rest of its batch: claim again without
        bodies and build them one by one.
        """
        settings = self.settings
        arguments = (
            connection,
            settings.worker_id,
            limit,
            settings.lease,
            settings.max_in_flight_per_webhook,
            recorder.unwritten,
        )
        try:
            return await claims.claim(*arguments, build=True)
        except db.TRANSIENT_ERRORS:
            raise
        except asyncpg.PostgresError:
            pass
        claimed, _ = await claims.claim(*arguments)
        return claimed, await self._build_one_by_one(connection, claimed, recorder)

    async def _build_one_by_one(
        self, connection: asyncpg.Connection, claimed: list[Claim], recorder: Recorder
    ) -> dict[DeliveryId, bytes]:
        """The claimed deliveries' bodies; one that cannot be built fails alone."""
        bodies: dict[DeliveryId, bytes] = {}
        for item in claimed:
            try:
                bodies.update(await payloads.build(connection, [item.delivery_id]))
            except db.TRANSIENT_ERRORS:
                raise
            except asyncpg.PostgresError as error:
                reason = f"could not build the payload: {db.first_line(error)}"
                logger.error(
                    "Could not build a payload; retrying later.",
                    extra={
                        "action": "build",
                        "event_id": item.event_id,
                        "webhook_id": item.webhook_id,
                        "error": reason,
                    },
                )
                recorder.add(
                    AttemptRecord(
                        claim=item,
                        outcome=Outcome.FAILED.value,
                        status_code=None,
                        duration_ms=0.0,
                        error=reason,
                        response_excerpt=None,
                        attempted_at=datetime.now(UTC),
                        retry_in_seconds=self._policy.delay_after(item.retry_position),
                        reached_receiver=False,
                    )
                )
        return bodies

    def _free_slots(self) -> int:
        return self.settings.max_in_flight - len(self._in_flight)

    def _forget(self, task: asyncio.Task[None]) -> None:
        claim = self._in_flight.pop(task, None)
        if self._backlog:
            self._wake.set()  # due work waits for the slot this task freed
        if not task.cancelled() and task.exception() is not None:
            # Not lost: the claim's lease runs out and the delivery is due again.
            logger.error(
                "Delivery task failed unexpectedly.",
                exc_info=task.exception(),
                extra={"action": "deliver", "claim": repr(claim)},
            )

    async def _sleep_until_woken(self, timeout: float) -> None:
        if self._database_failures:
            # The listener rings as soon as it reconnects, which ends this early.
            timeout = max(timeout, retries.reconnect_delay(self._database_failures))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _deliver(
        self, claim: Claim, body: bytes, sender: Sender, recorder: Recorder
    ) -> None:
        request = Request(claim.url, body, attempt.request_headers(claim, body))
        result = await sender.send(request)

        retry_in = attempt.retry_delay(self._policy, claim.retry_position, result)
        attempt.log_result(claim, result, retry_in)
        # Synchronous from here on: a cancelled task either recorded or did not.
        recorder.add(
            AttemptRecord(
                claim=claim,
                outcome=result.outcome.value,
                status_code=result.status_code,
                duration_ms=result.duration_ms,
                error=result.error,
                response_excerpt=result.response_excerpt,
                attempted_at=result.attempted_at,
                retry_in_seconds=retry_in,
                body=body,
            )
        )

    async def _drain(self, pool: asyncpg.Pool) -> None:
        """Give requests in flight the grace period, then release the rest."""
        if self._in_flight:
            await asyncio.wait(
                set(self._in_flight), timeout=self.settings.shutdown_grace
            )
        unfinished = {
            task: claim for task, claim in self._in_flight.items() if not task.done()
        }
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        if not unfinished:
            return

        try:
            async with pool.acquire() as connection:
                await claims.release(
                    connection, self.settings.worker_id, list(unfinished.values())
                )
        except db.TRANSIENT_ERRORS as error:
            logger.warning(
                "Could not release %d claims; they return when their lease ends.",
                len(unfinished),
                extra={"action": "release", "error": str(error)},
            )
            return
        logger.info(
            "Released %d unfinished claims.",
            len(unfinished),
            extra={"action": "release", "count": len(unfinished)},
        )


def busy_pause(new_events: int) -> float:
    """Seconds to wait after a look that found ``new_events`` (at least one)."""
    steps = max(1, new_events // EVENTS_PER_BUSY_PAUSE)
    return min(MAX_BUSY_PAUSE_SECONDS, BUSY_PAUSE_SECONDS * steps)


async def serve(settings: Settings) -> None:
    """Run one relay until SIGTERM or SIGINT, then drain and return."""
    relay = RelayService(settings)
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, relay.stop)
    await relay.run()
