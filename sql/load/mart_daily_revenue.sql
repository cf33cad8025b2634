-- Revenue, rentals, payments and active customers per day and store, for the window's days.
-- A rental's store is its inventory's store; a payment's store is its rental's.

DELETE FROM dw.mart_daily_revenue WHERE date BETWEEN %(first_day)s AND %(last_day)s;

INSERT INTO dw.mart_daily_revenue (date, store_id, rentals, payments, revenue, active_customers)
WITH events AS (
    SELECT (f.rental_ts AT TIME ZONE 'UTC')::date AS date, st.store_id, f.customer_id,
           1 AS rental, 0 AS payment, 0::numeric AS amount
      FROM dw.fact_rental f JOIN dw.dim_store st ON st.store_key = f.store_key
     WHERE f.rental_ts >= %(window_start)s AND f.rental_ts < %(window_end)s
    UNION ALL
    SELECT (p.payment_ts AT TIME ZONE 'UTC')::date, st.store_id, p.customer_id, 0, 1, p.amount
      FROM dw.fact_payment p JOIN dw.dim_store st ON st.store_key = p.store_key
     WHERE p.payment_ts >= %(window_start)s AND p.payment_ts < %(window_end)s
)
SELECT date, store_id, sum(rental), sum(payment), sum(amount), count(DISTINCT customer_id)
  FROM events GROUP BY date, store_id;

SELECT count(*) FROM dw.mart_daily_revenue WHERE date BETWEEN %(first_day)s AND %(last_day)s;
