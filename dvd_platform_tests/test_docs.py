"""The docs say only what is true: the README's table of environment variables is the code's.

A unit test of text, no services: it parses the package's source (never imports it to run
anything) and the README.
"""

from __future__ import annotations

import ast
import re

from dvd_platform.settings import ENV_VARS, PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "dvd_platform"
README = PROJECT_ROOT / "README.md"
# Dagster instance files: their `env: NAME` values are read by Dagster on the platform's behalf.
INSTANCE_CONFIGS = (PROJECT_ROOT / "dagster.yaml", PROJECT_ROOT / "deploy" / "dagster.production.yaml")
# The platform's own variables, and the AWS and Dagster ones it relies on; Spark's own
# (SPARK_LOCAL_IP, PYSPARK_PYTHON) are described in the README's text, not in the table.
PREFIXES = ("DVD_", "AWS_", "DAGSTER_")
# Read for the platform by a library, never by name in its code: boto3 takes the secret key from the environment.
READ_BY_LIBRARIES = {"AWS_SECRET_ACCESS_KEY"}
ROW = re.compile(r"^\| `([A-Z0-9_]+)` \| (.+) \|$")


def _strings(node: ast.expr) -> set[str]:
    """The strings of a literal tuple or list, else nothing."""
    if isinstance(node, (ast.Tuple, ast.List)):
        return {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    return set()


def _string_constants(trees: list[ast.Module]) -> dict[str, set[str]]:
    """Module-level ``NAME = "text"`` of every module (e.g. ``STATE_DIR_ENV = "DVD_STATE_DIR"``)."""
    found: dict[str, set[str]] = {}
    for tree in trees:
        for node in tree.body:
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, str)):
                found.update({t.id: {node.value.value} for t in node.targets if isinstance(t, ast.Name)})
    return found


def _loop_values(tree: ast.Module) -> dict[str, set[str]]:
    """Loop variables over literal names, as in ``for key in ("DVD_PG_DSN", ...): environ.get(key)``."""
    found: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.comprehension)) and isinstance(node.target, ast.Name):
            found.setdefault(node.target.id, set()).update(_strings(node.iter))
    return found


def _is_environ(node: ast.expr) -> bool:
    """``os.environ``, or a name/attribute called ``environ`` (a copy of it, as ``Stack.up`` takes)."""
    return (isinstance(node, ast.Name) and node.id == "environ") or (
        isinstance(node, ast.Attribute) and node.attr == "environ")


def _variable_argument(node: ast.AST) -> ast.expr | None:
    """The name argument of an environment read: ``EnvVar(X)``, ``EnvVar.int(X)``, ``os.getenv(X)``,
    ``environ.get(X)`` / ``.setdefault(X)``, ``environ[X]``."""
    if isinstance(node, ast.Subscript) and _is_environ(node.value):
        return node.slice
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    if isinstance(func, ast.Name) and func.id == "EnvVar":
        return node.args[0]
    if isinstance(func, ast.Attribute):
        if isinstance(func.value, ast.Name) and func.value.id == "EnvVar":
            return node.args[0]
        if func.attr == "getenv" or (func.attr in ("get", "setdefault") and _is_environ(func.value)):
            return node.args[0]
    return None


def variables_the_code_reads() -> set[str]:
    """Names read by the package's Python (a literal, a module constant or a loop over literals) and by
    the instance files."""
    trees = [ast.parse(path.read_text(), str(path)) for path in sorted(PACKAGE.rglob("*.py"))]
    constants = _string_constants(trees)
    names = set(READ_BY_LIBRARIES)
    for tree in trees:
        known = {**constants, **_loop_values(tree)}
        for node in ast.walk(tree):
            arg = _variable_argument(node)
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value)
            elif isinstance(arg, (ast.Name, ast.Attribute)):
                names.update(known.get(arg.id if isinstance(arg, ast.Name) else arg.attr, ()))
    for config in INSTANCE_CONFIGS:
        names.update(re.findall(r"\benv:\s*([A-Z][A-Z0-9_]*)", config.read_text()))
    return {name for name in names if name.startswith(PREFIXES)}


def readme_table() -> dict[str, str]:
    """The rows of the README's *Environment variables* table: name -> meaning."""
    section = README.read_text().split("\n## Environment variables\n", 1)[1].split("\n## ", 1)[0]
    return {m[1]: m[2] for m in (ROW.match(line) for line in section.splitlines()) if m}


def test_readme_env_table_lists_exactly_the_variables_the_code_reads():
    read = variables_the_code_reads()
    # The scan itself works: EnvVar, environ.get through a module constant, environ[...], instance files.
    assert {"DVD_PG_DSN", "DVD_OLTP_EXPORT", "DVD_STATE_DIR", "DAGSTER_HOME", "DVD_DAGSTER_PG_URL"} <= read, read
    table = readme_table()
    assert not read - set(table), f"read by the code, missing from the README's table: {sorted(read - set(table))}"
    assert not set(table) - read, f"in the README's table, read by nothing: {sorted(set(table) - read)}"


def test_readme_env_table_is_settings_env_vars():
    """The README says its table is ``settings.ENV_VARS``, which tests and deploy checks use."""
    assert readme_table() == ENV_VARS
