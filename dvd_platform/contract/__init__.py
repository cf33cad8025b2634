"""The landing contract the runtime reads and every producer writes.

- ``tables``  which tables a daily drop holds: columns, primary key, event column
- ``drops``   the drop layout (object and manifest keys, the manifest), the ``DropSource``
              protocol and the upload of a source's days, manifest last

Producers: the OLTP connector (``dvd_platform.oltp.export``) and, in development, the
sample seeder (``dvd_platform.dev.seed``).
"""
