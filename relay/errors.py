"""The one exception tree of relay; the CLI turns these into one-line errors."""

from __future__ import annotations


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
