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

    def get_client(self):
        """dagster-aws's client, except that an empty endpoint means AWS S3 (boto3 rejects "")."""
        if self.endpoint_url:
            return super().get_client()
        from dvd_platform.stack.s3 import s3_client

        return s3_client(None, self.aws_access_key_id, self.aws_secret_access_key, self.region_name,
                         retries=self.max_attempts)
