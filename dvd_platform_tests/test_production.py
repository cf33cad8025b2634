"""The production deployment: docker-compose.yml and deploy/ checked statically, and the
Postgres-backed Dagster instance (deploy/dagster.production.yaml) run for real against the
session stack's PostgreSQL (database ``dagster``).

Docker is not available here: the compose file is validated, never started.
"""

from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path

import pytest
import yaml

from dvd_platform import settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"
PRODUCTION_YAML = DEPLOY / "dagster.production.yaml"

DVD_SERVICES = ("dagster-code", "dagster-webserver", "dagster-daemon", "spark-worker")
# Env files the operator creates from the committed templates.
ENV_FILE_TEMPLATES = {".env.production": "env.template", ".env.infra": "infra.env.template"}
STANDARD_VARS = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "DAGSTER_HOME",
    "PYSPARK_PYTHON",
    "SPARK_LOCAL_IP",
}
PINNED_TAG = re.compile(r"^(RELEASE\.\d{4}-\d{2}-\d{2}T[\d-]+Z|v?\d+\.\d+(\.\d+)?([-.][A-Za-z0-9.]+)*)$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _env_of(service: dict) -> dict[str, str]:
    """A service's environment: its env files (read from their templates) then `environment`."""
    env: dict[str, str] = {}
    files = service.get("env_file", [])
    for entry in [files] if isinstance(files, (str, dict)) else files:
        path = entry["path"] if isinstance(entry, dict) else entry
        name = Path(path).name
        template = DEPLOY / ENV_FILE_TEMPLATES.get(name, name)
        assert template.is_file(), f"env file {path} has no template {template}"
        env.update(settings.parse_env_file(template))
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] for item in environment)
    env.update({k: str(v) for k, v in environment.items()})
    return env


def test_compose_services_and_pinned_images(compose):
    services = compose["services"]
    expected = {"postgres", "minio", "minio-init", "spark-master", "spark-worker", *DVD_SERVICES}
    assert expected <= set(services), expected - set(services)
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name}: no image (a built service needs a tagged image name too)"
        repo, sep, tag = image.rpartition(":")
        assert sep and repo and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest" and PINNED_TAG.match(tag), f"{name}: image tag {tag!r} is not a pinned version"
    assert services["postgres"]["image"].startswith("postgres:15.")
    assert services["minio"]["image"].startswith("minio/minio:RELEASE.")
    assert services["minio-init"]["image"].startswith("minio/mc:RELEASE.")
    assert services["spark-master"]["image"].startswith("apache/spark:")
    # The project image is built from deploy/Dockerfile, on the same Spark image as the master.
    for name in DVD_SERVICES:
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile", name
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"FROM {services['spark-master']['image']}" in dockerfile
    assert "dagster.production.yaml" in dockerfile


def test_image_runs_the_installed_wheel_without_a_source_tree():
    """The image's last stage installs the wheel built in an earlier stage and copies in no source: a
    source tree in the code server's working directory would shadow site-packages and hide a wheel
    that lacks its SQL (test_package.py builds and migrates from that wheel)."""
    stages = re.split(r"(?m)^FROM ", (DEPLOY / "Dockerfile").read_text())[1:]
    builder = next((stage for stage in stages if "pip wheel" in stage), None)
    assert builder, "no stage of deploy/Dockerfile builds the wheel (pip wheel)"
    for source in ("sql", "dvd_platform", "pyproject.toml"):
        assert re.search(rf"(?m)^COPY .*\b{re.escape(source)}\b", builder), source
    final = stages[-1]
    assert re.search(r"(?m)^COPY --from=\S+ /wheels ", final) and re.search(r"pip install .*\.whl", final)
    copied = re.findall(r"(?m)^COPY (?!--from=)(\S+)", final)
    assert all(path.startswith("deploy/") for path in copied), copied
    assert re.search(r"(?m)^WORKDIR /opt/dagster$", final)


