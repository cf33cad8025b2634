-- The bridge holds every film's current categories; weight = 1 / the film's number of
-- categories (numeric division keeps 20 significant digits). Replaced whole: it is small.
DELETE FROM dw.bridge_film_category;
INSERT INTO dw.bridge_film_category (film_id, category, weight)
SELECT film_id, category, 1::numeric / count(*) OVER (PARTITION BY film_id) FROM {stage};
SELECT count(*) FROM dw.bridge_film_category;
