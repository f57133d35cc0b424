"""The rows of the benchmark: printed as a table and written as JSON."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One figure, its baseline from the same run, and the target it is held to."""

    figure: str
    measured: str
    value: float
    baseline_name: str
    baseline: float
    ratio: float
    target: str
    met: bool | None
    unit: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def print_table(rows: list[Row]) -> None:
    header = (
        "figure",
        "measured",
        "value",
        "baseline",
        "base value",
        "ratio",
        "target",
    )
    lines = [
        (
            row.figure,
            row.measured,
            f"{row.value:,.1f} {row.unit}".strip(),
            row.baseline_name,
            f"{row.baseline:,.1f} {row.unit}".strip(),
            f"{row.ratio:.2f}",
            f"{row.target} {mark(row.met)}".strip(),
        )
        for row in rows
    ]
    widths = [max(len(str(item[i])) for item in [header, *lines]) for i in range(7)]
    for item in [header, *lines]:
        print(
            "  ".join(
                str(cell).ljust(width) for cell, width in zip(item, widths, strict=True)
            )
        )


def mark(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: ""}[met]


def git_commit() -> str:
    def git(*arguments: str) -> str:
        return subprocess.run(
            ["git", *arguments], capture_output=True, text=True, check=False
        ).stdout.strip()

    commit = git("rev-parse", "HEAD") or "unknown"
    return commit + (
        "-dirty" if git("status", "--porcelain", "--untracked-files=no") else ""
    )


def write_json(
    path: Path, rows: list[Row], started: datetime, meta: dict[str, Any]
) -> None:
    document = {
        "git_commit": git_commit(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        **meta,
        "rows": [asdict(row) for row in rows],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
