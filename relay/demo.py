"""The main job end to end: changes committed in PostgreSQL arrive as signed webhooks.

Without a DSN it runs on a throwaway cluster that it removes afterwards. It seeds a
company, two users, a project and a list, starts a receiver that verifies
signatures, registers a webhook, runs the relay, and makes the changes of
relay.demo_steps, one per captured event, printing each delivery as it arrives with
the time from commit to receipt.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from relay import db, migrations, webhooks
from relay.cluster import ThrowawayCluster
from relay.demo_steps import STEPS, Step
from relay.errors import RelayError
from relay.receiver import ReceivedRequest, Receiver
from relay.service import RelayService
from relay.settings import Settings

PATH = "/demo"
# The longest event name and one space more, so that columns stay two spaces apart.
EVENT_WIDTH = max(len(step.event) for step in STEPS) + 1
HEADER = (
    f"{'#':>2}  {'EVENT':<{EVENT_WIDTH}} {'SIGNATURE':<10} {'COMMIT TO RECEIPT':>17}"
)
WAIT_SECONDS = 15.0
# The events the current transaction has added so far, oldest first.
EVENTS_OF_THIS_TRANSACTION = (
    "SELECT coalesce(array_agg(event ORDER BY id), '{}') FROM relay.events"
    " WHERE fanned_out_at IS NULL AND xmin = pg_current_xact_id()::xid"
)


@dataclass
class Seed:
    company_id: str
    user_id: str
    project_id: str
    # Ids for the steps' parameters: the seeded Inbox and those the steps create.
    ids: dict[str, str]


async def run_demo(dsn: str | None) -> None:
    """Run the demo on ``dsn``, or on a throwaway cluster when it is None."""
    # SIGTERM or Ctrl-C cancels the demo, so that its finally blocks stop the relay,
    # the receiver and the cluster instead of leaving them running.
    demo = asyncio.current_task()
    assert demo is not None
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, demo.cancel)
    try:
        await run_demo_steps(dsn)
    except asyncio.CancelledError:
        raise RelayError("interrupted; the demo stopped what it had started") from None


async def run_demo_steps(dsn: str | None) -> None:
    with throwaway_cluster_unless(dsn) as database:
        await asyncio.to_thread(migrations.apply_migrations, database)
        connection = await db.connect_async(database)
        try:
            seed = await seed_company(connection)
            await deliver_changes(database, connection, seed)
        finally:
            await connection.close()


@contextlib.contextmanager
def throwaway_cluster_unless(dsn: str | None) -> Iterator[str]:
    if dsn is not None:
        say(f"Using the database at {db.describe(db.check_dsn(dsn))}.")
        yield dsn
        return
    cluster = ThrowawayCluster()
    try:
        database = cluster.start()
        say(f"Started a throwaway PostgreSQL cluster on 127.0.0.1:{cluster.port}.")
        yield database
    finally:
        cluster.stop()
        say("Stopped the throwaway cluster and removed its directory.")


async def seed_company(connection: asyncpg.Connection) -> Seed:
    """A company, two users who are members of a project, and its Inbox list."""
    suffix = secrets.token_hex(3)
    async with connection.transaction():
        company_id = await connection.fetchval(
            "INSERT INTO companies (slug, name) VALUES ($1, 'Acme') RETURNING id",
            f"acme-{suffix}",
        )
        user_id = await connection.fetchval(
            "INSERT INTO users (company_id, email, first_name, last_name)"
            " VALUES ($1, $2, 'Ada', 'Lovelace') RETURNING id",
            company_id,
            f"ada-{suffix}@example.org",
        )
        # Someone to assign the todo to.
        colleague_id = await connection.fetchval(
            "INSERT INTO users (company_id, email, first_name, last_name)"
            " VALUES ($1, $2, 'Grace', 'Hopper') RETURNING id",
            company_id,
            f"grace-{suffix}@example.org",
        )
        project_id = await connection.fetchval(
            "INSERT INTO projects (company_id, slug, name)"
            " VALUES ($1, $2, 'Operations') RETURNING id",
            company_id,
            f"ops-{suffix}",
        )
        await connection.executemany(
            "INSERT INTO project_users (project_id, user_id) VALUES ($1, $2)",
            [(project_id, user_id), (project_id, colleague_id)],
        )
        list_id = await connection.fetchval(
            "INSERT INTO todo_lists (project_id, title, position)"
            " VALUES ($1, 'Inbox', 131070) RETURNING id",
            project_id,
        )
    say(
        f"Seeded company {company_id}, users {user_id} and {colleague_id},"
        f" project {project_id}."
    )
    ids = {
        "user": user_id,
        "colleague": colleague_id,
        "project": project_id,
        "inbox": list_id,
        "next_list": f"lst_demo_{suffix}",
        "todo": f"tdo_demo_{suffix}",
        "comment": f"cmt_demo_{suffix}",
        "checklist": f"chk_demo_{suffix}",
        "checklist_item": f"cki_demo_{suffix}",
        "tag": f"tag_demo_{suffix}",
        "custom_field": f"cfd_demo_{suffix}",
    }
    return Seed(company_id, user_id, project_id, ids)


async def deliver_changes(dsn: str, connection: asyncpg.Connection, seed: Seed) -> None:
    commit_times: dict[str, float] = {}
    printer = DeliveryPrinter(commit_times)

    async with running_receiver(printer.print) as receiver:
        webhook_id, secret = await asyncio.to_thread(
            register_webhook, dsn, seed, receiver
        )
        receiver.expect_secret(PATH, secret)
        try:
            async with running_relay(dsn):
                print(HEADER)
                for number, step in enumerate(STEPS, start=1):
                    await make_change(connection, seed, step, commit_times)
                    await wait_for_delivery(receiver, number, step)
                await check_recorded(connection, webhook_id)
        finally:
            await asyncio.to_thread(delete_webhook, dsn, webhook_id)

    printer.summarise()


async def make_change(
    connection: asyncpg.Connection,
    seed: Seed,
    step: Step,
    commit_times: dict[str, float],
) -> None:
    async with connection.transaction():
        # The application names the acting user for the triggers, per transaction.
        await connection.execute(
            "SELECT set_config('relay.actor_id', $1, true)", seed.user_id
        )
        await connection.execute(step.statement, *(seed.ids[key] for key in step.keys))

        # A cascade or a second changed field would add events that the rows could
        # not tell apart from the next steps' ones: refuse them before the commit.
        events = await connection.fetchval(EVENTS_OF_THIS_TRANSACTION)
        if events != [step.event]:
            raise RelayError(
                f"the change for {step.event} gave the events {events};"
                " each change of the demo must give exactly its own"
            )

        # Noted as the COMMIT is sent: PostgreSQL makes the change visible, and the
        # relay may deliver it, a few milliseconds before its answer comes back.
        commit_times[step.event] = time.time()


async def wait_for_delivery(receiver: Receiver, number: int, step: Step) -> None:
    try:
        await receiver.wait_for(number, path=PATH, timeout=WAIT_SECONDS)
    except TimeoutError:
        raise RelayError(
            f"{step.event} did not arrive within {WAIT_SECONDS:.0f} s"
        ) from None


def register_webhook(dsn: str, seed: Seed, receiver: Receiver) -> tuple[str, str]:
    with db.connect(dsn) as connection:
        created, secret = webhooks.create(
            connection,
            webhooks.NewWebhook(
                name="Demo receiver",
                url=receiver.url(PATH),
                created_by_id=seed.user_id,
                project_ids=[seed.project_id],
            ),
        )
    say(f"Registered webhook {created['id']} for {receiver.url(PATH)}.")
    return str(created["id"]), secret


def delete_webhook(dsn: str, webhook_id: str) -> None:
    with db.connect(dsn) as connection:
        webhooks.delete(connection, webhook_id)


async def check_recorded(connection: asyncpg.Connection, webhook_id: str) -> None:
    """Every delivery ends marked delivered once its 2xx has been recorded."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        delivered = await connection.fetchval(
            "SELECT count(*) FROM relay.deliveries"
            " WHERE webhook_id = $1 AND state = 'delivered'",
            webhook_id,
        )
        if delivered == len(STEPS):
            say(f"All {delivered} deliveries are recorded as delivered.")
            return
        await asyncio.sleep(0.05)
    raise RelayError("the deliveries were not all recorded as delivered in time")


