"""The landing contract the runtime reads and every producer writes.

- ``tables``  one declaration per table a daily drop holds: typed columns, primary key, required
              columns, foreign keys, event column (the layout: event or reference table)
- ``drops``   the drop layout (object and manifest keys, the manifest), the ``DropSource``
              protocol and the upload of a source's days, manifest last

Producers: the OLTP connector (``dvd_platform.oltp.export``) and, in development, the
sample seeder (``dvd_platform.dev.seed``).
"""
