#!/bin/sh
# First start of the postgres container (docker-entrypoint-initdb.d): the roles and
# databases that `dvd-platform up` creates locally (dvd_platform/dev/stack/postgres.py).
# Passwords come from the container environment (deploy/infra.env.template).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
     -v loader_pw="$DVD_LOADER_PASSWORD" -v analyst_pw="$DVD_ANALYST_PASSWORD" <<'SQL'
CREATE ROLE dvd_loader LOGIN PASSWORD :'loader_pw';
CREATE ROLE dvd_analyst LOGIN PASSWORD :'analyst_pw';
CREATE DATABASE dvd_warehouse OWNER dvd_loader;
CREATE DATABASE dagster OWNER dvd_loader;
SQL
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname dvd_warehouse <<'SQL'
REVOKE ALL ON DATABASE dvd_warehouse FROM PUBLIC;
GRANT CONNECT ON DATABASE dvd_warehouse TO dvd_analyst;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
CREATE SCHEMA IF NOT EXISTS dw AUTHORIZATION dvd_loader;
CREATE SCHEMA IF NOT EXISTS dw_audit AUTHORIZATION dvd_loader;
GRANT USAGE ON SCHEMA dw, dw_audit TO dvd_analyst;
ALTER DEFAULT PRIVILEGES FOR ROLE dvd_loader IN SCHEMA dw GRANT SELECT ON TABLES TO dvd_analyst;
ALTER DEFAULT PRIVILEGES FOR ROLE dvd_loader IN SCHEMA dw_audit GRANT SELECT ON TABLES TO dvd_analyst;
SQL
