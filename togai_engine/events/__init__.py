"""Usage events: validation, idempotent ingestion, event schemas (see README.md)."""
