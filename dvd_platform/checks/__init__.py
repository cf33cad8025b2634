"""Data-quality gates: staged checks (Spark), warehouse checks (SQL) and declarative SQL checks."""
