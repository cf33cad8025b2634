"""S3 access (landing and lake buckets) on dagster-aws's S3 resource."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from dagster_aws.s3 import S3Resource
from pydantic import PrivateAttr


def s3_client(endpoint_url: str | None, access_key: str | None = None, secret_key: str | None = None,
              region: str | None = None, *, connect_timeout: float = 5, retries: int = 3):
    """A boto3 S3 client (path-style addressing, standard retries); credentials default to the standard
    AWS environment variables and an empty ``endpoint_url`` means AWS S3.

    The one client factory of the platform: :class:`S3Buckets` uses it when no endpoint is configured,
    and the local stack (``dvd_platform.dev.stack``) for its moto endpoint.
    """
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url or None,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region or "us-east-1",
        config=Config(
            connect_timeout=connect_timeout,
            read_timeout=60,
            retries={"max_attempts": retries, "mode": "standard"},
            max_pool_connections=32,
            s3={"addressing_style": "path"},
        ),
    )


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
        return s3_client(None, self.aws_access_key_id, self.aws_secret_access_key, self.region_name,
                         retries=self.max_attempts)
