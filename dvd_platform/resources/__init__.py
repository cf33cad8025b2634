"""Resources: Spark, S3, the Parquet lake and the warehouse connection, configured by EnvVar."""
