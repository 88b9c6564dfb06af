"""Knowledge bases: files, vector stores, ingestion and search."""
