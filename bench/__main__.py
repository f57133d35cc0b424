"""Run the benchmark: ``python -m bench`` (``make bench``).

Uses DATABASE_URL's server when it is set (its role must be allowed to create
databases; it creates and drops ``relay_bench_*``), otherwise a throwaway
cluster with PostgreSQL's default, durable settings. Prints the table to stdout,
progress to stderr, and writes the same figures to ``bench-results.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import bulk, latency, throughput, writes
from bench.harness import ReceiverProcess, Server
from bench.report import Row, print_table, write_json
from relay.cluster import ThrowawayCluster

FIGURES = ("writes", "latency", "throughput", "bulk")


@dataclass(frozen=True)
class Sizes:
    write_seconds: float = 10.0
    write_rounds: int = 2
    latency_rate: float = 100.0
    latency_seconds: float = 20.0
    throughput_events: int = 50_000
    raw_requests: int = 20_000
    fan_out_events: int = 2_000
    fan_out_webhooks: int = 50
    scaling_events: tuple[int, int] = (10_000, 100_000)
    isolation_events: int = 5_000
    bulk_rows: int = 10_000


# A smoke run of every figure in about a minute; its figures mean little.
QUICK = Sizes(
    write_seconds=2.0,
    latency_seconds=3.0,
    throughput_events=2_000,
    raw_requests=2_000,
    fan_out_events=100,
    fan_out_webhooks=10,
    scaling_events=(1_000, 3_000),
    isolation_events=500,
    bulk_rows=1_000,
)


@contextlib.contextmanager
def server() -> Iterator[Server]:
    url = os.environ.get("DATABASE_URL")
    if url:
        yield Server(url)
        return
    with ThrowawayCluster() as cluster:
        print(f"Started a throwaway cluster on port {cluster.port}.", file=sys.stderr)
        yield Server(cluster.dsn())


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def run(sizes: Sizes, figures: tuple[str, ...]) -> list[Row]:
    rows: list[Row] = []
    with server() as where:
        where.prepare_template()
        receiver = ReceiverProcess()
        try:
            if "writes" in figures:
                progress("Write overhead: 4 configurations, 4 pgbench clients.")
                rows += await writes.run(where, sizes.write_seconds, sizes.write_rounds)
            if "latency" in figures:
                progress("Latency: woken, then polling.")
                rows += await latency.run(
                    where, receiver, sizes.latency_rate, sizes.latency_seconds
                )
            if "throughput" in figures:
                progress("Throughput, fan-out, scaling and isolation.")
                rows += await throughput.run(
                    where,
                    receiver,
                    throughput_events=sizes.throughput_events,
                    fan_out_events=sizes.fan_out_events,
                    fan_out_webhooks=sizes.fan_out_webhooks,
                    scaling_events=sizes.scaling_events,
                    isolation_events=sizes.isolation_events,
                    raw_requests=sizes.raw_requests,
                )
            if "bulk" in figures:
                progress("Bulk UPDATE.")
                rows += await bulk.run(where, receiver, sizes.bulk_rows)
        finally:
            receiver.stop()
            where.drop_template()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke run")
    parser.add_argument("--only", nargs="+", choices=FIGURES, default=list(FIGURES))
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"))
    options = parser.parse_args()
    sizes = QUICK if options.quick else Sizes()

    started = datetime.now(UTC)
    rows = asyncio.run(run(sizes, tuple(options.only)))
    elapsed = (datetime.now(UTC) - started).total_seconds()

    print_table(rows)
    print(f"\n{os.cpu_count()} cores; ran in {elapsed:.0f} s.")
    if options.quick:
        print("Quick run: sizes far below the issue's; the figures mean little.")
    missed = [row for row in rows if row.met is False]
    for row in missed:
        print(f"Missed: {row.figure} {row.measured}: {row.ratio:.2f} vs {row.target}.")
    write_json(
        options.json,
        rows,
        started,
        {"quick": options.quick, "sizes": sizes.__dict__, "seconds": elapsed},
    )
    print(f"Wrote {options.json}.", file=sys.stderr)


if __name__ == "__main__":
    main()
