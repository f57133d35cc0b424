"""Named SQL queries, loaded once from the ``.sql`` files beside the migrations.

A query file holds blocks that start with ``-- name: <name>`` followed by a
one-line ``-- <purpose>``; the text up to the next ``-- name:`` is the query.
Python passes values as parameters and never formats them into this text.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

_NAME_LINE = re.compile(r"^-- name: (?P<name>[a-z_]+)\s*$", re.MULTILINE)


def sql_root() -> Path:
    """The ``sql`` folder: packaged inside ``relay`` or beside it in a checkout."""
    packaged = Path(__file__).with_name("sql")
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "sql"


@functools.cache
def load(file_stem: str) -> dict[str, str]:
    """The named queries of ``sql/queries/<file_stem>.sql``."""
    text = (sql_root() / "queries" / f"{file_stem}.sql").read_text(encoding="utf-8")
    matches = list(_NAME_LINE.finditer(text))
    queries: dict[str, str] = {}
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        queries[match["name"]] = text[match.end() : end].strip()
    return queries
