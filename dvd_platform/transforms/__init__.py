"""Spark transforms, kept apart from the Dagster wiring so they can be tested on DataFrames."""
