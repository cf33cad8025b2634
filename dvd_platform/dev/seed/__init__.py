"""Sample drops for development and tests: the pagila folder source, the generator, the seeder.

Development only (``dvd_platform.dev``): the runtime's drop contract is ``dvd_platform.contract``.
"""
