"""The PostgreSQL warehouse: schema migrations, and the load in parts.

``window.py`` (the days a load replaces), ``loader.py`` (stage -> validate -> ensure
partitions -> replace -> audit, driven by a ``LoadSpec``), ``locks.py`` (the locks a
load declares and the loader takes first), ``stage.py`` (per-load stage tables),
``replace.py`` (delete + insert, or the month swap), ``audit.py`` (the one writer of
``dw_audit.load_log``), ``copy_in.py`` (Spark's executors COPY into the stage),
``migrations.py``. ``dvd_platform.resources.warehouse`` is the Dagster resource that
connects and hands its loads to ``loader.py``.
"""
