"""Autogenerate the next migration: diff the models against a scratch database at head."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from parley.db.migrate import alembic_config, upgrade


def main(message: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'scratch.db'}"
        upgrade(url)
        command.revision(
            alembic_config(url), message=message, autogenerate=True, rev_id=_next_rev_id()
        )


def _next_rev_id() -> str:
    """Revisions are numbered 0001, 0002...: their order reads at a glance."""
    versions = Path(__file__).with_name("migrations") / "versions"
    numbers = [int(p.name[:4]) for p in versions.glob("[0-9][0-9][0-9][0-9]_*.py")]
    return f"{max(numbers, default=0) + 1:04d}"


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].strip():
        sys.exit('usage: make migration m="what changed"')
    main(sys.argv[1])
