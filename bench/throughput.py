"""Throughput, fan-out, scaling and isolation: draining a backlog of pending events.

Each case clones a database, registers its webhooks, commits the events in one
statement while no relay runs, then starts one relay and times it from the
moment it listens until the receiver has every delivery. The ceiling is what
this machine can POST at all: the same bodies sent by plain aiohttp (64 at once,
no database, no signing) to the same receiver.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
import psycopg

from bench.harness import (
    ReceiverProcess,
    Server,
    add_webhooks,
    insert_todos,
    relay_process,
)
from bench.report import Row

RAW_CONCURRENCY = 64
# With one webhook the per-webhook limit only caps the relay's own concurrency:
# single-webhook drains lift it to --max-in-flight (256), and one extra row shows
# the default limit of 10.
ONE_WEBHOOK_FLAGS = ("--max-in-flight-per-webhook", "256")
DRAIN_TIMEOUT = 300.0


@dataclass
class Drained:
    seconds: float
    deliveries: int
    duplicates: int
    peak_rss_mb: float
    bodies: list[bytes]

    @property
    def per_second(self) -> float:
        return self.deliveries / self.seconds

    @property
    def ms_per_delivery(self) -> float:
        return self.seconds * 1000 / self.deliveries


async def drain(
    server: Server,
    receiver: ReceiverProcess,
    session: aiohttp.ClientSession,
    name: str,
    webhooks: list[str],
    events: int,
    *,
    wait_for: list[str] | None = None,
    flags: tuple[str, ...] = (),
    keep_bodies: int = 0,
) -> Drained:
    """Time one relay delivering ``events`` pending events to ``webhooks``."""
    awaited = webhooks if wait_for is None else wait_for
    await receiver.reset(session)
    with server.database(name) as dsn:
        add_webhooks(dsn, receiver.url, webhooks)
        await asyncio.to_thread(insert_todos, dsn, events)
        async with relay_process(dsn, *flags) as relay:
            started = time.monotonic()
            finished = await receiver.wait_for(
                session, dict.fromkeys(awaited, events), timeout=DRAIN_TIMEOUT
            )
            peak_rss = relay.peak_rss_mb()
        stats = await receiver.stats(session)
        bodies = read_bodies(dsn, keep_bodies) if keep_bodies else []

    duplicates = sum(
        stats[hook]["requests"] - stats[hook]["deliveries"] for hook in awaited
    )
    return Drained(
        seconds=finished - started,
        deliveries=events * len(awaited),
        duplicates=duplicates,
        peak_rss_mb=peak_rss,
        bodies=bodies,
    )


def read_bodies(dsn: str, limit: int) -> list[bytes]:
    with psycopg.connect(dsn) as db:
        rows = db.execute(
            "SELECT relay.payload_v2(e, w) FROM relay.deliveries d"
            " JOIN relay.events e ON e.id = d.event_id"
            " JOIN relay.webhooks w ON w.id = d.webhook_id"
            " ORDER BY d.id LIMIT %s",
            (limit,),
        ).fetchall()
    return [row[0].encode() for row in rows]


async def raw_ceiling(
    receiver: ReceiverProcess, session: aiohttp.ClientSession, bodies: list[bytes]
) -> float:
    """POSTs per second that plain aiohttp reaches with these bodies."""
    await receiver.reset(session)
    url = f"{receiver.url}/hook/raw"
    headers = {"Content-Type": "application/json"}
    queue = iter(bodies)

    async def post_all(client: aiohttp.ClientSession) -> None:
        for body in queue:
            async with client.post(url, data=body, headers=headers) as response:
                await response.read()

    connector = aiohttp.TCPConnector(limit=RAW_CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as client:
        started = time.monotonic()
        await asyncio.gather(*(post_all(client) for _ in range(RAW_CONCURRENCY)))
        elapsed = time.monotonic() - started
    return len(bodies) / elapsed


async def run(
    server: Server,
    receiver: ReceiverProcess,
    *,
    throughput_events: int,
    fan_out_events: int,
    fan_out_webhooks: int,
    scaling_events: tuple[int, int],
    isolation_events: int,
    raw_requests: int,
) -> list[Row]:
    rows: list[Row] = []
    small_count, large_count = scaling_events
    async with aiohttp.ClientSession() as session:
        single = await drain(
            server,
            receiver,
            session,
            "throughput",
            ["one"],
            throughput_events,
            flags=ONE_WEBHOOK_FLAGS,
            keep_bodies=raw_requests,
        )
        ceiling = await raw_ceiling(receiver, session, single.bodies)
        rows.append(
            Row(
                figure="throughput",
                measured=f"{throughput_events:,} events, 1 webhook",
                value=single.per_second,
                unit="/s",
                baseline_name="raw aiohttp POSTs",
                baseline=ceiling,
                ratio=single.per_second / ceiling,
                target=">= 0.35",
                met=single.per_second / ceiling >= 0.35,
                details={
                    "seconds": single.seconds,
                    "duplicates": single.duplicates,
                    "raw_requests": len(single.bodies),
                    "peak_rss_mb": single.peak_rss_mb,
                    "flags": ONE_WEBHOOK_FLAGS,
                },
            )
        )
        limited = await drain(
            server, receiver, session, "throughput_limited", ["one"], small_count
        )
        rows.append(
            Row(
                figure="throughput",
                measured=f"{small_count:,} events, default limit 10",
                value=limited.per_second,
                unit="/s",
                baseline_name="raw aiohttp POSTs",
                baseline=ceiling,
                ratio=limited.per_second / ceiling,
                target="report",
                met=None,
                details={"seconds": limited.seconds, "duplicates": limited.duplicates},
            )
        )

        hooks = [f"fan{index}" for index in range(fan_out_webhooks)]
        fanned = await drain(
            server, receiver, session, "fan_out", hooks, fan_out_events
        )
        rows.append(
            Row(
                figure="fan-out",
                measured=f"{fan_out_events:,} events x {fan_out_webhooks} webhooks",
                value=fanned.per_second,
                unit="/s",
                baseline_name="raw aiohttp POSTs",
                baseline=ceiling,
                ratio=fanned.per_second / ceiling,
                target=">= 0.3",
                met=fanned.per_second / ceiling >= 0.3,
                details={
                    "seconds": fanned.seconds,
                    "deliveries": fanned.deliveries,
                    "duplicates": fanned.duplicates,
                },
            )
        )

        small = await drain(
            server,
            receiver,
            session,
            "scale_small",
            ["one"],
            small_count,
            flags=ONE_WEBHOOK_FLAGS,
        )
        large = await drain(
            server,
            receiver,
            session,
            "scale_large",
            ["one"],
            large_count,
            flags=ONE_WEBHOOK_FLAGS,
        )
        growth = large.ms_per_delivery / small.ms_per_delivery
        rows.append(
            Row(
                figure="scaling",
                measured=f"{large_count:,} events, time/event",
                value=large.ms_per_delivery,
                unit="ms",
                baseline_name=f"{small_count:,} events",
                baseline=small.ms_per_delivery,
                ratio=growth,
                target="0.8 to 1.2",
                met=0.8 <= growth <= 1.2,
                details={
                    "small_seconds": small.seconds,
                    "large_seconds": large.seconds,
                    "duplicates": small.duplicates + large.duplicates,
                },
            )
        )
        rows.append(
            Row(
                figure="scaling",
                measured=f"relay peak RSS, {large_count:,} events",
                value=large.peak_rss_mb,
                unit="MB",
                baseline_name=f"{small_count:,} events",
                baseline=small.peak_rss_mb,
                ratio=large.peak_rss_mb / small.peak_rss_mb,
                target="<= 150 MB",
                met=large.peak_rss_mb <= 150,
            )
        )

        timeout_flags = ("--request-timeout", "2")
        alone = await drain(
            server,
            receiver,
            session,
            "isolation_alone",
            ["healthy"],
            isolation_events,
            flags=timeout_flags,
        )
        beside = await drain(
            server,
            receiver,
            session,
            "isolation_hang",
            ["healthy", "hang"],
            isolation_events,
            wait_for=["healthy"],
            flags=timeout_flags,
        )
        rows.append(
            Row(
                figure="isolation",
                measured="healthy beside a hanging one",
                value=beside.per_second,
                unit="/s",
                baseline_name="healthy alone",
                baseline=alone.per_second,
                ratio=beside.per_second / alone.per_second,
                target=">= 0.9",
                met=beside.per_second / alone.per_second >= 0.9,
                details={
                    "events": isolation_events,
                    "request_timeout_seconds": 2,
                    "alone_seconds": alone.seconds,
                    "beside_seconds": beside.seconds,
                },
            )
        )
    return rows
