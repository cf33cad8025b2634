"""S3 access (landing and lake buckets) on dagster-aws's S3 resource."""

from __future__ import annotations

from typing import Any

from dagster_aws.s3 import S3Resource
from pydantic import PrivateAttr


class S3Buckets(S3Resource):
    """dagster-aws's S3 resource plus the platform's two buckets.

    ``endpoint_url`` points at moto locally, MinIO in docker-compose, and is
    unset for AWS S3; credentials come from the standard AWS variables.
    """

    landing_bucket: str = "dvd-landing"
    lake_bucket: str = "dvd-lake"
    #: Requests a step keeps in flight at once. More than the endpoint serves in parallel only queue
    #: there and contend for this process's GIL (moto is one Python process; benchmarks/pipeline_benchmark.py).
    max_concurrency: int = 8

    _client: Any = PrivateAttr(default=None)

    def get_client(self):
        """One client per resource instance, shared by its threads (boto3 clients are thread-safe).

        Building one costs about 0.4 s here (a boto3 session, its service model):
        raw intake asked for one per table and per input, 30 per range run.
        """
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _new_client(self):
        """dagster-aws's client, except that an empty endpoint means AWS S3 (boto3 rejects "")."""
        if self.endpoint_url:
            return super().get_client()
        from dvd_platform.stack.s3 import s3_client

        return s3_client(None, self.aws_access_key_id, self.aws_secret_access_key, self.region_name,
                         retries=self.max_attempts)
