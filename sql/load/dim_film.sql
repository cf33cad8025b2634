-- SCD2 merge of dim_film; same steps as dim_customer.sql. Payments take their film from
-- their rental, so they follow the re-bound rentals.

CREATE TEMP TABLE _affected ON COMMIT DROP AS
SELECT film_id FROM {stage}
UNION
SELECT film_id FROM dw.dim_film WHERE version_day BETWEEN %(first_day)s AND %(last_day)s;

DELETE FROM dw.dim_film d
 WHERE d.version_day BETWEEN %(first_day)s AND %(last_day)s
   AND NOT EXISTS (SELECT 1 FROM {stage} s WHERE s.film_key = d.film_key);

INSERT INTO dw.dim_film AS d (film_key, film_id, title, description, release_year, language, categories, rating, length,
                              rental_duration, rental_rate, replacement_cost, special_features, valid_from, valid_to,
                              is_current, version_day)
SELECT film_key, film_id, title, description, release_year, language, categories, rating, length, rental_duration,
       rental_rate, replacement_cost, special_features, valid_from, 'infinity', false, version_day
  FROM {stage}
ON CONFLICT (film_key) DO UPDATE
   SET title = excluded.title, description = excluded.description, release_year = excluded.release_year,
       language = excluded.language, categories = excluded.categories, rating = excluded.rating,
       length = excluded.length, rental_duration = excluded.rental_duration, rental_rate = excluded.rental_rate,
       replacement_cost = excluded.replacement_cost, special_features = excluded.special_features,
       version_day = excluded.version_day
 WHERE (d.title, d.description, d.release_year, d.language, d.categories, d.rating, d.length, d.rental_duration,
        d.rental_rate, d.replacement_cost, d.special_features, d.version_day)
       IS DISTINCT FROM
       (excluded.title, excluded.description, excluded.release_year, excluded.language, excluded.categories,
        excluded.rating, excluded.length, excluded.rental_duration, excluded.rental_rate, excluded.replacement_cost,
        excluded.special_features, excluded.version_day);

WITH chain AS (
    SELECT film_key, lead(valid_from) OVER (PARTITION BY film_id ORDER BY valid_from) AS next_from
      FROM dw.dim_film WHERE film_id IN (SELECT film_id FROM _affected)
)
UPDATE dw.dim_film d SET valid_to = chain.next_from, is_current = false
  FROM chain
 WHERE d.film_key = chain.film_key AND chain.next_from IS NOT NULL
   AND (d.valid_to IS DISTINCT FROM chain.next_from OR d.is_current);
WITH chain AS (
    SELECT film_key, lead(valid_from) OVER (PARTITION BY film_id ORDER BY valid_from) AS next_from
      FROM dw.dim_film WHERE film_id IN (SELECT film_id FROM _affected)
)
UPDATE dw.dim_film d SET valid_to = NULL, is_current = true
  FROM chain
 WHERE d.film_key = chain.film_key AND chain.next_from IS NULL AND NOT d.is_current;

WITH fixed AS (
UPDATE dw.fact_rental f SET film_key = b.key
  FROM (SELECT f2.rental_id, f2.rental_ts, coalesce(d.film_key, -1) AS key
          FROM dw.fact_rental f2
          LEFT JOIN dw.dim_film d
                 ON d.film_id = f2.film_id AND f2.rental_ts >= d.valid_from
                AND f2.rental_ts < coalesce(d.valid_to, 'infinity')
         WHERE f2.film_id IN (SELECT film_id FROM _affected)) b
 WHERE f.rental_id = b.rental_id AND f.rental_ts = b.rental_ts AND f.film_key <> b.key
 RETURNING f.rental_ts AS ts)
INSERT INTO dw_audit.pending_fixups (asset, day, reason, changed_by)
SELECT DISTINCT 'fact_rental', (ts AT TIME ZONE 'UTC')::date, 'film key re-bound', 'dim_film' FROM fixed
ON CONFLICT DO NOTHING;

WITH fixed AS (
UPDATE dw.fact_payment p SET film_key = r.film_key
  FROM dw.fact_rental r
 WHERE p.rental_id = r.rental_id AND r.film_id IN (SELECT film_id FROM _affected) AND p.film_key <> r.film_key
 RETURNING p.payment_ts AS ts)
INSERT INTO dw_audit.pending_fixups (asset, day, reason, changed_by)
SELECT DISTINCT 'fact_payment', (ts AT TIME ZONE 'UTC')::date, 'film key re-bound', 'dim_film' FROM fixed
ON CONFLICT DO NOTHING;

SELECT count(*) FROM {stage};
