"""Development tooling: never imported by the runtime (the code location, its assets, resources and sensors).

- ``stack/``       the local stack: PostgreSQL, moto S3 and a Spark Connect server on loopback, ``stack.env``
- ``seed/``        sample drops: the pagila folder source, the generator, the seeder (``dvd-platform seed``)
- ``oltp_sample``  a pagila-shaped OLTP database to export from (``dvd-platform oltp load-sample``)
- ``up``           ``dvd-platform up``: stack, seed and `dg dev` as one foreground process

Dev code imports the runtime freely (the drop contract, resources, settings); the other way is
forbidden, and ``dvd_platform_tests/test_import_rules.py`` checks it. ``dvd_platform/cli.py``, the
command line of both, imports this package only inside its development commands.
"""
