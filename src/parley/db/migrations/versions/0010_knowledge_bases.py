"""knowledge bases: files, vector stores, their files and batches, and chunks

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 10:30:00.000000

On PostgreSQL this needs the pgvector extension (any PostgreSQL 15+ with pgvector, for
example the pgvector/pgvector image). Keyword search is a generated tsvector column with a
GIN index there, and an FTS5 table kept in step by triggers on SQLite; vectors get HNSW
indexes per common dimension on PostgreSQL (the embedded stack searches them in process).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import parley.db.base
import parley.knowledge.models

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The dimensions of the embedding models people use most (MiniLM 384, BGE/E5 base 768,
# large 1024, OpenAI's small 1536); others are searched exactly, without an index.
HNSW_DIMS = (384, 768, 1024, 1536)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    utc = parley.db.base.UTCDateTime(timezone=True)
    op.create_table(
        "files",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("purpose", sa.String(length=40), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=120), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("blob_key", sa.String(length=300), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", utc, nullable=False),
        sa.Column("expires_at", utc, nullable=True),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
    )
    op.create_index(op.f("ix_files_org_id"), "files", ["org_id"], unique=False)
    op.create_table(
        "vector_stores",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("embedding_model", sa.String(length=200), nullable=False),
        sa.Column("dims", sa.Integer(), nullable=True),
        sa.Column("chunking_strategy", sa.JSON(), nullable=False),
        sa.Column("expires_after", sa.JSON(), nullable=True),
        sa.Column("expires_at", utc, nullable=True),
        sa.Column("last_active_at", utc, nullable=False),
        sa.Column("usage_bytes", sa.BigInteger(), nullable=False),
        sa.Column("index_version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", utc, nullable=False),
        sa.Column("deleted_at", utc, nullable=True),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vector_stores")),
    )
    op.create_index(op.f("ix_vector_stores_org_id"), "vector_stores", ["org_id"], unique=False)
    op.create_table(
        "vector_store_file_batches",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("vector_store_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", utc, nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["vector_store_id"],
            ["vector_stores.id"],
            name=op.f("fk_vector_store_file_batches_vector_store_id_vector_stores"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vector_store_file_batches")),
    )
    op.create_index(
        op.f("ix_vector_store_file_batches_org_id"),
        "vector_store_file_batches",
        ["org_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_vector_store_file_batches_vector_store_id"),
        "vector_store_file_batches",
        ["vector_store_id"],
        unique=False,
    )
    op.create_table(
        "vector_store_files",
        sa.Column("vector_store_id", sa.String(length=40), nullable=False),
        sa.Column("file_id", sa.String(length=40), nullable=False),
        sa.Column("batch_id", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.JSON(), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("chunking_strategy", sa.JSON(), nullable=False),
        sa.Column("usage_bytes", sa.BigInteger(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("created_at", utc, nullable=False),
        sa.Column("updated_at", utc, nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_vector_store_files_file_id_files")
        ),
        sa.ForeignKeyConstraint(
            ["vector_store_id"],
            ["vector_stores.id"],
            name=op.f("fk_vector_store_files_vector_store_id_vector_stores"),
        ),
        sa.PrimaryKeyConstraint("vector_store_id", "file_id", name=op.f("pk_vector_store_files")),
    )
    op.create_index(
        op.f("ix_vector_store_files_batch_id"), "vector_store_files", ["batch_id"], unique=False
    )
    op.create_index(
        op.f("ix_vector_store_files_file_id"), "vector_store_files", ["file_id"], unique=False
    )
    op.create_index(
        op.f("ix_vector_store_files_org_id"), "vector_store_files", ["org_id"], unique=False
    )
    op.create_index(
        "ix_vector_store_files_status",
        "vector_store_files",
        ["vector_store_id", "status"],
        unique=False,
    )
    op.create_table(
        "chunks",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("vector_store_id", sa.String(length=40), nullable=False),
        sa.Column("file_id", sa.String(length=40), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("heading", sa.Text(), nullable=True),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("dims", sa.Integer(), nullable=True),
        sa.Column("embedding", parley.knowledge.models.Embedding(), nullable=True),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(["file_id"], ["files.id"], name=op.f("fk_chunks_file_id_files")),
        sa.ForeignKeyConstraint(
            ["vector_store_id"],
            ["vector_stores.id"],
            name=op.f("fk_chunks_vector_store_id_vector_stores"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chunks")),
    )
    op.create_index(op.f("ix_chunks_org_id"), "chunks", ["org_id"], unique=False)
    op.create_index("ix_chunks_store_file", "chunks", ["vector_store_id", "file_id"], unique=False)
    if postgres:
        op.execute(
            "ALTER TABLE chunks ADD COLUMN tsv tsvector GENERATED ALWAYS AS "
            "(to_tsvector('english', coalesce(heading, '') || ' ' || text)) STORED"
        )
        op.execute("CREATE INDEX ix_chunks_tsv ON chunks USING gin (tsv)")
        for dims in HNSW_DIMS:
            op.execute(
                f"CREATE INDEX ix_chunks_embedding_{dims} ON chunks USING hnsw "
                f"((embedding::vector({dims})) vector_cosine_ops) WHERE dims = {dims}"
            )
    else:
        op.execute(
            "CREATE VIRTUAL TABLE chunks_fts USING fts5(text, heading, content='chunks', "
            "content_rowid='rowid', tokenize='porter unicode61')"
        )
        op.execute(
            "CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN "
            "INSERT INTO chunks_fts(rowid, text, heading) "
            "VALUES (new.rowid, new.text, coalesce(new.heading, '')); END"
        )
        op.execute(
            "CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN "
            "INSERT INTO chunks_fts(chunks_fts, rowid, text, heading) "
            "VALUES ('delete', old.rowid, old.text, coalesce(old.heading, '')); END"
        )
        op.execute(
            "CREATE TRIGGER chunks_fts_update AFTER UPDATE OF text, heading ON chunks BEGIN "
            "INSERT INTO chunks_fts(chunks_fts, rowid, text, heading) "
            "VALUES ('delete', old.rowid, old.text, coalesce(old.heading, '')); "
            "INSERT INTO chunks_fts(rowid, text, heading) "
            "VALUES (new.rowid, new.text, coalesce(new.heading, '')); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for trigger in ("chunks_fts_insert", "chunks_fts_delete", "chunks_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS chunks_fts")
    op.drop_table("chunks")
    op.drop_table("vector_store_files")
    op.drop_table("vector_store_file_batches")
    op.drop_table("vector_stores")
    op.drop_table("files")
