"""The suite's own rules: a skip fails a CI run, the sample is chosen the way the README says, and the workers share
only the run's Spark Connect server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dvd_platform.dev.stack.procs import group_alive, pid_alive
from dvd_platform.settings import PROJECT_ROOT
from dvd_platform_tests import sample, shared_spark
from dvd_platform_tests.conftest import SAMPLE_FIXTURE, SAMPLE_GROUP, plain_nodeid, xdist_group


def _make_test_options() -> tuple[str, ...]:
    """The pytest options of the Makefile's ``test`` target (the README's test command)."""
    recipe = (PROJECT_ROOT / "Makefile").read_text().split("\ntest:", 1)[1].splitlines()[1]
    return tuple(recipe.split("pytest", 1)[1].split())


MAKE_TEST_OPTIONS = _make_test_options()


def _pytest(test_dir: Path, ci: str | None, *options: str, shell: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
    """Run pytest on ``test_dir`` with this suite's conftest loaded as a plugin (``shell``: more variables)."""
    env = {k: v for k, v in os.environ.items() if k != "CI"} | (shell or {})
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "dvd_platform_tests.conftest", "-p", "no:cacheprovider",
                           "--rootdir", str(test_dir), *options, str(test_dir)],
                          cwd=test_dir, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("options", [(), MAKE_TEST_OPTIONS], ids=["serial", "make-test-workers"])
def test_a_skipped_test_fails_the_run_under_ci(tmp_path, options):
    """Also with ``make test``'s workers: a skip reported by a worker must fail the controller's run."""
    (tmp_path / "test_one.py").write_text(
        "import pytest\n\ndef test_runs():\n    pass\n\ndef test_skips():\n    pytest.skip('no data here')\n")
    quiet = _pytest(tmp_path, None, *options)
    assert quiet.returncode == 0, quiet.stdout
    ci = _pytest(tmp_path, "true", *options)
    assert ci.returncode == 1, ci.stdout
    assert "skipped outside ALLOWED_SKIPS" in ci.stdout and "test_one.py::test_skips" in ci.stdout


def test_an_allowed_skip_does_not_fail_the_run_under_ci_also_with_workers(tmp_path):
    """Under the workers a test's id carries its ``@group``: ALLOWED_SKIPS still names tests by their plain id."""
    (tmp_path / "conftest.py").write_text(
        "from dvd_platform_tests import conftest\n\n"
        "conftest.ALLOWED_SKIPS['test_one.py::test_skips'] = 'no data here, by design'\n")
    (tmp_path / "test_one.py").write_text("import pytest\n\ndef test_skips():\n    pytest.skip('no data here')\n")
    for options in [(), MAKE_TEST_OPTIONS]:
        ci = _pytest(tmp_path, "true", *options)
        assert ci.returncode == 0 and "1 skipped" in ci.stdout, ci.stdout
    assert plain_nodeid("a.py::t[x@y]@grp") == "a.py::t[x@y]" and plain_nodeid("a.py::t[x@y]") == "a.py::t[x@y]"


def test_the_workers_stacks_take_no_setting_from_the_shell_and_share_one_spark_server_stopped_at_the_end(
        tmp_path, monkeypatch):
    """A shell that sourced `.dvd/stack.env` must not point the suite (either worker) at its lake or DAGSTER_HOME.
    With ``make test``'s two workers, each worker's stack (its own PostgreSQL and S3) attaches to the run's one
    Spark Connect server (``shared_spark``), and the run stops that server, its Python workers and its warm-up
    client when it ends."""
    monkeypatch.delenv(shared_spark.ENV, raising=False)  # the run below starts, and must stop, a server of its own
    outside, seen = tmp_path / "outside", tmp_path / "seen.jsonl"
    (tmp_path / "suite").mkdir()
    for module in ("test_a", "test_b"):  # two groups: one per worker
        (tmp_path / "suite" / f"{module}.py").write_text(
            "import json, os\n"
            "from dvd_platform_tests.shared_spark import ENV, state_file\n"
            "from pathlib import Path\n\n"
            "def test_env(settings_env):\n"
            f"    assert not any(v.startswith({str(outside)!r}) for v in settings_env.values()), settings_env\n"
            "    server = json.loads(state_file(Path(os.environ[ENV])).read_text())\n"
            f"    with open({str(seen)!r}, 'a') as f:\n"
            "        f.write(json.dumps([os.environ['PYTEST_XDIST_WORKER'], settings_env['DVD_PG_DSN'],\n"
            "                            settings_env['DVD_SPARK_REMOTE'], os.environ[ENV], server]) + '\\n')\n")
    env_from_shell = {"DVD_LAKE_ROOT": outside / "lake", "DVD_STAGING_DIR": outside / "staging",
                      "DAGSTER_HOME": outside / "dagster_home", "DVD_STATE_DIR": outside}
    done = _pytest(tmp_path / "suite", None, *MAKE_TEST_OPTIONS, shell={k: str(v) for k, v in env_from_shell.items()})
    assert done.returncode == 0, done.stdout[-3000:]
    assert not outside.exists()
    records = [json.loads(line) for line in seen.read_text().splitlines()]
    workers, dsns, urls, spark_dirs = (set(column) for column in list(zip(*records))[:4])
    assert len(workers) == 2 and len(dsns) == 2, records  # a stack per worker
    assert len(urls) == 1 and len(spark_dirs) == 1 and records[0][4] == records[1][4], records  # one server
    (url,), (spark_dir,), server = urls, spark_dirs, records[0][4]
    assert url == f"sc://127.0.0.1:{server['port']}"
    assert not Path(spark_dir).exists()
    left = {name: pid for name, pid in (("server", server["pid"]), ("warm-up client", server["warmup_pid"]))
            if pid_alive(pid)}
    assert not left and not group_alive(server["pgid"]), f"still running after the run: {left or 'its workers'}"


