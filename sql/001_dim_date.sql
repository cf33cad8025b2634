-- Calendar dimension, fully populated up front (2000-01-01 .. 2040-12-31).
-- Facts reference it by the YYYYMMDD integer key so the loader can compute the
-- key without a lookup; a missing/unknown date uses the unknown member -1.
CREATE TABLE dw.dim_date (
    date_key     int PRIMARY KEY,               -- YYYYMMDD, or -1 for the unknown member
    date         date UNIQUE,                   -- NULL only for the unknown member
    year         int,
    quarter      int,
    month        int,
    month_name   text,
    day          int,
    day_of_week  int,                           -- ISO: 1 = Monday .. 7 = Sunday
    is_weekend   boolean,
    CONSTRAINT dim_date_key_matches_date CHECK (
        (date_key = -1 AND date IS NULL)
        OR (date IS NOT NULL AND date_key = to_char(date, 'YYYYMMDD')::int)
    ),
    CONSTRAINT dim_date_day_of_week_iso CHECK (day_of_week BETWEEN 1 AND 7)
);

INSERT INTO dw.dim_date (date_key, date, year, quarter, month, month_name, day, day_of_week, is_weekend)
SELECT to_char(d, 'YYYYMMDD')::int,
       d,
       extract(year FROM d)::int,
       extract(quarter FROM d)::int,
       extract(month FROM d)::int,
       to_char(d, 'FMMonth'),                   -- not TM-prefixed: English whatever lc_time says
       extract(day FROM d)::int,
       extract(isodow FROM d)::int,
       extract(isodow FROM d) IN (6, 7)
FROM generate_series(date '2000-01-01', date '2040-12-31', interval '1 day') AS g(ts),
     LATERAL (SELECT g.ts::date AS d) AS x;

INSERT INTO dw.dim_date (date_key, date, month_name)
VALUES (-1, NULL, 'Unknown');
