-- Replace the window's rentals; bind each to the dimension versions valid at rental time;
-- complete the late-arriving payments of these rentals. Runs in one SERIALIZABLE transaction.

DELETE FROM dw.fact_rental WHERE rental_ts >= %(window_start)s AND rental_ts < %(window_end)s;

INSERT INTO dw.fact_rental (rental_id, rental_ts, rental_date_key, return_date_key, customer_key, film_key, store_key,
                            staff_key, inventory_id, return_ts, rental_duration_hours, is_returned,
                            customer_id, film_id, store_id, staff_id)
SELECT s.rental_id, s.rental_ts,
       to_char(s.rental_ts AT TIME ZONE 'UTC', 'YYYYMMDD')::int,
       to_char(s.return_ts AT TIME ZONE 'UTC', 'YYYYMMDD')::int,
       coalesce(c.customer_key, -1), coalesce(f.film_key, -1), coalesce(st.store_key, -1), coalesce(sf.staff_key, -1),
       s.inventory_id, s.return_ts,
       round((extract(epoch FROM s.return_ts - s.rental_ts) / 3600)::numeric, 2),
       s.return_ts IS NOT NULL,
       s.customer_id, s.film_id, s.store_id, s.staff_id
FROM {stage} s
LEFT JOIN dw.dim_customer c
       ON c.customer_id = s.customer_id AND s.rental_ts >= c.valid_from AND s.rental_ts < coalesce(c.valid_to, 'infinity')
LEFT JOIN dw.dim_film f
       ON f.film_id = s.film_id AND s.rental_ts >= f.valid_from AND s.rental_ts < coalesce(f.valid_to, 'infinity')
LEFT JOIN dw.dim_store st ON st.store_id = s.store_id
LEFT JOIN dw.dim_staff sf ON sf.staff_id = s.staff_id;

-- Late-arriving references: payments loaded before their rental carry the unknown member
-- for rental-derived keys; they are completed here, in the rental load's transaction.
WITH fixed AS (
UPDATE dw.fact_payment p
   SET film_key = r.film_key, store_key = r.store_key,
       rental_date_key = r.rental_date_key, return_date_key = r.return_date_key
  FROM dw.fact_rental r
 WHERE r.rental_ts >= %(window_start)s AND r.rental_ts < %(window_end)s
   AND p.rental_id = r.rental_id
   AND (p.film_key, p.store_key, p.rental_date_key, p.return_date_key)
       IS DISTINCT FROM (r.film_key, r.store_key, r.rental_date_key, r.return_date_key)
 RETURNING p.payment_ts AS ts)
INSERT INTO dw_audit.pending_fixups (asset, day, reason, changed_by)
SELECT DISTINCT 'fact_payment', (ts AT TIME ZONE 'UTC')::date, 'late rental completed', 'fact_rental' FROM fixed
ON CONFLICT DO NOTHING;

SELECT count(*) FROM dw.fact_rental WHERE rental_ts >= %(window_start)s AND rental_ts < %(window_end)s;
