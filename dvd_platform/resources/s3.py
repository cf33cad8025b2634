"""S3 access (landing and lake buckets) on dagster-aws's S3 resource."""

from __future__ import annotations

import json
import os
import threading
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


def listed_range(client, bucket: str, prefix: str, start_after: str, end: str) -> dict[str, tuple[str, int]]:
    """``key -> (ETag, size)`` of the objects under ``prefix`` whose keys sort after ``start_after`` and up
    to ``end``: one paginated LIST that stops at the first key past ``end`` (the raw zone's day and month
    keys sort by date, so a window costs a listing, not a request per object)."""
    found: dict[str, tuple[str, int]] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, StartAfter=start_after):
        for item in page.get("Contents", []):
            if item["Key"] > end:
                return found
            found[item["Key"]] = (item["ETag"], item["Size"])
    return found


#: The environment a client's defaults come from (credentials, profile and its files, role, region, endpoint,
#: CA bundle): part of its cache key.
AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION",
           "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
           "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CA_BUNDLE")
#: Fields of :class:`S3Buckets` that the client does not depend on: left out of its cache key.
NOT_CLIENT_FIELDS = {"landing_bucket", "lake_bucket", "max_concurrency"}
_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


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
        """One client per process and configuration, shared by threads, runs and sensor ticks (boto3 clients
        are thread-safe).

        Building one costs 0.2-0.4 s here (a boto3 session, its service model). Dagster makes a resource
        instance per run, and one per resource that nests it (the raw IO manager's), and the landing
        sensor one per tick: a client per instance cost a one-day run about 0.5 s. The key holds the
        resource's client fields and the AWS variables its defaults read, so changed settings get a new
        client. Credentials that refresh themselves (a role, SSO, instance metadata) refresh in it; static
        keys rewritten in a credentials file are read when the process (the code server) restarts.
        """
        if self._client is None:
            fields = self.model_dump(exclude=NOT_CLIENT_FIELDS)
            key = json.dumps([fields, [os.environ.get(v) for v in AWS_ENV]], sort_keys=True, default=str)
            with _clients_lock:
                if key not in _clients:
                    _clients[key] = self._new_client()
                self._client = _clients[key]
        return self._client

    def _new_client(self):
        """dagster-aws's client, except that an empty endpoint means AWS S3 (boto3 rejects "")."""
        if self.endpoint_url:
            return super().get_client()
        return s3_client(None, self.aws_access_key_id, self.aws_secret_access_key, self.region_name,
                         retries=self.max_attempts)
