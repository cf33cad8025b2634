"""The suite's own rules: a skip fails a CI run, and the sample is chosen the way the README says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dvd_platform.settings import PROJECT_ROOT
from dvd_platform_tests import sample


def _pytest(test_dir: Path, ci: str | None) -> subprocess.CompletedProcess:
    """Run pytest on ``test_dir`` with this suite's conftest loaded as a plugin."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "dvd_platform_tests.conftest", "-p", "no:cacheprovider",
                           "--rootdir", str(test_dir), str(test_dir)],
                          cwd=test_dir, env=env, capture_output=True, text=True, timeout=120)


def test_a_skipped_test_fails_the_run_under_ci(tmp_path):
    (tmp_path / "test_one.py").write_text(
        "import pytest\n\ndef test_runs():\n    pass\n\ndef test_skips():\n    pytest.skip('no data here')\n")
    quiet = _pytest(tmp_path, None)
    assert quiet.returncode == 0, quiet.stdout
    ci = _pytest(tmp_path, "true")
    assert ci.returncode == 1, ci.stdout
    assert "skipped outside ALLOWED_SKIPS" in ci.stdout and "test_one.py::test_skips" in ci.stdout


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