def test_compose_healthchecks_and_wiring(compose):
    services = compose["services"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["minio"]["healthcheck"]["test"]
    init = " ".join(services["minio-init"]["command"])
    template = settings.parse_env_file(DEPLOY / "env.template")
    for bucket in (template["DVD_LANDING_BUCKET"], template["DVD_LAKE_BUCKET"]):
        assert f"mc mb --ignore-existing dvd/{bucket}" in init
    # The postgres init script is mounted and creates the databases the DSNs name.
    mounts = " ".join(services["postgres"]["volumes"])
    assert "deploy/postgres-init.sh" in mounts
    init_sql = (DEPLOY / "postgres-init.sh").read_text()
    for db in ("dvd_warehouse", "dagster"):
        assert f"CREATE DATABASE {db} OWNER dvd_loader" in init_sql
    # Webserver and daemon load the code location over gRPC from dagster-code.
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    grpc = workspace["load_from"][0]["grpc_server"]
    assert grpc["host"] == "dagster-code"
    assert str(grpc["port"]) in services["dagster-code"]["command"]
    assert "dvd_platform.definitions" in services["dagster-code"]["command"]
    for name in ("dagster-webserver", "dagster-daemon"):
        assert "/opt/dagster/workspace.yaml" in services[name]["command"], name
        assert _env_of(services[name])["DAGSTER_HOME"] == "/opt/dagster/dagster_home"
    # The Spark driver's fixed address is the container's.
    code = services["dagster-code"]
    assert _env_of(code)["SPARK_LOCAL_IP"] == code["networks"]["dvd"]["ipv4_address"]


def test_dvd_services_only_set_variables_the_code_reads(compose):
    allowed = set(settings.ENV_VARS) | STANDARD_VARS
    for name in DVD_SERVICES:
        env = _env_of(compose["services"][name])
        unknown = set(env) - allowed
        assert not unknown, f"{name} sets variables the code does not read: {sorted(unknown)}"
    # Local-stack-only variables stay out of production.
    template = settings.parse_env_file(DEPLOY / "env.template")
    assert not {"DVD_PG_ADMIN_DSN", "DVD_STATE_DIR"} & set(template)
    assert set(template) <= allowed


def test_env_template_sets_every_resource_variable():
    source = (ROOT / "dvd_platform" / "definitions.py").read_text()
    used = set(re.findall(r"EnvVar(?:\.\w+)?\(\s*[\"']([A-Z0-9_]+)[\"']", source))
    assert {"DVD_PG_DSN", "DVD_SPARK_MASTER", "DVD_LAKE_ROOT"} <= used, used  # the grep works
    template = settings.parse_env_file(DEPLOY / "env.template")
    missing = used - set(template)
    assert not missing, f"deploy/env.template lacks {sorted(missing)}"
    # The Dagster storage URL uses the psycopg2 driver (SQLAlchemy 2.1 would pick psycopg 3).
    assert template["DVD_DAGSTER_PG_URL"].startswith("postgresql+psycopg2://")


def test_production_instance_config_matches_local_limits(tmp_path):
    from dagster._core.instance.config import dagster_instance_config

    prod = yaml.safe_load(PRODUCTION_YAML.read_text())
    local = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    assert prod["storage"]["postgres"]["postgres_url"] == {"env": "DVD_DAGSTER_PG_URL"}
    assert prod["concurrency"] == local["concurrency"]
    assert prod["telemetry"] == {"enabled": False}
    assert prod["nux"] == {"enabled": False}
    # Valid against the installed Dagster's instance schema.
    shutil.copy(PRODUCTION_YAML, tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["storage"]["postgres"]


def psycopg2_url(url: str) -> str:
    """The stack writes a libpq URL; dagster-postgres needs the SQLAlchemy psycopg2 scheme."""
    scheme, sep, rest = url.partition("://")
    assert sep and scheme in ("postgresql", "postgres", "postgresql+psycopg2"), url
    return f"postgresql+psycopg2://{rest}"


def test_postgres_instance_records_a_run(settings_env, sample_landing, defs, tmp_path, monkeypatch):
    import psycopg2
    from dagster import DagsterInstance
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    from dvd_platform.runner import materialize_range

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PRODUCTION_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DVD_DAGSTER_PG_URL", psycopg2_url(settings_env["DVD_DAGSTER_PG_URL"]))

    day = date(2022, 5, 25)
    with DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert {"key": "dvd/engine", "value": "spark", "limit": 1} in limits

        # A selection without foreign keys, so the run stands alone and must succeed.
        summary = materialize_range(defs, day, day, "key:raw_language or key:stg_language", instance=instance)
        assert summary.ok, summary.lines()
        assert summary.materialized == {"raw_language": 1, "stg_language": 1}
        run_id = summary.result.run_id
        record = instance.get_run_by_id(run_id)
        assert record is not None and record.is_finished
        assert record.tags["dagster/asset_partition_range_start"] == day.isoformat()
        assert instance.get_records_for_run(run_id).records  # events in the Postgres event log

    conn = psycopg2.connect(settings_env["DVD_DAGSTER_PG_URL"])
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM runs WHERE run_id = %s", (run_id,))
            assert cur.fetchone()[0] == 1
            cur.execute("SELECT count(*) FROM event_logs WHERE run_id = %s", (run_id,))
            assert cur.fetchone()[0] > 0
    finally:
        conn.close()
