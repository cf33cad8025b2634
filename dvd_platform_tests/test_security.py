"""Security promises (issue 9): secrets stay out of Dagster's records, SQL is composed not
formatted, the analyst role reads and never writes. (Raw keys that would escape the staging
directory are refused in ``test_a_forged_raw_reference_is_refused_before_any_download``.)"""

from __future__ import annotations

import ast
import json
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

import psycopg2
import pytest
from dagster import DagsterEventType, serialize_value
from psycopg2 import errors, sql

import dvd_platform
from dvd_platform.io_managers.raw_refs import month_key
from dvd_platform.resources.warehouse import WarehouseResource
from dvd_platform.contract.tables import TABLES
from dvd_platform_tests.crafted import drop_bytes, line

DAY = date(2023, 6, 25)  # 2023-06 is the bad-input corpus' month; this day is not in it


def _rental(rental_id: int, on: date) -> str:
    at = f"{on} 10:00:00+00"
    return line("rental", rental_id=rental_id, rental_date=at, inventory_id=1, customer_id=1, staff_id=1, last_update=at)


def _secrets(env: dict[str, str]) -> dict[str, str]:
    """Every credential of the stack: the roles' passwords and the S3 secret key."""
    found = {"AWS_SECRET_ACCESS_KEY": env["AWS_SECRET_ACCESS_KEY"]}
    for name in ("DVD_PG_DSN", "DVD_PG_ANALYST_DSN", "DVD_PG_ADMIN_DSN", "DVD_OLTP_DSN"):
        found[f"password in {name}"] = urlparse(env[name]).password
    assert all(value and len(value) >= 16 for value in found.values())  # generated tokens: no chance match
    return found


def test_no_secret_in_event_log_run_config_or_job_snapshot(stack, s3, settings_env, run_range, dagster_instance):
    header = ",".join(TABLES["rental"].columns)
    drop_bytes(s3, settings_env["DVD_LANDING_BUCKET"], DAY,
               {"rental": f"{header}\n{_rental(700401, DAY)}\n".encode()})
    # S3 (raw) and the warehouse (a mart computed in PostgreSQL) take part; Spark's settings hold no secret.
    summary = run_range(DAY, DAY, "key:raw_rental or key:mart_daily_revenue")
    assert {"raw_rental", "mart_daily_revenue"} <= set(summary.materialized), summary.lines()
    run = dagster_instance.get_run_by_id(summary.result.run_id)
    records = dagster_instance.all_logs(run.run_id)
    kinds = {r.dagster_event.event_type for r in records if r.dagster_event}
    assert {DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_CHECK_EVALUATION,
            DagsterEventType.RESOURCE_INIT_SUCCESS} <= kinds  # metadata and resource events are all there
    texts = {
        "event log": "\n".join(serialize_value(r) for r in records),
        "run (config, tags)": serialize_value(run),
        # Resource config given as a literal value (not EnvVar) is stored here, as the schema's default.
        "job snapshot": serialize_value(dagster_instance.get_job_snapshot(run.job_snapshot_id)),
    }
    leaks = [(secret, where) for secret, value in _secrets(settings_env).items()
             for where, text in texts.items() if value in text]
    assert leaks == []


# ============================================================================ the analyst role


def _warehouse_tables(settings_env) -> list[tuple[str, str, str]]:
    """(schema, table, first column) of every table and partition in dw and dw_audit, migrations applied."""
    WarehouseResource(dsn=settings_env["DVD_PG_DSN"]).migrate()
    with psycopg2.connect(settings_env["DVD_PG_DSN"]) as conn, conn.cursor() as cur:
        cur.execute("""SELECT n.nspname, c.relname, a.attname FROM pg_class c
                       JOIN pg_namespace n ON n.oid = c.relnamespace
                       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = 1
                       WHERE n.nspname IN ('dw', 'dw_audit') AND c.relkind IN ('r', 'p') ORDER BY 1, 2""")
        return cur.fetchall()