@contextlib.asynccontextmanager
async def running_receiver(
    on_request: Callable[[ReceivedRequest], None],
) -> AsyncIterator[Receiver]:
    receiver = Receiver(on_request)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


@contextlib.asynccontextmanager
async def running_relay(dsn: str) -> AsyncIterator[RelayService]:
    relay = RelayService(Settings(dsn=dsn, retry_schedule=(1.0,) * 7))
    task = asyncio.create_task(relay.run())
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            await relay.ready.wait()
        say("The relay is listening.")
        yield relay
    finally:
        relay.stop()
        await task


class DeliveryPrinter:
    """Prints each delivery as it arrives and keeps the figures for a summary."""

    def __init__(self, commit_times: dict[str, float]) -> None:
        self.commit_times = commit_times
        self.latencies_ms: list[float] = []
        self.verified = 0
        self.created_todo: dict[str, Any] | None = None

    def print(self, request: ReceivedRequest) -> None:
        event = request.payload["event"]
        if event == "TODO_CREATED":
            self.created_todo = request.payload["currentValue"]
        committed = self.commit_times.get(event)
        latency = (
            (request.received_at - committed) * 1000 if committed else float("nan")
        )
        self.latencies_ms.append(latency)
        self.verified += bool(request.signature_verified)
        signature = "verified" if request.signature_verified else "BAD"
        number = len(self.latencies_ms)
        print(
            f"{number:>2}  {event:<{EVENT_WIDTH}} {signature:<10} {latency:>14.1f} ms",
            flush=True,
        )

    def summarise(self) -> None:
        count = len(self.latencies_ms)
        if count != len(STEPS) or self.verified != count:
            raise RelayError(
                f"{count} of {len(STEPS)} events arrived, {self.verified} verified"
            )
        print(
            f"{count} events delivered, {self.verified} signatures verified; "
            f"commit to receipt median {statistics.median(self.latencies_ms):.1f} ms, "
            f"max {max(self.latencies_ms):.1f} ms."
        )
        if self.created_todo is not None:
            todo = self.created_todo
            project = todo["todoList"]["project"]
            print(
                f"TODO_CREATED carried its context: todo {todo['title']!r} in list "
                f"{todo['todoList']['title']!r} of project {project['name']!r} "
                f"of company {project['company']['name']!r}."
            )


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
