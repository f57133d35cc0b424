"""relay: outgoing webhooks from PostgreSQL, captured by triggers, sent by asyncio."""

__version__ = "0.1.0"
