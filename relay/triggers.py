"""relay's triggers against what the migrations installed: compare, restore, disable.

The list of triggers and how each was installed come from the catalogue of
migration 0030 (``relay.installed_triggers``), never from a list kept here.

Note on disable versus drop. Uninstalling disables the capture triggers
(``DISABLE TRIGGER``) rather than dropping them: their definitions stay where
the migrations put them and a DBA sees them in ``\\d``. Installing puts back the
recorded state, which for capture is ``ENABLE ALWAYS``; a trigger that is gone
(a restore without triggers, a hand's ``DROP``) is created again from its
recorded definition, and one whose definition differs is dropped and created
again, all in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from relay import queries
from relay.errors import DatabaseError, MigrationError

logger = logging.getLogger(__name__)

# What psycopg executes: a fixed text or one composed with quoted identifiers.
Statement = sql.SQL | sql.Composed

# pg_trigger.tgenabled, in words.
ENABLED_WORDS = {
    "O": "origin only",
    "A": "always",
    "R": "replica only",
    "D": "disabled",
}

# The ALTER TABLE clause that gives each state.
_ENABLE_CLAUSES = {
    "O": "ENABLE TRIGGER",
    "A": "ENABLE ALWAYS TRIGGER",
    "R": "ENABLE REPLICA TRIGGER",
    "D": "DISABLE TRIGGER",
}

# What uninstall switches off: the triggers that write events and the ones that
# only serve them. The TRUNCATE guard and the relay's own triggers stay.
UNINSTALLED_KINDS = ("capture", "context")

# How long a step waits for its table's lock before the whole change gives up:
# ALTER TABLE queues behind a long transaction and every writer queues behind it.
LOCK_TIMEOUT = "5s"


@dataclass(frozen=True)
class TriggerState:
    schema: str
    table: str
    name: str
    kind: str
    definition: str
    recorded_enabled: str
    enabled: str | None
    same_definition: bool | None

    @property
    def qualified_table(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def present(self) -> bool:
        return self.enabled is not None

    @property
    def difference(self) -> str | None:
        """How it differs from what the migrations installed; None if it does not."""
        if self.enabled is None:
            return "missing"
        if not self.same_definition:
            return "definition differs"
        if self.enabled != self.recorded_enabled:
            return (
                f"{ENABLED_WORDS[self.enabled]}, installed"
                f" {ENABLED_WORDS[self.recorded_enabled]}"
            )
        return None

    def describe(self) -> dict[str, Any]:
        """The facts ``relay triggers status`` prints."""
        return {
            "table": self.qualified_table,
            "trigger": self.name,
            "kind": self.kind,
            "present": self.present,
            "enabled": ENABLED_WORDS[self.enabled] if self.enabled else None,
            "as_installed": self.difference is None,
            "difference": self.difference,
        }


@dataclass(frozen=True)
class Step:
    """One statement of a change, with what it does to which trigger."""

    table: str
    trigger: str
    action: str
    statement: Statement

    def describe(self, connection: psycopg.Connection[Any]) -> dict[str, Any]:
        return {
            "table": self.table,
            "trigger": self.trigger,
            "action": self.action,
            "sql": self.statement.as_string(connection),
        }


def read_states(connection: psycopg.Connection[Any]) -> list[TriggerState]:
    """Every catalogued trigger and its state now; capture first."""
    [catalogue] = connection.execute(
        "SELECT to_regclass('relay.installed_triggers')"
    ).fetchone() or (None,)
    if catalogue is None:
        raise MigrationError(
            "this database has no catalogue of relay's triggers"
            " (migration 0030_trigger_catalogue); run relay migrate first"
        )
    rows = connection.execute(queries.load("triggers")["trigger_states"])
    return [TriggerState(*row) for row in rows]


def _alter(state: TriggerState, enabled: str) -> Statement:
    return sql.SQL("ALTER TABLE {} {} {}").format(
        sql.Identifier(state.schema, state.table),
        sql.SQL(_ENABLE_CLAUSES[enabled]),
        sql.Identifier(state.name),
    )


def _step(state: TriggerState, action: str, statement: Statement) -> Step:
    return Step(state.qualified_table, state.name, action, statement)


def install_plan(states: Sequence[TriggerState]) -> list[Step]:
    """The statements that put every trigger back as installed; none if it is."""
    steps: list[Step] = []
    for state in states:
        if state.difference is None:
            continue
        if state.present and not state.same_definition:
            drop = sql.SQL("DROP TRIGGER {} ON {}").format(
                sql.Identifier(state.name),
                sql.Identifier(state.schema, state.table),
            )
            steps.append(_step(state, "drop (definition differs)", drop))
        if not (state.present and state.same_definition):
            # The recorded text of pg_get_triggerdef, every name qualified.
            steps.append(_step(state, "create", sql.SQL(state.definition)))
        steps.append(_enable_as_recorded(state))
    return steps


def _enable_as_recorded(state: TriggerState) -> Step:
    """ALTER TABLE ... ENABLE ALWAYS TRIGGER ..., or as the catalogue says."""
    clause = _ENABLE_CLAUSES[state.recorded_enabled]
    action = clause.lower().removesuffix(" trigger")
    return _step(state, action, _alter(state, state.recorded_enabled))


def uninstall_plan(states: Sequence[TriggerState]) -> list[Step]:
    """The statements that disable capture; none if it is disabled already."""
    return [
        _step(state, "disable", _alter(state, "D"))
        for state in states
        if state.kind in UNINSTALLED_KINDS and state.enabled not in (None, "D")
    ]


def _prelude() -> list[Statement]:
    return [
        sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)),
        # The recorded definitions name everything in full; nothing may redirect.
        sql.SQL("SET LOCAL search_path = pg_catalog, pg_temp"),
    ]


def transaction_text(connection: psycopg.Connection[Any], steps: Sequence[Step]) -> str:
    """The exact SQL that ``run_plan`` sends, as one script."""
    statements = [*_prelude(), *(step.statement for step in steps)]
    lines = [f"{statement.as_string(connection)};" for statement in statements]
    return "\n".join(["BEGIN;", *lines, "COMMIT;"])


def run_plan(connection: psycopg.Connection[Any], steps: Sequence[Step]) -> None:
    """Run every step in one transaction: all of them happen or none."""
    with connection.transaction():
        for statement in _prelude():
            connection.execute(statement)
        for step in steps:
            try:
                connection.execute(step.statement)
            except psycopg.errors.LockNotAvailable as error:
                raise DatabaseError(
                    f"could not lock {step.table} within {LOCK_TIMEOUT}: a long"
                    " transaction holds it; nothing was changed, try again"
                ) from error
    logger.info(
        "Changed %d relay triggers.",
        len(steps),
        extra={"action": "triggers", "steps": len(steps)},
    )
