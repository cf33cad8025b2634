"""dvd_platform installs as a package: a wheel built from this checkout, installed into a fresh
venv outside the repository, loads its definitions and migrates a warehouse from another folder.

Why it matters: the SQL and the YAML check rules are package data read with importlib.resources.
Were they found through the checkout's folder layout, this would pass in the repository and fail
in the Docker image or any other install; here no checkout is on the path.

The fresh venv has no pip and no packages of its own: a ``.pth`` file puts the project venv's
site-packages after its own, for the dependencies (a path listed in a ``.pth`` file has its own ``.pth``
files ignored, so the project venv's editable dvd_platform is not seen). The wheel is installed
with pip, offline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dvd_platform.settings import PROJECT_ROOT
from dvd_platform.warehouse.migrations import discover_migrations
from dvd_platform_tests.scratch import scratch_database

#: What a wheel is built from (deploy/Dockerfile copies the same).
BUILD_INPUTS = ("pyproject.toml", "README.md", "sql", "dvd_platform")


def _run(argv: list, cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """Run in ``cwd`` with no PYTHONPATH or DAGSTER_HOME leading back to the checkout; it must succeed."""
    env = {**{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DAGSTER_HOME")}, **env}
    result = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(map(str, argv))} failed ({result.returncode}):\n{output[-4000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of a copy of the checkout (building in the checkout would leave build/ there)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        path = PROJECT_ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", root / "dist", source], cwd=root, timeout=600)
    (built,) = (root / "dist").glob("dvd_platform-*.whl")
    return built


@pytest.fixture(scope="module")
def venv_python(wheel: Path, tmp_path_factory) -> Path:
    """The python of a fresh venv outside the repository with the wheel installed."""
    venv = tmp_path_factory.mktemp("venv") / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=venv.parent)
    python = venv / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=venv).stdout.strip())
    deps = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]
    (site / "project_dependencies.pth").write_text("".join(f"{path}\n" for path in deps))
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", wheel], cwd=venv.parent)
    return python


def test_the_wheel_carries_the_sql_and_the_check_rules(wheel: Path):
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    sql_files = {p.relative_to(PROJECT_ROOT).as_posix() for p in (PROJECT_ROOT / "sql").rglob("*.sql")}
    assert sql_files and {f"dvd_platform/{name}" for name in sql_files} <= names
    assert "dvd_platform/checks/sql_checks.yaml" in names


def test_installed_wheel_validates_and_migrates_from_another_folder(venv_python: Path, settings_env, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run([venv_python, "-c", "import dvd_platform.package_files as p; print(p.__file__); print(p.SQL_DIR)"],
                 cwd=elsewhere).stdout.split()
    site = venv_python.parent.parent
    assert all(Path(path).is_relative_to(site) for path in where), where  # the installed copy, not the checkout

    result = _run([venv_python, "-m", "dagster", "definitions", "validate", "-m", "dvd_platform.definitions"],
                  cwd=elsewhere)
    assert "Validation successful" in result.stdout + result.stderr

    migrate = ("import os; from dvd_platform.warehouse.migrations import apply_migrations; "
               "print(*apply_migrations(os.environ['DVD_PG_DSN']))")
    with scratch_database(settings_env, "dvd_wheel") as dsns:
        applied = _run([venv_python, "-c", migrate], cwd=elsewhere, DVD_PG_DSN=dsns["loader"]).stdout.split()
    assert applied == [m.version for m in discover_migrations(PROJECT_ROOT / "sql")]
