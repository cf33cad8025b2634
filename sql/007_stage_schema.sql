-- Per-load stage tables live here: UNLOGGED, created and dropped by the
-- Postgres IO manager around each load. Analysts get no access.
CREATE SCHEMA dw_stage;
