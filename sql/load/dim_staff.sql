-- Type 1: upsert every staff member's latest state (staff_key = staff_id).

INSERT INTO dw.dim_staff AS d (staff_key, staff_id, first_name, last_name, email, store_id, active, username)
SELECT staff_key, staff_id, first_name, last_name, email, store_id, active, username FROM {stage}
ON CONFLICT (staff_key) DO UPDATE
   SET first_name = excluded.first_name, last_name = excluded.last_name, email = excluded.email,
       store_id = excluded.store_id, active = excluded.active, username = excluded.username
 WHERE (d.first_name, d.last_name, d.email, d.store_id, d.active, d.username)
       IS DISTINCT FROM (excluded.first_name, excluded.last_name, excluded.email, excluded.store_id, excluded.active,
                         excluded.username);

WITH fixed AS (
UPDATE dw.fact_rental SET staff_key = staff_id WHERE staff_key = -1 AND staff_id IN (SELECT staff_id FROM {stage})
 RETURNING rental_ts AS ts)
INSERT INTO dw_audit.pending_fixups (asset, day, reason, changed_by)
SELECT DISTINCT 'fact_rental', (ts AT TIME ZONE 'UTC')::date, 'staff key bound', 'dim_staff' FROM fixed
ON CONFLICT DO NOTHING;
WITH fixed AS (
UPDATE dw.fact_payment SET staff_key = staff_id WHERE staff_key = -1 AND staff_id IN (SELECT staff_id FROM {stage})
 RETURNING payment_ts AS ts)
INSERT INTO dw_audit.pending_fixups (asset, day, reason, changed_by)
SELECT DISTINCT 'fact_payment', (ts AT TIME ZONE 'UTC')::date, 'staff key bound', 'dim_staff' FROM fixed
ON CONFLICT DO NOTHING;

SELECT count(*) FROM {stage};
