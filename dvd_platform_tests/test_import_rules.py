"""The import rule: the runtime never imports the development tooling (``dvd_platform.dev``).

Runtime = every module of ``dvd_platform`` outside ``dvd_platform/dev/``: the code location
(definitions, assets, checks, resources, IO managers, sensors, schedules), the drop contract,
the OLTP connector, ``runner.py`` and ``tags.py``. ``dvd_platform/dev/`` may import the
runtime; the runtime may not import it, not even inside a function.

``dvd_platform/cli.py`` is the one exception, by design: it is the command line of both, and
its development commands (stack, seed, up, oltp load-sample) call into ``dvd_platform.dev``.
It may do so only inside a function, never at module level, so that importing the CLI (and
running ``dvd-platform materialize``) loads nothing of ``dvd_platform.dev``.

Checked statically (``ast``: every ``import``/``from ... import`` anywhere in a module, relative
ones resolved, plus ``importlib.import_module``/``__import__`` of a literal name), and dynamically
(a fresh interpreter imports ``dvd_platform.definitions`` and then lists ``sys.modules``).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from dvd_platform.settings import PROJECT_ROOT

PACKAGE = "dvd_platform"
DEV = "dvd_platform.dev"
PACKAGE_DIR = PROJECT_ROOT / PACKAGE
DEV_DIR = PACKAGE_DIR / "dev"
CLI = PACKAGE_DIR / "cli.py"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_dev(name: str) -> bool:
    return name == DEV or name.startswith(DEV + ".")


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module of a ``from`` import (``from ..dev import x`` in dvd_platform.oltp.export -> dvd_platform.dev)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def dev_imports(source: str, module: str, *, is_package: bool = False, module_level_only: bool = False) -> list[str]:
    """``line: name`` of every import of ``dvd_platform.dev`` in ``source`` (the module ``module``)."""
    tree = ast.parse(source)
    if module_level_only:
        nodes = []
        pending = list(tree.body)
        while pending:  # module-level statements, including those under if/try/with, not function or class bodies
            node = pending.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                continue
            nodes.append(node)
            pending.extend(ast.iter_child_nodes(node))
    else:
        nodes = list(ast.walk(tree))
    found = []
    for node in nodes:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]  # `from dvd_platform import dev`
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
        found += [f"{node.lineno}: {name}" for name in names if _is_dev(name)]
    return found


def runtime_modules() -> list[Path]:
    return sorted(path for path in PACKAGE_DIR.rglob("*.py")
                  if DEV_DIR not in path.parents and path != CLI and "__pycache__" not in path.parts)


def test_the_checker_sees_every_form_of_a_dev_import():
    """The rule's own test: each form below is a forbidden import, and the allowed ones pass."""
    module = "dvd_platform.oltp.export"
    for line in ("import dvd_platform.dev", "import dvd_platform.dev.stack as s", "from dvd_platform.dev import up",
                 "from dvd_platform import dev", "from dvd_platform.dev.seed.upload import seed", "from ..dev import up",
                 "from ..dev.stack import Stack", "def f():\n    from dvd_platform.dev.up import run_up",
                 "importlib.import_module('dvd_platform.dev.up')", "__import__('dvd_platform.dev')"):
        assert dev_imports(line, module), line
    for line in ("import dvd_platform.devices", "from dvd_platform.contract.drops import upload_drops",
                 "from dvd_platform import settings", "from .export import OltpDropSource", "from ..tags import SOURCE_GROUP"):
        assert not dev_imports(line, module), line
    inside = "import os\n\ndef cmd():\n    from dvd_platform.dev.stack import Stack\n"
    assert not dev_imports(inside, "dvd_platform.cli", module_level_only=True)
    assert dev_imports("try:\n    from dvd_platform.dev import up\nexcept ImportError:\n    pass\n", "dvd_platform.cli",
                       module_level_only=True)


def test_no_runtime_module_imports_dvd_platform_dev():
    modules = runtime_modules()
    assert len(modules) > 30 and PACKAGE_DIR / "definitions.py" in modules  # the walk found the package
    offences = {
        str(path.relative_to(PROJECT_ROOT)): found
        for path in modules
        if (found := dev_imports(path.read_text(), _module_name(path), is_package=path.name == "__init__.py"))
    }
    assert not offences, f"runtime modules import the dev tooling (dvd_platform.dev): {offences}"


def test_the_cli_imports_dvd_platform_dev_only_inside_its_commands():
    found = dev_imports(CLI.read_text(), "dvd_platform.cli", module_level_only=True)
    assert not found, f"dvd_platform/cli.py imports dvd_platform.dev at module level: {found}"


def _dev_modules_loaded_by(code: str) -> list[str]:
    """The dvd_platform.dev modules a fresh interpreter holds after running ``code``."""
    probe = (f"{code}\nimport json, sys\n"
             f"print(json.dumps(sorted(m for m in sys.modules if m == {DEV!r} or m.startswith({DEV + '.'!r}))))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_loading_the_code_location_loads_nothing_of_dvd_platform_dev():
    assert _dev_modules_loaded_by(
        "import dvd_platform.definitions, dvd_platform\n"
        f"assert dvd_platform.__file__.startswith({str(PACKAGE_DIR)!r}), dvd_platform.__file__") == []


def test_the_cli_and_the_launcher_load_nothing_of_dvd_platform_dev():
    """`dvd-platform materialize`'s path: the CLI's parser and the launcher, without a dev command."""
    assert _dev_modules_loaded_by(
        "import dvd_platform.cli, dvd_platform.runner\n"
        "dvd_platform.cli.build_parser().parse_args(['materialize', '--from', '2022-02-01', '--to', '2022-02-01'])") == []
