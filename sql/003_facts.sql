-- Fact tables, range-partitioned by event time into UTC months.
-- Monthly partitions are created on demand by dw.ensure_month_partitions (004)
-- before a load; the DEFAULT partition only catches rows no month exists for
-- yet, so a load never fails on a missing partition. The primary keys include
-- the partition key because PostgreSQL requires it for unique constraints on
-- partitioned tables. Indexes and foreign keys declared here are cloned onto
-- every partition automatically.
--
-- The facts keep their natural ids (customer_id, film_id, ...) next to the
-- surrogate keys: when a dimension day is (re)loaded, the facts of the members
-- it changed are re-bound to the version valid at their event time. The keys
-- to the SCD2 dimensions are checked at commit (DEFERRABLE), so one load
-- transaction can replace versions and re-bind their facts.

-- ---------------------------------------------------------------- fact_rental
CREATE TABLE dw.fact_rental (
    rental_id              int NOT NULL,
    rental_ts              timestamptz NOT NULL,
    rental_date_key        int NOT NULL REFERENCES dw.dim_date (date_key),
    return_date_key        int REFERENCES dw.dim_date (date_key),
    customer_key           bigint NOT NULL REFERENCES dw.dim_customer (customer_key) DEFERRABLE INITIALLY DEFERRED,
    film_key               bigint NOT NULL REFERENCES dw.dim_film (film_key) DEFERRABLE INITIALLY DEFERRED,
    store_key              bigint NOT NULL REFERENCES dw.dim_store (store_key),
    staff_key              bigint NOT NULL REFERENCES dw.dim_staff (staff_key),
    inventory_id           int,
    return_ts              timestamptz,
    rental_duration_hours  numeric(10,2),
    is_returned            boolean NOT NULL,
    customer_id            int NOT NULL,
    film_id                int,
    store_id               int,
    staff_id               int,
    PRIMARY KEY (rental_id, rental_ts)
) PARTITION BY RANGE (rental_ts);

CREATE TABLE dw.fact_rental_default PARTITION OF dw.fact_rental DEFAULT;

CREATE INDEX fact_rental_rental_date_key_idx ON dw.fact_rental (rental_date_key);
CREATE INDEX fact_rental_return_date_key_idx ON dw.fact_rental (return_date_key);
CREATE INDEX fact_rental_customer_key_idx    ON dw.fact_rental (customer_key);
CREATE INDEX fact_rental_film_key_idx        ON dw.fact_rental (film_key);
CREATE INDEX fact_rental_store_key_idx       ON dw.fact_rental (store_key);
CREATE INDEX fact_rental_staff_key_idx       ON dw.fact_rental (staff_key);
CREATE INDEX fact_rental_rental_ts_idx       ON dw.fact_rental (rental_ts);
-- The primary key already leads with rental_id; this narrower index is part of
-- the contract (lookups/joins by rental_id alone, e.g. from fact_payment).
CREATE INDEX fact_rental_rental_id_idx       ON dw.fact_rental (rental_id);
CREATE INDEX fact_rental_customer_id_idx     ON dw.fact_rental (customer_id);
CREATE INDEX fact_rental_film_id_idx         ON dw.fact_rental (film_id);

-- ---------------------------------------------------------------- fact_payment
CREATE TABLE dw.fact_payment (
    payment_id        int NOT NULL,
    payment_ts        timestamptz NOT NULL,
    payment_date_key  int NOT NULL REFERENCES dw.dim_date (date_key),
    rental_date_key   int NOT NULL REFERENCES dw.dim_date (date_key),
    return_date_key   int REFERENCES dw.dim_date (date_key),
    customer_key      bigint NOT NULL REFERENCES dw.dim_customer (customer_key) DEFERRABLE INITIALLY DEFERRED,
    staff_key         bigint NOT NULL REFERENCES dw.dim_staff (staff_key),
    store_key         bigint NOT NULL REFERENCES dw.dim_store (store_key),
    film_key          bigint NOT NULL REFERENCES dw.dim_film (film_key) DEFERRABLE INITIALLY DEFERRED,
    rental_id         int,
    amount            numeric(7,2) NOT NULL,
    customer_id       int NOT NULL,
    staff_id          int,
    PRIMARY KEY (payment_id, payment_ts)
) PARTITION BY RANGE (payment_ts);

CREATE TABLE dw.fact_payment_default PARTITION OF dw.fact_payment DEFAULT;

CREATE INDEX fact_payment_payment_date_key_idx ON dw.fact_payment (payment_date_key);
CREATE INDEX fact_payment_rental_date_key_idx  ON dw.fact_payment (rental_date_key);
CREATE INDEX fact_payment_return_date_key_idx  ON dw.fact_payment (return_date_key);
CREATE INDEX fact_payment_customer_key_idx     ON dw.fact_payment (customer_key);
CREATE INDEX fact_payment_staff_key_idx        ON dw.fact_payment (staff_key);
CREATE INDEX fact_payment_store_key_idx        ON dw.fact_payment (store_key);
CREATE INDEX fact_payment_film_key_idx         ON dw.fact_payment (film_key);
CREATE INDEX fact_payment_payment_ts_idx       ON dw.fact_payment (payment_ts);
CREATE INDEX fact_payment_rental_id_idx        ON dw.fact_payment (rental_id);
CREATE INDEX fact_payment_customer_id_idx      ON dw.fact_payment (customer_id);
