-- SCD2 merge of the versions that start on the window's days (computed by Spark from the
-- staged history), in one transaction:
--   1. drop this window's old versions that the new computation no longer has;
--   2. upsert the window's versions (keys derive from customer_id + valid_from);
--   3. rebuild valid_to / is_current along each affected customer's version chain;
--   4. re-bind the facts of the affected customers to the version valid at their event time.
-- Foreign keys from the facts are DEFERRABLE, so steps 1-4 are checked together at commit.

CREATE TEMP TABLE _affected ON COMMIT DROP AS
SELECT customer_id FROM {stage}
UNION
SELECT customer_id FROM dw.dim_customer WHERE version_day BETWEEN %(first_day)s AND %(last_day)s;

DELETE FROM dw.dim_customer d
 WHERE d.version_day BETWEEN %(first_day)s AND %(last_day)s
   AND NOT EXISTS (SELECT 1 FROM {stage} s WHERE s.customer_key = d.customer_key);

INSERT INTO dw.dim_customer AS d (customer_key, customer_id, first_name, last_name, email, address, district, city,
                                  country, postal_code, phone, store_id, active, create_date, valid_from, valid_to,
                                  is_current, version_day)
SELECT customer_key, customer_id, first_name, last_name, email, address, district, city, country, postal_code, phone,
       store_id, active, create_date, valid_from, 'infinity', false, version_day
  FROM {stage}
ON CONFLICT (customer_key) DO UPDATE
   SET first_name = excluded.first_name, last_name = excluded.last_name, email = excluded.email,
       address = excluded.address, district = excluded.district, city = excluded.city, country = excluded.country,
       postal_code = excluded.postal_code, phone = excluded.phone, store_id = excluded.store_id,
       active = excluded.active, create_date = excluded.create_date, version_day = excluded.version_day
 WHERE (d.first_name, d.last_name, d.email, d.address, d.district, d.city, d.country, d.postal_code, d.phone,
        d.store_id, d.active, d.create_date, d.version_day)
       IS DISTINCT FROM
       (excluded.first_name, excluded.last_name, excluded.email, excluded.address, excluded.district, excluded.city,
        excluded.country, excluded.postal_code, excluded.phone, excluded.store_id, excluded.active,
        excluded.create_date, excluded.version_day);

-- Close every version that has a successor (first, so no two are current at once) ...
WITH chain AS (
    SELECT customer_key, lead(valid_from) OVER (PARTITION BY customer_id ORDER BY valid_from) AS next_from
      FROM dw.dim_customer WHERE customer_id IN (SELECT customer_id FROM _affected)
)
UPDATE dw.dim_customer d SET valid_to = chain.next_from, is_current = false
  FROM chain
 WHERE d.customer_key = chain.customer_key AND chain.next_from IS NOT NULL
   AND (d.valid_to IS DISTINCT FROM chain.next_from OR d.is_current);
-- ... then open the last one.
WITH chain AS (
    SELECT customer_key, lead(valid_from) OVER (PARTITION BY customer_id ORDER BY valid_from) AS next_from
      FROM dw.dim_customer WHERE customer_id IN (SELECT customer_id FROM _affected)
)
UPDATE dw.dim_customer d SET valid_to = NULL, is_current = true
  FROM chain
 WHERE d.customer_key = chain.customer_key AND chain.next_from IS NULL AND NOT d.is_current;

WITH fixed AS (
UPDATE dw.fact_rental f SET customer_key = b.key
  FROM (SELECT f2.rental_id, f2.rental_ts, coalesce(d.customer_key, -1) AS key
          FROM dw.fact_rental f2
          LEFT JOIN dw.dim_customer d
                 ON d.customer_id = f2.customer_id AND f2.rental_ts >= d.valid_from
                AND f2.rental_ts < coalesce(d.valid_to, 'infinity')
         WHERE f2.customer_id IN (SELECT customer_id FROM _affected)) b
 WHERE f.rental_id = b.rental_id AND f.rental_ts = b.rental_ts AND f.customer_key <> b.key
 RETURNING f.rental_ts AS ts)
INSERT INTO dw_audit.pending_fixups (asset, day, reason, changed_by)
SELECT DISTINCT 'fact_rental', (ts AT TIME ZONE 'UTC')::date, 'customer key re-bound', 'dim_customer' FROM fixed
ON CONFLICT DO NOTHING;

WITH fixed AS (
UPDATE dw.fact_payment f SET customer_key = b.key
  FROM (SELECT f2.payment_id, f2.payment_ts, coalesce(d.customer_key, -1) AS key
          FROM dw.fact_payment f2
          LEFT JOIN dw.dim_customer d
                 ON d.customer_id = f2.customer_id AND f2.payment_ts >= d.valid_from
                AND f2.payment_ts < coalesce(d.valid_to, 'infinity')
         WHERE f2.customer_id IN (SELECT customer_id FROM _affected)) b
 WHERE f.payment_id = b.payment_id AND f.payment_ts = b.payment_ts AND f.customer_key <> b.key
 RETURNING f.payment_ts AS ts)
INSERT INTO dw_audit.pending_fixups (asset, day, reason, changed_by)
SELECT DISTINCT 'fact_payment', (ts AT TIME ZONE 'UTC')::date, 'customer key re-bound', 'dim_customer' FROM fixed
ON CONFLICT DO NOTHING;

SELECT count(*) FROM {stage};
