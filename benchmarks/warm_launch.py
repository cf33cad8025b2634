"""One day launched on a running instance, as the UI launches it: the ``warm`` section of pipeline_benchmark.

``make up`` leaves `dg dev` running (webserver, daemon, code server) on the local stack with its
Spark Connect server. This starts the same `dg dev` (the same argv as ``up``) on a bench stack
whose drops are seeded, lets the daemon catch up as it would after ``make up`` (the landing
sensor's runs, automation's), and then launches ``daily_pipeline`` for one day over GraphQL
(``launchRun``, what the UI's Launch sends), timing the launch to the run's success as seen by
polling GraphQL, and the run's own queue and run times as Dagster recorded them.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from common import log

from dvd_platform.dev.stack.procs import end_group, free_port
from dvd_platform.dev.up import dagster_argv, dagster_dev_place

IN_FLIGHT = "[QUEUED, NOT_STARTED, STARTING, STARTED, CANCELING]"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
LAUNCH = """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on InvalidSubsetError { message } ... on RunConfigValidationInvalid { errors { message } } } }"""
RUN = """query($id: ID!) { runOrError(runId: $id) { __typename
  ... on Run { status creationTime startTime endTime } } }"""


@dataclass
class DagsterDev:
    """`dg dev` on a bench stack's environment, in its own process group."""

    env: dict[str, str]
    log_file: Path
    port: int = 0
    proc: subprocess.Popen | None = None

    def __enter__(self) -> DagsterDev:
        self.port = free_port()
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(dagster_argv(self.port), **dagster_dev_place(self.env), stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            end_group(self.proc.pid)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/graphql",
                                         data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def wait_ready(self, timeout: float) -> tuple[str, str]:
        """(location, repository) once the webserver serves the code location."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dg dev exited ({self.proc.returncode}); see {self.log_file}")
            try:
                data = self.graphql("{ repositoriesOrError { ... on RepositoryConnection "
                                    "{ nodes { name location { name } } } } }")
                nodes = data["repositoriesOrError"].get("nodes") or []
                if nodes:
                    return nodes[0]["location"]["name"], nodes[0]["name"]
            except OSError:
                pass
            time.sleep(1)
        raise TimeoutError(f"dg dev not serving after {timeout:.0f} s; see {self.log_file}")

    def runs(self, statuses: str | None = None) -> int:
        """How many runs the instance has (of these statuses)."""
        selector = f"(filter: {{statuses: {statuses}}})" if statuses else ""
        return self.graphql(f"{{ runsOrError{selector} {{ ... on Runs {{ count }} }} }}")["runsOrError"]["count"]

    def wait_quiet(self, settle: float, timeout: float, after_runs: int = 0) -> float:
        """Seconds until more than ``after_runs`` runs exist and none has been queued or running for
        ``settle`` seconds in a row (so a daemon slow to queue its first run is waited for)."""
        started = time.monotonic()
        quiet_since: float | None = None
        while time.monotonic() - started < timeout:
            now = time.monotonic()
            if self.runs(IN_FLIGHT) or self.runs() <= after_runs:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= settle:
                return quiet_since - started
            time.sleep(2)
        raise TimeoutError(f"runs still in flight after {timeout:.0f} s; see {self.log_file}")

    def launch_day(self, location: str, repository: str, day: str, timeout: float) -> dict:
        """Launch daily_pipeline for ``day`` as the UI does; wall seconds to a terminal status, and Dagster's times."""
        params = {"selector": {"repositoryLocationName": location, "repositoryName": repository,
                               "jobName": "daily_pipeline"},
                  "executionMetadata": {"tags": [{"key": "dagster/partition", "value": day}]}}
        began = time.monotonic()
        result = self.graphql(LAUNCH, {"p": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launchRun: {result}")
        run_id = result["run"]["runId"]
        while time.monotonic() - began < timeout:
            run = self.graphql(RUN, {"id": run_id})["runOrError"]
            if run.get("status") in TERMINAL:
                wall = time.monotonic() - began
                if run["status"] != "SUCCESS":
                    raise RuntimeError(f"run {run_id} of {day}: {run['status']}; see {self.log_file}")
                return {"day": day, "run_id": run_id, "wall_seconds": wall,
                        "queued_seconds": run["startTime"] - run["creationTime"],
                        "run_seconds": run["endTime"] - run["startTime"]}
            time.sleep(0.25)
        raise TimeoutError(f"run {run_id} of {day} not done after {timeout:.0f} s")


#: In ``warm_launches``' days: the seeded day with the most rentals and payments both, found after the catch-up.
BUSIEST = "busiest"


def busiest_day(lake_root: str, days: list[str]) -> str:
    """The day whose smaller of staged rentals and staged payments is largest (read from the snapshots'
    footers): a day that loads both facts, as most days of a running business do."""
    from datetime import date

    from dvd_platform.resources.lake import LakeResource

    lake, dates = LakeResource(root=lake_root), [date.fromisoformat(d) for d in days]
    rentals, payments = (lake.rows_per_day("staged", f"stg_{t}", dates) for t in ("rental", "payment"))
    return max(dates, key=lambda d: (min(rentals[d], payments[d]), d)).isoformat()


def warm_launches(env: dict[str, str], work: Path, days: list[str], seeded: list[str] | None = None,
                  settle: float = 45.0) -> dict:
    """Start `dg dev`, let the daemon catch up with the seeded drops, then launch each of ``days`` in turn
    (``BUSIEST``: the busiest of the ``seeded`` days)."""
    with DagsterDev(env, work / "dg-dev.log") as dev:
        started = time.monotonic()
        location, repository = dev.wait_ready(timeout=600)
        ready = time.monotonic() - started
        log(f"warm: dg dev serving after {ready:.1f} s; waiting for the daemon's catch-up runs to finish")
        catch_up = dev.wait_quiet(settle=settle, timeout=3600, after_runs=0)  # the landing sensor's first run
        log(f"warm: quiet after {catch_up:.1f} s")
        if BUSIEST in days:
            busiest = busiest_day(env["DVD_LAKE_ROOT"], seeded or [])
            days = [busiest if d == BUSIEST else d for d in days]
        launches = []
        for day in days:
            launches.append(dev.launch_day(location, repository, day, timeout=1800))
            log(f"warm: {day}: {launches[-1]['wall_seconds']:.1f} s launch to success "
                f"(queued {launches[-1]['queued_seconds']:.1f} s, run {launches[-1]['run_seconds']:.1f} s)")
            dev.wait_quiet(settle=settle, timeout=1800)  # the marts automation requests after the facts
    return {"ready_seconds": ready, "catch_up_seconds": catch_up, "settle_seconds": settle, "launches": launches}
