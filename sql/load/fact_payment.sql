-- Replace the window's payments in {target}: dw.fact_payment itself, or, for a whole UTC
-- month, a fresh table the loader then swaps in as the month's partition (there the DELETE
-- finds nothing; see sql/008_swap_partitions.sql). Keys derived from the rental (film,
-- store, rental and return dates) come from fact_rental when the rental is loaded, else the
-- unknown member (completed later by the rental's load).
--
-- Every load that writes dw.fact_payment locks it first, before its snapshot is taken: a
-- month swap locks out all of them for its whole transaction (SHARE ROW EXCLUSIVE), since it
-- drops the old partition's rows instead of deleting them, which SERIALIZABLE cannot see.
-- The loader takes these locks, as each load's spec declares them (LoadSpec.locks; the rule
-- in dvd_platform/warehouse/locks.py): no load SQL file takes a lock itself.

DELETE FROM {target} WHERE payment_ts >= %(window_start)s AND payment_ts < %(window_end)s;

INSERT INTO {target} (payment_id, payment_ts, payment_date_key, rental_date_key, return_date_key, customer_key,
                      staff_key, store_key, film_key, rental_id, amount, customer_id, staff_id)
SELECT s.payment_id, s.payment_ts,
       to_char(s.payment_ts AT TIME ZONE 'UTC', 'YYYYMMDD')::int,
       coalesce(r.rental_date_key, -1), r.return_date_key,
       coalesce(c.customer_key, -1), coalesce(sf.staff_key, -1),
       coalesce(r.store_key, -1), coalesce(r.film_key, -1),
       s.rental_id, s.amount, s.customer_id, s.staff_id
FROM {stage} s
LEFT JOIN LATERAL (
    SELECT fr.rental_date_key, fr.return_date_key, fr.store_key, fr.film_key
      FROM dw.fact_rental fr WHERE fr.rental_id = s.rental_id
     ORDER BY fr.rental_ts DESC LIMIT 1
) r ON true
LEFT JOIN dw.dim_customer c
       ON c.customer_id = s.customer_id AND s.payment_ts >= c.valid_from AND s.payment_ts < coalesce(c.valid_to, 'infinity')
LEFT JOIN dw.dim_staff sf ON sf.staff_id = s.staff_id
WHERE s.payment_ts >= %(window_start)s AND s.payment_ts < %(window_end)s;

SELECT count(*) FROM {target} WHERE payment_ts >= %(window_start)s AND payment_ts < %(window_end)s;
