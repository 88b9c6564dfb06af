"""Schema objects the migrations make by hand, which the models do not describe: keyword
indexes (SQLite's FTS5 table, PostgreSQL's generated tsvector) and per-dimension vector
indexes. Model/migration comparisons leave them out."""

from __future__ import annotations

from typing import Any

_TABLE_PREFIXES = ("chunks_fts",)
_INDEX_PREFIXES = ("ix_chunks_tsv", "ix_chunks_embedding_")
_COLUMNS = {("chunks", "tsv")}


def described_by_models(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic's include_object: False for what the migrations made by hand."""
    name = name or ""
    if type_ == "table":
        return not name.startswith(_TABLE_PREFIXES)
    if type_ == "index":
        return not name.startswith(_INDEX_PREFIXES)
    if type_ == "column":
        return (obj.table.name, name) not in _COLUMNS
    return True