def test_analyst_reads_every_table_and_can_write_none(stack, settings_env):
    tables = _warehouse_tables(settings_env)
    assert {("dw", "fact_payment"), ("dw", "dim_customer"), ("dw_audit", "load_log")} <= {t[:2] for t in tables}
    conn = psycopg2.connect(settings_env["DVD_PG_ANALYST_DSN"])
    conn.autocommit = True
    allowed, denied = [], []
    try:
        with conn.cursor() as cur:
            for schema, table, column in tables:
                target, col = sql.Identifier(schema, table), sql.Identifier(column)
                cur.execute(sql.SQL("SELECT * FROM {} LIMIT 1").format(target))
                for statement in (sql.SQL("INSERT INTO {} DEFAULT VALUES").format(target),
                                  sql.SQL("UPDATE {} SET {} = {}").format(target, col, col),
                                  sql.SQL("DELETE FROM {}").format(target),
                                  sql.SQL("TRUNCATE {}").format(target)):
                    try:
                        cur.execute(statement)
                        allowed.append(statement.as_string(conn))
                    except errors.InsufficientPrivilege:
                        denied.append(statement)
            for statement in ("CREATE TABLE dw.analyst_probe (a int)", "CREATE TABLE dw_audit.analyst_probe (a int)",
                              "CREATE TABLE public.analyst_probe (a int)", "CREATE SCHEMA analyst_probe",
                              "CREATE TABLE dw_stage.analyst_probe (a int)"):
                try:
                    cur.execute(statement)
                    allowed.append(statement)
                except errors.InsufficientPrivilege:
                    denied.append(statement)
    finally:
        conn.close()
    assert allowed == []
    assert len(denied) == 4 * len(tables) + 5


# ============================================================================ SQL is composed, never formatted

SQL_CALLS = {"execute", "executemany", "mogrify", "copy_expert", "copy_from", "copy_to", "SQL"}
Helpers = dict[str, set]  # function name -> positions and names of its parameters that reach psycopg2


def _is_formatted(node: ast.AST | None, bound: dict[str, list[ast.AST]]) -> bool:
    """Whether ``node`` builds a string from values: f-string, ``%``, ``+`` or ``str.format``."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        return any(isinstance(side, (ast.Constant, ast.JoinedStr)) and not (
            isinstance(side, ast.Constant) and not isinstance(side.value, str)) or _is_formatted(side, bound)
            for side in (node.left, node.right))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return isinstance(node.func.value, (ast.Constant, ast.JoinedStr))
    if isinstance(node, ast.Name):  # a variable: formatted if any assignment to it in the function is
        return any(_is_formatted(value, {}) for value in bound.get(node.id, []))
    return False


def _sql_arguments(call: ast.Call, helpers: Helpers) -> list[ast.AST]:
    """The arguments of ``call`` that are SQL text: the first of a psycopg2 call, a helper's SQL parameters."""
    name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)
    if name in SQL_CALLS:
        return call.args[:1]
    sql_params = helpers.get(name, set())
    return ([arg for i, arg in enumerate(call.args) if i in sql_params]
            + [k.value for k in call.keywords if k.arg in sql_params])


def _functions(tree: ast.AST) -> list[tuple[ast.FunctionDef, list[str]]]:
    """Every function with the parameters its callers pass (a method's ``self``/``cls`` left out)."""
    methods = {id(item) for node in ast.walk(tree) if isinstance(node, ast.ClassDef) for item in node.body
               if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not any(
                   getattr(d, "id", None) == "staticmethod" for d in item.decorator_list)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            params = [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs]
            found.append((node, params[1:] if id(node) in methods else params))
    return found


def sql_helpers(trees: list[ast.AST]) -> Helpers:
    """Functions that hand a parameter on as SQL text, to psycopg2 or to another such function.

    SQL formatted by a caller and passed through ``_fetch(conn, query)`` or ``warehouse.query(q)``
    reaches the server all the same, so a call of a helper is checked like ``cursor.execute``.
    """
    functions = [f for tree in trees for f in _functions(tree)]
    helpers: Helpers = {}
    changed = True
    while changed:  # to a fixed point: a helper of a helper is a helper
        changed = False
        for node, params in functions:
            for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
                for arg in _sql_arguments(call, helpers):
                    if isinstance(arg, ast.Name) and arg.id in params and arg.id not in helpers.get(node.name, set()):
                        helpers.setdefault(node.name, set()).update({arg.id, params.index(arg.id)})
                        changed = True
    return helpers


def sql_formatting(source: str, helpers: Helpers | None = None) -> list[int]:
    """Lines where SQL text handed to psycopg2, to ``sql.SQL`` or to a helper that passes it on
    (``helpers``, by default those defined in ``source``) is built by string formatting."""
    tree = ast.parse(source)
    helpers = sql_helpers([tree]) if helpers is None else helpers
    lines = []
    scopes = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))] + [tree]
    for scope in scopes:
        nodes = list(ast.walk(scope)) if scope is not tree else _module_level(tree)  # a function: closures too
        bound: dict[str, list[ast.AST]] = {}
        for node in nodes:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        bound.setdefault(target.id, []).append(node.value)
        for node in nodes:
            if isinstance(node, ast.Call) and any(_is_formatted(a, bound) for a in _sql_arguments(node, helpers)):
                lines.append(node.lineno)
    return sorted(set(lines))


