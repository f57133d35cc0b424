"""The benchmark's receiver, run as a process of its own: ``python -m bench.receiver``.

It answers ``POST /hook/<name>`` with 200 at once, or never when the name starts
with ``hang`` (the relay times out). It counts distinct deliveries per name and
keeps the arrival time of each event, so that the runner can ask ``GET /stats``
and ``GET /arrivals/<name>`` without sharing a core with the requests it counts.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import defaultdict

from aiohttp import web

HANG_SECONDS = 3600.0


class Counts:
    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.deliveries: dict[str, set[str]] = defaultdict(set)
        self.requests: dict[str, int] = defaultdict(int)
        # Event id header and time.time() of the first arrival of each event.
        self.arrivals: dict[str, dict[str, float]] = defaultdict(dict)


async def hook(request: web.Request) -> web.Response:
    counts: Counts = request.app["counts"]
    await request.read()
    received_at = time.time()
    name = request.match_info["name"]
    if name.startswith("hang"):
        await asyncio.sleep(HANG_SECONDS)
    counts.requests[name] += 1
    # The raw baseline sends no delivery header: each of its requests counts.
    delivery = request.headers.get("X-Relay-Delivery") or str(counts.requests[name])
    counts.deliveries[name].add(delivery)
    event_id = request.headers.get("X-Relay-Event-Id")
    if event_id is not None:
        counts.arrivals[name].setdefault(event_id, received_at)
    return web.Response(text="ok")


async def stats(request: web.Request) -> web.Response:
    counts: Counts = request.app["counts"]
    return web.json_response(
        {
            name: {"deliveries": len(seen), "requests": counts.requests[name]}
            for name, seen in counts.deliveries.items()
        }
    )


async def arrivals(request: web.Request) -> web.Response:
    counts: Counts = request.app["counts"]
    return web.json_response(counts.arrivals.get(request.match_info["name"], {}))


async def reset(request: web.Request) -> web.Response:
    request.app["counts"].clear()
    return web.Response(text="ok")


async def serve() -> None:
    app = web.Application()
    app["counts"] = Counts()
    app.router.add_post("/hook/{name}", hook)
    app.router.add_get("/stats", stats)
    app.router.add_get("/arrivals/{name}", arrivals)
    app.router.add_post("/reset", reset)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    host, port = runner.addresses[0][:2]
    # The runner reads this line to learn the port.
    print(f"http://{host}:{port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        sys.exit(0)
