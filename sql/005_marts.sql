-- Reporting marts, rebuilt by the loader per day/month from the facts.
-- Kept as tables (not materialized views) so each partition's rows can be
-- replaced in the same transaction as the facts it derives from.
CREATE TABLE dw.mart_daily_revenue (
    date              date NOT NULL,
    store_id          int NOT NULL,
    rentals           int NOT NULL,
    payments          int NOT NULL,
    revenue           numeric(12,2) NOT NULL,
    active_customers  int NOT NULL,
    PRIMARY KEY (date, store_id)
);

-- Revenue per category is allocated through dw.bridge_film_category weights,
-- hence unconstrained numeric (fractions of a cent until summed up).
CREATE TABLE dw.mart_category_monthly (
    month     date NOT NULL,             -- first day of the month
    category  text NOT NULL,
    rentals   int NOT NULL,
    revenue   numeric NOT NULL,
    PRIMARY KEY (month, category),
    CONSTRAINT mart_category_monthly_month_start CHECK (extract(day FROM month) = 1)
);
