"""The PostgreSQL warehouse: schema migrations and (later) loading helpers."""
