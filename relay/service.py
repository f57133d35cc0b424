"""The service loop: wake up, claim, build, sign, send, record; and stop cleanly.

This is where PostgreSQL (claims, payloads) and HTTP (signing, delivery) meet.
Requests run as tasks, at most ``max_in_flight`` at once; their results go to a
recorder that writes them back in batches, so a burst of answers costs one round
trip rather than one per delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from datetime import UTC, datetime

import asyncpg

from relay import claims, db, migrations, payloads, signing
from relay.claims import AttemptRecord, Claim, DeliveryId
from relay.delivery import Outcome, Request, Result, Sender
from relay.errors import DatabaseError
from relay.listener import Listener
from relay.settings import Settings

logger = logging.getLogger(__name__)

# Errors that pass: a dropped connection, a restart of PostgreSQL (which ends
# sessions with admin_shutdown), a deadlock or serialization failure. The same
# statement may succeed when tried again.
TRANSIENT_DATABASE_ERRORS = (
    DatabaseError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TransactionRollbackError,
    asyncpg.InterfaceError,
    # What asyncpg raises when a connection dies in the middle of an operation.
    asyncpg.InternalClientError,
    OSError,
)

# A failed write of results is tried again soon: the leases of what it records
# are running out meanwhile.
RECORD_RETRY_SECONDS = 1.0

POOL_SIZE = 4


class Recorder:
    """Collects attempt results and writes them back in batches."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._queue: asyncio.Queue[AttemptRecord | None] = asyncio.Queue()

    def add(self, record: AttemptRecord) -> None:
        self._queue.put_nowait(record)

    def close(self) -> None:
        """Ask ``run`` to flush what is queued and return."""
        self._queue.put_nowait(None)

    async def run(self) -> None:
        closing = False
        while not closing:
            batch: list[AttemptRecord] = []
            item = await self._queue.get()
            while item is not None:
                batch.append(item)
                if self._queue.empty():
                    break
                item = self._queue.get_nowait()
            closing = item is None
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[AttemptRecord]) -> None:
        # An unrecorded attempt is not lost: its lease runs out and it is sent again.
        while True:
            try:
                async with self._pool.acquire() as connection:
                    await claims.record(connection, batch)
                return
            except TRANSIENT_DATABASE_ERRORS as error:
                logger.warning(
                    "Could not record %d attempts; trying again.",
                    len(batch),
                    extra={"action": "record", "error": db.first_line(error)},
                )
                await asyncio.sleep(RECORD_RETRY_SECONDS)
            except Exception as error:
                # Trying the same batch again would fail the same way and hold up
                # every result behind it; the recorder itself must live on.
                logger.error(
                    "Could not record %d attempts; they will be sent again.",
                    len(batch),
                    exc_info=not isinstance(error, asyncpg.PostgresError),
                    extra={"action": "record", "error": db.first_line(error)},
                )
                return


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

    def stop(self) -> None:
        """Take no new claims; let requests in flight finish within the grace."""
        if not self._stopping.is_set():
            logger.info("Stopping: no new claims.", extra={"action": "stop"})
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        settings = self.settings
        await asyncio.to_thread(migrations.check_current, settings.dsn)
        listener = Listener(settings.dsn, self._wake)

        async with (
            db.open_pool(settings.dsn, POOL_SIZE) as pool,
            Sender(
                timeout=settings.request_timeout,
                max_in_flight=settings.max_in_flight,
            ) as sender,
        ):
            recorder = Recorder(pool)
            recorder_task = asyncio.create_task(recorder.run())
            listener_task = asyncio.create_task(listener.run())
            try:
                await self._wait_until_listening(listener)
                if not self._stopping.is_set():
                    logger.info(
                        "Relay started.",
                        extra={"action": "start", "worker_id": settings.worker_id},
                    )
                    self.ready.set()
                    await self._pump(pool, sender, recorder)
                await self._drain(pool)
            finally:
                listener_task.cancel()
                recorder.close()
                await self._finish(recorder_task)
                await asyncio.gather(listener_task, return_exceptions=True)
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
            if self._free_slots() >= (self._refill_at if self._backlog else 1):
                try:
                    self._backlog = await self._claim_and_send(pool, sender, recorder)
                except TRANSIENT_DATABASE_ERRORS as error:
                    self._log_claim_error(logging.WARNING, error)
                    self._backlog = False
                except Exception as error:
                    # An error that is not passing (a bug, a broken schema) must not
                    # end the service; it is logged for an operator and tried again.
                    self._log_claim_error(logging.ERROR, error)
                    self._backlog = False
                if self._backlog:
                    continue
            await self._sleep_until_woken()

    def _log_claim_error(self, level: int, error: Exception) -> None:
        logger.log(
            level,
            "Could not claim work; trying again.",
            exc_info=level >= logging.ERROR
            and not isinstance(error, asyncpg.PostgresError),
            extra={"action": "claim", "error": db.first_line(error)},
        )

    async def _claim_and_send(
        self, pool: asyncpg.Pool, sender: Sender, recorder: Recorder
    ) -> bool:
        """Fan out and claim one batch; return whether a full batch suggests more."""
        batch_size = self.settings.batch_size
        limit = min(self._free_slots(), batch_size)

        async with pool.acquire() as connection:
            fanned_out = await claims.fan_out(connection, batch_size)
            claimed = await claims.claim(
                connection, self.settings.worker_id, limit, self.settings.lease
            )
            bodies = await self._build(connection, claimed, recorder)

        for item in claimed:
            body = bodies.get(item.delivery_id)
            if body is None:
                continue  # its webhook was deleted since the claim
            task = asyncio.create_task(self._deliver(item, body, sender, recorder))
            self._in_flight[task] = item
            task.add_done_callback(self._forget)
        return fanned_out == batch_size or len(claimed) == limit

    async def _build(
        self, connection: asyncpg.Connection, claimed: list[Claim], recorder: Recorder
    ) -> dict[DeliveryId, bytes]:
        """The claimed deliveries' bodies; one that cannot be built fails alone."""
        try:
            return await payloads.build(
                connection, [item.delivery_id for item in claimed]
            )
        except TRANSIENT_DATABASE_ERRORS:
            raise
        except asyncpg.PostgresError:
            pass

        # One bad event must not hold up the rest of its batch: build one by one.
        bodies: dict[DeliveryId, bytes] = {}
        for item in claimed:
            try:
                bodies.update(await payloads.build(connection, [item.delivery_id]))
            except TRANSIENT_DATABASE_ERRORS:
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
                        retry_in_seconds=self.settings.retry_delay,
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

    async def _sleep_until_woken(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)

    async def _deliver(
        self, claim: Claim, body: bytes, sender: Sender, recorder: Recorder
    ) -> None:
        request = Request(claim.url, body, request_headers(claim, body))
        result = await sender.send(request)

        retry_in = None
        if result.outcome is not Outcome.DELIVERED:
            retry_in = self.settings.retry_delay
        log_result(claim, result, retry_in)
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
        except TRANSIENT_DATABASE_ERRORS as error:
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


