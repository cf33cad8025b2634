"""Session fixtures: one real stack (PostgreSQL, S3, the run's Spark Connect server) and one SparkSession per test session.

The stack lives in a temporary state directory and is stopped at the end, so a
test run leaves no process behind (test_stack checks it for a second stack).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from dvd_platform import settings
from dvd_platform_tests import shared_spark
from dvd_platform_tests.spark_session import live_spark

# Tests that may skip under CI=true, each with the reason it may (none today). Any other skip fails
# the run there: a skipped test proves nothing, and a fresh clone must run the whole suite.
ALLOWED_SKIPS: dict[str, str] = {}


@pytest.fixture(scope="session")
def state_root():
    """A world-searchable temp dir: as root, the Postgres server runs as 'postgres' and must reach it.

    (pytest's own tmp dirs are 0700.)
    """
    root = Path(tempfile.mkdtemp(prefix="dvd-tests-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def state_dir(state_root: Path, request: pytest.FixtureRequest) -> Path:
    """A fresh state dir for a test that starts its own stack."""
    path = Path(tempfile.mkdtemp(prefix=request.node.name[:40] + "-", dir=state_root))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def stack(state_root: Path):
    """The session's stack; its settings are exported to os.environ for the code under test.

    Its Spark is a Spark Connect server, as ``make up``'s is: the session's in-process runs, and the runs a
    test starts on this stack in a subprocess (``dvd-platform materialize``) or from the UI, attach to
    that one warm JVM instead of starting a driver each, which cost a subprocess run a minute on two
    cores. The server is the test run's one (``shared_spark``): both xdist workers' stacks use it, each
    with its own PostgreSQL, S3, lake and sessions. (Tests that start ``up`` get a stack, and a server, of
    their own.) Classic mode keeps its tests: ``two_runs`` runs the other mode beside the session's.
    """
    # Imported here, not with the module: every pytest process loads this conftest (the suite's own rules start
    # pytest a dozen times, ``test_suite_rules``), and these import Dagster.
    from dvd_platform.dev.stack import Stack
    from dvd_platform.resources.spark import REMOTE_ENV

    state = state_root / "session"
    # Durability settings off: the tests restart nothing at the OS level, and this halves load times.
    stack = Stack(state, pg_server_options={"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"})
    saved = dict(os.environ)
    # Every setting comes from this stack, none from the shell: a shell that sourced `.dvd/stack.env`
    # (README) would otherwise point both xdist workers, and `make up`'s own stack, at one lake,
    # staging dir and DAGSTER_HOME (Stack.up keeps those when set).
    for key in settings.ENV_VARS:
        os.environ.pop(key, None)
    values = stack.up({**os.environ, REMOTE_ENV: shared_spark.server_url()})
    os.environ.update(values)
    os.environ["DVD_STATE_DIR"] = str(state)
    try:
        yield stack, values
    finally:
        try:
            _close_spark_connect_session()
        finally:
            stack.down()
            os.environ.clear()
            os.environ.update(saved)


def _close_spark_connect_session() -> None:
    """Close this process's Spark Connect session while its server still runs. Otherwise pyspark releases
    it when the process exits (SPARK_CONNECT_RELEASE_SESSION_ON_EXIT), and with the server stopped its
    client retries for about ten minutes before pytest can end."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    session = ConnectSession._get_default_session()
    if session is not None:
        session.stop()


@pytest.fixture(scope="session")
def settings_env(stack) -> dict[str, str]:
    return stack[1]


@pytest.fixture(scope="session")
def s3(settings_env):
    from dvd_platform.resources.s3 import s3_client

    return s3_client(settings_env["DVD_S3_ENDPOINT_URL"])


@pytest.fixture(scope="session")
def sample_dir(state_root: Path) -> Path:
    """The session's sample CSVs: pagila where ../shared has it, else the generator's (see sample.py)."""
    from dvd_platform_tests.sample import sample_folder

    return sample_folder(state_root)


@pytest.fixture(scope="session")
def sample_landing(settings_env, s3, sample_dir):
    """The whole sample seeded into the session's landing bucket (once per session)."""
    from dvd_platform.dev.seed.upload import seed, select_days
    from dvd_platform.dev.seed.sources import FolderSource

    source = FolderSource(sample_dir)
    days = select_days(source)
    result = seed(source, s3, settings_env["DVD_LANDING_BUCKET"], days)
    return source, result


@pytest.fixture(scope="session")
def dagster_instance(state_root: Path):
    """The session's Dagster instance (runs and events, no daemon): a home of its own with the project's
    dagster.yaml, as ``stack up`` lays one out, so the suite's runs store their events as a user's do (the
    platform's event log, in batches where the stack's settings say so). Dagster's in-memory instance
    stored each event one by one, at about 2.6 ms: a minute of the session sample's load."""
    import yaml
    from dagster import DagsterInstance

    home = state_root / "dagster-session"
    home.mkdir()
    config = yaml.safe_load((settings.PROJECT_ROOT / "dagster.yaml").read_text())
    # Its event log in this home: by default the platform's goes where DAGSTER_HOME (the stack's) says.
    config["event_log_storage"]["config"] = {"base_dir": str(home / "history" / "runs")}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    with DagsterInstance.from_config(str(home)) as instance:
        yield instance


@pytest.fixture(scope="session")
def defs(settings_env):
    from dvd_platform.definitions import defs

    return defs


@pytest.fixture(scope="session")
def run_range(defs, dagster_instance):
    """Materialize a selection over a day range through Dagster; returns the RunSummary."""
    from dvd_platform.runner import materialize_range

    def run(start, end, selection=None):
        return materialize_range(defs, start, end, selection, instance=dagster_instance)

    return run


@pytest.fixture(scope="session")
def sample_loaded(sample_landing, run_range):
    """The whole sample range through the whole graph, in one run (a single-run backfill)."""
    source, _ = sample_landing
    first, last = source.day_range()
    summary = run_range(first, last)
    assert summary.ok, summary.lines()
    return first, last, summary


@pytest.fixture(scope="session")
def truth(sample_dir):
    from dvd_platform_tests.sample_truth import compute

    return compute(sample_dir)


@pytest.fixture
def spark(stack):
    """The session's SparkSession (the one the in-process runs use): ``live_spark``."""
    return live_spark()


@pytest.fixture
def pg(settings_env):
    """A loader connection to the session warehouse (UTC)."""
    import psycopg2

    conn = psycopg2.connect(settings_env["DVD_PG_DSN"], options="-c timezone=UTC")
    conn.autocommit = True
    yield conn
    conn.close()


_SPARK_DIR = pytest.StashKey[Path | None]()


def pytest_configure(config: pytest.Config) -> None:
    """The run's first pytest process names the directory of the run's Spark Connect server (``shared_spark``)."""
    config.stash[_SPARK_DIR] = shared_spark.claim()


def pytest_unconfigure(config: pytest.Config) -> None:
    """After every worker has ended: stop the run's Spark Connect server, if this process named its directory."""
    if path := config.stash.get(_SPARK_DIR, None):
        shared_spark.release(path)


def pytest_report_header(config: pytest.Config) -> str:
    from dvd_platform_tests.sample import sample_kind

    return f"dvd_platform sample: {sample_kind()} (DVD_TEST_SAMPLE=auto|pagila|generated)"


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into the test ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fail early on a bad DVD_TEST_SAMPLE (e.g. pagila forced where it is not on disk); give each test
    its ``xdist_group`` (see :func:`xdist_group`)."""
    from dvd_platform_tests.sample import sample_kind

    try:
        sample_kind()
    except (ValueError, FileNotFoundError) as exc:
        raise pytest.UsageError(str(exc)) from exc
    for item in items:
        item.add_marker(pytest.mark.xdist_group(xdist_group(item.module.__name__, item.fixturenames)))


#: The fixture every use of the session sample goes through (``truth``, ``sample_landing``, ``sample_loaded``).
SAMPLE_FIXTURE = "sample_dir"
SAMPLE_GROUP = "session-sample"


def xdist_group(module: str, fixtures: list[str]) -> str:
    """Where ``make test`` (pytest-xdist, ``--dist loadgroup``) runs a test: every test that uses the
    session sample on one worker, so the sample is generated, seeded and loaded (the suite's longest
    fixture, minutes) once; the other tests of a module together, on whichever worker is free (they
    share module fixtures). Tests on different workers share no data: each worker starts its own
    session stack when a test of its needs one (only the run's Spark Connect server is shared: ``shared_spark``)."""
    return SAMPLE_GROUP if SAMPLE_FIXTURE in fixtures else module


_skipped: list[str] = []


def plain_nodeid(nodeid: str) -> str:
    """The test's id without the ``@group`` that ``--dist loadgroup`` appends (a parameter may hold '@')."""
    at = nodeid.rfind("@")
    return nodeid[:at] if at > nodeid.rfind("]") else nodeid


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and plain_nodeid(report.nodeid) not in ALLOWED_SKIPS:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI=true a skip outside ALLOWED_SKIPS fails the run (exit code 1), naming the tests."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes") and _skipped:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes") and _skipped:
        terminalreporter.write_line(
            f"CI=true: {len(_skipped)} test(s) skipped outside ALLOWED_SKIPS (conftest.py), which fails the run: "
            + ", ".join(_skipped), red=True)
