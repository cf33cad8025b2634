"""Turn a count of offending rows into an AssetCheckResult that explains itself."""

from __future__ import annotations

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, MetadataValue

SAMPLE_ROWS = 10


def result(name: str, offending: int, *, severity: AssetCheckSeverity, query: str, samples: list | None = None,
           asset_key=None, passed: bool | None = None, **extra) -> AssetCheckResult:
    """A check result: passed when nothing offends; metadata holds the count, up to 10 sample
    offending rows and the query that found them."""
    metadata = {"offending_rows": offending, "query": MetadataValue.md(f"```sql\n{query.strip()}\n```"), **extra}
    if samples:
        metadata["samples"] = MetadataValue.json([_jsonable(s) for s in samples[:SAMPLE_ROWS]])
    return AssetCheckResult(
        check_name=name, asset_key=asset_key, passed=offending == 0 if passed is None else passed,
        severity=severity, metadata=metadata,
    )


def _jsonable(row) -> dict:
    data = row.asDict() if hasattr(row, "asDict") else dict(row)
    return {k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v)) for k, v in data.items()}


def spec(asset: str, name: str, description: str, blocking: bool = True) -> AssetCheckSpec:
    return AssetCheckSpec(name=name, asset=asset, description=description, blocking=blocking)
