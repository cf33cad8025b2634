-- The inputs a type-1 load read (dim_store, dim_staff, bridge_film_category): a fingerprint of the
-- staged snapshots that made its rows, and of the code that turned them into rows. A load whose
-- inputs equal those of the asset's last successful load would write exactly what is already
-- there, so it is skipped and logged as such (skipped = true, nothing staged or changed).
ALTER TABLE dw_audit.load_log ADD COLUMN inputs text;
ALTER TABLE dw_audit.load_log ADD COLUMN skipped boolean NOT NULL DEFAULT false;
