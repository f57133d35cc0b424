"""The relay's scheduled prune: ``relay prune`` every ``--prune-interval``.

It runs beside delivery and never stops it: the prune works in a thread over a
psycopg connection of its own (the same code as the command), in short batches
that skip what the relay holds. A run that fails is a WARNING; the next one
comes at the next interval. Relays that share a database take turns: a run that
finds another prune going is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from relay import db, prune
from relay.settings import Settings

logger = logging.getLogger(__name__)


def start(settings: Settings, stopping: asyncio.Event) -> asyncio.Task[None] | None:
    """The schedule as a task, or None when no retention is set."""
    if settings.retention is None:
        return None
    policy = prune.PrunePolicy(older_than=settings.retention)
    return asyncio.create_task(keep_pruning(settings, policy, stopping))


async def finish(task: asyncio.Task[None] | None, grace: float) -> None:
    """Let a running batch end (the stop is seen between batches), then go."""
    if task is None:
        return
    done, _ = await asyncio.wait({task}, timeout=grace)
    if not done:
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def keep_pruning(
    settings: Settings, policy: prune.PrunePolicy, stopping: asyncio.Event
) -> None:
    """A run at once, then one every interval, until ``stopping`` is set."""
    while not stopping.is_set():
        await run_once(settings.dsn, policy, stopping)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), settings.prune_interval)


async def run_once(
    dsn: str, policy: prune.PrunePolicy, stopping: asyncio.Event
) -> None:
    try:
        counts = await asyncio.to_thread(prune.prune, dsn, policy, stopping.is_set)
    except prune.PruneBusy:
        logger.info(
            "Skipped a prune: another one is running.", extra={"action": "prune"}
        )
        return
    except Exception as error:
        logger.warning(
            "Could not prune; trying again at the next run.",
            exc_info=not isinstance(error, db.TRANSIENT_ERRORS),
            extra={"action": "prune", "error": db.first_line(error)},
        )
        return
    logger.info(
        "Pruned %d events, %d deliveries and %d attempts.",
        counts.events,
        counts.deliveries,
        counts.attempts,
        extra={
            "action": "prune",
            "events": counts.events,
            "deliveries": counts.deliveries,
            "attempts": counts.attempts,
            "older_than_seconds": policy.older_than,
        },
    )
