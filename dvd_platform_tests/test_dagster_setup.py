"""How the platform sets up the Dagster processes it starts: no beta/supersession notices on the
terminal, other warnings kept, and the instance's dagster.yaml written only where the stack owns it."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

from dagster import BetaWarning, PreviewWarning, SupersessionWarning

from dvd_platform.dagster_notices import filter_dagster_notices
from dvd_platform.settings import ENV_VARS, PROJECT_ROOT
from dvd_platform.dev.stack import Stack

NOTICES = ("BetaWarning", "PreviewWarning", "SupersessionWarning")
OPERATORS_YAML = "telemetry:\n  enabled: false\n# the operator's own instance configuration\n"


def test_only_dagsters_notices_are_filtered():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filter_dagster_notices()
        for category in (BetaWarning, PreviewWarning, SupersessionWarning, DeprecationWarning, UserWarning):
            warnings.warn(f"a {category.__name__}", category)
    assert [w.category for w in caught] == [DeprecationWarning, UserWarning]


def _quiet_home(tmp_path: Path) -> Path:
    """A Dagster home with telemetry off, as the project's instance has it: `dg` would otherwise record
    its commands under ~/.dagster."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


def _output_of(argv: list[str], dagster_home: Path | None = None) -> str:
    """What a process prints, started in the project root as the platform starts it; it must succeed.
    ``VIRTUAL_ENV`` names the running venv, as an activated one would (`dg` warns otherwise)."""
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update({"VIRTUAL_ENV": sys.prefix, **({"DAGSTER_HOME": str(dagster_home)} if dagster_home else {})})
    result = subprocess.run(argv, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    return output


def _notices(output: str) -> list[str]:
    return [line for line in output.splitlines() if any(n in line for n in NOTICES)]


def test_loading_the_code_location_prints_no_notices():
    """What a code server or run worker does first: import the definitions (its beta APIs warn as they are built)."""
    assert _notices(_output_of([sys.executable, "-c", "import dvd_platform.definitions"])) == []


def test_dg_as_up_starts_it_prints_no_notices(tmp_path: Path):
    """`dvd-platform up` starts `dg dev` through the launcher; `dg check defs` goes through the same `dg` code
    (which loads preview classes of its own) and loads the code location, so it shows the filter without a server."""
    output = _output_of([sys.executable, "-m", "dvd_platform.dagster_notices", "check", "defs"], _quiet_home(tmp_path))
    assert _notices(output) == []


def test_dg_check_defs_passes(tmp_path: Path):
    """CI's definitions check: `dg check defs` in the project root, through the [tool.dg] settings of pyproject.toml."""
    output = _output_of([str(Path(sys.executable).with_name("dg")), "check", "defs"], _quiet_home(tmp_path))
    assert "All definitions loaded successfully" in output, output[-3000:]


def test_the_stack_writes_dagster_yaml_only_into_its_own_dagster_home(settings_env, state_dir: Path):
    """The project's dagster.yaml is the template of the stack's own instance; an instance the
    environment names keeps its configuration. Services come from settings_env: nothing is started."""
    theirs = state_dir / "their_home"
    theirs.mkdir()
    (theirs / "dagster.yaml").write_text(OPERATORS_YAML)
    env = {**os.environ, **settings_env}
    for stack, home in ((Stack(state_dir / "named"), str(theirs)), (Stack(state_dir / "own"), None)):
        stack.up(environ={**{k: v for k, v in env.items() if k != "DAGSTER_HOME"},
                          **({"DAGSTER_HOME": home} if home else {})})
        stack.down()
    assert (theirs / "dagster.yaml").read_text() == OPERATORS_YAML
    assert not (state_dir / "named" / "dagster_home").exists()
    own = state_dir / "own" / "dagster_home" / "dagster.yaml"
    assert own.read_bytes() == (PROJECT_ROOT / "dagster.yaml").read_bytes()


def test_materialize_leaves_the_instance_dagster_yaml_alone(state_dir: Path):
    """`dvd-platform materialize` uses DAGSTER_HOME's instance as configured. Without the services'
    variables its run fails at once; whatever the run does, the file must be as it was."""
    home = state_dir / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(OPERATORS_YAML)
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update({"DAGSTER_HOME": str(home), "DVD_STATE_DIR": str(state_dir / "no_stack")})
    result = subprocess.run(
        [sys.executable, "-m", "dvd_platform.cli", "materialize", "--from", "2022-02-01", "--to", "2022-02-01"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert "materializing" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
    assert (home / "dagster.yaml").read_text() == OPERATORS_YAML
