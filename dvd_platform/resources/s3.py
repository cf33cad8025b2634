"""S3 access (landing and lake buckets) on dagster-aws's S3 resource."""

from __future__ import annotations

from dagster_aws.s3 import S3Resource


class S3Buckets(S3Resource):
    """dagster-aws's S3 resource plus the platform's two buckets.

    ``endpoint_url`` points at moto locally, MinIO in docker-compose, and is
    unset for AWS S3; credentials come from the standard AWS variables.
    """

    landing_bucket: str = "dvd-landing"
    lake_bucket: str = "dvd-lake"
