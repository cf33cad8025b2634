-- A pagila-shaped OLTP database: the operational DVD-rental schema the exporter reads.
--
-- Columns, order and types follow pagila (dvd_platform/contract/tables.py is the contract), minus
-- what the sample does not carry (film.fulltext, staff.picture, staff.password) and with plain
-- types instead of pagila's domains (year -> integer, mpaa_rating -> text with a CHECK), and nullable text
-- where the sample's CSV cannot tell an empty string from NULL (address.district, address.phone).
-- Foreign keys are DEFERRABLE: a sample load and a shop's own transactions may write rows
-- before the rows they point at (pagila's store and staff reference each other).
-- Every table has last_update, kept by a trigger as in pagila; the exporter finds a day's
-- changed reference rows by it, so it is indexed.

CREATE TABLE country (
    country_id   integer PRIMARY KEY,
    country      text NOT NULL,
    last_update  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE city (
    city_id      integer PRIMARY KEY,
    city         text NOT NULL,
    country_id   integer NOT NULL REFERENCES country DEFERRABLE INITIALLY DEFERRED,
    last_update  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE address (
    address_id   integer PRIMARY KEY,
    address      text NOT NULL,
    address2     text,
    district     text,
    city_id      integer NOT NULL REFERENCES city DEFERRABLE INITIALLY DEFERRED,
    postal_code  text,
    phone        text,
    last_update  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE language (
    language_id  integer PRIMARY KEY,
    name         character(20) NOT NULL,
    last_update  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE category (
    category_id  integer PRIMARY KEY,
    name         text NOT NULL,
    last_update  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE actor (
    actor_id     integer PRIMARY KEY,
    first_name   text NOT NULL,
    last_name    text NOT NULL,
    last_update  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE film (
    film_id               integer PRIMARY KEY,
    title                 text NOT NULL,
    description           text,
    release_year          integer CHECK (release_year BETWEEN 1901 AND 2155),
    language_id           integer NOT NULL REFERENCES language DEFERRABLE INITIALLY DEFERRED,
    original_language_id  integer REFERENCES language DEFERRABLE INITIALLY DEFERRED,
    rental_duration       smallint NOT NULL DEFAULT 3,
    rental_rate           numeric(4,2) NOT NULL DEFAULT 4.99,
    length                smallint,
    replacement_cost      numeric(5,2) NOT NULL DEFAULT 19.99,
    rating                text DEFAULT 'G' CHECK (rating IN ('G', 'PG', 'PG-13', 'R', 'NC-17')),
    last_update           timestamptz NOT NULL DEFAULT now(),
    special_features      text[]
);

CREATE TABLE film_category (
    film_id      integer NOT NULL REFERENCES film DEFERRABLE INITIALLY DEFERRED,
    category_id  integer NOT NULL REFERENCES category DEFERRABLE INITIALLY DEFERRED,
    last_update  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (film_id, category_id)
);

CREATE TABLE film_actor (
    actor_id     integer NOT NULL REFERENCES actor DEFERRABLE INITIALLY DEFERRED,
    film_id      integer NOT NULL REFERENCES film DEFERRABLE INITIALLY DEFERRED,
    last_update  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor_id, film_id)
);

CREATE TABLE staff (
    staff_id     integer PRIMARY KEY,
    first_name   text NOT NULL,
    last_name    text NOT NULL,
    address_id   integer NOT NULL REFERENCES address DEFERRABLE INITIALLY DEFERRED,
    email        text,
    store_id     integer NOT NULL,
    active       boolean NOT NULL DEFAULT true,
    username     text NOT NULL,
    last_update  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE store (
    store_id          integer PRIMARY KEY,
    manager_staff_id  integer NOT NULL REFERENCES staff DEFERRABLE INITIALLY DEFERRED,
    address_id        integer NOT NULL REFERENCES address DEFERRABLE INITIALLY DEFERRED,
    last_update       timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE staff ADD FOREIGN KEY (store_id) REFERENCES store DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE customer (
    customer_id  integer PRIMARY KEY,
    store_id     integer NOT NULL REFERENCES store DEFERRABLE INITIALLY DEFERRED,
    first_name   text NOT NULL,
    last_name    text NOT NULL,
    email        text,
    address_id   integer NOT NULL REFERENCES address DEFERRABLE INITIALLY DEFERRED,
    activebool   boolean NOT NULL DEFAULT true,
    create_date  date NOT NULL DEFAULT current_date,
    last_update  timestamptz DEFAULT now(),
    active       integer
);

CREATE TABLE inventory (
    inventory_id  integer PRIMARY KEY,
    film_id       integer NOT NULL REFERENCES film DEFERRABLE INITIALLY DEFERRED,
    store_id      integer NOT NULL REFERENCES store DEFERRABLE INITIALLY DEFERRED,
    last_update   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE rental (
    rental_id     integer PRIMARY KEY,
    rental_date   timestamptz NOT NULL,
    inventory_id  integer NOT NULL REFERENCES inventory DEFERRABLE INITIALLY DEFERRED,
    customer_id   integer NOT NULL REFERENCES customer DEFERRABLE INITIALLY DEFERRED,
    return_date   timestamptz,
    staff_id      integer NOT NULL REFERENCES staff DEFERRABLE INITIALLY DEFERRED,
    last_update   timestamptz NOT NULL DEFAULT now()
);

-- pagila partitions payment by month; one table here (the exporter reads a day by payment_date).
CREATE TABLE payment (
    payment_id    integer PRIMARY KEY,
    customer_id   integer NOT NULL REFERENCES customer DEFERRABLE INITIALLY DEFERRED,
    staff_id      integer NOT NULL REFERENCES staff DEFERRABLE INITIALLY DEFERRED,
    rental_id     integer NOT NULL REFERENCES rental DEFERRABLE INITIALLY DEFERRED,
    amount        numeric(5,2) NOT NULL,
    payment_date  timestamptz NOT NULL
);

-- The exporter's access paths: event rows by their event time, changed rows by last_update.
CREATE INDEX rental_rental_date_idx ON rental (rental_date);
CREATE INDEX payment_payment_date_idx ON payment (payment_date);
CREATE INDEX country_last_update_idx ON country (last_update);
CREATE INDEX city_last_update_idx ON city (last_update);
CREATE INDEX address_last_update_idx ON address (last_update);
CREATE INDEX language_last_update_idx ON language (last_update);
CREATE INDEX category_last_update_idx ON category (last_update);
CREATE INDEX actor_last_update_idx ON actor (last_update);
CREATE INDEX film_last_update_idx ON film (last_update);
CREATE INDEX film_category_last_update_idx ON film_category (last_update);
CREATE INDEX film_actor_last_update_idx ON film_actor (last_update);
CREATE INDEX staff_last_update_idx ON staff (last_update);
CREATE INDEX store_last_update_idx ON store (last_update);
CREATE INDEX customer_last_update_idx ON customer (last_update);
CREATE INDEX inventory_last_update_idx ON inventory (last_update);

-- pagila's last_updated trigger, except that an UPDATE which sets last_update itself keeps it
-- (a sample load replaying history, or an application stamping its own clock).
CREATE FUNCTION last_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.last_update IS NOT DISTINCT FROM OLD.last_update THEN
        NEW.last_update := now();
    END IF;
    RETURN NEW;
END $$;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['country', 'city', 'address', 'language', 'category', 'actor', 'film', 'film_category',
                             'film_actor', 'staff', 'store', 'customer', 'inventory', 'rental']
    LOOP
        EXECUTE format('CREATE TRIGGER last_updated BEFORE UPDATE ON %I FOR EACH ROW EXECUTE FUNCTION last_updated()', t);
    END LOOP;
END $$;
