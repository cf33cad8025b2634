"""The files dvd_platform ships beside its code, found through ``importlib.resources``.

Why: the SQL (migrations, load statements, the sample OLTP DDL) and the YAML check rules
are package data, so a wheel installed anywhere finds them where it was installed, never
through a checkout's folder layout. The repository keeps the SQL in its top-level ``sql/``
folder, where it is reviewed as SQL; ``dvd_platform/sql`` is a symlink to that folder,
which an editable install follows as a folder and the wheel build copies as files
(``[tool.setuptools.package-data]`` in ``pyproject.toml``; ``test_package.py`` builds
the wheel and migrates from it outside the repository).
"""

from __future__ import annotations

from importlib.resources import files

#: ``sql/``: migrations ``NNN_*.sql`` at the top, ``load/<asset>.sql``, ``oltp/`` (the sample source's DDL).
SQL_DIR = files(__package__) / "sql"
