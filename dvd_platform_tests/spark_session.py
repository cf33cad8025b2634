"""The test session's SparkSession, as a run of the platform gets it."""

from __future__ import annotations


def live_spark():
    """The session stack's SparkSession, as a run gets it (``SparkResource``): a client of the stack's Spark
    Connect server (``DVD_SPARK_REMOTE``), renewed when the server has closed it (idle for 10 minutes while
    this worker ran other tests). A process holds a Connect client or a classic driver, never both: classic
    runs happen in subprocesses (``two_runs``)."""
    from dagster import build_init_resource_context

    from dvd_platform.resources.spark import SparkResource

    resource = SparkResource()
    resource.setup_for_execution(build_init_resource_context())
    return resource.session
