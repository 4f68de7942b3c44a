"""Ingest: turn CSV, Parquet and JSON input into point batches plus dead letters."""