def request_headers(claim: Claim, body: bytes) -> dict[str, str]:
    """Content type, both signature schemes and the delivery's identifiers."""
    message_id = f"evt_{claim.event_id}"
    headers = {
        "Content-Type": "application/json",
        "X-Relay-Event": claim.event,
        "X-Relay-Delivery": str(claim.delivery_id),
        "X-Relay-Attempt": str(claim.attempt),
    }
    headers.update(
        signing.signature_headers(claim.secret, message_id, int(time.time()), body)
    )
    return headers


def log_result(claim: Claim, result: Result, retry_in: float | None) -> None:
    fields = {
        "event_id": claim.event_id,
        "webhook_id": claim.webhook_id,
        "attempt": claim.attempt,
        "status": result.status_code,
        "duration_ms": round(result.duration_ms, 1),
    }
    if retry_in is None:
        logger.info(
            "Delivered %s.", claim.event, extra={"action": "delivered", **fields}
        )
    else:
        logger.warning(
            "Delivery of %s failed (%s); retrying in %g s.",
            claim.event,
            result.error,
            retry_in,
            extra={"action": "retrying", **fields},
        )


async def serve(settings: Settings) -> None:
    """Run one relay until SIGTERM or SIGINT, then drain and return."""
    relay = RelayService(settings)
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, relay.stop)
    await relay.run()
