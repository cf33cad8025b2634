"""The OLTP source connector: export daily drops from a pagila-shaped PostgreSQL database."""