def test_the_sample_is_pagila_where_it_exists_else_generated(tmp_path, monkeypatch):
    fake_pagila = tmp_path / "pagila"
    monkeypatch.setattr(sample, "PAGILA", fake_pagila)
    monkeypatch.delenv("DVD_TEST_SAMPLE", raising=False)
    assert sample.sample_kind() == "generated"
    monkeypatch.setenv("DVD_TEST_SAMPLE", "pagila")
    with pytest.raises(FileNotFoundError, match="no pagila sample at"):
        sample.sample_kind()
    fake_pagila.mkdir()
    monkeypatch.delenv("DVD_TEST_SAMPLE")
    assert sample.sample_kind() == "pagila"
    monkeypatch.setenv("DVD_TEST_SAMPLE", "generated")
    assert sample.sample_kind() == "generated"
    monkeypatch.setenv("DVD_TEST_SAMPLE", "both")
    with pytest.raises(ValueError, match="DVD_TEST_SAMPLE='both'"):
        sample.sample_kind()


def test_the_generated_sample_folder_is_the_generators_rows_in_pagilas_layout(tmp_path):
    """Reference tables: the first day's snapshot; event tables: every day's rows, header once."""
    from datetime import date

    from dvd_platform.dev.seed.generator import GeneratedSource
    from dvd_platform.contract.drops import drop_path
    from dvd_platform.dev.seed.sources import FolderSource
    from dvd_platform.contract.tables import TABLES

    source = GeneratedSource(scale=0.2, seed=5, start=date(2022, 3, 1), days=4)
    folder = sample.write_generated_folder(source, tmp_path / "folder")
    days = [date(2022, 3, d) for d in range(1, 5)]
    source.write_days(days, tmp_path / "drops")
    for table in ("rental", "payment", "customer"):
        lines = (folder / f"{table}.csv").read_text().splitlines()
        wanted = days if TABLES[table].is_event else days[:1]
        body = [line for day in wanted for line in drop_path(tmp_path / "drops", table, day).read_text().splitlines()[1:]]
        assert lines[0] == ",".join(TABLES[table].columns) and lines[1:] == body and body
    assert FolderSource(folder).day_range() == (days[0], days[-1])


def test_the_tests_of_the_session_sample_share_one_worker_and_the_others_go_by_module(tmp_path):
    """``make test`` runs two workers: the sample (minutes to load) must be loaded by one of them only.

    A suite shaped like ours, run with the Makefile's options: its session-scoped ``sample_dir`` records
    each worker that builds it, and every test records where it ran."""
    assert xdist_group("test_b", ["tmp_path"]) == "test_b"
    assert xdist_group("test_a", ["truth", SAMPLE_FIXTURE]) == SAMPLE_GROUP
    (tmp_path / "conftest.py").write_text(
        "import os\nimport pytest\n\n"
        "def _note(kind, name):\n"
        "    with open(os.path.join(os.path.dirname(__file__), 'ran.txt'), 'a') as f:\n"
        "        f.write(f\"{kind} {name} {os.environ.get('PYTEST_XDIST_WORKER', 'main')}\\n\")\n\n"
        f"@pytest.fixture(scope='session')\ndef {SAMPLE_FIXTURE}():\n    _note('built', 'sample')\n\n"
        f"@pytest.fixture\ndef figures({SAMPLE_FIXTURE}):\n    return None\n\n"
        "@pytest.fixture(autouse=True)\ndef where(request):\n    _note('ran', request.node.name)\n")
    # Sample tests in two modules (one through another fixture), and enough others for both workers.
    modules = {"test_a": ["sample_dir", "figures", "", ""], "test_b": ["", "", "sample_dir", ""],
               "test_c": ["", "", "", ""], "test_d": ["", "", "", ""]}
    for module, fixtures in modules.items():
        (tmp_path / f"{module}.py").write_text("".join(
            f"def test_{module}_{i}({fixture}):\n    pass\n\n" for i, fixture in enumerate(fixtures)))
    done = _pytest(tmp_path, None, *MAKE_TEST_OPTIONS)
    assert done.returncode == 0, done.stdout
    notes = [line.split() for line in (tmp_path / "ran.txt").read_text().splitlines()]
    built = [worker for kind, _, worker in notes if kind == "built"]
    assert len(built) == 1, notes  # one worker built the sample
    built_on = built[0]
    ran = {name: worker for kind, name, worker in notes if kind == "ran"}
    assert {ran[t] for t in ("test_test_a_0", "test_test_a_1", "test_test_b_2")} == {built_on}
    assert len({ran[f"test_test_c_{i}"] for i in range(4)}) == 1 and len(set(ran.values())) == 2, ran


def test_loading_the_suites_conftest_imports_no_dagster():
    """Every pytest process loads the conftest: the xdist controller and workers, and each pytest run these
    rules start (a dozen). Dagster (with dagster-aws, about 1.2 s of CPU a process) is imported by the fixtures
    that start a stack, not by the module: with it, four of these rules took 25.6 s alone instead of 4.9 s."""
    probe = "import sys, dvd_platform_tests.conftest\nprint(sorted(m for m in sys.modules if m.split('.')[0] in " \
            "('dagster', 'dagster_aws', 'pyspark')))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
