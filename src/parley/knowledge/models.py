"""Files, knowledge bases (OpenAI's vector stores), the files in them, and their chunks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from parley.db.base import Base, IdMixin, OrgOwnedMixin
from parley.kit.clock import utcnow


class Embedding(TypeDecorator[np.ndarray]):
    """A float32 vector: pgvector's `vector` on PostgreSQL, little-endian bytes on SQLite
    (searched by the in-process index)."""

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            from pgvector.sqlalchemy import VECTOR

            return dialect.type_descriptor(VECTOR())
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        vector = np.asarray(value, dtype=np.float32)
        return vector if dialect.name == "postgresql" else vector.astype("<f4").tobytes()

    def process_result_value(self, value: Any, dialect: Dialect) -> np.ndarray | None:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return np.asarray(value, dtype=np.float32)
        return np.frombuffer(value, dtype="<f4")


class File(IdMixin, OrgOwnedMixin, Base):
    """An uploaded file (OpenAI's file object); its bytes live in the blob store."""

    __tablename__ = "files"

    filename: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(40))  # assistants | user_data
    bytes: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(120))
    sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String(300))
    created_by: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column()


class VectorStore(IdMixin, OrgOwnedMixin, Base):
    """A knowledge base: files indexed together and searched together."""

    __tablename__ = "vector_stores"

    name: Mapped[str | None] = mapped_column(String(255))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    embedding_model: Mapped[str] = mapped_column(String(200))
    dims: Mapped[int | None] = mapped_column(Integer)  # set by the first embedded chunk
    chunking_strategy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # OpenAI's expires_after: {"anchor": "last_active_at", "days": N}
    expires_after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    expires_at: Mapped[datetime | None] = mapped_column()
    last_active_at: Mapped[datetime] = mapped_column(default=utcnow)
    usage_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    # Bumped whenever its chunks change, so in-process indexes know to reload.
    index_version: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column()


class FileBatch(IdMixin, OrgOwnedMixin, Base):
    """Files added to a knowledge base together (OpenAI's vector_store.file_batch)."""

    __tablename__ = "vector_store_file_batches"

    vector_store_id: Mapped[str] = mapped_column(ForeignKey("vector_stores.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="in_progress")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class VectorStoreFile(OrgOwnedMixin, Base):
    """A file in a knowledge base, and where its ingestion stands (OpenAI's
    vector_store.file, whose id is the file's)."""

    __tablename__ = "vector_store_files"
    __table_args__ = (Index("ix_vector_store_files_status", "vector_store_id", "status"),)

    vector_store_id: Mapped[str] = mapped_column(ForeignKey("vector_stores.id"), primary_key=True)
    file_id: Mapped[str] = mapped_column(ForeignKey("files.id"), primary_key=True, index=True)
    batch_id: Mapped[str | None] = mapped_column(String(40), index=True)
    # in_progress | completed | failed | cancelled
    status: Mapped[str] = mapped_column(String(20), default="in_progress")
    # queued | extracting | chunking | embedding | indexed (Parley's detail of in_progress)
    stage: Mapped[str] = mapped_column(String(20), default="queued")
    progress: Mapped[int] = mapped_column(Integer, default=0)  # percent
    last_error: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # {"code", "message"}
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    chunking_strategy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    usage_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Chunk(IdMixin, OrgOwnedMixin, Base):
    """A searchable piece of a file in one knowledge base, with where it came from.

    Keyword search: on SQLite the `chunks_fts` FTS5 table (kept in step by triggers), on
    PostgreSQL the generated `tsv` column; both are made by the migration, not here."""

    __tablename__ = "chunks"
    __table_args__ = (Index("ix_chunks_store_file", "vector_store_id", "file_id"),)

    vector_store_id: Mapped[str] = mapped_column(ForeignKey("vector_stores.id"))
    file_id: Mapped[str] = mapped_column(ForeignKey("files.id"))
    ordinal: Mapped[int] = mapped_column(Integer)  # position in the file
    text: Mapped[str] = mapped_column(Text)
    heading: Mapped[str | None] = mapped_column(Text)  # "Part > Section > Subsection"
    page: Mapped[int | None] = mapped_column(Integer)
    tokens: Mapped[int] = mapped_column(Integer)
    dims: Mapped[int | None] = mapped_column(Integer)
    embedding: Mapped[np.ndarray | None] = mapped_column(Embedding)
