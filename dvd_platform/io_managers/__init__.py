"""IO managers: raw S3 references, Parquet snapshots, and the PostgreSQL warehouse."""
