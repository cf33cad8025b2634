-- Conformed dimensions. Customer and film are SCD type 2 (history kept, one
-- current version per natural key); store and staff are type 1 (overwritten).
-- Every dimension has an unknown member with key -1 so a fact whose lookup
-- fails still loads (NOT NULL foreign keys) and is visible as "Unknown".
--
-- Surrogate keys are derived, not generated: SCD2 keys hash (natural key,
-- valid_from) and type-1 keys are the natural id. Re-running a day therefore
-- reproduces the same keys and never orphans a fact.

-- ---------------------------------------------------------------- customer (SCD2)
CREATE TABLE dw.dim_customer (
    customer_key  bigint PRIMARY KEY,
    customer_id   int NOT NULL,
    first_name    text,
    last_name     text,
    email         text,
    address       text,
    district      text,
    city          text,
    country       text,
    postal_code   text,
    phone         text,
    store_id      int,
    active        boolean,
    create_date   date,
    valid_from    timestamptz NOT NULL,
    valid_to      timestamptz,                  -- NULL = current version
    is_current    boolean NOT NULL,
    version_day   date,                         -- the load day whose changes created this version
    CONSTRAINT dim_customer_current_is_open CHECK (is_current = (valid_to IS NULL)),
    CONSTRAINT dim_customer_valid_range CHECK (valid_to IS NULL OR valid_to > valid_from)
);
-- At most one current version per customer: a second one is a loader bug.
CREATE UNIQUE INDEX dim_customer_current_uq ON dw.dim_customer (customer_id) WHERE is_current;
-- A version is identified by (natural key, valid_from); also the point-in-time lookup path.
CREATE UNIQUE INDEX dim_customer_version_uq ON dw.dim_customer (customer_id, valid_from);
CREATE INDEX dim_customer_version_day_idx ON dw.dim_customer (version_day);

INSERT INTO dw.dim_customer (customer_key, customer_id, first_name, last_name, valid_from, valid_to, is_current)
VALUES (-1, -1, 'Unknown', 'Unknown', '-infinity', NULL, true);

-- ---------------------------------------------------------------- film (SCD2)
CREATE TABLE dw.dim_film (
    film_key          bigint PRIMARY KEY,
    film_id           int NOT NULL,
    title             text,
    description       text,
    release_year      int,
    language          text,
    categories        text[],
    rating            text,
    length            int,
    rental_duration   int,
    rental_rate       numeric(4,2),
    replacement_cost  numeric(5,2),
    special_features  text[],
    valid_from        timestamptz NOT NULL,
    valid_to          timestamptz,              -- NULL = current version
    is_current        boolean NOT NULL,
    version_day       date,                     -- the load day whose changes created this version
    CONSTRAINT dim_film_current_is_open CHECK (is_current = (valid_to IS NULL)),
    CONSTRAINT dim_film_valid_range CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE UNIQUE INDEX dim_film_current_uq ON dw.dim_film (film_id) WHERE is_current;
CREATE UNIQUE INDEX dim_film_version_uq ON dw.dim_film (film_id, valid_from);
CREATE INDEX dim_film_version_day_idx ON dw.dim_film (version_day);

INSERT INTO dw.dim_film (film_key, film_id, title, categories, special_features, valid_from, valid_to, is_current)
VALUES (-1, -1, 'Unknown', '{}', '{}', '-infinity', NULL, true);

-- ---------------------------------------------------------------- film <-> category bridge
-- A film has several categories; weighting each by 1/n lets category revenue be
-- allocated without double counting (the weights of one film sum to 1).
-- Unconstrained numeric so 1/3 keeps its precision.
CREATE TABLE dw.bridge_film_category (
    film_id   int NOT NULL,
    category  text NOT NULL,
    weight    numeric NOT NULL CHECK (weight > 0 AND weight <= 1),
    PRIMARY KEY (film_id, category)
);

-- ---------------------------------------------------------------- store (type 1)
CREATE TABLE dw.dim_store (
    store_key         bigint PRIMARY KEY,
    store_id          int NOT NULL UNIQUE,
    manager_staff_id  int,
    manager_name      text,
    address           text,
    city              text,
    country           text
);
INSERT INTO dw.dim_store (store_key, store_id, manager_name, address, city, country)
VALUES (-1, -1, 'Unknown', 'Unknown', 'Unknown', 'Unknown');

-- ---------------------------------------------------------------- staff (type 1)
CREATE TABLE dw.dim_staff (
    staff_key   bigint PRIMARY KEY,
    staff_id    int NOT NULL UNIQUE,
    first_name  text,
    last_name   text,
    email       text,
    store_id    int,
    active      boolean,
    username    text
);
INSERT INTO dw.dim_staff (staff_key, staff_id, first_name, last_name)
VALUES (-1, -1, 'Unknown', 'Unknown');
