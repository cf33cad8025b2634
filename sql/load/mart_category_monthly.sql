-- Rentals and revenue per month and film category, for every month the window touches
-- (recomputed whole). A rental counts once in each category of its film; a payment's
-- revenue is split by the bridge weights, so the categories add up to total revenue.
-- Films without a category (and payments whose rental is not loaded yet) go to 'Unknown'.

DELETE FROM dw.mart_category_monthly WHERE month >= %(month_start)s::date AND month < %(month_end)s::date;

INSERT INTO dw.mart_category_monthly (month, category, rentals, revenue)
WITH r AS (
    SELECT date_trunc('month', f.rental_ts AT TIME ZONE 'UTC')::date AS month,
           coalesce(b.category, 'Unknown') AS category, count(*) AS rentals
      FROM dw.fact_rental f
      LEFT JOIN dw.bridge_film_category b ON b.film_id = f.film_id
     WHERE f.rental_ts >= %(month_start)s AND f.rental_ts < %(month_end)s
     GROUP BY 1, 2
), p AS (
    SELECT date_trunc('month', p.payment_ts AT TIME ZONE 'UTC')::date AS month,
           coalesce(b.category, 'Unknown') AS category, sum(p.amount * coalesce(b.weight, 1)) AS revenue
      FROM dw.fact_payment p
      JOIN dw.dim_film d ON d.film_key = p.film_key
      LEFT JOIN dw.bridge_film_category b ON b.film_id = d.film_id
     WHERE p.payment_ts >= %(month_start)s AND p.payment_ts < %(month_end)s
     GROUP BY 1, 2
)
SELECT coalesce(r.month, p.month), coalesce(r.category, p.category), coalesce(r.rentals, 0), coalesce(p.revenue, 0)
  FROM r FULL JOIN p ON r.month = p.month AND r.category = p.category;

SELECT count(*) FROM dw.mart_category_monthly WHERE month >= %(month_start)s::date AND month < %(month_end)s::date;
