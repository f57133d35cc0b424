"""The one exception tree of relay; the CLI turns these into one-line errors.

Exit statuses of every command: 0 done (or all well), 1 a failure (nothing could
be checked or done), 2 bad input (nothing was changed), and for the checks
(``status``, ``migrate --status``, ``triggers status``) 3: checked, and something
needs an operator.
"""

from __future__ import annotations

NEEDS_ACTION_EXIT = 3


class RelayError(Exception):
    """Root of every error relay raises on purpose."""

    exit_code = 1


class ConfigError(RelayError):
    """The operator's input or environment is wrong; nothing was changed."""

    exit_code = 2


class DatabaseError(RelayError):
    """PostgreSQL could not be reached or refused what was asked of it."""


class MigrationError(RelayError):
    """The migrations on disk and the ones applied to the database disagree."""
