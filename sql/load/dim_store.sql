-- Type 1: upsert every store's latest state (store_key = store_id, so facts never need
-- re-binding except those that met the store before it existed: the unknown member).

INSERT INTO dw.dim_store AS d (store_key, store_id, manager_staff_id, manager_name, address, city, country)
SELECT store_key, store_id, manager_staff_id, manager_name, address, city, country FROM {stage}
ON CONFLICT (store_key) DO UPDATE
   SET manager_staff_id = excluded.manager_staff_id, manager_name = excluded.manager_name,
       address = excluded.address, city = excluded.city, country = excluded.country
 WHERE (d.manager_staff_id, d.manager_name, d.address, d.city, d.country)
       IS DISTINCT FROM (excluded.manager_staff_id, excluded.manager_name, excluded.address, excluded.city, excluded.country);

WITH fixed AS (
UPDATE dw.fact_rental f SET store_key = f.store_id
 WHERE f.store_key = -1 AND f.store_id IN (SELECT store_id FROM {stage})
 RETURNING f.rental_ts AS ts)
INSERT INTO dw_audit.pending_fixups (asset, day, reason, changed_by)
SELECT DISTINCT 'fact_rental', (ts AT TIME ZONE 'UTC')::date, 'store key bound', 'dim_store' FROM fixed
ON CONFLICT DO NOTHING;
WITH fixed AS (
UPDATE dw.fact_payment p SET store_key = r.store_key
  FROM dw.fact_rental r
 WHERE p.store_key = -1 AND p.rental_id = r.rental_id AND r.store_key <> -1
 RETURNING p.payment_ts AS ts)
INSERT INTO dw_audit.pending_fixups (asset, day, reason, changed_by)
SELECT DISTINCT 'fact_payment', (ts AT TIME ZONE 'UTC')::date, 'store key bound', 'dim_store' FROM fixed
ON CONFLICT DO NOTHING;

SELECT count(*) FROM {stage};