def _module_level(tree: ast.Module) -> list[ast.AST]:
    """The nodes of a module outside its functions (each function is a scope of its own)."""
    nodes, todo = [], [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo += [c for c in ast.iter_child_nodes(node) if not isinstance(c, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return nodes


@pytest.mark.parametrize("source, flagged", [
    ("cur.execute(f'SELECT * FROM {table}')", [1]),
    ("cur.execute('SELECT * FROM %s' % table)", [1]),
    ("cur.execute('SELECT * FROM ' + table)", [1]),
    ("cur.execute('SELECT * FROM {}'.format(table))", [1]),
    ("def f(cur, t):\n    q = f'DELETE FROM {t}'\n    cur.execute(q)", [3]),
    ("sql.SQL(f'SELECT {c} FROM t')", [1]),
    ("cur.execute(sql.SQL('SELECT {} FROM t WHERE a = %s').format(sql.Identifier(c)), (v,))", []),
    ("cur.execute('SELECT a FROM t WHERE b = %s', (v,))", []),
    ("sql.SQL(path.read_text()).format(stage=stage)", []),
    # SQL handed to a helper that executes it: positionally, by keyword, through a variable,
    # a method (self left out) and a helper of a helper.
    ("def run(cur, q):\n    cur.execute(q)\ndef f(cur, t):\n    run(cur, f'SELECT * FROM {t}')", [4]),
    ("def run(cur, q):\n    cur.execute(q)\nrun(cur, q='DELETE FROM ' + t)", [3]),
    ("def one(conn, q, p):\n    return conn.cursor().execute(q, p)\ndef f(conn, t):\n    q = f'SELECT {t}'\n"
     "    return one(conn, q, {})", [5]),
    ("class W:\n    def query(self, statement):\n        return fetch(self.conn, statement)\n"
     "def fetch(conn, text):\n    conn.cursor().execute(text)\nw.query('SELECT * FROM %s' % t)", [6]),
    ("def run(cur, q):\n    cur.execute(q)\nrun(cur, sql.SQL('SELECT * FROM {}').format(sql.Identifier(t)))", []),
    ("def run(cur, q, label):\n    cur.execute(q)\nrun(cur, 'SELECT 1', label=f'{t}')", []),
])
def test_the_sql_scanner_flags_formatting_and_passes_composition(source, flagged):
    assert sql_formatting(source) == flagged


def test_no_sql_is_built_by_string_formatting_in_the_package():
    package = Path(dvd_platform.__file__).parent
    sources = {str(path.relative_to(package)): path.read_text() for path in sorted(package.rglob("*.py"))}
    helpers = sql_helpers([ast.parse(text) for text in sources.values()])  # across modules
    assert {"query", "_fetch", "_one", "_dicts"} <= set(helpers)  # e.g. WarehouseResource.query, the checks' own
    found = {name: lines for name, text in sources.items() if (lines := sql_formatting(text, helpers))}
    assert found == {}


# ============================================================================ raw keys -> local paths


@pytest.mark.parametrize("day, key, md5", [
    (date(2023, 6, 26), "raw/../../escaped/00000000000000000000000000000000.csv", "0" * 32),  # the table part climbs
    (date(2023, 6, 27), "raw/rental/dt=2023-06-27/rental-../../../escaped.csv", "../../../escaped"),  # the md5 part
])
def test_a_forged_raw_reference_is_refused_before_any_download(stack, s3, settings_env, run_range, day, key, md5):
    """A reference in the lake whose key or md5 climbs out (``..``) never becomes a local path.

    (The local path is built from the table, day and md5 of the reference.)
    """
    lake_bucket, staging = settings_env["DVD_LAKE_BUCKET"], Path(settings_env["DVD_STAGING_DIR"])
    body = ",".join(TABLES["rental"].columns).encode() + f"\n{_rental(1, day)}\n".encode()
    s3.put_object(Bucket=lake_bucket, Key=key, Body=body)
    s3.put_object(Bucket=lake_bucket, Key=month_key("rental", day), Body=json.dumps({day.isoformat(): {
        "day": day.isoformat(), "bucket": lake_bucket, "key": key, "bytes": len(body), "md5": md5, "rows": 1}}).encode())
    # Everything the forged key could name sits under the state root; Postgres and the lake
    # write there too, so look for the escaped name rather than compare whole listings.
    root = staging.parent.parent
    assert not list(root.rglob("*escaped*"))
    summary = run_range(day, day, "key:stg_rental")
    assert summary.failed_steps == ["stg_rental"]
    failure = next(e for e in summary.result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    assert "UnsafeRawKeyError" in str(failure.event_specific_data.error) and repr(md5 if ".." in md5 else key) in str(
        failure.event_specific_data.error)
    assert not list(root.rglob("*escaped*"))  # nothing written
